"""`syncd run` in front of a hostile service: once it stops asking to wait for ever and stops
trickling, the daemon syncs again (no Retry-After or slow answer wedges it)."""

from __future__ import annotations

from collections.abc import Callable

from tests.daemon.conftest import World
from tests.support.hostile import HostileServer, Reply, Request
from tests.support.images import write_image
from tests.support.project_view import content, remote_images, sha256

HOSTILE_PHASE = 5  # requests: three 429s asking for 10^9 s, then two answers that trickle


def _hostile_then_normal() -> Callable[[Request], Reply | None]:
    count = 0

    def script(request: Request) -> Reply | None:
        nonlocal count
        count += 1
        if count <= 3:
            return Reply(429, headers={"Retry-After": "1000000000"}, json={"code": "429"})
        if count <= HOSTILE_PHASE:
            return Reply(body=b"[", stream_bytes=10**9, chunk=1, interval=0.2, unbounded=True)
        return None

    return script


def test_the_daemon_syncs_a_dropped_file_once_the_hostile_phase_ends(world: World) -> None:
    with HostileServer(_hostile_then_normal(), upstream=world.url) as bad:
        world.write_config(
            service={"endpoint": bad.url, "max_retry_after": 0.2, "request_deadline": 1}
        )
        daemon = world.start_daemon()
        daemon.wait_ready()
        data = write_image(world.root / "Dog" / "rex.jpg", 1)
        daemon.wait_for(
            lambda: content(remote_images(world.http, world.project_id)) == {sha256(data): {"Dog"}},
            "rex.jpg tagged Dog after the hostile phase",
        )
        assert daemon.events("reconcile_failed"), daemon.log()
        assert len(bad.requests) > HOSTILE_PHASE
        assert daemon.stop() == 0
