"""The daemon's JSON log lines keep file names readable: no \\u escapes for letters (issue 15)."""

from __future__ import annotations

import json

from tests.daemon.conftest import World
from tests.support.images import write_image

NAME = "Hund/größe_犬.jpg"


def test_a_unicode_file_name_is_readable_in_the_daemon_log(world: World) -> None:
    daemon = world.start_daemon()
    daemon.wait_ready()
    write_image(world.root / NAME, 7)
    (uploaded,) = daemon.wait_event("uploaded")
    assert uploaded["path"] == NAME
    lines = [line for line in daemon.log_path.read_text(encoding="utf-8").splitlines()]
    line = next(line for line in lines if '"event": "uploaded"' in line)
    # What the operator reads with `journalctl` or `tail`: the name as it is, not "gr\u00f6\u00dfe".
    assert f'"path": "{NAME}"' in line, line
    assert "\\u" not in line, line
    assert json.loads(line)["path"] == NAME
    assert daemon.stop() == 0
