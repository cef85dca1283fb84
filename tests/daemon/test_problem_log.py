"""`syncd run` names each problem file in its log once when it appears and once when it clears,
never on every reconcile; bytes the service refused are not sent again."""

from __future__ import annotations

from tests.daemon.conftest import World
from tests.e2e.support import service_refused_gif
from tests.support.images import image_bytes, write_image


def test_each_problem_is_logged_once_when_found_and_once_when_cleared(world: World) -> None:
    write_image(world.root / "Dog" / "ok.jpg", 1)
    (world.root / "Dog" / "notes.jpg").write_text("my notes", encoding="utf-8")
    (world.root / "Dog" / "refused.gif").write_bytes(service_refused_gif(5))
    outside = world.tmp / "outside.jpg"
    outside.write_bytes(image_bytes(6))
    (world.root / "Dog" / "link.jpg").symlink_to(outside)
    daemon = world.start_daemon()
    daemon.wait_ready()

    found = {e["path"]: e for e in daemon.wait_event("problem_found", 3)}
    assert set(found) == {"Dog/notes.jpg", "Dog/refused.gif", "Dog/link.jpg"}, daemon.log()
    assert "ErrorImageFormat" in found["Dog/refused.gif"]["reason"]
    for event in found.values():
        assert event["level"] == "warning"
        assert event["kind"] and event["reason"] and event["advice"] and event["since"]
    uploads = world.uploads.requests
    # Only the good file was uploaded: the refused one is a problem, not an upload.
    assert [e["path"] for e in daemon.events("uploaded")] == ["Dog/ok.jpg"]

    # More reconciles: a new file, then a full one. Nothing is logged again, nothing resent.
    write_image(world.root / "Dog" / "ok2.jpg", 2)
    assert daemon.wait_event("uploaded", 2)[-1]["path"] == "Dog/ok2.jpg"
    reconciles = len(daemon.events("reconciled"))
    (world.root / "Dog" / "notes.jpg").unlink()  # fixed: cleared once
    cleared = daemon.wait_event("problem_cleared")
    daemon.wait_for(lambda: len(daemon.events("reconciled")) > reconciles, "one more reconcile")

    assert [e["path"] for e in cleared] == ["Dog/notes.jpg"]
    assert cleared[0]["kind"] == "not_an_image"
    assert len(daemon.events("problem_found")) == 3, daemon.log()
    # Two reconciles uploaded ok.jpg and ok2.jpg; the refused bytes were sent only in the first.
    assert world.uploads.requests == uploads + 1
    assert daemon.stop() == 0
