"""The trash: an undo for deletes. Each image's original is kept on disk before it is deleted.

Public names: Trash, trash_folder, keep_originals.

Under `delete: mirror` with `trash_dir` set, the executor calls `keep_originals` just before the
delete call. Each image is looked up (GetImagesByIds, for a fresh originalImageUri), its original
downloaded through the client, hashed as it streams, and checked against the sha256 the plan
deletes it for. It is written to `<trash_dir>/<YYYY-MM-DDTHHMMSSZ>/<path>` for every path the
ledger last knew its content at under the root (`<Tag>/<name>`), so moving the files back into
the root and syncing restores the images with the same tags through the folder mapping. When no
path is known (the run that saw the file go was cut short), the image goes where `syncd pull`
would put it: `<tag folder>/<image id>.<ext>`.

Fail closed: an image whose original cannot be looked up, downloaded, verified or written is not
deleted; `keep_originals` returns it with the reason, and the caller reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import structlog

from syncd.api import ApiError, Image, TrainingClient
from syncd.core.imageformat import IMAGE_MAGIC_BYTES, UNACCEPTED_IMAGE_SUFFIXES, image_suffix

_log = structlog.get_logger(component="trash")

_PART_SUFFIX = ".syncd-part"  # a download in progress; renamed into place once verified


def trash_folder(trash_dir: Path, now: datetime) -> Path:
    """The dated folder one run's deleted originals go into (UTC, sortable, no colons)."""
    return trash_dir / now.strftime("%Y-%m-%dT%H%M%SZ")


@dataclass(frozen=True)
class Trash:
    """Where one run's deleted originals go, and where each one lived under the root.

    `paths`: image id (lower case) -> relative paths of the files that held its content, as the
    ledger knew them before this run's scan. `fallback`: image id -> folders (relative, "" for
    the root) for an image with no known path.
    """

    folder: Path
    paths: Mapping[str, tuple[str, ...]]
    fallback: Callable[[str], tuple[str, ...]]

    def targets(self, image_id: str, head: bytes) -> list[Path]:
        """The files to write one image's original to (at least one)."""
        suffix = image_suffix(head) or ""  # what the bytes are, by their first bytes
        known = [rel for rel in self.paths.get(image_id.lower(), ()) if _safe(rel)]
        if not known:
            name = f"{image_id.lower()}{suffix}"
            folders = [f for f in self.fallback(image_id.lower()) if f == "" or _safe(f)] or [""]
            known = [f"{f}/{name}" if f else name for f in folders]
        # A prepared image (files.prepare) holds what was sent, not the file: `photo.webp` sent as
        # a JPEG is kept as `photo.webp.jpg`, named for both what it was and what it is.
        return [self.folder / _named_for(rel, suffix) for rel in known]


# The suffixes of the service's formats, as the file's own suffix may spell them.
_SUFFIX_SPELLINGS = {".jpeg": ".jpg", ".jpe": ".jpg", ".jfif": ".jpg", ".dib": ".bmp"}


def _named_for(rel: str, suffix: str) -> str:
    """`rel`, with `suffix` added when its own suffix names another image format (a prepared
    file's); a suffix that names no known image format is left to mean what its owner meant."""
    own = PurePosixPath(rel).suffix.lower()
    own = _SUFFIX_SPELLINGS.get(own, own)
    known = own in {s for _, _, s in IMAGE_MAGIC_BYTES} or own in UNACCEPTED_IMAGE_SUFFIXES
    return f"{rel}{suffix}" if suffix and known and own != suffix else rel


def _safe(rel: str) -> bool:
    """A relative path that stays inside the trash folder."""
    parts = PurePosixPath(rel).parts
    return bool(parts) and not PurePosixPath(rel).is_absolute() and ".." not in parts


async def keep_originals(
    client: TrainingClient,
    project_id: str,
    trash: Trash,
    wanted: Sequence[tuple[str, str]],
) -> tuple[list[str], list[tuple[str, str]]]:
    """Write each (image id, sha256)'s original into the trash.

    Return the ids now safe to delete (kept, or already gone from the project) and
    (id, reason) for the rest, which must not be deleted."""
    ids = [image_id for image_id, _ in wanted]
    try:
        found = await client.get_images_by_ids(project_id, ids)
    except ApiError as exc:
        reason = f"not deleted: its original could not be looked up for the trash ({exc})"
        return [], [(image_id, reason) for image_id in ids]
    by_id = {str(image.id).lower(): image for image in found}
    safe: list[str] = []
    failed: list[tuple[str, str]] = []

    async def one(image_id: str, sha256: str) -> None:
        image = by_id.get(image_id.lower())
        if image is None:
            safe.append(image_id)  # already gone: the delete changes nothing
            return
        problem = await _keep(client, trash, image, image_id, sha256)
        if problem is None:
            safe.append(image_id)
        else:
            failed.append((image_id, f"not deleted: {problem}"))
            _log.warning("trash_failed", image_id=image_id, error=problem)

    # The client bounds how many downloads run at once.
    await asyncio.gather(*(one(image_id, sha) for image_id, sha in wanted))
    return safe, failed


async def _keep(
    client: TrainingClient, trash: Trash, image: Image, image_id: str, sha256: str
) -> str | None:
    """Download, verify and place one original; return why not, or None when it is kept."""
    if not image.original_uri:
        return "the service gave no originalImageUri to keep it in the trash"
    part = trash.folder / f".{image_id.lower()}{_PART_SUFFIX}"
    digest = hashlib.sha256()
    head = b""
    try:
        await asyncio.to_thread(trash.folder.mkdir, parents=True, exist_ok=True)
        with part.open("wb") as out:
            async for chunk in client.download(image.original_uri):
                if len(head) < 16:
                    head += chunk[: 16 - len(head)]
                digest.update(chunk)
                out.write(chunk)
    except ApiError as exc:
        _unlink_quietly(part)
        return f"its original could not be downloaded into the trash ({exc})"
    except OSError as exc:
        _unlink_quietly(part)
        return f"the trash {_where(exc, trash.folder)} cannot be written ({exc.strerror or exc})"
    if digest.hexdigest() != sha256:
        _unlink_quietly(part)
        return "its original's bytes differ from the content the ledger recorded for it"
    targets = trash.targets(image_id, head)
    try:
        for target in targets[1:]:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(part, target)
        targets[0].parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, targets[0])
    except OSError as exc:
        _unlink_quietly(part)
        return f"the trash {_where(exc, trash.folder)} cannot be written ({exc.strerror or exc})"
    _log.info("trashed", image_id=image_id, paths=[str(t) for t in targets])
    return None


def _where(exc: OSError, fallback: Path) -> str:
    return str(exc.filename) if exc.filename else str(fallback)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
