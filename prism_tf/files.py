"""Writing files so that a kill, a concurrent reader or a planted symlink
cannot leave a wrong one behind.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_atomically(folder / "a.json", '{"x": 1}')
>>> (folder / "a.json").read_text(), sorted(p.name for p in folder.iterdir())
('{"x": 1}', ['a.json'])
"""

import contextlib
import os
from pathlib import Path
import shutil
from typing import Iterator, List, Union

TEMPORARY_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: a hidden
    name beside it that carries this process's id, so that what a killed
    process left can be told from what a live one is writing."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def write_atomically(path: Path, content: Union[str, bytes]) -> None:
    """Writes `content` to a new file beside `path`, then renames it over
    `path`: readers see the old file or the new one, never part of one. The
    new file is created exclusively, so a symlink planted at either name is
    replaced, never written through; a kill leaves at most a hidden
    temporary, which `remove_stale_temporaries` deletes."""
    path = Path(path)
    remove_stale_temporaries(path.parent)
    temporary = temporary_name(path)
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()   # this process's own, from an interrupted write
    data = content.encode() if isinstance(content, str) else content
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def process_running(pid: int) -> bool:
    """Whether a process with this id exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path) -> List[Path]:
    """Deletes the temporaries (`temporary_name`, files or folders) in
    `folder` whose process is gone; returns them."""
    stale = []
    for entry in Path(folder).glob(f".*.*{TEMPORARY_SUFFIX}"):
        pid = entry.name[:-len(TEMPORARY_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and not process_running(int(pid)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            stale.append(entry)
    return stale


def replace_folder(new: Path, folder: Path) -> None:
    """Renames the complete folder `new` to `folder`, replacing what is
    there: the old one is first moved to a hidden temporary name, so
    `folder` is missing for a moment at most, never half-written."""
    folder = Path(folder)
    old = temporary_name(folder.with_name(folder.name + ".old"))
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def writing_folder(folder: Path) -> Iterator[Path]:
    """A new, empty hidden folder beside `folder` to write into: when the
    block ends without an error it replaces `folder` (`replace_folder`);
    either way none of it is left behind."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.parent)
    temporary = temporary_name(folder)
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir()
        yield temporary
        replace_folder(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def remove(path: Path) -> None:
    """Deletes the file, folder or symlink at `path`, if any (a symlink
    itself, never what it points to)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
