"""The emulator limits itself: request bodies are capped and batch limits checked as they stream.

A 1 GiB upload is refused after reading a small part of it, and the process's peak memory stays
far below the body's size (the emulator runs in this process, in a thread, so this process's
VmHWM is its peak). The caps still admit the largest legal batch of each upload route.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.emulator import limits
from syncd.emulator.limits import Quotas
from syncd.emulator.server import EmulatorServer
from tests.emulator.support import error_code, new_project, new_tag
from tests.support import TEST_KEY
from tests.support.images import image_bytes

GIB = 1024**3
MIB = 1024**2
# Generous: the refused upload may cost a few MB of buffers, never anything near its 1 GiB.
_MAX_GROWTH_BYTES = 200 * MIB
_CHUNK = b"\0" * (64 * 1024)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


class _PeakMemory:
    """This process's peak resident memory above what it held when measuring began."""

    def __enter__(self) -> _PeakMemory:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
        self.start = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth = _status_kib("VmHWM") - self.start


def _zeros(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = _CHUNK[: min(len(_CHUNK), total - sent)]
        sent += len(piece)
        yield piece


def _many_parts(total: int, boundary: bytes) -> Iterator[bytes]:
    """A multipart body of about `total` bytes: 64 KiB `imageData` parts, streamed."""
    part = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="imageData"; filename="x.png"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + _CHUNK + b"\r\n"
    )
    for _ in range(total // len(part)):
        yield part
    yield b"--" + boundary + b"--\r\n"


def _post(
    http: httpx.Client, path: str, body: Iterator[bytes], headers: dict[str, str]
) -> tuple[int, str | None]:
    """POST a streamed body; return the status and error code, or (0, None) if the connection
    was closed before the answer could be read. The emulator answers a refusal and closes at
    once; the client, still sending, usually reads the answer, but a reset may discard it."""
    try:
        r = http.post(path, content=body, headers=headers)
    except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
        return 0, None
    return r.status_code, error_code(r) if r.status_code >= 400 else None


def test_a_1gib_multipart_upload_of_many_parts_is_refused_as_it_streams(
    http: httpx.Client, project_id: str
) -> None:
    boundary = b"syncd-test-boundary"
    headers = {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}
    with _PeakMemory() as peak:
        answer = _post(http, f"/projects/{project_id}/images", _many_parts(GIB, boundary), headers)
    assert answer in {(400, "BadRequestImageBatch"), (0, None)}
    assert peak.growth < _MAX_GROWTH_BYTES, f"peak memory grew by {peak.growth // MIB} MiB"
    assert http.get(f"/projects/{project_id}/images/count").json() == 0


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("images", "application/octet-stream"),
        ("images", "multipart/form-data; boundary=b"),
        ("images/files", "application/json"),
        ("images/tags", "application/json"),
    ],
)
def test_a_declared_body_over_the_cap_is_refused_before_it_is_read(
    http: httpx.Client, project_id: str, path: str, content_type: str
) -> None:
    headers = {"content-type": content_type, "content-length": str(GIB)}
    with _PeakMemory() as peak:
        status, _ = _post(http, f"/projects/{project_id}/{path}", _zeros(GIB), headers)
    assert status in {413, 0}
    assert peak.growth < _MAX_GROWTH_BYTES, f"peak memory grew by {peak.growth // MIB} MiB"


def test_a_streamed_json_body_over_its_cap_is_refused(http: httpx.Client, project_id: str) -> None:
    # No Content-Length (chunked): counted as it arrives.
    body = _zeros(limits.MAX_JSON_BODY_BYTES + len(_CHUNK))
    r = http.post(
        f"/projects/{project_id}/images/tags",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert error_code(r) == "BadRequest"


def test_the_caps_admit_the_largest_legal_batch(spec_checker: object) -> None:
    # A small image limit keeps the largest legal batch small; the caps follow the limit.
    fat_name = "n" * 1000 + ".bmp"
    images = [
        image_bytes(seed, "bmp", size=(96, 96)) for seed in range(2 * limits.MAX_IMAGES_PER_BATCH)
    ]
    size = len(images[0])
    assert all(len(i) == size for i in images)
    multipart_cap, files_cap = limits.upload_body_limits(size)
    with (
        EmulatorServer(training_key=TEST_KEY, quotas=Quotas(max_image_bytes=size)) as server,
        httpx.Client(
            base_url=f"{server.url}/customvision/v3.3/training",
            headers={"Training-Key": TEST_KEY},
            timeout=60,
        ) as http,
    ):
        project_id = new_project(http)
        tag_ids = [new_tag(http, project_id, f"t{i}") for i in range(limits.MAX_TAGS_PER_BATCH)]
        first, second = images[: limits.MAX_IMAGES_PER_BATCH], images[limits.MAX_IMAGES_PER_BATCH :]
        files = [("imageData", (fat_name, data, "application/octet-stream")) for data in first]
        request = http.build_request(
            "POST",
            f"/projects/{project_id}/images",
            params={"tagIds": ",".join(tag_ids)},
            files=files,
        )
        request.read()
        assert len(request.content) <= multipart_cap
        assert http.send(request).status_code == 200

        # 50 pairs of the longest key and value, each character doubled by JSON escaping.
        metadata = {f"k{i:03d}" + "\\" * 252: "\\" * 512 for i in range(50)}
        batch = {
            "images": [
                {
                    "name": fat_name,
                    "contents": base64.b64encode(data).decode(),
                    "tagIds": tag_ids,
                }
                for data in second
            ],
            "tagIds": tag_ids,
            "metadata": metadata,
        }
        r = http.post(f"/projects/{project_id}/images/files", json=batch)
        assert len(r.request.content) <= files_cap
        assert r.status_code == 200, r.text
