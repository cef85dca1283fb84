"""Walk each mirror's tree in a child process while this one starts up.

Public names: EarlyWalks.

A reconcile of a large tree that has not changed is two things, one after the other: the walk (a
stat of every file: ~0.45 s for 100,000 files) and the start-up (imports of the HTTP client, asyncio
and the engine, the ledger, three count calls: ~0.4 s), on a machine that has a second core idle.
The walk needs only the config, so `syncd reconcile` forks one child per mirror as soon as the
config is loaded (before the heavy imports): the child walks, sends the result back through a pipe
and exits; the parent picks it up where it would have walked (`walker()` is the walk function
reconcile_mirror takes).

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
import threading
from array import array
from collections.abc import Callable, Iterable
from operator import itemgetter

from syncd.config import MirrorConfig
from syncd.scan import Walked, walk_tree

__all__ = ["EarlyWalks"]


class _ChildWalk:
    """One mirror's walk in a forked child; `result()` waits for it (or walks here)."""

    def __init__(self, mirror: MirrorConfig) -> None:
        self.mirror = mirror
        self.taken = False
        self._pid: int | None = None
        self._pipe: int | None = None
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
        self._pid, self._pipe = pid, read_end

    def result(self) -> Walked:
        """The child's walk, or this process's own if the child gave none."""
        self.taken = True
        if self._pipe is None:
            return walk_tree(self.mirror)
        with os.fdopen(self._pipe, "rb") as pipe:
            self._pipe = None
            data = pipe.read()
        if self._reap() != 0 or not data:
            return walk_tree(self.mirror)
        return _unpack(data)

    def close(self) -> None:
        """Stop the child if its result was not taken (an error, Ctrl-C)."""
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> int:
        """Wait for the child; return its exit code (-1 if it was killed or is gone)."""
        if self._pid is None:
            return -1
        pid, self._pid = self._pid, None
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return -1
        return os.waitstatus_to_exitcode(status)


def _walk_and_send(mirror: MirrorConfig, write_end: int) -> None:
    code = 1
    try:
        data = _pack(walk_tree(mirror))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
        code = 0
    except BaseException:  # any failure only means the parent walks the tree itself
        pass
    finally:
        os._exit(code)


# A walk crosses the pipe as columns: the paths as one string, each stat field as one packed
# array. Pickling the 100k (path, size, mtime, inode) tuples themselves took ~0.1 s to load again,
# in the parent, where it delays the run; this takes a fifth of that.
_PATH_ENCODING = ("utf-8", "surrogateescape")  # a name that is not UTF-8 crosses unchanged
_STAT_COLUMNS = ((1, "Q"), (2, "q"), (3, "Q"))  # size, mtime_ns (may be < 0), inode


def _pack(walked: Walked) -> bytes:
    found = walked.found
    paths = "\0".join(map(itemgetter(0), found)).encode(*_PATH_ENCODING)  # no path holds a NUL
    stats = [array(kind, map(itemgetter(i), found)).tobytes() for i, kind in _STAT_COLUMNS]
    header = dataclasses.replace(walked, found=())
    return pickle.dumps((header, len(found), paths, stats), protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(data: bytes) -> Walked:
    header, count, paths, stats = pickle.loads(data)  # our own child's bytes
    if not count:
        return header
    columns = []
    for (_, kind), raw in zip(_STAT_COLUMNS, stats, strict=True):
        column = array(kind)
        column.frombytes(raw)
        columns.append(column)
    names = paths.decode(*_PATH_ENCODING).split("\0")
    found = tuple(zip(names, *columns, strict=True))
    return dataclasses.replace(header, found=found)


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
