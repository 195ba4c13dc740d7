r"""Embed a gallery with a trained run and write a search index.

    python -m pipelines.index --workdir=runs/x --gallery=photos/ [--output=runs/x/index]

The gallery is a folder of class subfolders or a 'path,label' CSV (paths
under --gallery_root, default the CSV's folder); without --gallery, the
run's evaluation split. Its images are embedded in evaluation preprocessing
by the run's checkpoint (or --saved_model) and written as a
`prism_tf.search.GalleryIndex` (embeddings.npy, labels.npy, index.json with
each row's path), replacing the folder only when complete. Images that
cannot be decoded are left out with a warning (--strict: refused).
`prism-tf-export --index=<the folder>` serves it
as the export's `search` signatures; `GalleryIndex.load` reads it in Python.
"""

import json
from pathlib import Path
from typing import Optional

from absl import app, flags
import numpy as np
import tensorflow as tf

from . import cli
from .runs import Run
from prism_tf.data import ImageSplit
from prism_tf.data.pipeline import drop_undecodable
from prism_tf.data.sources import DataError, csv_list, image_folder
from prism_tf.export import probe_images
from prism_tf.search import META_FILE, SHARD_ROWS, GalleryIndex

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined only when run as a program, so tests can import the module.
    flags.DEFINE_string("workdir", None, "Training workdir whose model embeds the gallery.")
    flags.DEFINE_string("gallery", None, "Folder of class subfolders, or a 'path,label' CSV; "
                        "default: the run's evaluation split.")
    flags.DEFINE_string("gallery_root", None, "Folder the CSV's paths are under; "
                        "default: the CSV's folder.")
    flags.DEFINE_string("output", None, "Index folder; default: WORKDIR/index.")
    flags.DEFINE_string("saved_model", None, "Exported version folder to use instead of the "
                        "checkpoint.")
    flags.DEFINE_integer("shard_rows", SHARD_ROWS, "Rows per gallery shard (prism_tf.search).")
    flags.DEFINE_bool("strict", False, "Refuse a gallery with images that cannot be decoded "
                      "instead of leaving them out.")


def gallery_split(gallery: str, root: Optional[str] = None) -> ImageSplit:
    """The images of a gallery folder (class subfolders) or 'path,label' CSV."""
    path = Path(gallery)
    if path.is_dir():
        if root:
            raise DataError(f"--gallery_root={root} is for a CSV gallery; {gallery} is a "
                            "folder")
        return image_folder(gallery)
    if path.is_file():
        return csv_list(gallery, root or str(path.parent))
    raise DataError(f"--gallery={gallery}: no such folder or CSV file")


def index_gallery(workdir: str, gallery: Optional[str] = None,
                  gallery_root: Optional[str] = None, output: Optional[str] = None,
                  saved_model: Optional[str] = None, shard_rows: int = SHARD_ROWS,
                  strict: bool = False) -> Path:
    """Embeds the gallery (`gallery_split`, or the run's evaluation split)
    and saves its `GalleryIndex`; returns the index folder."""
    if shard_rows < 1:
        raise ValueError(f"--shard_rows={shard_rows}: expected a positive number of rows")
    run = Run(workdir)
    if gallery:
        split = drop_undecodable(gallery_split(gallery, gallery_root), strict)
        source = gallery
    elif gallery_root:
        raise DataError("--gallery_root needs --gallery (a CSV)")
    else:
        split = run.splits()[1]
        source = f"{workdir}: evaluation split"
    embedder = run.embedder(saved_model)
    preprocessing, rows, embeddings = run.embed_split(split, embedder)
    if not len(rows):
        raise DataError(f"{source}: no image could be embedded")
    paths = [str(split.paths[i]) for i in rows] if split.paths is not None else None
    probe = np.asarray(embedder[1](tf.constant(probe_images(preprocessing))))
    index = GalleryIndex(embeddings, split.labels[rows], paths, shard_rows, source,
                         probe / np.linalg.norm(probe))
    return index.save(output or str(Path(workdir) / "index"))


def main(argv):
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    with cli.one_line_errors():
        folder = index_gallery(FLAGS.workdir, FLAGS.gallery, FLAGS.gallery_root, FLAGS.output,
                               FLAGS.saved_model, FLAGS.shard_rows, FLAGS.strict)
    meta = json.loads((folder / META_FILE).read_text())
    print(f"indexed {meta['rows']} images of {meta['source']} into {folder}")


def run() -> None:
    """The `prism-tf-index` command."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    run()
