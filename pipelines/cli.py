"""How every pipeline starts and fails: absl flags, one-line errors.

A config that fails to load, an unknown `--config.*` key or a bad flag
value ends the program with one `error: ...` line, not a traceback and not
the usage text (which `--help` still prints).
"""

from typing import Callable, List

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


def run(main: Callable[[List[str]], None]) -> None:
    """`app.run(main)` with one-line flag and config errors."""
    app.run(main, flags_parser=parse_flags)
