"""Local faults: a file or folder syncd could not write or read for a reason outside its control.

Public names: LocalIOError, local_fault, writing, sqlite_local_fault.

Disk full, a read-only file system, a name longer than the file system allows, a permission: none
is syncd's to fix or to retry around, so each edge that touches the disk (the ledger, the root
marker, `pull`'s target) turns the OSError (or SQLite's word for it) into one LocalIOError naming
the path and what to do; the CLI prints it as one line (exit 6), the daemon retries.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from syncd.errors import SyncdError

# What to do about each cause; anything else gets the system's own words only.
_ADVICE = {
    errno.ENOSPC: "free some space on that disk",
    errno.EDQUOT: "free some space (the disk quota is used up)",
    errno.EFBIG: "the file size limit (ulimit -f) is too small",
    errno.EROFS: "the file system is read-only: remount it read-write, or choose another place",
    errno.ENAMETOOLONG: "the path is longer than the file system allows: choose a shorter one",
    errno.EACCES: "check the owner and mode of the path",
    errno.EPERM: "check the path's mode and immutable flag (lsattr)",
    errno.EIO: "check the disk (dmesg)",
}

# SQLite's primary result codes (the low byte of an extended code) that mean the disk, not the
# file's contents: SQLITE_PERM 3, SQLITE_READONLY 8, SQLITE_IOERR 10, SQLITE_FULL 13,
# SQLITE_CANTOPEN 14. A corrupt file (SQLITE_CORRUPT, SQLITE_NOTADB) is the ledger's own problem.
_SQLITE_ERRNO = {3: errno.EACCES, 8: errno.EROFS, 10: errno.EIO, 13: errno.ENOSPC, 14: None}


class LocalIOError(SyncdError):
    """A local path could not be written or read; `str()` is one line naming it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        doing: str,
        code: int | None,
        detail: str,
        hint: str = "",
    ) -> None:
        self.path = os.fspath(path)
        self.errno = code
        advice = _ADVICE.get(code) if code is not None else None
        tail = f" ({detail}): {advice}" if advice else f": {detail}"
        super().__init__(f"cannot {doing} {self.path}{tail}" + (f"; {hint}" if hint else ""))


def local_fault(
    path: str | os.PathLike[str], doing: str, exc: OSError, hint: str = ""
) -> LocalIOError:
    """The LocalIOError for an OSError met while `doing` something to `path`."""
    return LocalIOError(path, doing, exc.errno, exc.strerror or str(exc), hint)


@contextmanager
def writing(path: str | os.PathLike[str], doing: str = "write", hint: str = "") -> Iterator[None]:
    """Turn an OSError in the block into the LocalIOError naming `path`."""
    try:
        yield
    except OSError as exc:
        raise local_fault(path, doing, exc, hint) from None


def sqlite_local_fault(
    path: str | os.PathLike[str], doing: str, exc: sqlite3.Error
) -> LocalIOError | None:
    """The LocalIOError an SQLite error stands for (disk full, read-only, I/O, cannot open), or
    None if it is about the file's contents."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _SQLITE_ERRNO:
        return None
    # SQLite says "disk I/O error" or "unable to open" for a full or read-only disk too: ask it.
    cause = _file_system_state(path) or _SQLITE_ERRNO[code & 0xFF]
    return LocalIOError(path, doing, cause, str(exc))


def _file_system_state(path: str | os.PathLike[str]) -> int | None:
    """ENOSPC or EROFS if the file system holding `path` is full or read-only, else None."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        vfs = os.statvfs(folder)
    except OSError:
        return None
    if vfs.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if vfs.f_bavail == 0:
        return errno.ENOSPC
    return None
