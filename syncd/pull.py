"""`syncd pull`: a project written out as a folder tree, the tag mapping reversed.

Public names: pull_project, PullReport, PullError.

Where each image goes is syncd.core.mapping's `placement` (the tag mapping reversed, checked to map
back to the same tags): a regular tag's images into a folder named after the tag (or the folder a
`tags.rename` entry maps to it), the Negative tag's into `tags.negative_folder`, untagged images
directly under the root (not pulled with `tags.root_files: skip`). An image with several tags
follows `pull.multi_tag`: `link` (one file, hard-linked into each tag's folder; copied where
links are impossible), `copy`, or `first` (the first tag by name). An image that cannot be placed
(a tag that cannot be a folder name, a GeneralProduct tag, a Negative tag without a negative
folder) is reported and skipped. Files are named `<image id><.jpg|.png|.bmp|.gif>`, the suffix
from the image's first bytes (syncd.core.imageformat).

Resumable and verified: a file already in place is hashed and kept if its sha256 is the one the
ledger recorded for that image. Pull never overwrites a local file: one whose bytes differ from
the image (edited here since pull wrote it, or put there by hand) is kept and reported (`kept`,
exit 1), and that image is written only where its name is free. A download goes to
`<DIR>/.syncd-pull/<id>.part` (hidden, so a scan never sees it), is hashed as it streams, recorded
in the ledger, then renamed into place, so a killed pull leaves no partial file under a real name.
Pull only adds: it never deletes or moves local files.

The ledger is written as it goes: the listing first (tags, classification, the images), then each
image's sha256 as it lands, owner `adopted` (the image now mirrors a local file; no metadata is
written to the project, pull sends nothing but reads). So `syncd reconcile` of the pulled tree
right after finds the counts agree and plans nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from syncd.api import ApiError, Image, Tag, TrainingClient
from syncd.config import MirrorConfig
from syncd.core.imageformat import image_suffix
from syncd.core.mapping import TagMapper, placement
from syncd.core.model import ClassificationType, MarkerState, RemoteImage, RemoteSnapshot
from syncd.core.policy import MultiTag
from syncd.errors import PullError
from syncd.ledger import Ledger, RunOutcome
from syncd.localio import LocalIOError, writing
from syncd.remote import remote_tag
from syncd.scan import MARKER_NAME, read_marker, write_marker

_log = structlog.get_logger(component="pull")

PART_DIR = ".syncd-pull"
_HASH_CHUNK = 1 << 20

Progress = Callable[[str, int], None]


@dataclass
class PullReport:
    """What a pull found and did."""

    into: str
    project_id: str
    endpoint: str = ""  # the service pulled from: `embedded` or its URL
    images: int = 0
    downloaded: int = 0
    verified: int = 0  # already complete on disk (hash checked), not downloaded
    extra_files: int = 0  # further links or copies for multi-tag images
    bytes_downloaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image id, error)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (path, image id): edited here
    api_calls: int = 0

    @property
    def complete(self) -> bool:
        """Every image is in the tree as the project has it."""
        return not (self.skipped or self.failed or self.kept)

    @property
    def exit_code(self) -> int:
        """The pull's verdict as the README numbers it in the JSON: 0 complete, 1 not."""
        return 0 if self.complete else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "into": self.into,
            "project_id": self.project_id,
            "endpoint": self.endpoint,
            "images": self.images,
            "downloaded": self.downloaded,
            "verified": self.verified,
            "extra_files": self.extra_files,
            "bytes_downloaded": self.bytes_downloaded,
            "skipped": [{"image_id": i, "reason": r} for i, r in self.skipped],
            "failed": [{"image_id": i, "message": m} for i, m in self.failed],
            "kept": [{"path": p, "image_id": i} for p, i in self.kept],
            "api_calls": self.api_calls,
            "exit_code": self.exit_code,
        }


# --- the pull ------------------------------------------------------------------------------------


def _index(root: Path) -> dict[str, list[str]]:
    """Map image id -> relative paths of files named <id>.<suffix> under root (not hidden)."""
    found: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            stem, _, _ = name.partition(".")
            try:
                image_id = str(uuid.UUID(stem))
            except ValueError:
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            found.setdefault(image_id, []).append(Path(rel).as_posix())
    return found


