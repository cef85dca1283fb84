"""Walk each mirror's tree in a child process while this one starts up.

Public names: EarlyWalks.

A reconcile of a large tree that has not changed is two things, one after the other: the walk (a
stat of every file: ~0.45 s for 100,000 files) and the start-up (imports of the HTTP client, asyncio
and the engine, the ledger, three count calls: ~0.4 s), on a machine that has a second core idle.
The walk needs only the config, so `syncd reconcile` forks one child per mirror as soon as the
config is loaded (before the heavy imports): the child walks and sends the result back through a
pipe in two parts, the walk's digest and counts first, its file list second; the parent picks it
up where it would have walked (`walker()` is the walk function reconcile_mirror takes), and reads
the file list only if the run uses it: a tree unchanged since the last run in sync is only
counted.

Only a process with one thread forks (the command line at its start; not the daemon, not a test
calling main() beside an emulator's threads): elsewhere the walk runs in-process, as before.
Nothing here can change what a run finds: if the child cannot be forked, dies, or sends nothing
usable, the parent walks the tree itself, as it always did, and any error of the walk is raised
from there. The child never writes anything but the pipe, and leaves by os._exit (no atexit hook,
no flush of buffers it inherited). A walk is a snapshot whenever it is taken: one taken a few
hundred milliseconds earlier is as good as the next (a file that changes meanwhile is seen by the
next run, as it would be if it changed just after an in-process walk).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import signal
import struct
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any, BinaryIO, cast, overload

from syncd.config import MirrorConfig
from syncd.scan import Walked, walk_tree

__all__ = ["EarlyWalks"]


Entry = tuple[str, int, int, int]  # Walked.found's: (path, size, mtime_ns, inode)


class _ChildWalk:
    """One mirror's walk in a forked child; `result()` waits for it (or walks here)."""

    def __init__(self, mirror: MirrorConfig) -> None:
        self.mirror = mirror
        self.taken = False
        self._pid: int | None = None
        self._pipe: BinaryIO | None = None
        if not hasattr(os, "fork") or threading.active_count() > 1:
            return  # a fork copies only the forking thread: not safe beside others (tests)
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:  # the child: walk, send, leave
            os.close(read_end)
            _walk_and_send(mirror, write_end)
        os.close(write_end)
        self._pid, self._pipe = pid, os.fdopen(read_end, "rb")

    def result(self) -> Walked:
        """The child's walk (its file list read from the pipe when first used), or this
        process's own if the child gave none."""
        self.taken = True
        header = self._read_part()
        if header is None:
            self.close()
            return walk_tree(self.mirror)
        walked, count = header
        return dataclasses.replace(walked, found=cast(Any, _Found(count, self._rest)))

    def _rest(self) -> Sequence[Entry]:
        """The file list, second on the pipe; walked here if the child could not send it."""
        columns = self._read_part()
        self.close()
        if columns is None:
            # Rare (the child died between its two writes): this walk is later than the digest
            # the run holds, which at worst makes the next run miss the unchanged-tree shortcut.
            return walk_tree(self.mirror).found
        return _unpack(*columns)

    def _read_part(self) -> Any:
        """The next part on the pipe, or None if there is none (the child failed or died)."""
        if self._pipe is None:
            return None
        try:
            size = self._pipe.read(_LENGTH.size)
            if len(size) < _LENGTH.size:
                return None
            data = self._pipe.read(_LENGTH.unpack(size)[0])
            return pickle.loads(data)  # our own child's bytes
        except (OSError, EOFError, pickle.UnpicklingError):
            return None

    def close(self) -> None:
        """Stop the child: done, or its file list is not wanted (the shortcut, an error)."""
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._pid is not None:
            pid, self._pid = self._pid, None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


