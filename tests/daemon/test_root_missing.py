"""`syncd run` with a root that does not exist: never "in sync", and it picks the root up when it
comes back (mounted, restored)."""

from __future__ import annotations

import pytest

from tests.daemon.conftest import World
from tests.support.images import write_image
from tests.support.project_view import content, remote_images, sha256


@pytest.mark.parametrize("policy", ["keep", "mirror"])
def test_missing_root_is_reported_not_in_sync_and_picked_up_when_it_returns(
    world: World,
    notify_socket: tuple[str, list[str]],
    policy: str,
) -> None:
    path, messages = notify_socket
    world.root.rmdir()  # not mounted yet
    world.write_config(mirror={"delete": policy})
    daemon = world.start_daemon(env={"NOTIFY_SOCKET": path})

    ready = daemon.wait_for(
        lambda: next((m for m in list(messages) if "READY=1" in m.splitlines()), None), "READY=1"
    )
    status = [line for line in ready.splitlines() if line.startswith("STATUS=")]
    assert status and "in sync" not in status[0] and "root" in status[0], ready
    (missing,) = daemon.wait_event("root_missing")
    assert missing["root"] == str(world.root) and "mount" in missing["advice"]
    (reconciled,) = daemon.wait_event("reconciled")
    assert reconciled["exit_code"] == 1

    data = write_image(world.tmp / "staging" / "Dog" / "a.jpg", 91)
    (world.tmp / "staging").rename(world.root)  # the root comes back, files in it
    daemon.wait_for(
        lambda: content(remote_images(world.http, world.project_id)) == {sha256(data): {"Dog"}},
        "the returned root's file uploaded",
    )
    daemon.wait_for(
        lambda: any(
            line.startswith("STATUS=t: in sync") for m in list(messages) for line in m.splitlines()
        ),
        "STATUS in sync once the root is back",
    )
    assert daemon.stop() == 0
