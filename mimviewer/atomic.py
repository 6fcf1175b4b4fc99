"""The one way mimviewer writes a file: atomically, at the exact path asked, never over a non-file.

Every output (checkpoints, exports, predictions, traces, training files) goes through
:func:`atomic_file` or :func:`atomic_path`:

1. the target is checked first (:func:`check_output`): a device node, FIFO, socket or
   directory is refused and left alone (``-o /dev/null`` never replaces ``/dev/null``), as is
   a path under a regular file, and an output that is the same file as one of the inputs;
2. the data goes to a temporary file in the target's folder (same file system, so the
   rename is atomic), which is flushed and fsync'd;
3. it gets the permissions any new file would get (0666 less the umask; ``mkstemp`` makes
   0600), then is renamed over the target, and the folder is fsync'd so the rename survives
   a crash.

A failure at any point removes the temporary file and leaves the old target untouched. An
``OSError`` (disk full, permission denied, read-only file system) becomes one
:class:`OutputError` line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from mimviewer.errors import MimviewerError

PathLike = str | os.PathLike[str]

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a parent of it is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


class OutputError(MimviewerError):
    """An output that cannot or must not be written (the message names the file and why)."""


def describe_os_error(path: PathLike, exc: OSError) -> str:
    """One line for an OSError while writing ``path``."""
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    return f"{path}: cannot write: {reason}"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), None)


def check_output(path: PathLike, inputs: Iterable[PathLike | None] = ()) -> Path:
    """Refuse an output that is not (or cannot become) a regular file, or is one of ``inputs``."""
    target = Path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        raise OutputError(f"{target}: cannot write: a parent of it is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(describe_os_error(target, exc)) from None
    if info is not None:
        kind = _kind(info.st_mode)
        if kind is not None:
            raise OutputError(f"{target}: is {kind}, not a file: refused to write over it")
        for source in inputs:
            if source is None:
                continue
            with contextlib.suppress(OSError):
                if os.path.samefile(source, target):
                    raise OutputError(f"{target}: is the input {source}: refused to overwrite it")
    for parent in target.parents:  # the first existing ancestor must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{target}: cannot write: {parent} is a file, not a folder")
            break
    return target


def _new_file_mode() -> int:
    """0666 less the process umask, as open(2) would give a new file (read without changing it)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: the classic read-and-restore
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot open or sync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same suffix, for writers that choose the
    format by name, e.g. imageio); on success it becomes ``path`` (see the module docstring)."""
    target = check_output(path, inputs)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}"
        )
        os.close(fd)
    except OSError as exc:
        raise OutputError(describe_os_error(target, exc)) from None
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    except OSError as exc:
        raise OutputError(describe_os_error(target, exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: PathLike, inputs: Iterable[PathLike | None] = ()) -> Iterator[IO[bytes]]:
    """Yield a binary file object; on success its bytes become ``path`` (see the module docstring).

    Writing through a file object keeps the name exact (``np.save``/``np.savez`` given a *name*
    append ``.npy``/``.npz``; given a file they do not)."""
    with atomic_path(path, inputs) as tmp:
        try:
            with tmp.open("wb") as f:
                yield f
                f.flush()
        except OSError as exc:
            raise OutputError(describe_os_error(path, exc)) from exc


def write_bytes(path: PathLike, data: bytes, inputs: Iterable[PathLike | None] = ()) -> Path:
    with atomic_file(path, inputs) as f:
        f.write(data)
    return Path(path)


def write_text(path: PathLike, text: str, inputs: Iterable[PathLike | None] = ()) -> Path:
    return write_bytes(path, text.encode("utf-8"), inputs)
