"""State in a data dir survives a clean restart and kill -9; blobs are content-addressed files."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.emulator.support import (
    api_client,
    count,
    csv,
    list_all,
    new_project,
    new_tag,
    seeded_images,
)
from tests.emulator.support import upload as upload_ok
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker


def _snapshot(http: httpx.Client, pid: str) -> dict[str, tuple]:
    """Everything a user can read about a project's images: id -> (tags, metadata, bytes)."""
    out = {}
    for image in list_all(http, pid, "images"):
        original = httpx.get(image["originalImageUri"], timeout=30)
        assert original.status_code == 200
        tags = sorted(t["tagId"] for t in image.get("tags") or [])
        out[image["id"]] = (tags, image.get("metadata"), original.content)
    return out


def test_state_survives_a_clean_restart(tmp_path: Path, spec_checker: SpecChecker) -> None:
    data = tmp_path / "emu"
    with (
        EmulatorServer(
            training_key=TEST_KEY, data_dir=data, response_observer=spec_checker.observe
        ) as server,
        api_client(server.url) as http,
    ):
        pid = new_project(http)
        tag = new_tag(http, pid, "Dog")
        images = upload_ok(http, pid, seeded_images(3), tag_ids=[tag])
        r = http.post(
            f"/projects/{pid}/images/metadata",
            params={"imageIds": images[0]["id"]},
            json={"hash": "abc"},
        )
        assert r.status_code == 200
        before = _snapshot(http, pid)
        tags_before = http.get(f"/projects/{pid}/tags").json()
    with (
        EmulatorServer(
            training_key=TEST_KEY, data_dir=data, response_observer=spec_checker.observe
        ) as server,
        api_client(server.url) as http,
    ):
        assert _snapshot(http, pid) == before
        assert http.get(f"/projects/{pid}/tags").json() == tags_before
        assert count(http, pid, **{"$filter": "hash eq 'abc'"}) == 1
        # Duplicate detection survives too: the same bytes are still known.
        r = http.post(
            f"/projects/{pid}/images",
            files=[("imageData", ("again.png", seeded_images(1)[0][1], "image/png"))],
        )
        assert [e["status"] for e in r.json()["images"]] == ["OKDuplicate"]


def test_an_in_memory_emulator_keeps_nothing(spec_checker: SpecChecker) -> None:
    for _ in range(2):
        with (
            EmulatorServer(training_key=TEST_KEY, response_observer=spec_checker.observe) as server,
            api_client(server.url) as http,
        ):
            assert http.get("/projects").json() == []
            new_project(http)


@pytest.mark.slow
def test_everything_acknowledged_survives_kill_9(tmp_path: Path, cli_emulator) -> None:
    data = tmp_path / "emu"
    proc, url = cli_emulator("--data", str(data))
    with api_client(url) as http:
        pid = new_project(http)
        dog, cat = new_tag(http, pid, "Dog"), new_tag(http, pid, "Cat")
        acknowledged = []
        for batch in range(5):
            acknowledged += upload_ok(http, pid, seeded_images(10, start=batch * 10), [dog])
        ids = [i["id"] for i in acknowledged]
        pairs = [{"imageId": i, "tagId": cat} for i in ids[:7]]
        assert http.post(f"/projects/{pid}/images/tags", json={"tags": pairs}).status_code == 200
        r = http.post(
            f"/projects/{pid}/images/metadata", params={"imageIds": csv(ids[:3])}, json={"k": "v"}
        )
        assert r.status_code == 200
        r = http.delete(f"/projects/{pid}/images/tags", params={"imageIds": ids[-1], "tagIds": dog})
        assert r.status_code == 204
        before = _snapshot(http, pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    _, url = cli_emulator("--data", str(data))
    with api_client(url) as http:
        after = _snapshot(http, pid)
        assert after == before
        assert len(after) == 50
        assert count(http, pid, "images/tagged/count", tagIds=cat) == 7
        assert count(http, pid, "images/untagged/count") == 1
        assert count(http, pid, **{"$filter": "k eq 'v'"}) == 3


def test_blobs_are_content_addressed_files_not_sqlite_rows(
    emulator_on_disk: EmulatorServer, tmp_path: Path
) -> None:
    data = tmp_path / "emulator"
    image = seeded_images(1, fmt="bmp")[0]  # BMP: raw pixels, no compression to hide behind
    with api_client(emulator_on_disk.url) as http:
        upload_ok(http, new_project(http), [image])
    digest = hashlib.sha256(image[1]).hexdigest()
    files = [p for p in data.rglob("*") if p.is_file()]
    blobs = [p for p in files if p.read_bytes() == image[1]]
    assert blobs, f"no file under {data} holds the uploaded bytes: {files}"
    assert any(digest in str(p.relative_to(data)).replace(os.sep, "") for p in blobs), blobs
    for path in files:
        if path not in blobs:
            assert image[1][-200:] not in path.read_bytes(), f"{path} holds image bytes"