def _sha256_file(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _taken(path: Path) -> bool:
    """True if something (a file, a link, even a dangling one) holds this name."""
    return path.is_symlink() or path.exists()


def _rel(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class _Puller:
    def __init__(
        self,
        client: TrainingClient,
        ledger: Ledger,
        root: Path,
        mirror: MirrorConfig,
        report: PullReport,
        progress: Progress | None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.root = root
        self.mirror = mirror
        self.report = report
        self.progress = progress or (lambda kind, n: None)
        self.parts = root / PART_DIR
        self.index = _index(root)
        self.known = {i.image_id: i.sha256 for i in ledger.view().images.values() if i.sha256}
        self.run_id = 0
        self.placements: dict[str, tuple[str, ...]] = {}

    async def one(self, image: Image, folders: tuple[str, ...]) -> None:
        image_id = str(image.id).lower()
        have = await self._verified(image_id, folders)
        if have is None:
            if self.known.get(image_id) and self._edited_everywhere(image_id, folders):
                return  # nowhere left to write it: no need to download it
            have = await self._download(image)
            if have is None:
                return
        primary, sha = have
        name = Path(primary).name
        for folder in folders:
            target = _rel(folder, name)
            if target == primary:
                continue
            if await asyncio.to_thread(self._extra_ok, target, primary, sha):
                continue
            if _taken(self.root / target):
                self._keep(target, image_id)
                continue
            with writing(self.root / target):
                await asyncio.to_thread(self._place_extra, target, primary)
            self.report.extra_files += 1

    def _keep(self, rel: str, image_id: str) -> None:
        """Report a local file that is not the image's bytes; it is left as it is."""
        if (rel, image_id) not in self.report.kept:
            self.report.kept.append((rel, image_id))
            _log.warning("local_edit_kept", path=rel, image_id=image_id)

    def _edited_everywhere(self, image_id: str, folders: tuple[str, ...]) -> bool:
        edited = {rel.rpartition("/")[0] for rel, i in self.report.kept if i == image_id}
        return all(folder in edited for folder in folders)

    async def _verified(self, image_id: str, folders: tuple[str, ...]) -> tuple[str, str] | None:
        """Return (a file in place, its sha256) if one holds the bytes the ledger recorded; any
        other file of this image in its folders is a local edit, reported and kept."""
        sha = self.known.get(image_id)
        if sha is None:
            return None
        found = None
        for rel in self.index.get(image_id, []):
            if rel.rpartition("/")[0] not in folders:
                continue
            if await asyncio.to_thread(_sha256_file, self.root / rel) == sha:
                found = found or (rel, sha)
            else:
                self._keep(rel, image_id)
        if found is not None:
            self.report.verified += 1
            self.progress("verified", 1)
        return found

    async def _download(self, image: Image) -> tuple[str, str] | None:
        image_id = str(image.id).lower()
        if not image.original_uri:
            self.report.failed.append((image_id, "the listing gave no originalImageUri"))
            return None
        part = self.parts / f"{image_id}.part"
        digest = hashlib.sha256()
        head = b""
        size = 0
        try:
            with writing(part), part.open("wb") as out:
                async for chunk in self.client.download(image.original_uri, image_id=image_id):
                    if len(head) < 16:
                        head += chunk[:16]
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except ApiError as exc:
            part.unlink(missing_ok=True)
            self.report.failed.append((image_id, str(exc)))
            _log.warning("download_failed", image_id=image_id, error=str(exc))
            return None
        suffix = image_suffix(head)
        if suffix is None:
            part.unlink(missing_ok=True)
            self.report.failed.append((image_id, "not a JPEG, PNG, GIF or BMP image"))
            return None
        sha = digest.hexdigest()
        # Recorded before the rename: a file under its real name is always vouched for.
        self.ledger.record_adopted(image_id, sha, self.run_id)
        self.known[image_id] = sha
        # The first folder whose name is free, or already holds these bytes; never an edit.
        primary = None
        for folder in self.placements[image_id]:
            rel = _rel(folder, f"{image_id}{suffix}")
            if not _taken(self.root / rel):
                primary = primary or rel
            elif await asyncio.to_thread(_sha256_file, self.root / rel) == sha:
                part.unlink(missing_ok=True)
                self.report.verified += 1
                return rel, sha
            else:
                self._keep(rel, image_id)
        if primary is None:
            part.unlink(missing_ok=True)
            return None
        with writing(self.root / primary):
            (self.root / primary).parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, self.root / primary)
        self.report.downloaded += 1
        self.report.bytes_downloaded += size
        self.progress("downloaded", 1)
        return primary, sha

    def _extra_ok(self, target: str, primary: str, sha: str) -> bool:
        path = self.root / target
        if not path.exists():
            return False
        try:
            if os.path.samefile(path, self.root / primary):
                return True
        except OSError:
            return False
        return _sha256_file(path) == sha

    def _place_extra(self, target: str, primary: str) -> None:
        path = self.root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.parts / f"{path.name}.{os.getpid()}.extra"
        tmp.unlink(missing_ok=True)
        if self.mirror.pull.multi_tag is MultiTag.LINK:
            try:
                os.link(self.root / primary, tmp)
            except OSError:  # no hard links here (another filesystem, FAT...): a copy will do
                shutil.copyfile(self.root / primary, tmp)
        else:
            shutil.copyfile(self.root / primary, tmp)
        os.replace(tmp, path)


async def pull_project(
    client: TrainingClient,
    mirror: MirrorConfig,
    ledger: Ledger,
    into: Path,
    *,
    endpoint: str = "",
    progress: Progress | None = None,
) -> PullReport:
    """Write mirror's project out under `into`; raise PullError if `into` is another project's,
    ApiError for what stops the listing (per-image failures are in the report)."""
    calls_before = client.api_calls
    with writing(into, "create the folder"):
        into.mkdir(parents=True, exist_ok=True)
    if read_marker(into, mirror.project_id) is MarkerState.FOREIGN:
        raise PullError(f"{into} is marked as another project's tree (.syncd-root); pull elsewhere")
    report = PullReport(str(into), mirror.project_id, endpoint)
    project = await client.get_project(mirror.project_id)
    if project.classification_type is None:
        raise PullError(f"project {mirror.project_id} is not a classification project")
    tags = await client.list_tags(mirror.project_id)
    images = [image async for image in client.iter_images(mirror.project_id)]
    report.images = len(images)

    run_id = ledger.begin_run()
    puller = _Puller(client, ledger, into, mirror, report, progress)
    puller.run_id = run_id
    try:
        ledger.record_remote_snapshot(
            _snapshot(mirror.project_id, project.classification_type, tags, images, puller.known),
            run_id,
        )
        with writing(into / MARKER_NAME, "write the root marker"):
            write_marker(into, mirror.project_id)
        shutil.rmtree(puller.parts, ignore_errors=True)  # parts of a killed pull: not vouched for
        with writing(puller.parts, "create the folder"):
            puller.parts.mkdir()
        by_id = {str(t.id).lower(): t for t in tags}
        mapper = TagMapper(mirror.tags)
        work: list[tuple[Image, tuple[str, ...]]] = []
        for image in images:
            image_tags = [
                remote_tag(by_id[str(t).lower()]) for t in image.tag_ids if str(t).lower() in by_id
            ]
            where = placement(image_tags, mirror, mapper)
            if isinstance(where, str):
                report.skipped.append((str(image.id).lower(), where))
                continue
            puller.placements[str(image.id).lower()] = where
            work.append((image, where))
        queue: Iterator[tuple[Image, tuple[str, ...]]] = iter(work)

        async def worker() -> None:
            for image, folders in queue:  # one shared iterator: each image goes to one worker
                await puller.one(image, folders)

        workers = max(1, min(len(work), 2 * client.settings.max_concurrency))
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:  # one worker failed (a full disk...): stop the others before cleaning up
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        shutil.rmtree(puller.parts, ignore_errors=True)
    except LocalIOError as exc:
        shutil.rmtree(puller.parts, ignore_errors=True)
        ledger.finish_run(run_id, RunOutcome.FAILED, error=str(exc))
        raise
    except BaseException:
        shutil.rmtree(puller.parts, ignore_errors=True)  # not vouched for: no `.part` is left
        ledger.finish_run(run_id, RunOutcome.INTERRUPTED, error="pull interrupted")
        raise
    report.api_calls = client.api_calls - calls_before
    counts = {
        "pull_images": report.images,
        "pull_downloaded": report.downloaded,
        "pull_verified": report.verified,
        "api_calls": report.api_calls,
    }
    outcome = RunOutcome.OK if report.complete else RunOutcome.PARTIAL
    ledger.finish_run(run_id, outcome, counts)
    _log.info("pulled", **counts)
    return report


def _snapshot(
    project_id: str,
    classification: str,
    tags: list[Tag],
    images: list[Image],
    known: dict[str, str],
) -> RemoteSnapshot:
    return RemoteSnapshot(
        project_id=project_id.lower(),
        classification=ClassificationType(classification),
        tags=tuple(remote_tag(t) for t in tags),
        images=tuple(
            RemoteImage(
                str(i.id).lower(),
                frozenset(str(t).lower() for t in i.tag_ids),
                dict(i.metadata),
                known.get(str(i.id).lower()),
            )
            for i in images
        ),
        complete=True,
    )
