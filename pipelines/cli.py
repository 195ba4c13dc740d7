"""How every pipeline starts and fails: absl flags, one-line errors.

A config that fails to load, an unknown `--config.*` key or a bad flag
value ends the program with one `error: ...` line, not a traceback and not
the usage text (which `--help` still prints).
"""

import contextlib
import logging
import sys
from typing import Callable, Iterator, List, Optional

from absl import app, flags


def one_line(error: BaseException) -> str:
    """The error's message on one line.

    >>> one_line(ValueError("Failed loading\\n  configs/x.py\\n  [Errno 2] missing"))
    'Failed loading configs/x.py [Errno 2] missing'
    >>> one_line(AttributeError(repr("'stepz'\\nDid you mean 'steps'?")))
    "'stepz' Did you mean 'steps'?"
    """
    text = str(error)
    # KeyError-based messages arrive as a repr: quoted, with escapes.
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].replace("\\'", "'").replace("\\n", "\n")
    return " ".join(text.split())


def parse_flags(argv: List[str]) -> List[str]:
    """`app.run`'s flags parser: the flags, then every config flag's file and
    overrides, so their errors surface here, as one line."""
    try:
        remaining = flags.FLAGS(argv)
        for name in flags.FLAGS:
            flag = flags.FLAGS[name]
            if hasattr(flag, "config_filename") and flag.present:
                # The value is loaded lazily: touch it so its errors come now.
                getattr(flags.FLAGS, name).to_dict()
    except Exception as error:  # noqa: BLE001 -- any parse failure is the user's input
        raise SystemExit(f"error: bad flag or config: {one_line(error)}")
    return remaining


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Ends the program with one `error: ...` line, no usage text, on the
    errors a user's input causes: config, data and bad-batch errors
    (ValueError and its kinds) and files that cannot be read or written."""
    try:
        yield
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}")


def run(main: Callable[[List[str]], None]) -> None:
    """`app.run(main)` with one-line flag and config errors, and without the
    library chatter that buries a run's own lines (TensorFlow's INFO line on
    every checkpoint save, faiss's loader lines)."""
    for name in ("tensorflow", "faiss"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # TensorFlow's checkpoint saver logs through absl, beside our own lines.
    logging.getLogger("absl").addFilter(_not_from_tensorflow)
    app.run(main, flags_parser=parse_flags)


def _not_from_tensorflow(record: logging.LogRecord) -> bool:
    """Keeps absl INFO records unless TensorFlow's own code wrote them."""
    return record.levelno >= logging.WARNING or "/tensorflow/" not in record.pathname


def progress_verbosity(verbose: Optional[int]) -> int:
    """Keras `fit` verbosity: `verbose` if set, else a progress bar on a
    terminal and one line per epoch when stdout is a file or a CI log
    (a bar there writes a carriage-return line per step)."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2
