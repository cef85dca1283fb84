"""When settled changes leave: a lone drop does not wait for a batch, a folder that keeps
receiving files does not hold back the files already in it, and a flush soon after a count check
trusts the ledger instead of asking the counts again (daemon.count_check_seconds)."""

from __future__ import annotations

import threading
from typing import Any

from syncd.daemon.loop import BATCH_SIZE
from tests.daemon.conftest import World
from tests.daemon.support import Daemon, image_count
from tests.support.images import write_image


def test_a_lone_drop_does_not_wait_for_a_batch_to_fill(world: World) -> None:
    # With an hour of max delay, only "nothing else could join" can send the file.
    world.write_config(daemon={"max_delay_seconds": 3600})
    daemon = world.start_daemon()
    daemon.wait_ready()
    write_image(world.root / "Dog" / "a.jpg", 1)
    daemon.wait_for(lambda: image_count(world.http, world.project_id) == 1, "a.jpg uploaded")
    assert daemon.stop() == 0


def test_a_drip_of_files_does_not_wait_for_the_batch_deadline(world: World) -> None:
    # A file every 0.3 s, each settling 1 s after it was written: some file is always about to
    # settle, but never within the moment a burst's files take to settle together, so waiting for
    # it to join would hold every file until the hour of max delay (or the drip) ran out.
    world.write_config(daemon={"max_delay_seconds": 3600, "settle_seconds": 1.0})
    daemon = world.start_daemon()
    daemon.wait_ready()
    stop = threading.Event()
    written: list[int] = []

    def drip() -> None:  # for up to 30 s
        for n in range(100):
            if stop.wait(0.3):
                return
            write_image(world.root / "Dog" / f"drop{n:03}.jpg", 6000 + n)
            written.append(n)

    writer = threading.Thread(target=drip)
    writer.start()
    try:
        daemon.wait_for(lambda: image_count(world.http, world.project_id) >= 1, "a drop sent")
    finally:
        stop.set()
        writer.join()
    # The first drop went up long before a batch (64) could fill.
    assert len(written) < BATCH_SIZE // 2, len(written)
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


def _flushes(daemon: Daemon) -> list[dict[str, Any]]:
    return [e for e in daemon.events("reconciled") if e["reason"] == "changes"]


def _drop_and_wait(world: World, daemon: Daemon, name: str, seed: int, flushes: int) -> None:
    write_image(world.root / "Dog" / name, seed)
    daemon.wait_for(lambda: len(_flushes(daemon)) >= flushes, f"the flush that sent {name}")


def test_a_flush_soon_after_a_count_check_trusts_the_ledger(world: World) -> None:
    world.write_config(daemon={"count_check_seconds": 3600})
    daemon = world.start_daemon()
    daemon.wait_ready()
    _drop_and_wait(world, daemon, "a.jpg", 1, flushes=1)
    _drop_and_wait(world, daemon, "b.jpg", 2, flushes=2)

    first, second = _flushes(daemon)[:2]
    # The startup run asked the counts and ended in sync: neither flush asks them again, so
    # each one's calls are its own work alone: the tag Dog (the first), one upload each.
    assert (first["listing"], second["listing"]) == ("ledger", "ledger")
    assert (first["create_tags"], second["create_tags"]) == (1, 0)
    assert first["uploads"] == second["uploads"] == 1
    assert (first["api_calls"], second["api_calls"]) == (2, 1)
    assert image_count(world.http, world.project_id) == 2
    assert daemon.stop() == 0


def test_a_file_with_a_problem_does_not_end_the_trust(world: World) -> None:
    # A file syncd cannot send leaves every round "not in sync", but the ledger still holds all
    # that syncd did: a steady drip beside it must not ask the counts at every flush.
    world.write_config(daemon={"count_check_seconds": 3600})
    daemon = world.start_daemon()
    daemon.wait_ready()
    (world.root / "Dog").mkdir()
    (world.root / "Dog" / "broken.jpg").write_bytes(b"not an image")
    _drop_and_wait(world, daemon, "a.jpg", 1, flushes=1)
    _drop_and_wait(world, daemon, "b.jpg", 2, flushes=2)

    second = _flushes(daemon)[1]
    assert second["exit_code"] == 1  # broken.jpg is still a problem
    assert second["listing"] == "ledger"
    assert image_count(world.http, world.project_id) == 2
    assert daemon.stop() == 0


def test_with_no_trust_every_flush_asks_the_counts(world: World) -> None:
    world.write_config(daemon={"count_check_seconds": 0})
    daemon = world.start_daemon()
    daemon.wait_ready()
    _drop_and_wait(world, daemon, "a.jpg", 1, flushes=1)

    (flush,) = _flushes(daemon)
    assert flush["listing"] == "counts"
    # The project, its tags, its image count; then the tag Dog and the upload.
    assert flush["api_calls"] == 3 + 2
    assert daemon.stop() == 0


def test_a_failed_run_ends_the_trust(world: World) -> None:
    world.write_config(daemon={"count_check_seconds": 3600})
    daemon = world.start_daemon()
    daemon.wait_ready()
    world.stop_emulator()
    write_image(world.root / "Dog" / "a.jpg", 1)
    daemon.wait_event("reconcile_failed")
    world.start_emulator()
    daemon.wait_for(lambda: image_count(world.http, world.project_id) == 1, "a.jpg uploaded")

    # The upload is seen before its run's line is written: wait for the line (raced under load).
    def retried() -> dict[str, Any] | None:
        return next((e for e in daemon.events("reconciled") if e["reason"] == "retry"), None)

    retry = daemon.wait_for(retried, "the retry's reconciled line")
    assert retry["listing"] == "counts"
    assert daemon.stop() == 0
