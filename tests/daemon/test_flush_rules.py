"""When settled changes leave: a lone drop does not wait for a batch, and a folder that keeps
receiving files does not hold back the files already in it."""

from __future__ import annotations

import threading

from tests.daemon.conftest import World
from tests.daemon.support import image_count
from tests.support.images import write_image


def test_a_lone_drop_does_not_wait_for_a_batch_to_fill(world: World) -> None:
    # With an hour of max delay, only "nothing else could join" can send the file.
    world.write_config(daemon={"max_delay_seconds": 3600})
    daemon = world.start_daemon()
    daemon.wait_ready()
    write_image(world.root / "Dog" / "a.jpg", 1)
    daemon.wait_for(lambda: image_count(world.http, world.project_id) == 1, "a.jpg uploaded")
    assert daemon.stop() == 0


def test_files_are_sent_while_their_folder_keeps_receiving_more(world: World) -> None:
    daemon = world.start_daemon()
    daemon.wait_ready()
    stop = threading.Event()
    written: list[int] = []

    def stream() -> None:  # a camera dropping a file into Dog/ every 0.1 s, for up to 40 s
        for n in range(400):
            if stop.wait(0.1):
                return
            write_image(world.root / "Dog" / f"frame{n:03}.jpg", 5000 + n)
            written.append(n)

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        daemon.wait_for(lambda: image_count(world.http, world.project_id) >= 1, "a frame uploaded")
    finally:
        stop.set()
        writer.join()
    # The first frames went up while the stream was still running, not after it ended.
    assert len(written) < 400
    assert daemon.stop() == 0
