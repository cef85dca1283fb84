"""Helpers for the round-trip tests: a project labelled "in the portal" (images uploaded over
plain HTTP, never by syncd), and readers of what `syncd pull` wrote.

Public names: LabelledProject, label_project, tree_files, KIND_COUNTS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.images import image_bytes

# Images per label set: several tags, the Negative tag, untagged, and multi-tag images.
KIND_COUNTS: Mapping[tuple[str, ...], int] = {
    ("Dog",): 90,
    ("Cat",): 80,
    ("Bird",): 60,
    ("Fish",): 40,
    ("Negative",): 20,
    (): 10,
    ("Cat", "Dog"): 12,
    ("Bird", "Fish"): 8,
}


@dataclass(frozen=True)
class LabelledProject:
    project_id: str
    tag_ids: Mapping[str, str]  # name -> id
    images: Mapping[str, tuple[str, ...]]  # image id -> tag names
    sha256: Mapping[str, str]  # image id -> sha256 of its bytes


def label_project(
    http: httpx.Client, project_id: str, counts: Mapping[tuple[str, ...], int] = KIND_COUNTS
) -> LabelledProject:
    """Create the tags and upload seeded images for each label set (64 per call)."""
    tag_ids: dict[str, str] = {}
    for name in sorted({n for names in counts for n in names}):
        params = {"name": name, **({"type": "Negative"} if name == "Negative" else {})}
        r = http.post(f"/projects/{project_id}/tags", params=params)
        assert r.status_code == 200, r.text
        tag_ids[name] = r.json()["id"]
    images: dict[str, tuple[str, ...]] = {}
    hashes: dict[str, str] = {}
    seed = 10_000
    for names, count in counts.items():
        batch: list[tuple[str, bytes]] = []
        for _ in range(count):
            seed += 1
            batch.append((f"img{seed}.png", image_bytes(seed, "png")))
        for start in range(0, count, 64):
            chunk = batch[start : start + 64]
            ids = _upload(http, project_id, chunk, [tag_ids[n] for n in names])
            for image_id, (_, data) in zip(ids, chunk, strict=True):
                images[image_id] = names
                hashes[image_id] = hashlib.sha256(data).hexdigest()
    return LabelledProject(project_id, tag_ids, images, hashes)


def _upload(
    http: httpx.Client, project_id: str, batch: Sequence[tuple[str, bytes]], tag_ids: list[str]
) -> list[str]:
    files = [("imageData", (name, data, "application/octet-stream")) for name, data in batch]
    params = {"tagIds": ",".join(tag_ids)} if tag_ids else {}
    r = http.post(f"/projects/{project_id}/images", params=params, files=files)
    assert r.status_code == 200, r.text
    return [result["image"]["id"] for result in r.json()["images"]]


def tree_files(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under root, hidden ones left out."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
