"""`syncd run`: the watching daemon.

Public names: run (from `loop`).

Modules: `loop` (the daemon: one loop per mirror, signals, reloads, liveness), `notify` (the
systemd notify protocol), `metrics` (the optional Prometheus page).
"""

from syncd.daemon.loop import run

__all__ = ["run"]
