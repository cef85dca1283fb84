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

from syncd.annotations import image_frame
from syncd.api import ApiError, Image, Tag, TagType, TrainingClient
from syncd.config import MirrorConfig
from syncd.core.imageformat import image_suffix
from syncd.core.mapping import TagMapper, folder_name_problem, placement
from syncd.core.model import ClassificationType, MarkerState, RemoteImage, RemoteSnapshot
from syncd.core.policy import AnnotationFormat, MultiTag
from syncd.core.regions import (
    Box,
    ImageSize,
    Region,
    displayed_size,
    make_box,
    to_displayed_orientation,
)
from syncd.errors import PullError
from syncd.export import (
    ExportFormat,
    ExportImage,
    ExportResult,
    ProjectKind,
    layout_folder,
    write_export,
)
from syncd.exportcheck import MissingReader, VerifyResult, check_export
from syncd.ledger import Ledger, RunOutcome
from syncd.localio import LocalIOError, writing
from syncd.remote import remote_region, remote_tag
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
    # Prepared images (files.prepare) whose local original, the file they were prepared from,
    # is in place under the root: it stands for the image, nothing is downloaded or written.
    originals: int = 0
    bytes_downloaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image id, error)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (path, image id): edited here
    api_calls: int = 0
    format: str = ExportFormat.FOLDERS.value
    kind: str = ""  # a ProjectKind value
    export: ExportResult = field(default_factory=ExportResult)
    verify: VerifyResult | None = None
    not_verified: str = ""  # why the export could not be read back (a reader is missing...)
    # What the format cannot hold, said whatever the counts: (what, how many images have it).
    cannot_hold: list[tuple[str, int]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # the project, since the pull listed it

    @property
    def verified_ok(self) -> bool:
        return not self.not_verified and (self.verify is None or self.verify.ok)

    @property
    def complete(self) -> bool:
        """Every image is in the tree as the project has it, read back as written."""
        return not (self.skipped or self.failed or self.kept or self.changed) and self.verified_ok

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
            "originals": self.originals,
            "bytes_downloaded": self.bytes_downloaded,
            "skipped": [{"image_id": i, "reason": r} for i, r in self.skipped],
            "failed": [{"image_id": i, "message": m} for i, m in self.failed],
            "kept": [{"path": p, "image_id": i} for p, i in self.kept],
            "api_calls": self.api_calls,
            "format": self.format,
            "kind": self.kind,
            "annotation_files": len(self.export.files),
            "left_out": dict(self.export.left_out),
            "split": dict(self.export.split),
            "cannot_hold": [{"what": w, "images": n} for w, n in self.cannot_hold],
            "verify": None
            if self.verify is None
            else {
                "reader": self.verify.reader,
                "images": self.verify.images,
                "expected": self.verify.expected,
                "boxes": self.verify.boxes,
                "differences": list(self.verify.differences),
                "more_differences": self.verify.more_differences,
            },
            "not_verified": self.not_verified,
            "changed": list(self.changed),
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
        # files.prepare: key -> (the local file's sha256, the prepared bytes' sha256). The
        # project holds the prepared bytes; the ledger keeps naming the image by its key.
        self.prepared = ledger.prepared()
        self.originals: dict[str, tuple[str, ...]] = {}
        if root.resolve() == Path(mirror.root).resolve():
            self.originals = ledger.local_paths_by_image()
        self.run_id = 0
        self.placements: dict[str, tuple[str, ...]] = {}
        self.written: dict[str, str] = {}  # image id -> its file in place (relative)

    async def one(self, image: Image, folders: tuple[str, ...]) -> None:
        image_id = str(image.id).lower()
        if await asyncio.to_thread(self._original_in_place, image_id):
            self.report.originals += 1
            self.progress("verified", 1)
            return
        have = await self._verified(image_id, folders)
        if have is None:
            if self.known.get(image_id) and self._edited_everywhere(image_id, folders):
                return  # nowhere left to write it: no need to download it
            have = await self._download(image)
            if have is None:
                return
        primary, sha = have
        self.written[image_id] = primary
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

    def _original_in_place(self, image_id: str) -> bool:
        """True if the image is content syncd prepared from a file still in place under the
        root (its bytes hash as they did): pulling it would add a second, converted copy."""
        prepared = self.prepared.get(self.known.get(image_id) or "")
        if prepared is None:
            return False
        source = prepared[0]
        return any(
            _sha256_file(self.root / rel) == source for rel in self.originals.get(image_id, ())
        )

    def _sent_sha(self, image_id: str) -> str | None:
        """The sha256 of the image's bytes in the project: its prepared bytes' if prepared."""
        key = self.known.get(image_id)
        prepared = self.prepared.get(key or "")
        return prepared[1] if prepared is not None else key

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
        sha = self._sent_sha(image_id)
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
        if sha != self._sent_sha(image_id):  # prepared content keeps its key in the ledger
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


@dataclass(frozen=True)
class ExportOptions:
    """`syncd pull --format` and its options (None: the format the mirror's config implies)."""

    format: ExportFormat | None = None
    image_url_prefix: str = ""
    validation: float = 0.0  # AutoML: the fraction of images in the validation part
    seed: int = 0


def _kind(project_classification: str | None, detection: bool) -> ProjectKind:
    if detection:
        return ProjectKind.DETECTION
    if project_classification == ClassificationType.MULTICLASS.value:
        return ProjectKind.MULTICLASS
    return ProjectKind.MULTILABEL


def _format(mirror: MirrorConfig, options: ExportOptions, kind: ProjectKind) -> ExportFormat:
    """The format to write, or PullError when the config and the project disagree."""
    configured = mirror.annotations.format.value
    if options.format is None:
        if kind is ProjectKind.DETECTION and not mirror.annotations.detection:
            raise PullError(
                f"project {mirror.project_id} is an object detection project, but mirror"
                f" {mirror.name} is a classification mirror (annotations.format: {configured}):"
                " set annotations.format to yolo, voc or coco, or pull with --format"
                " coco|yolo|voc|automl"
            )
        if kind is not ProjectKind.DETECTION and mirror.annotations.detection:
            raise PullError(
                f"project {mirror.project_id} is a classification project, but mirror"
                f" {mirror.name} is a detection mirror (annotations.format: {configured}):"
                " set annotations.format to none, or pull with --format"
            )
        return ExportFormat(configured) if mirror.annotations.detection else ExportFormat.FOLDERS
    if options.format is ExportFormat.FOLDERS and kind is ProjectKind.DETECTION:
        raise PullError(
            f"project {mirror.project_id} is an object detection project: --format folders"
            " cannot hold boxes; use coco, yolo, voc or automl"
        )
    return options.format


async def pull_project(
    client: TrainingClient,
    mirror: MirrorConfig,
    ledger: Ledger,
    into: Path,
    *,
    endpoint: str = "",
    progress: Progress | None = None,
    options: ExportOptions | None = None,
) -> PullReport:
    """Write mirror's project out under `into` (in the format of `options`); raise PullError if
    `into` is another project's or the format does not fit the project, ApiError for what stops
    the listing (per-image failures are in the report)."""
    options = options or ExportOptions()
    calls_before = client.api_calls
    project = await client.get_project(mirror.project_id)
    domain = await client.get_domain(project.domain_id) if project.domain_id else None
    detection = domain.detection if domain is not None else project.classification_type is None
    kind = _kind(project.classification_type, detection)
    fmt = _format(mirror, options, kind)
    with writing(into, "create the folder"):
        into.mkdir(parents=True, exist_ok=True)
    if read_marker(into, mirror.project_id) is MarkerState.FOREIGN:
        raise PullError(f"{into} is marked as another project's tree (.syncd-root); pull elsewhere")
    report = PullReport(str(into), mirror.project_id, endpoint, format=fmt.value, kind=kind.value)
    tags, images = await asyncio.gather(  # one round trip's wait for both
        client.list_tags(mirror.project_id), _list_images(client, mirror.project_id)
    )
    report.images = len(images)

    run_id = ledger.begin_run()
    puller = _Puller(client, ledger, into, mirror, report, progress)
    puller.run_id = run_id
    try:
        ledger.record_remote_snapshot(
            _snapshot(
                mirror.project_id,
                project.classification_type or ClassificationType.MULTILABEL.value,
                tags,
                images,
                puller.known,
            ),
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
            if fmt is ExportFormat.FOLDERS:
                image_tags = [
                    remote_tag(by_id[str(t).lower()])
                    for t in image.tag_ids
                    if str(t).lower() in by_id
                ]
                where = placement(image_tags, mirror, mapper)
                if isinstance(where, str):
                    report.skipped.append((str(image.id).lower(), where))
                    continue
            else:
                named = _unnameable_tag(fmt, kind, image, by_id)
                if named is not None:
                    report.skipped.append((str(image.id).lower(), named))
                    continue
                where = layout_folder(fmt, kind, _regular_tags(image, by_id))
                if not where:
                    continue  # the format leaves it out: counted by the export
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
        await asyncio.to_thread(
            _export_and_verify, into, fmt, kind, images, tags, puller, report, options
        )
        report.changed = await _changes(client, mirror.project_id, images, tags)
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
    _log.info("pulled", format=fmt.value, **counts)
    return report


# --- the export, read back, and what changed -----------------------------------------------------


def _unnameable_tag(
    fmt: ExportFormat, kind: ProjectKind, image: Image, by_id: dict[str, Tag]
) -> str | None:
    """Why the image cannot be written in a layout that names folders (YOLO classification) or
    files (VOC classification lists) after its tags, or None. Tag names come from the service:
    one with a `/` or a leading `.` must never become a path."""
    if kind is ProjectKind.DETECTION or fmt not in (ExportFormat.YOLO, ExportFormat.VOC):
        return None
    for tag_id in image.tag_ids:
        tag = by_id.get(str(tag_id).lower())
        if tag is None:
            continue
        problem = folder_name_problem(tag.name)
        if problem is not None:
            return f"tag {tag.name!r} {problem}: {fmt.value} names a folder or file after it"
    return None


def _regular_tags(image: Image, by_id: dict[str, Tag]) -> list[str]:
    tags = (by_id.get(str(t).lower()) for t in image.tag_ids)
    return sorted(t.name for t in tags if t is not None and t.type is TagType.REGULAR)


def _is_negative(image: Image, by_id: dict[str, Tag]) -> bool:
    tags = (by_id.get(str(t).lower()) for t in image.tag_ids)
    return any(t is not None and t.type is TagType.NEGATIVE for t in tags)


def _displayed_regions(image: Image, by_id: dict[str, Tag], orientation: int) -> tuple[Region, ...]:
    """The image's boxes (stored frame, as the service keeps them) on the image as displayed."""
    regions = []
    for region in image.regions:
        tag = by_id.get(str(region.tag_id).lower())
        name = tag.name if tag is not None else region.tag_name
        b = region.box
        box = make_box(b.left, b.top, b.width, b.height)
        if isinstance(box, Box):
            regions.append(Region(name, to_displayed_orientation(box, orientation)))
    return tuple(regions)


def _export_images(
    root: Path, images: list[Image], by_id: dict[str, Tag], written: dict[str, str]
) -> list[ExportImage]:
    out = []
    for image in images:
        image_id = str(image.id).lower()
        path = written.get(image_id)
        if path is None:
            path, size, orientation = "", ImageSize(image.width, image.height), 1
        else:
            frame = image_frame(root / path)
            stored, orientation = (
                frame if not isinstance(frame, str) else (ImageSize(image.width, image.height), 1)
            )
            size = displayed_size(stored, orientation)
        out.append(
            ExportImage(
                image_id=image_id,
                path=path,
                size=size,
                tags=tuple(_regular_tags(image, by_id)),
                negative=_is_negative(image, by_id),
                regions=_displayed_regions(image, by_id, orientation),
            )
        )
    return out


def _export_and_verify(
    root: Path,
    fmt: ExportFormat,
    kind: ProjectKind,
    images: list[Image],
    tags: list[Tag],
    puller: _Puller,
    report: PullReport,
    options: ExportOptions,
) -> None:
    by_id = {str(t.id).lower(): t for t in tags}
    negative = next((t.name for t in tags if t.type is TagType.NEGATIVE), None)
    # Pulled into the mirror's own root in its own format: the COCO file is the one the mirror
    # reads (annotations.coco_file), so a reconcile right after finds every box in place.
    coco_file = None
    annotations = puller.mirror.annotations
    if (
        fmt is ExportFormat.COCO
        and annotations.format is AnnotationFormat.COCO
        and annotations.coco_file is not None
        and root == Path(puller.mirror.root).expanduser().resolve()
    ):
        coco_file = Path(annotations.coco_file)
    every = _export_images(root, images, by_id, puller.written)
    # Images not written (failed, skipped, kept) are reported as such, not as export errors.
    skipped = {image_id for image_id, _ in report.skipped}
    left_out = fmt is ExportFormat.YOLO and kind is not ProjectKind.DETECTION  # no class folder
    placed = [i for i in every if i.path or (left_out and not i.tags and i.image_id not in skipped)]
    exported = [i for i in placed if i.path]
    report.cannot_hold = _cannot_hold(fmt, kind, images, tags)
    if fmt is not ExportFormat.FOLDERS:
        report.export = write_export(
            root,
            fmt,
            kind,
            placed,
            [t.name for t in tags if t.type is TagType.REGULAR],
            negative,
            image_url_prefix=options.image_url_prefix,
            validation=options.validation,
            seed=options.seed,
            coco_file=coco_file,
        )
    try:
        folders = (
            {i: puller.placements[i] for i in puller.written}
            if fmt is ExportFormat.FOLDERS
            else None
        )
        report.verify = check_export(root, fmt, kind, exported, negative, folders, coco_file)
    except MissingReader as exc:
        report.not_verified = (
            f"{exc} is not installed, so the export was not read back (pip install 'syncd[export]')"
        )
    except (OSError, ValueError, KeyError) as exc:  # a file the reader refuses: not verified
        report.not_verified = f"reading the export back failed: {exc}"


def _cannot_hold(
    fmt: ExportFormat, kind: ProjectKind, images: list[Image], tags: list[Tag]
) -> list[tuple[str, int]]:
    """What the format does not keep, with how many images (tags, for descriptions) have it."""
    found = [
        ("image metadata", sum(1 for i in images if i.metadata)),
        ("tag descriptions", sum(1 for t in tags if t.description)),
    ]
    if fmt is ExportFormat.FOLDERS:
        return found
    if kind is ProjectKind.DETECTION:
        negative = {str(t.id).lower() for t in tags if t.type is TagType.NEGATIVE}
        found.append(
            (
                "the Negative tag (written as an image with no boxes)",
                sum(1 for i in images if {str(t).lower() for t in i.tag_ids} & negative),
            )
        )
    return found


async def _list_images(client: TrainingClient, project_id: str) -> list[Image]:
    return [image async for image in client.iter_images(project_id)]


async def _changes(
    client: TrainingClient, project_id: str, before: list[Image], tags_before: list[Tag]
) -> list[str]:
    """What differs between the project now and the listing the pull wrote from."""
    listed, tags_listed = await asyncio.gather(
        _list_images(client, project_id), client.list_tags(project_id)
    )
    now = {str(i.id).lower(): i for i in listed}
    then = {str(i.id).lower(): i for i in before}
    changes = []
    added = now.keys() - then.keys()
    removed = then.keys() - now.keys()
    retagged = [i for i in now.keys() & then.keys() if now[i].tag_ids != then[i].tag_ids]
    reboxed = [
        i
        for i in now.keys() & then.keys()
        if {(r.tag_id, r.box) for r in now[i].regions}
        != {(r.tag_id, r.box) for r in then[i].regions}
    ]
    for count, what in (
        (len(added), "added"),
        (len(removed), "deleted"),
        (len(retagged), "retagged"),
        (len(reboxed), "with boxes changed"),
    ):
        if count:
            changes.append(f"{count} image{'' if count == 1 else 's'} {what}")
    tags_now = {str(t.id).lower(): t.name for t in tags_listed}
    tags_then = {str(t.id).lower(): t.name for t in tags_before}
    if tags_now != tags_then:
        changes.append("tags created, renamed or deleted")
    return changes


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
                tuple(remote_region(r) for r in i.regions),
            )
            for i in images
        ),
        complete=True,
    )
