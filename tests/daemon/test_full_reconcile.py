"""The periodic full reconcile repairs the project with no local event to prompt it."""

from __future__ import annotations

from tests.daemon.conftest import World
from tests.support.images import write_image
from tests.support.project_view import content, remote_images, sha256


def test_a_tag_removed_in_the_portal_is_put_back_by_the_timer(world: World) -> None:
    world.write_config(daemon={"full_reconcile_seconds": 1.5})
    daemon = world.start_daemon()
    daemon.wait_ready()
    data = write_image(world.root / "Dog" / "rex.jpg", 1)
    daemon.wait_for(
        lambda: content(remote_images(world.http, world.project_id)) == {sha256(data): {"Dog"}},
        "rex.jpg tagged Dog",
    )
    [image] = remote_images(world.http, world.project_id)
    tag_id = world.http.get(f"/projects/{world.project_id}/tags").json()[0]["id"]
    fulls_before = len([e for e in daemon.events("reconciled") if e["reason"] == "full"])
    runs_before = len(daemon.events("reconciled"))

    # Drift behind the daemon's back: nothing changes locally, so only the timer can notice.
    removed = world.http.delete(
        f"/projects/{world.project_id}/images/tags",
        params={"imageIds": image.id, "tagIds": tag_id},
    )
    assert removed.status_code in (200, 204), removed.text

    daemon.wait_for(
        lambda: content(remote_images(world.http, world.project_id)) == {sha256(data): {"Dog"}},
        "the Dog tag put back",
    )
    # The timer keeps running. (On a slow machine another reconcile still due from the upload,
    # a retry or a flush, can list the project and repair the drift first; either is right.)
    daemon.wait_for(
        lambda: (
            len([e for e in daemon.events("reconciled") if e["reason"] == "full"]) > fulls_before
        ),
        "a full reconcile after the drift",
    )
    after_drift = daemon.events("reconciled")[runs_before:]
    assert any(e["add_tags"] == 1 for e in after_drift)  # the daemon put it back, nobody else
    assert daemon.stop() == 0
