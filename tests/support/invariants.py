"""The invariant checker: does the project mirror the tree, and does the ledger tell the truth?

Public names: check_invariants (all of it), check_mirror, check_ledger, expected_from_tree,
read_remote, RemoteView, RemoteImage, Violation, Kind.

It imports nothing from syncd: the tree is read with os, the ledger with sqlite3 (read-only),
the project over plain HTTP (every listing page, every original's bytes hashed), so a bug in
syncd's own reading of any of the three cannot hide itself here. It returns every violation it
finds rather than stopping at the first, so a failing chaos run shows the whole damage.

The tree's rules are the documented defaults (README "How it decides", config.example.yaml):
the first folder under the root is the tag, `_negative/` gives the tag "Negative", files directly
under the root are untagged, hidden paths are ignored, the same bytes in several folders are one
image carrying every folder's tag, and tag names compare case-insensitively. Only files with an
image extension, 1 byte to 6 MB, are expected remotely; pass `skip` for files the caller knows
syncd must refuse (bad bytes, bad folder names).
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import sqlite3
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

API_BASE = "/customvision/v3.3/training"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})
MAX_IMAGE_BYTES = 6 * 1024 * 1024
PAGE = 256


class Kind(enum.StrEnum):
    MISSING_REMOTELY = "missing_remotely"  # a local image has no remote image
    NOT_LOCAL = "not_local"  # (delete: mirror) a remote image matches no local file
    WRONG_TAGS = "wrong_tags"  # a remote image's tags are not its folders'
    DUPLICATE = "duplicate"  # two remote images hold the same bytes
    LEDGER_UNKNOWN_IMAGE = "ledger_unknown_image"  # a remote image the ledger has no row for
    LEDGER_GONE_IMAGE = "ledger_gone_image"  # a ledger row for an image not in the project
    LEDGER_WRONG_HASH = "ledger_wrong_hash"  # a ledger row's sha256 is not the image's bytes
    LEDGER_WRONG_TAGS = "ledger_wrong_tags"  # a ledger row's tag ids are not the image's
    LEDGER_PENDING = "ledger_pending"  # an upload still marked in flight
    LEDGER_UNREADABLE = "ledger_unreadable"  # the ledger file cannot be read
    UNREQUESTED_DELETE = "unrequested_delete"  # an image syncd does not own was deleted


@dataclass(frozen=True, order=True)
class Violation:
    kind: Kind
    subject: str  # a sha256, an image id or a path
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass(frozen=True)
class RemoteImage:
    image_id: str  # lower case
    sha256: str
    tag_names: frozenset[str]  # as the service spells them
    tag_ids: frozenset[str]  # lower case
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class RemoteView:
    images: tuple[RemoteImage, ...]


def tag_key(name: str) -> str:
    """Tag names compare case-insensitively (and in NFC), as the service compares them."""
    return unicodedata.normalize("NFC", name).casefold()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_candidate(rel: str, path: Path) -> bool:
    if any(part.startswith(".") for part in rel.split("/")):
        return False
    if Path(rel).suffix.lower() not in IMAGE_EXTENSIONS:
        return False
    size = path.stat().st_size
    return 0 < size <= MAX_IMAGE_BYTES


def expected_from_tree(
    root: Path,
    *,
    skip: Collection[str] = (),
    negative_folder: str = "_negative",
    negative_tag: str = "Negative",
) -> tuple[dict[str, frozenset[str]], dict[str, list[str]]]:
    """Return (sha256 -> tag keys wanted, sha256 -> relative paths holding those bytes)."""
    tags: dict[str, set[str]] = {}
    paths: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel in skip or not path.is_file() or not _is_candidate(rel, path):
                continue
            digest = _sha256(path.read_bytes())
            wanted = tags.setdefault(digest, set())
            paths.setdefault(digest, []).append(rel)
            parts = rel.split("/")
            if len(parts) > 1:
                top = parts[0]
                wanted.add(tag_key(negative_tag if top == negative_folder else top))
    return {h: frozenset(t) for h, t in tags.items()}, paths


def read_remote(http: httpx.Client, project_id: str) -> RemoteView:
    """Every image of the project (all pages) with the sha256 of its original bytes."""
    raw: list[dict[str, Any]] = []
    while True:
        r = http.get(
            f"{API_BASE}/projects/{project_id}/images",
            params={"take": PAGE, "skip": len(raw), "orderBy": "Oldest"},
        )
        r.raise_for_status()
        page = r.json()
        raw.extend(page)
        if len(page) < PAGE:
            break
    images = []
    for item in raw:
        original = http.get(item["originalImageUri"])  # an absolute URI overrides the base
        original.raise_for_status()
        tags = item.get("tags") or ()
        images.append(
            RemoteImage(
                image_id=str(item["id"]).lower(),
                sha256=_sha256(original.content),
                tag_names=frozenset(t["tagName"] for t in tags),
                tag_ids=frozenset(str(t["tagId"]).lower() for t in tags),
                metadata=dict(item.get("metadata") or {}),
            )
        )
    return RemoteView(tuple(images))


def check_mirror(
    expected: Mapping[str, frozenset[str]],
    where: Mapping[str, list[str]],
    remote: RemoteView,
    *,
    delete_mirror: bool,
    foreign: Collection[str] = (),
) -> list[Violation]:
    """Return what differs between the tree's wanted content and the project.

    `foreign`: ids of images someone else put in the project (no local file has their bytes):
    they must still be there, and are no one's business otherwise.
    """
    out: list[Violation] = []
    listed = {image.image_id for image in remote.images}
    for image_id in sorted(set(foreign) - listed):
        out.append(Violation(Kind.UNREQUESTED_DELETE, image_id, "a foreign image was deleted"))
    by_hash: dict[str, list[RemoteImage]] = {}
    for image in remote.images:
        by_hash.setdefault(image.sha256, []).append(image)
    for digest, images in sorted(by_hash.items()):
        if len(images) > 1:
            ids = ", ".join(sorted(i.image_id for i in images))
            out.append(Violation(Kind.DUPLICATE, digest, f"{len(images)} images: {ids}"))
    for digest, wanted in sorted(expected.items()):
        images = by_hash.get(digest)
        if not images:
            out.append(Violation(Kind.MISSING_REMOTELY, digest, f"local {where[digest]}"))
            continue
        for image in images:
            have = frozenset(tag_key(n) for n in image.tag_names)
            if have != wanted:
                out.append(
                    Violation(
                        Kind.WRONG_TAGS,
                        digest,
                        f"image {image.image_id} has {sorted(have)}, want {sorted(wanted)}"
                        f" (local {where[digest]})",
                    )
                )
    if delete_mirror:
        for image in remote.images:
            if image.sha256 not in expected and image.image_id not in foreign:
                out.append(
                    Violation(
                        Kind.NOT_LOCAL,
                        image.sha256,
                        f"image {image.image_id} ({sorted(image.tag_names)}): no local file",
                    )
                )
    return out


def _read_ledger(path: Path) -> tuple[dict[str, tuple[str | None, frozenset[str]]], list[str]]:
    """Return (image id -> (sha256, tag ids)) and the pending uploads' sha256, read-only."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT image_id, sha256, tag_ids FROM images").fetchall()
        pending = [r[0] for r in db.execute("SELECT sha256 FROM pending_uploads")]
    finally:
        db.close()
    images = {
        str(image_id).lower(): (sha, frozenset(str(t).lower() for t in json.loads(tag_ids)))
        for image_id, sha, tag_ids in rows
    }
    return images, pending