class _Found(Sequence[Entry]):
    """Walked.found of an early walk: its length known at once, its items read when first used.
    A run that finds the tree unchanged only counts its files (Walked.unchanged): it never waits
    for the child to pack and send 100k names."""

    def __init__(self, count: int, load: Callable[[], Sequence[Entry]]) -> None:
        self._count = count
        self._load = load
        self._items: Sequence[Entry] | None = None

    def _all(self) -> Sequence[Entry]:
        if self._items is None:
            self._items = self._load()
        return self._items

    def __len__(self) -> int:
        return self._count if self._items is None else len(self._items)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._all())

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...

    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        return self._all()[index]


_LENGTH = struct.Struct("<Q")  # each part on the pipe: its length, then its pickle


def _walk_and_send(mirror: MirrorConfig, write_end: int) -> None:
    """In the child: send the walk without its file list, then the list; exit."""
    code = 1
    try:
        with os.fdopen(write_end, "wb") as pipe:
            walked = walk_tree(mirror)
            _send(pipe, (dataclasses.replace(walked, found=()), len(walked.found)))
            pipe.flush()  # the parent may decide on this part alone
            _send(pipe, _pack(walked.found))
        code = 0
    except BaseException:  # any failure (the parent closed the pipe) only ends the child
        pass
    finally:
        os._exit(code)


def _send(pipe: BinaryIO, part: object) -> None:
    data = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_LENGTH.pack(len(data)))
    pipe.write(data)


# The file list crosses the pipe as columns: the paths as one string, each stat field as one
# packed array. Pickling the 100k (path, size, mtime, inode) tuples themselves took ~0.1 s to
# load again; this takes a fraction of that.
_PATH_ENCODING = ("utf-8", "surrogateescape")  # a name that is not UTF-8 crosses unchanged
_STAT_COLUMNS = ((1, "Q"), (2, "q"), (3, "Q"))  # size, mtime_ns (may be < 0), inode


def _pack(found: Sequence[Entry]) -> tuple[bytes, list[bytes]]:
    paths = "\0".join(map(itemgetter(0), found)).encode(*_PATH_ENCODING)  # no path holds a NUL
    return paths, [array(kind, map(itemgetter(i), found)).tobytes() for i, kind in _STAT_COLUMNS]


def _unpack(paths: bytes, stats: list[bytes]) -> Sequence[Entry]:
    if not paths and not any(stats):
        return ()
    columns = []
    for (_, kind), raw in zip(_STAT_COLUMNS, stats, strict=True):
        column = array(kind)
        column.frombytes(raw)
        columns.append(column)
    names = paths.decode(*_PATH_ENCODING).split("\0")
    return _Columns(names, *columns)


class _Columns(Sequence[Entry]):
    """The file list as it came: each entry's tuple made as it is read, never all at once
    (100k tuples held ~9 MB at a first sync, on top of the names and numbers they share with
    the scan's LocalFiles)."""

    def __init__(
        self, names: list[str], sizes: array[int], mtimes: array[int], inodes: array[int]
    ) -> None:
        self._columns = (names, sizes, mtimes, inodes)
        if any(len(column) != len(names) for column in self._columns):
            raise ValueError("the walk's columns differ in length")

    def __len__(self) -> int:
        return len(self._columns[0])

    def __iter__(self) -> Iterator[Entry]:
        return zip(*self._columns, strict=True)

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...

    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(index, slice):
            return tuple(self)[index]
        names, sizes, mtimes, inodes = self._columns
        return (names[index], sizes[index], mtimes[index], inodes[index])


class EarlyWalks:
    """The early walks of `mirrors`, one child each; close (or leave the with-block) to stop
    those whose result was not taken."""

    def __init__(self, mirrors: Iterable[MirrorConfig]) -> None:
        self._walks = {m.name: _ChildWalk(m) for m in mirrors}

    def walker(self, mirror: MirrorConfig) -> Callable[[MirrorConfig], Walked]:
        """The walk function for `mirror`: its early walk, taken once; walk_tree after that."""
        early = self._walks.get(mirror.name)
        if early is None or early.taken or early.mirror != mirror:
            return walk_tree
        return lambda _: early.result()

    def close(self) -> None:
        for early in self._walks.values():
            early.close()
        self._walks.clear()

    def __enter__(self) -> EarlyWalks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
