"""Verdicts on training labels, read back into training: the finder's list
(`noisy_labels.csv`) with its `verdict` column filled in by a person, or
suggested by the finder (`--suggest_drop`).

A verdict is empty or `keep` (the sample trains as it is), `drop` (left
out of training) or `relabel` (trains with `new_label`). Each row names
its sample by index in the training split as the run that wrote the list
loaded it (injected noise included), with the label it was given there
and, for file sources, its path: a row that does not match the split is
refused, so verdicts on another split (other data, another noise seed)
never apply to the wrong images.

>>> import numpy as np
>>> from prism_tf.data.sources import ImageSplit
>>> split = ImageSplit("toy", np.array([0, 0, 1, 1], np.int32), 2,
...                    np.zeros(4, bool), paths=np.array(["a", "b", "c", "d"]))
>>> text = (b"sample,path,given_label,verdict,new_label\\n"
...         b"1,b,0,drop,\\n3,d,1,relabel,0\\n0,a,0,,\\n")
>>> kept = apply_verdicts(split, parse_verdicts(text, "toy.csv"))
>>> kept.paths.tolist(), kept.labels.tolist()
(['a', 'c', 'd'], [0, 1, 0])
>>> apply_verdicts(split, parse_verdicts(b"sample,given_label,verdict\\n2,0,drop\\n", "x.csv"))
Traceback (most recent call last):
...
prism_tf.data.sources.DataError: x.csv line 2: sample 2 has label 1 in the training split, not 0 (verdicts of another split or noise seed?)
"""

import csv
import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Dict, FrozenSet, Tuple

import numpy as np

from prism_tf.data.sources import DataError, ImageSplit

VERDICTS = ("", "keep", "drop", "relabel")
REQUIRED_COLUMNS = ("sample", "given_label", "verdict")


@dataclasses.dataclass(frozen=True)
class Verdicts:
    """The rows that change something, `drop` (samples) and `relabel`
    {sample: new label}, and what every row says to check against the
    split, `given` {sample: (given label, path or "", CSV line)}."""

    file: str
    sha256: str
    drop: FrozenSet[int]
    relabel: Dict[int, int]
    given: Dict[int, Tuple[int, str, int]]

    def record(self) -> Dict[str, object]:
        """What data.json says of them."""
        return {"file": self.file, "sha256": self.sha256, "dropped": len(self.drop),
                "relabelled": len(self.relabel)}


def read_verdicts(path: str) -> Verdicts:
    """The verdicts in the CSV file at `path` (`parse_verdicts`)."""
    if not Path(path).is_file():
        raise DataError(f"data.verdicts: no such file: {path}")
    return parse_verdicts(Path(path).read_bytes(), path)


def parse_verdicts(content: bytes, name: str) -> Verdicts:
    """Verdicts from a CSV file's bytes with at least the columns `sample`,
    `given_label` and `verdict` (and `new_label` for relabels; `path` is
    checked where it is not empty). `name` names the file in errors."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{name}: not UTF-8 CSV text ({error.reason} at byte "
                        f"{error.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise DataError(f"{name}: no column {missing} (the finder's noisy_labels.csv has "
                        f"them: {list(REQUIRED_COLUMNS)})")
    drop, relabel, given = set(), {}, {}
    for line, row in enumerate(reader, 2):
        verdict = (row["verdict"] or "").strip().lower()
        if verdict not in VERDICTS:
            raise DataError(f"{name} line {line}: verdict {row['verdict']!r}: expected "
                            f"empty, keep, drop or relabel")
        sample = _integer(row["sample"], "sample", name, line)
        if sample in given:
            raise DataError(f"{name} line {line}: sample {sample} is listed twice "
                            f"(first on line {given[sample][2]})")
        given[sample] = (_integer(row["given_label"], "given_label", name, line),
                         (row.get("path") or "").strip(), line)
        if verdict == "drop":
            drop.add(sample)
        elif verdict == "relabel":
            relabel[sample] = _integer(row.get("new_label") or "", "new_label", name, line)
    return Verdicts(name, hashlib.sha256(content).hexdigest(), frozenset(drop), relabel, given)


def _integer(text: str, column: str, name: str, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{name} line {line}: {column} {text!r} is not an integer") from None


def apply_verdicts(split: ImageSplit, verdicts: Verdicts) -> ImageSplit:
    """`split` without the dropped samples and with the relabelled ones'
    new labels, after every row was checked against it.

    Relabels are refused on a split whose ground truth is known (injected
    noise, a clean list): its kept purity and noise recall could not say
    whether a new label is right.
    """
    for sample, (label, path, line) in verdicts.given.items():
        where = f"{verdicts.file} line {line}"
        if not 0 <= sample < len(split):
            raise DataError(f"{where}: sample {sample} is not in the training split "
                            f"({len(split)} samples)")
        if split.labels[sample] != label:
            raise DataError(f"{where}: sample {sample} has label {split.labels[sample]} in "
                            f"the training split, not {label} (verdicts of another split "
                            "or noise seed?)")
        if path and split.paths is not None and str(split.paths[sample]) != path:
            raise DataError(f"{where}: sample {sample} is {split.paths[sample]} in the "
                            f"training split, not {path}")
    labels = split.labels.copy()
    if verdicts.relabel and split.ground_truth:
        raise DataError(f"{verdicts.file}: relabel verdicts on a split whose ground truth "
                        "is known (injected noise or a clean list): kept purity could not "
                        "say whether the new labels are right; drop those samples instead")
    for sample, label in verdicts.relabel.items():
        if not 0 <= label < split.num_classes:
            raise DataError(f"{verdicts.file} line {verdicts.given[sample][2]}: new_label "
                            f"{label}: expected a class of the training split, 0 to "
                            f"{split.num_classes - 1}")
        labels[sample] = label
    keep = np.ones(len(split), bool)
    keep[list(verdicts.drop)] = False
    # Re-indexed (subset): a class every sample of which was dropped or
    # relabelled away is gone, not left empty.
    return dataclasses.replace(split, labels=labels, verdicts=verdicts.record()).subset(
        keep, split.name)