def check_ledger(path: Path, remote: RemoteView, foreign: Collection[str] = ()) -> list[Violation]:
    try:
        rows, pending = _read_ledger(path)
    except (sqlite3.Error, ValueError) as exc:
        return [Violation(Kind.LEDGER_UNREADABLE, str(path), str(exc))]
    out = [Violation(Kind.LEDGER_PENDING, sha, "upload still marked in flight") for sha in pending]
    listed = {i.image_id: i for i in remote.images}
    for image_id, (sha, tag_ids) in sorted(rows.items()):
        image = listed.get(image_id)
        if image is None:
            out.append(Violation(Kind.LEDGER_GONE_IMAGE, image_id, "not in the project"))
            continue
        if sha is not None and sha != image.sha256:
            out.append(
                Violation(Kind.LEDGER_WRONG_HASH, image_id, f"ledger {sha}, bytes {image.sha256}")
            )
        if tag_ids != image.tag_ids:
            out.append(
                Violation(
                    Kind.LEDGER_WRONG_TAGS,
                    image_id,
                    f"ledger {sorted(tag_ids)}, project {sorted(image.tag_ids)}",
                )
            )
    for image_id in sorted(listed.keys() - rows.keys() - set(foreign)):
        out.append(Violation(Kind.LEDGER_UNKNOWN_IMAGE, image_id, "no ledger row"))
    return out


def check_invariants(
    root: Path,
    ledger: Path,
    http: httpx.Client,
    project_id: str,
    *,
    delete_mirror: bool = True,
    skip: Collection[str] = (),
    foreign: Collection[str] = (),
) -> list[Violation]:
    """Return every violation (sorted; empty when tree, ledger and project agree).

    `http` is a client whose base URL is the service's endpoint (no path) with the
    Training-Key header set. `foreign`: ids of images put in the project by someone else, whose
    bytes are in no local file; each must survive, whatever `delete_mirror` says.
    """
    expected, where = expected_from_tree(root, skip=skip)
    remote = read_remote(http, project_id)
    out = check_mirror(expected, where, remote, delete_mirror=delete_mirror, foreign=foreign)
    out += check_ledger(ledger, remote, foreign)
    return sorted(out)
