r"""Benchmark: what the finder's review page costs to write and to open.

    python -m pipelines.benchmarks.review_page --workdir=runs/x --suspects=0,1000,10000

For each --suspects count (0: the list and the PNG grid alone), the
finder's wall time on the run (`find_noisy_labels`, into a fresh folder,
checkpoint embeddings; --repetitions interleaved, median) and what it wrote:
the page's bytes and its images' files and bytes. Then the largest page
opened --opens times in headless Chromium (`browser.chromium_page`: the
system's Chromium through Playwright): ms from navigation to its first five
rows' images decoded, median, and the errors the page reported (none
expected: a missing image or a script error is one).
"""

import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

from absl import app, flags

from . import browser
from ..find_noisy_labels import find_noisy_labels

FLAGS = flags.FLAGS
FIRST_ROWS_LOADED = ("[...document.querySelectorAll('#rows tr:nth-child(-n+5) img')]"
                     ".every(image => image.complete && image.naturalWidth > 0)")


def _define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A trained run.")
    flags.DEFINE_list("suspects", ["0", "1000", "10000"], "Suspects on the page (0: none).")
    flags.DEFINE_integer("repetitions", 3, "Interleaved finder calls per count (median).")
    flags.DEFINE_integer("opens", 5, "Times the largest page is opened (0: not opened).")


def _written(folder: Path) -> Dict[str, float]:
    page = folder / "noisy_labels.html"
    images = list((folder / "noisy_labels_images").glob("*"))
    return {"page_bytes": page.stat().st_size if page.exists() else 0,
            "image_files": len(images), "image_bytes": sum(p.stat().st_size for p in images)}


def write_times(workdir: str, suspects: Sequence[int], repetitions: int, scratch: Path
                ) -> Dict[int, Dict[str, float]]:
    """Per count: median finder seconds and what the last call wrote."""
    seconds: Dict[int, List[float]] = {n: [] for n in suspects}
    for repetition in range(repetitions):
        for n in suspects:
            output = scratch / f"{n}-{repetition}"
            start = time.perf_counter()
            find_noisy_labels(workdir, output=str(output), html=n)
            seconds[n].append(time.perf_counter() - start)
    return {n: {"seconds": statistics.median(seconds[n]),
                **_written(scratch / f"{n}-{repetitions - 1}")} for n in suspects}


def open_times(page_file: Path, opens: int) -> Dict[str, object]:
    """Median ms from navigation to the first rows' images, and the errors."""
    with browser.chromium_page() as (page, errors):
        times = []
        for _ in range(opens):
            start = time.perf_counter()
            page.goto(page_file.as_uri())
            page.wait_for_function(FIRST_ROWS_LOADED)
            times.append(1000 * (time.perf_counter() - start))
        return {"ms": statistics.median(times), "errors": list(errors),
                "position": page.text_content("#position")}


def table(written: Dict[int, Dict[str, float]]) -> str:
    """Markdown: one line per suspects count, the finder's time against the
    list alone (the smallest count)."""
    base = written[min(written)]["seconds"]
    lines = ["| suspects on the page | finder, s | x without the page | page, KB "
             "| image files | images, MB |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, r in written.items():
        lines.append(f"| {n:,} | {r['seconds']:.1f} | {r['seconds'] / base:.2f} "
                     f"| {r['page_bytes'] / 1e3:.0f} | {r['image_files']:,} "
                     f"| {r['image_bytes'] / 1e6:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    suspects = sorted(int(n) for n in FLAGS.suspects)
    with tempfile.TemporaryDirectory() as scratch:
        written = write_times(FLAGS.workdir, suspects, FLAGS.repetitions, Path(scratch))
        print(table(written))
        if FLAGS.opens and suspects[-1]:
            opened = open_times(Path(scratch) / f"{suspects[-1]}-{FLAGS.repetitions - 1}"
                                / "noisy_labels.html", FLAGS.opens)
            print(f"{suspects[-1]:,} suspects ({opened['position']}): first rows' images "
                  f"shown {opened['ms']:.0f} ms after navigation (median of {FLAGS.opens}); "
                  f"errors: {opened['errors'] or 'none'}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
