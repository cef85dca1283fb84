"""Read what the project holds: cheaply from counts when the ledger agrees, else a full listing.

Public names: read_counts, COUNT_READS, read_remote, remote_tag, remote_region, ProjectCounts,
RemoteRead, ProjectKindError.

The cheap path costs three calls (GetProject, GetTags, GetImageCount): when the project's image
count and every tag's image count equal the ledger's account, and the ledger knows the content of
every image it holds, the ledger's copy of the project stands in for a listing
(`RemoteSnapshot.complete` False). Anything else, `--full`, or an upload left unanswered by a
crash, takes the full path: every image is listed (256 a page), and each image whose content the
ledger does not know is identified by downloading its original and hashing it. Each hash is
written to the ledger as it is found, so an interrupted rebuild resumes where it stopped.

A detection mirror (`annotations.format` other than none) needs an object detection project and a
classification mirror a classification one; the other pairing is refused (ProjectKindError)
naming the key and the project's domain type (its settings' domainId, looked up once per domain
and kept in the ledger). Its images' regions come with the listing; the ledger stands in for them
only once a full listing recorded them and no region call is left unanswered
(Ledger.regions_unknown).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from syncd.api import (
    ApiError,
    DomainType,
    Image,
    ImageRegion,
    Project,
    Tag,
    TrainingClient,
    limits,
)
from syncd.core.model import (
    SYNCD_METADATA_KEY,
    ClassificationType,
    LocalSnapshot,
    RemoteImage,
    RemoteRegion,
    RemoteSnapshot,
    RemoteTag,
    TagType,
)
from syncd.core.policy import AnnotationFormat
from syncd.errors import ProjectKindError
from syncd.ledger import Ledger, RemoteSummary

_log = structlog.get_logger(component="remote")


@dataclass(frozen=True)
class RemoteRead:
    """A snapshot of the project and how it was obtained."""

    snapshot: RemoteSnapshot
    project: Project
    listing: str  # "counts" (cheap path) or "full"
    downloads_hashed: int = 0
    download_failures: tuple[tuple[str, str], ...] = ()  # (image id, message)
    image_count: int | None = None  # images in the project (the snapshot may not list them)

    @property
    def images(self) -> int:
        return len(self.snapshot.images) if self.image_count is None else self.image_count


async def _domain_type(client: TrainingClient, project: Project, ledger: Ledger) -> str:
    """The project's domain type (Classification, ObjectDetection), asked once per domain."""
    if project.domain_id is None:
        return "unknown (the project's settings name no domain)"
    known = ledger.domain_type(str(project.domain_id))
    if known is None:
        known = (await client.get_domain(project.domain_id)).type
        if not ledger.read_only:
            ledger.record_domain_type(str(project.domain_id), known)
    return known


async def _project_kind(
    client: TrainingClient, project: Project, ledger: Ledger, annotations: AnnotationFormat
) -> ClassificationType:
    """The classification type the planner works with; raise ProjectKindError when the project's
    kind does not suit the mirror's (`annotations.format`)."""
    kind = project.classification_type
    named = f"project {project.id} ({project.name!r})"
    if annotations is AnnotationFormat.NONE:
        if kind is not None:
            return ClassificationType(kind)
        domain = await _domain_type(client, project, ledger)
        raise ProjectKindError(
            f"{named} is not a classification project (its domain type is {domain}); this "
            "mirror's annotations.format is none, which mirrors folders as tags into a "
            "classification project. For an object detection project, set annotations.format "
            "(yolo, voc or coco) to mirror boxes from annotation files"
        )
    domain = (
        DomainType.CLASSIFICATION.value
        if kind is not None
        else await _domain_type(client, project, ledger)
    )
    if domain != DomainType.OBJECT_DETECTION:
        raise ProjectKindError(
            f"{named} is not an object detection project (its domain type is {domain}); this "
            f"mirror's annotations.format is {annotations.value}, which mirrors boxes into an "
            "object detection project. Give this mirror a detection project's id, or set "
            "annotations.format: none to mirror folders as tags into this one"
        )
    # A detection image may carry many tags (one per class of its boxes): multilabel, as far
    # as the planner's tag rules go.
    return ClassificationType.MULTILABEL


