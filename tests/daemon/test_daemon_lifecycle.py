"""`syncd run` as a service: outages, signals, config reloads, systemd notify, watcher fallback."""

from __future__ import annotations

import signal
from pathlib import Path

from syncd.emulator.faults import NO_FAULTS
from tests.daemon.conftest import World
from tests.daemon.support import image_count
from tests.support.images import write_image
from tests.support.project_view import content, remote_images, sha256

HERE = Path(__file__).parent


def _tags_by_sha(world: World) -> dict[str, frozenset[str]]:
    return content(remote_images(world.http, world.project_id))


def test_catches_up_after_the_service_comes_back(world: World) -> None:
    first = write_image(world.root / "Dog" / "a.jpg", 41)
    daemon = world.start_daemon()
    daemon.wait_ready()
    world.stop_emulator()
    more = {sha256(write_image(world.root / "Cat" / f"c{i}.jpg", 50 + i)) for i in range(5)}
    daemon.wait_for(lambda: daemon.events("reconcile_failed"), "a failed reconcile")
    world.start_emulator()  # same port, same data
    want = {sha256(first): {"Dog"}, **{h: frozenset({"Cat"}) for h in more}}
    daemon.wait_for(lambda: _tags_by_sha(world) == want, "the changes made while it was down")
    assert daemon.wait_event("service_recovered")
    assert daemon.stop() == 0


def test_sigterm_exits_zero_and_flushes_the_ledger(world: World) -> None:
    daemon = world.start_daemon()
    daemon.wait_ready()
    assert daemon.stop(signal.SIGTERM) == 0
    assert daemon.events("stopped")
    again = world.start_daemon()
    again.wait_ready()
    assert again.stop(signal.SIGINT) == 0


def test_sigterm_during_uploads_then_restart_converges_without_duplicates(
    slow_world: World,
) -> None:
    world = slow_world  # every request takes 400 ms more
    # One request at a time: 640 files are 10 upload requests in a row, seconds of uploading,
    # more than the 1.5 s a 3 s shutdown budget gives in-flight work.
    world.write_config(daemon={"shutdown_timeout_seconds": 3}, service={"max_concurrency": 1})
    tree = {f"Dog/d{i:03}.jpg": 5000 + i for i in range(640)}
    daemon = world.start_daemon()
    daemon.wait_ready()
    staging = world.tmp / "staging"
    for rel, seed in tree.items():
        write_image(staging / rel, seed)
    for folder in staging.iterdir():
        folder.rename(world.root / folder.name)
    daemon.wait_for(lambda: world.uploads.requests >= 1, "the first upload answered")
    assert daemon.stop(signal.SIGTERM) == 0
    assert daemon.events("shutdown_cancelling")  # it gave the rest up, within its budget
    assert image_count(world.http, world.project_id) < len(tree)

    world.stop_emulator()
    world.faults = NO_FAULTS
    world.start_emulator()
    again = world.start_daemon()
    want = {sha256((world.root / rel).read_bytes()): frozenset({rel[:3]}) for rel in tree}
    again.wait_for(lambda: image_count(world.http, world.project_id) >= len(tree), "640 images")
    again.wait_event("ready")
    assert _tags_by_sha(world) == want  # each content once, tagged Dog
    assert again.stop() == 0


def test_sighup_reloads_a_valid_config_and_keeps_the_old_one_on_a_broken_one(
    world: World,
) -> None:
    dog = write_image(world.root / "Dog" / "a.jpg", 61)
    daemon = world.start_daemon()
    daemon.wait_ready()

    world.config_path.write_text("mirror: [this is: not valid\n")
    daemon.send(signal.SIGHUP)
    rejected = daemon.wait_event("config_reload_rejected")
    assert "not valid YAML" in rejected[0]["error"]
    cat = write_image(world.root / "Cat" / "b.jpg", 62)  # still served by the old config
    want = {sha256(dog): {"Dog"}, sha256(cat): {"Cat"}}
    daemon.wait_for(lambda: _tags_by_sha(world) == want, "Cat/b.jpg under the kept config")

    world.write_config(mirror={"tags": {"rename": {"Dog": "Canine"}}})
    daemon.send(signal.SIGHUP)
    daemon.wait_event("config_reloaded")
    want = {sha256(dog): {"Canine"}, sha256(cat): {"Cat"}}
    daemon.wait_for(lambda: _tags_by_sha(world) == want, "Dog/ retagged Canine by the new config")
    assert daemon.stop() == 0


def test_notify_protocol_ready_status_watchdog_stopping(
    world: World, notify_socket: tuple[str, list[str]]
) -> None:
    path, messages = notify_socket
    data = write_image(world.root / "Dog" / "a.jpg", 71)
    daemon = world.start_daemon(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    ready = daemon.wait_for(
        lambda: next((m for m in list(messages) if "READY=1" in m.splitlines()), None), "READY=1"
    )
    # READY comes after the first reconcile: the file is already in the project.
    assert _tags_by_sha(world) == {sha256(data): {"Dog"}}
    assert any(line.startswith("STATUS=t: in sync") for line in ready.splitlines())
    daemon.wait_for(lambda: list(messages).count("WATCHDOG=1") >= 3, "WATCHDOG=1 pings")
    assert daemon.stop() == 0
    lines = [line for m in messages for line in m.splitlines()]
    assert "STOPPING=1" in lines
    assert lines.index("READY=1") < lines.index("STOPPING=1")


def test_watch_limit_falls_back_to_periodic_rescans(world: World) -> None:
    daemon = world.start_daemon(launcher=HERE / "watch_limit_launcher.py")
    daemon.wait_ready()
    (warning,) = daemon.wait_event("watcher_unavailable")
    assert "fs.inotify.max_user_watches" in warning["reason"]
    assert "sysctl" in warning["reason"]
    assert warning["fallback"] == "rescanning every 1 s"
    data = write_image(world.root / "Dog" / "a.jpg", 81)
    daemon.wait_for(lambda: _tags_by_sha(world) == {sha256(data): {"Dog"}}, "a rescan upload")
    assert len(daemon.events("watcher_unavailable")) == 1  # said once, not at every rescan
    assert daemon.stop() == 0
