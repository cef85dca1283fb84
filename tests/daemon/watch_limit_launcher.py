"""Run `syncd` with a folder watcher that fails the way inotify does at its watch limit.

The seam: `syncd.watch.make_observer`, the one place the daemon gets a watchdog observer. The
replacement's `schedule` raises what watchdog raises when inotify_add_watch() answers ENOSPC
(`OSError(errno.ENOSPC, "inotify watch limit reached")`, watchdog/observers/inotify_c.py). The
real limit (fs.inotify.max_user_watches) cannot be lowered without root, and exhausting it would
starve every other process of this user. Everything else is the real daemon.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from watchdog.observers import Observer

import syncd.watch
from syncd.cli.main import main


class WatchLimitObserver(Observer):  # type: ignore[misc,valid-type]
    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


syncd.watch.make_observer = WatchLimitObserver
sys.exit(main(sys.argv[1:]))