def remote_tag(tag: Tag) -> RemoteTag:
    """The planner's record of a tag the client returned (ids lower-cased, as the ledger keeps).

    The client's TagType becomes core's (the same spec enum, by value): core imports no client."""
    return RemoteTag(str(tag.id).lower(), tag.name, TagType(tag.type))


def _remote_image(image: Image, sha256: str | None) -> RemoteImage:
    return RemoteImage(
        str(image.id).lower(),
        frozenset(str(t).lower() for t in image.tag_ids),
        dict(image.metadata),
        sha256,
        tuple(remote_region(r) for r in image.regions),
    )


def remote_region(region: ImageRegion) -> RemoteRegion:
    """The planner's record of a region the client returned (ids lower-cased)."""
    box = region.box
    return RemoteRegion(
        str(region.region_id).lower(),
        str(region.tag_id).lower(),
        box.left,
        box.top,
        box.width,
        box.height,
    )


def _counts_agree(summary: RemoteSummary, tags: list[Tag], total: int) -> bool:
    """True when the service's counts match the ledger's account of the project exactly."""
    if {remote_tag(t) for t in tags} != summary.tags or total != summary.images:
        return False
    per_tag = summary.images_per_tag
    return all(per_tag.get(str(t.id).lower(), 0) == t.image_count for t in tags)


@dataclass(frozen=True)
class ProjectCounts:
    """The cheap path's three answers, and whether they match the ledger's account exactly."""

    project: Project
    classification: ClassificationType
    tags: list[Tag]
    summary: RemoteSummary | None
    image_count: int | None  # None: the ledger could not be trusted, so the count was not asked
    agree: bool
    asked: bool = True  # False: not read from the service but trusted (trusted_counts)
    # The listing's first page, asked with the counts when a listing was certain (the ledger
    # could not be trusted): read_remote goes on from it. None: not asked.
    first_page: list[Image] | None = None

    @property
    def listing(self) -> str:
        """How the run read the project: "counts" (asked), or "ledger" (trusted_counts)."""
        return "counts" if self.asked else "ledger"

    def tags_only(self) -> RemoteRead:
        """The read of a run whose plan is known to be empty: tags, no images (they agree)."""
        assert self.agree and self.summary is not None
        snapshot = RemoteSnapshot(
            str(self.project.id).lower(),
            self.classification,
            tuple(self.summary.tags),
            complete=False,
        )
        return RemoteRead(snapshot, self.project, self.listing, image_count=self.image_count)


# read_counts' calls: the project, its tags, the listing's first page (or the count).
COUNT_READS = 3


async def read_counts(
    client: TrainingClient,
    project_id: str,
    ledger: Ledger,
    *,
    full: bool = False,
    summary: RemoteSummary | None = None,
    annotations: AnnotationFormat = AnnotationFormat.NONE,
) -> ProjectCounts:
    """GetProject, GetTags and (when the ledger can be trusted) GetImageCount, else the listing's
    first page (the listing will be needed): three calls, sent at once (each waits ~a round
    trip; one after the other they were three).

    `summary`: the ledger's, if the caller has it (Ledger.settled); else it is counted.
    `annotations`: the mirror's format (none: a classification mirror)."""
    summary = summary or ledger.remote_summary()
    # Whether the count is worth asking is known before any answer, but for the classification,
    # checked once the project is in (a project whose kind changed wastes the one count call).
    trusted = (
        not full
        and summary is not None
        and summary.all_hashed
        and not ledger.pending_uploads()
        and not (annotations is not AnnotationFormat.NONE and ledger.regions_unknown())
    )
    calls: list[Awaitable[Any]] = [client.get_project(project_id), client.list_tags(project_id)]
    calls.append(client.count_images(project_id) if trusted else _first_page(client, project_id))
    answers: list[Any] = list(await asyncio.gather(*calls, return_exceptions=True))
    for answer in answers:  # the project's error first, as when it was asked first
        if isinstance(answer, BaseException):
            raise answer
    project: Project = answers[0]
    tags: list[Tag] = answers[1]
    classification = await _project_kind(client, project, ledger, annotations)
    if not trusted:
        first: list[Image] = answers[2]
        return ProjectCounts(project, classification, tags, summary, None, False, first_page=first)
    if summary is None or summary.classification is not classification:
        return ProjectCounts(project, classification, tags, summary, None, agree=False)
    total: int = answers[2]
    agree = _counts_agree(summary, tags, total)
    if not agree:
        _log.info("counts_differ", project_images=total, ledger_images=summary.images)
    return ProjectCounts(project, classification, tags, summary, total, agree)


