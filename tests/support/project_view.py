"""The project as a test sees it: every image over plain HTTP, with the sha256 of its original.

Public names: RemoteImage, Changing, remote_images, content, sha256.

Shared by the e2e and daemon tests; it imports nothing from syncd, so what it reports is the
service's word, not syncd's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import httpx

PAGE = 256  # the API's largest `take`


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RemoteImage:
    id: str
    sha256: str
    tags: frozenset[str]
    metadata: dict[str, str] = field(default_factory=dict, hash=False)


class Changing(Exception):
    """The project changed while it was being read (an image listed, then gone): read again."""


def remote_images(http: httpx.Client, project_id: str) -> list[RemoteImage]:
    """Every image in the project (all pages) with the sha256 of its original bytes; raise
    Changing if an image vanished between the listing and its download."""
    raw: list[dict[str, Any]] = []
    while True:
        r = http.get(f"/projects/{project_id}/images", params={"take": PAGE, "skip": len(raw)})
        assert r.status_code == 200, r.text
        page = r.json()
        raw.extend(page)
        if len(page) < PAGE:
            break
    out = []
    for image in raw:
        original = http.get(image["originalImageUri"])  # an absolute URI overrides the base
        if original.status_code == 404:
            raise Changing(image["id"])
        assert original.status_code == 200, original.text
        out.append(
            RemoteImage(
                id=image["id"],
                sha256=sha256(original.content),
                tags=frozenset(t["tagName"] for t in image.get("tags") or ()),
                metadata=dict(image.get("metadata") or {}),
            )
        )
    return out


def content(images: list[RemoteImage]) -> dict[str, frozenset[str]]:
    """sha256 -> tag names; fails if two images hold the same bytes (a duplicate upload)."""
    hashes = [i.sha256 for i in images]
    duplicates = sorted({h for h in hashes if hashes.count(h) > 1})
    assert not duplicates, f"{len(duplicates)} content(s) uploaded more than once"
    return {i.sha256: i.tags for i in images}
