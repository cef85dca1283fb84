"""Small helpers for the emulator behaviour tests: clients, projects, tags, uploads, listings.

Public names: API_BASE, PREVIEW_BASE, api_client, new_project, new_tag, seeded_images,
post_images, post_files, upload, error_code, csv, count, list_all, random_ids, TOO_MANY_CODES.
Every helper talks plain HTTP through httpx; nothing here knows the emulator's internals.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from tests.support import TEST_KEY
from tests.support.images import image_bytes

API_BASE = "/customvision/v3.3/training"
PREVIEW_BASE = "/customvision/v3.4-preview/training"

# The spec names a limit but no error code for breaking it; any of these is a sensible choice.
TOO_MANY_CODES = frozenset(
    {
        "BadRequest",
        "BadRequestInvalid",
        "BadRequestExceededBatchSize",
        "BadRequestImageBatch",
        "BadRequestImageExceededCount",
        "BadRequestInvalidIds",
        "BadRequestImageTags",
    }
)

Images = Sequence[tuple[str, bytes]]


def api_client(server_url: str, base: str = API_BASE, key: str | None = TEST_KEY) -> httpx.Client:
    """Return an httpx client for the training API at server_url (no key header if key is None)."""
    headers = {"Accept": "application/json"}
    if key is not None:
        headers["Training-Key"] = key
    return httpx.Client(base_url=f"{server_url}{base}", headers=headers, timeout=60)


def new_project(http: httpx.Client, name: str = "test") -> str:
    """Create a multilabel classification project; return its id."""
    domains = http.get("/domains").json()
    domain = next(d for d in domains if d["type"] == "Classification")
    r = http.post(
        "/projects",
        params={"name": name, "domainId": domain["id"], "classificationType": "Multilabel"},
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def new_tag(http: httpx.Client, project_id: str, name: str) -> str:
    """Create a tag; return its id."""
    r = http.post(f"/projects/{project_id}/tags", params={"name": name})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def seeded_images(count: int, start: int = 0, fmt: str = "png") -> list[tuple[str, bytes]]:
    """Return count distinct (filename, bytes) images from seeds start.. start+count-1."""
    return [(f"img{seed}.{fmt}", image_bytes(seed, fmt)) for seed in range(start, start + count)]


def csv(ids: Iterable[str]) -> str:
    """Join ids the way the spec's collectionFormat csv wants them."""
    return ",".join(ids)


def random_ids(count: int) -> list[str]:
    """Return count fresh uuids that name nothing."""
    return [str(uuid.uuid4()) for _ in range(count)]


def post_images(
    http: httpx.Client, project_id: str, images: Images, tag_ids: Sequence[str] = ()
) -> httpx.Response:
    """CreateImagesFromData as multipart/form-data, one `imageData` part per image."""
    files = [("imageData", (name, data, "application/octet-stream")) for name, data in images]
    params = {"tagIds": csv(tag_ids)} if tag_ids else {}
    return http.post(f"/projects/{project_id}/images", params=params, files=files)


def post_files(
    http: httpx.Client,
    project_id: str,
    images: Images,
    tag_ids: Sequence[str] = (),
    metadata: dict[str, str] | None = None,
) -> httpx.Response:
    """CreateImagesFromFiles: a JSON ImageFileCreateBatch with base64 contents."""
    batch: dict[str, Any] = {
        "images": [
            {"name": name, "contents": base64.b64encode(data).decode()} for name, data in images
        ]
    }
    if tag_ids:
        batch["tagIds"] = list(tag_ids)
    if metadata is not None:
        batch["metadata"] = metadata
    return http.post(f"/projects/{project_id}/images/files", json=batch)


def upload(
    http: httpx.Client, project_id: str, images: Images, tag_ids: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Upload images that must all be created (200, each OK); return the created Image dicts."""
    r = post_images(http, project_id, images, tag_ids)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["isBatchSuccessful"] is True
    assert [result["status"] for result in body["images"]] == ["OK"] * len(images)
    return [result["image"] for result in body["images"]]


def error_code(response: httpx.Response) -> str:
    """Return the CustomVisionError code of an error response."""
    return response.json()["code"]


def count(http: httpx.Client, project_id: str, path: str = "images/count", **params: Any) -> int:
    """GET a count endpoint and return the bare number it answers."""
    r = http.get(f"/projects/{project_id}/{path}", params=params)
    assert r.status_code == 200, r.text
    value = r.json()
    assert isinstance(value, int) and not isinstance(value, bool), r.text
    return value


def list_all(
    http: httpx.Client, project_id: str, path: str = "images", take: int = 256, **params: Any
) -> list[dict[str, Any]]:
    """Walk a listing with skip/take until a short page; return every Image in order."""
    out: list[dict[str, Any]] = []
    while True:
        r = http.get(
            f"/projects/{project_id}/{path}", params={**params, "take": take, "skip": len(out)}
        )
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page)
        if len(page) < take:
            return out