async def _first_page(client: TrainingClient, project_id: str) -> list[Image]:
    """The listing's first page (one call: a full page is not followed by the next)."""
    page: list[Image] = []
    async for image in client.iter_images(project_id):
        page.append(image)
        if len(page) == limits.MAX_TAKE:
            break
    return page


async def _listing(
    client: TrainingClient, project_id: str, first_page: list[Image] | None
) -> AsyncIterator[Image]:
    """Every image of the project, going on from the first page if it was read already."""
    if first_page is None:
        async for image in client.iter_images(project_id):
            yield image
        return
    for image in first_page:
        yield image
    if len(first_page) == limits.MAX_TAKE:
        async for image in client.iter_images(project_id, skip=len(first_page)):
            yield image


def trusted_counts(
    project: Project,
    ledger: Ledger,
    summary: RemoteSummary | None = None,
    annotations: AnnotationFormat = AnnotationFormat.NONE,
) -> ProjectCounts | None:
    """The counts as the ledger has them, asking nothing: for a caller that read them from the
    service a moment ago (`project` is that read's, its kind checked then) and had no failed item
    since, so the ledger holds everything syncd changed. None where read_counts would not trust
    the ledger either."""
    detection = annotations is not AnnotationFormat.NONE
    if detection:  # as _project_kind has it for a detection mirror
        classification = ClassificationType.MULTILABEL
    elif project.classification_type is not None:
        classification = ClassificationType(project.classification_type)
    else:
        return None
    summary = summary or ledger.remote_summary()
    if (
        summary is None
        or (detection and ledger.regions_unknown())
        or summary.classification is not classification
        or ledger.pending_uploads()
        or not summary.all_hashed
    ):
        return None
    return ProjectCounts(
        project, classification, [], summary, summary.images, agree=True, asked=False
    )


