"""Whether a file can be read, said as such: missing, a folder, empty, or permission denied.

Every loader asks here first, so a file this user may not read is reported as "permission
denied", never as "corrupt" (the error a parser would raise on the bytes it could not get).
"""

from __future__ import annotations

import errno
from pathlib import Path

from mimviewer.errors import CheckpointError


def check_readable(path: Path, error: type[Exception] = CheckpointError, what: str = "checkpoint") -> int:
    """The file's size; missing, a folder, empty or unreadable files are refused by name."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {what} file")
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        raise error(f"{path}: permission denied (the file cannot be read by this user)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if st.st_size == 0:
        raise error(f"{path}: the file is empty")
    return st.st_size


def os_error(path: Path | str, exc: OSError, error: type[Exception] = CheckpointError) -> Exception:
    """An OSError while reading, as one line naming the file (permission, I/O error, ...)."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return error(f"{path}: permission denied (the file cannot be read by this user)")
    return error(f"{path}: cannot read ({exc.strerror or exc})")
