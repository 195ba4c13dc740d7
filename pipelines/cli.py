"""How every pipeline starts and fails: absl flags, one-line errors.

A config that fails to load, an unknown `--config.*` key or a bad flag
value ends the program with one `error: ...` line, not a traceback and not
the usage text (which `--help` still prints). A config flag takes a file
(`--config=configs/default.py`, `--config=my_config.py:arg`) or the name of
a config that comes with the package (`--config=default`,
`--config=noise_benchmark:pretrained`).
"""

import contextlib
import logging
from pathlib import Path
import sys
from typing import Callable, Iterator, List, Optional

from absl import app, flags

import prism_tf.configs


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


PACKAGED_CONFIGS = Path(prism_tf.configs.__file__).parent


def packaged_config_names() -> List[str]:
    """The configs that come with the package: the files with a `get_config`.

    >>> packaged_config_names()[:3]
    ['cars196', 'cars98n', 'cub200']
    """
    return sorted(path.stem for path in PACKAGED_CONFIGS.glob("*.py")
                  if "def get_config(" in path.read_text())


def config_file(value: str) -> str:
    """A config flag's value with a packaged config's name replaced by that
    config's file; a value naming a file (or any path) is kept.

    >>> config_file("noise_benchmark:pretrained").endswith("configs/noise_benchmark.py:pretrained")
    True
    >>> config_file("configs/default.py")
    'configs/default.py'
    >>> config_file("defualt")
    Traceback (most recent call last):
    ...
    ValueError: --config=defualt: no such file, and no packaged config 'defualt' (packaged: cars196, ...)
    """
    name, colon, argument = value.partition(":")
    if "/" in name or name.endswith(".py") or Path(name).exists():
        return value
    if name not in packaged_config_names():
        raise ValueError(f"--config={value}: no such file, and no packaged config {name!r} "
                         f"(packaged: {', '.join(packaged_config_names())})")
    return f"{PACKAGED_CONFIGS / name}.py{colon}{argument}"


def _with_config_files(argv: List[str]) -> List[str]:
    """`argv` with every config flag's value passed through `config_file`
    (`--config=VALUE` and `--config VALUE`)."""
    # The class's attribute: the flag's own raises until the flags are parsed.
    names = {name for name in flags.FLAGS
             if hasattr(type(flags.FLAGS[name]), "config_filename")}
    resolved = list(argv)
    for i, arg in enumerate(argv):
        flag, equals, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or flag not in names:
            continue
        if equals:
            resolved[i] = f"{arg[:len(arg) - len(value)]}{config_file(value)}"
        elif i + 1 < len(argv):
            resolved[i + 1] = config_file(argv[i + 1])
    return resolved


def parse_flags(argv: List[str]) -> List[str]:
    """`app.run`'s flags parser: the flags (a packaged config by its name),
    then every config flag's file and overrides, so their errors surface
    here, as one line."""
    try:
        remaining = flags.FLAGS(_with_config_files(argv))
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


def run(main: Callable[[List[str]], None], define_flags: Callable[[], None]) -> None:
    """Defines a pipeline's flags and runs `app.run(main)` with one-line flag
    and config errors, and without the library chatter that buries a run's
    own lines (TensorFlow's INFO line on every checkpoint save, faiss's
    loader lines)."""
    # absl prints the main module's docstring as the usage text; an installed
    # command's script has none.
    main_module = sys.modules["__main__"]
    if not main_module.__doc__:
        main_module.__doc__ = sys.modules[main.__module__].__doc__
    before = set(flags.FLAGS)
    define_flags()
    # `--helpshort` lists the main module's flags, and under an installed
    # command (prism-tf-train) the main module is the command's script.
    for name in sorted(set(flags.FLAGS) - before):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
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