async def read_remote(
    client: TrainingClient,
    project_id: str,
    ledger: Ledger,
    local: LocalSnapshot,
    *,
    full: bool = False,
    run_id: int | None = None,
    on_hashed: Callable[[int], None] | None = None,
    counts: ProjectCounts | None = None,
) -> RemoteRead:
    """Return the project's state; record what a full listing learns (unless run_id is None,
    which means a dry run: nothing is written).

    `counts`, if the caller already read them (read_counts), are not asked again.
    """
    if counts is None:
        counts = await read_counts(client, project_id, ledger, full=full)
    project, classification, tags = counts.project, counts.classification, counts.tags
    if counts.agree:
        cached = ledger.cached_remote()
        if cached is not None:  # always, once a summary exists
            return RemoteRead(cached, project, counts.listing, image_count=counts.image_count)

    known = ledger.view().images
    listed: list[RemoteImage] = []
    uris: dict[str, str] = {}
    async for image in _listing(client, project_id, counts.first_page):
        ledger_image = known.get(str(image.id).lower())
        remote = _remote_image(image, ledger_image.sha256 if ledger_image else None)
        listed.append(remote)
        if remote.sha256 is None and image.original_uri:
            uris[remote.image_id] = image.original_uri
    snapshot = RemoteSnapshot(
        project_id=project_id.lower(),
        classification=classification,
        tags=tuple(remote_tag(t) for t in tags),
        images=tuple(listed),
        complete=True,
    )
    if run_id is not None:
        ledger.record_remote_snapshot(snapshot, run_id)
        ledger.mark_regions_listed()

    wanted = _worth_hashing(snapshot, local, ledger.ledger_id)
    hashes, failures = await _hash_originals(
        client,
        {i: u for i, u in uris.items() if i in wanted},
        record=None if run_id is None else _recorder(ledger, snapshot, run_id),
        on_hashed=on_hashed,
    )
    if run_id is not None and not failures:
        # Every image marked as this mirror's is now listed and hashed, so whatever a lost answer
        # uploaded is found (or never landed): kept, the rows would force a listing every run.
        ledger.forget_pending_uploads(before_run=run_id)
    if hashes:
        images = tuple(
            dataclasses.replace(i, sha256=hashes.get(i.image_id, i.sha256)) for i in snapshot.images
        )
        snapshot = RemoteSnapshot(
            snapshot.project_id, snapshot.classification, snapshot.tags, images, complete=True
        )
    return RemoteRead(snapshot, project, "full", len(hashes), tuple(failures))


def _worth_hashing(snapshot: RemoteSnapshot, local: LocalSnapshot, ledger_id: str) -> set[str]:
    """Ids of unidentified images worth a download.

    An image marked with this ledger's id always is (it may be an upload a crash left
    unrecorded).
    Other images only while some local content is matched by no known image: once everything
    local is accounted for, a foreign image's content changes nothing syncd would do unless it
    deletes foreign images, and then the planner needs it only to adopt, which needs a match.
    """
    held = {i.sha256 for i in snapshot.images if i.sha256}
    unmatched_local = any(f.sha256 not in held for f in local.good_files)
    return {
        i.image_id
        for i in snapshot.images
        if i.sha256 is None
        and (
            unmatched_local or (bool(ledger_id) and i.metadata.get(SYNCD_METADATA_KEY) == ledger_id)
        )
    }


def _recorder(ledger: Ledger, snapshot: RemoteSnapshot, run_id: int) -> Callable[[str, str], None]:
    by_id = {i.image_id: i for i in snapshot.images}

    def record(image_id: str, sha256: str) -> None:
        image = by_id[image_id]
        one = RemoteSnapshot(
            snapshot.project_id,
            snapshot.classification,
            images=(dataclasses.replace(image, sha256=sha256),),
            complete=False,
        )
        ledger.record_remote_snapshot(one, run_id)

    return record


async def _hash_originals(
    client: TrainingClient,
    uris: dict[str, str],
    *,
    record: Callable[[str, str], None] | None,
    on_hashed: Callable[[int], None] | None,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Download and sha256 each original (streamed; the client bounds concurrency)."""
    hashes: dict[str, str] = {}
    failures: list[tuple[str, str]] = []

    async def one(image_id: str, uri: str) -> None:
        digest = hashlib.sha256()
        try:
            async for chunk in client.download(uri, image_id=image_id):
                digest.update(chunk)
        except ApiError as exc:
            failures.append((image_id, str(exc)))
            _log.warning("download_failed", image_id=image_id, error=str(exc))
            return
        hashes[image_id] = digest.hexdigest()
        if record is not None:
            record(image_id, hashes[image_id])
        if on_hashed is not None:
            on_hashed(1)

    async def worker(queue: Iterator[tuple[str, str]]) -> None:
        for image_id, uri in queue:  # one shared iterator: each item goes to one worker
            await one(image_id, uri)

    if uris:
        _log.info("hashing_originals", images=len(uris))
        queue = iter(uris.items())
        workers = min(len(uris), 2 * client.settings.max_concurrency)
        await asyncio.gather(*(worker(queue) for _ in range(workers)))
    return hashes, failures
