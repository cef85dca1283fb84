"""Image bytes, content-addressed: `<dir>/<sha[:2]>/<sha256>` files, or a dict in memory.

Public names: `Blobs`.

A blob is written to a temp file, fsynced and renamed into place (and its directory fsynced)
*before* the row that names it is committed, so a crash can leave an orphan blob, never a row
without its bytes. The store deletes a blob after the commit that dropped its last row. In memory
(tests) blobs live in a dict: file creation would dominate big test setups.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class Blobs:
    """Bytes by sha256 under directory (created if missing), or in memory when it is None."""

    def __init__(self, directory: Path | None) -> None:
        self._memory: dict[str, bytes] | None = {} if directory is None else None
        self._dir = directory or Path()
        if directory is not None:
            directory.mkdir(exist_ok=True)

    def _path(self, sha: str) -> Path:
        return self._dir / sha[:2] / sha

    def write(self, sha: str, data: bytes) -> None:
        """Store bytes under their hash: temp file, fsync, rename, fsync the directory."""
        if self._memory is not None:
            self._memory[sha] = data
            return
        path = self._path(sha)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read(self, sha: str) -> bytes | None:
        """Return the bytes stored under sha, or None."""
        if self._memory is not None:
            return self._memory.get(sha)
        try:
            return self._path(sha).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, sha: str) -> None:
        if self._memory is not None:
            self._memory.pop(sha, None)
        else:
            self._path(sha).unlink(missing_ok=True)

    def close(self) -> None:
        """Forget in-memory blobs (files stay)."""
        if self._memory is not None:
            self._memory.clear()
