"""Apply a Plan through the client, writing every per-item result to the ledger as it arrives.

Public names: execute, Execution, Failure, Rejection.

Order is the plan's: create tags, adopt, upload, edit regions, remove tags, add tags, then
deletes, which are skipped if anything before them failed (a half-applied plan must not cost the
user images). With a trash, each original is kept on disk just before its delete, and not
deleted if it cannot be.
Crash safety comes from the ledger and the service together: an upload is marked pending before
it is sent and settled by its answer; a crash in between leaves the pending row, which sends the
next run down the full listing, where the image (marked with the ledger's id) is found and
hashed. Replays are harmless (OKDuplicate, idempotent tag and delete calls), so rerunning a plan
that was partly applied converges without duplicates.

Uploads are read from disk just before they are sent, a window (up to max_concurrency batches)
at a time with two windows in flight, so memory holds a few batches, never the whole plan. Each
file is read only if its size is still the scanned size, at most one byte past it, and hashed
again: bytes that no longer match the plan are not sent (the next run sees the new content), and a
file that grew is never read whole.

Object detection: an upload carries its boxes in the create call (the files format), and no image
tags (its boxes' tags are its tags). Region edits delete first, then create (an image at its 300
regions has room for new boxes only after), each in batches of 64; before the first region call
the ledger is marked (regions pending) and the mark is cleared once every call is answered, so a
crash in between sends the next run down the full listing, where the project's regions are seen as
they are. A region the service reports `duplicated` (a replay, or a lost answer's) is looked up,
so its id is known.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any
from uuid import UUID

import structlog

from syncd.api import (
    ApiError,
    BoundingBox,
    ClientSettings,
    NewRegion,
    RegionEntry,
    TagNameNotUniqueError,
    TagNotFoundError,
    TrainingClient,
    UploadItem,
    UploadResult,
    UploadStatus,
)
from syncd.api import Tag as ApiTag
from syncd.api import TagPair as ApiTagPair
from syncd.api import TagType as ApiTagType
from syncd.api.limits import MAX_IMAGES_PER_UPLOAD
from syncd.core.mapping import tag_key
from syncd.core.model import RemoteSnapshot, TagType
from syncd.core.planner import CreateTag, EditRegions, Plan, Upload
from syncd.core.regions import Region
from syncd.display import some_paths
from syncd.ledger import Ledger
from syncd.prepare import Preparing
from syncd.problems import CONTENT_ERROR_CODES, CONTENT_VERDICTS, rejection_detail
from syncd.remote import remote_region, remote_tag
from syncd.trash import Trash, keep_originals

_log = structlog.get_logger(component="executor")

Progress = Callable[[str, int], None]
# Log fields naming an image by its file (path, ...), given its id: the caller knows the tree.
Describe = Callable[[str], Mapping[str, Any]]

# Failures whose subject is an image id (the others name a path or a tag).
_IMAGE_OPERATIONS = frozenset({"remove_tags", "add_tags", "delete_image", "trash"})

# Upload windows being read or sent at once. Four, each a quarter of max_batch_bytes (and of
# 2 x max_concurrency full create calls): no more image data in memory than two whole windows
# held before, but while one window waits for its answer, its metadata call and the next read
# from disk, three others keep the line busy (camera-sized images on a 100 Mbit/s line left it
# idle a third of the time with two windows of 64 MB: bench G).
_WINDOWS_IN_FLIGHT = 4


def upload_window(settings: ClientSettings) -> tuple[int, int]:
    """The most images and image bytes one upload window holds (see _Run._upload_chunks)."""
    calls = max(1, 2 * settings.max_concurrency // _WINDOWS_IN_FLIGHT)
    return MAX_IMAGES_PER_UPLOAD * calls, settings.max_batch_bytes // _WINDOWS_IN_FLIGHT


@dataclass(frozen=True)
class Failure:
    """One item the run could not apply; `subject` is a path, an image id or a tag name."""

    operation: str
    subject: str
    message: str
    code: str | None = None


@dataclass(frozen=True)
class Rejection:
    """Bytes the service refused for what they are (a content verdict, syncd.problems): not a
    failure of the run, but a problem of every file holding them, until they change."""

    sha256: str
    paths: tuple[str, ...]
    code: str
    detail: str


@dataclass
class Execution:
    """What was done (counts per action kind) and what failed."""

    done: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)  # content verdicts this run
    skipped_deletes: int = 0  # deletes not attempted because something failed earlier
    # False when the project may still differ from the plan's aim though nothing failed: a
    # duplicate came back with other tags, or without its image. The next run plans in full.
    settled: bool = True


class _Run:
    def __init__(
        self,
        plan: Plan,
        client: TrainingClient,
        ledger: Ledger,
        root: Path,
        project_id: str,
        remote: RemoteSnapshot,
        run_id: int,
        progress: Progress,
    ) -> None:
        self.plan = plan
        self.client = client
        self.ledger = ledger
        self.root = root
        self.project_id = project_id
        self.run_id = run_id
        self.progress = progress
        self.result = Execution()
        self.tag_ids = {tag_key(t.name): t.tag_id for t in remote.tags}
        self.late_tag_pairs: list[tuple[str, str]] = []  # (image id, tag id) an upload missed
        # Contents whose upload was tried and did not land an image this run (failed, refused,
        # answered without the image): a first sync's second plan does not try them again.
        self.unlanded: set[str] = set()
        self.fatal: ApiError | None = None
        self.trash: Trash | None = None
        self.describe: Describe | None = None
        self.preparing: Preparing | None = None

    # --- bookkeeping ----------------------------------------------------------------------

    def fail(self, operation: str, subject: str, message: str, code: str | None = None) -> None:
        failure = Failure(operation, subject, message, code)
        self.result.failures.append(failure)
        self.ledger.record_error(self.run_id, operation, subject, message, code)
        where = self.describe(subject) if self.describe and operation in _IMAGE_OPERATIONS else {}
        _log.warning(
            "item_failed", operation=operation, subject=subject, **where, code=code, error=message
        )

    def reject(self, upload: Upload, code: str, message: str = "") -> None:
        """Remember the service's verdict on these bytes (the ledger, by hash) and report it."""
        detail = rejection_detail(code, message)
        self.ledger.record_rejected_content(upload.sha256, code, detail)
        self.result.rejected.append(Rejection(upload.sha256, upload.paths, code, detail))

    def done(self, kind: str, n: int = 1) -> None:
        self.result.done[kind] += n
        self.progress(kind, n)

    def api_failed(self, error: ApiError, operation: str, subjects: Iterable[str]) -> None:
        """Record an API error against every subject, or keep it to stop the run if fatal."""
        if error.fatal:
            self.fatal = self.fatal or error
            return
        for subject in subjects:
            self.fail(operation, subject, str(error), error.code)

    def resolve(self, names: Sequence[str], operation: str, subject: str) -> list[str] | None:
        """Return the tag ids for names, or None (with a failure) if one has no tag."""
        ids = [self.tag_ids.get(tag_key(n)) for n in names]
        if any(i is None for i in ids):
            missing = [n for n, i in zip(names, ids, strict=True) if i is None]
            self.fail(operation, subject, f"tag(s) {missing} could not be created")
            return None
        return [i for i in ids if i is not None]

    # --- steps ----------------------------------------------------------------------------

    async def create_tags(self) -> None:
        # Independent calls: in flight together, within the client's concurrency and rate.
        await asyncio.gather(*(self._create_tag(action) for action in self.plan.create_tags))

    async def _create_tag(self, action: CreateTag) -> None:
        if self.fatal:
            return
        created_by_syncd = True
        try:
            tag = await self.client.create_tag(
                self.project_id, action.name, ApiTagType(action.type)
            )
        except ApiError as error:
            # Made by someone else since the listing (the portal, another syncd): use it.
            taken = isinstance(error, TagNameNotUniqueError)
            found = await self._existing_tag(action.name, action.type) if taken else None
            if found is None:
                self.api_failed(error, "create_tag", [action.name])
                return
            tag, created_by_syncd = found, False
        remote = remote_tag(tag)
        self.ledger.record_tag(remote, created_by_syncd=created_by_syncd)
        self.tag_ids[tag_key(tag.name)] = remote.tag_id
        self.done("create_tags")

    async def _existing_tag(self, name: str, tag_type: TagType) -> ApiTag | None:
        try:
            tags = await self.client.list_tags(self.project_id)
        except ApiError:
            return None
        key = tag_key(name)
        return next((t for t in tags if tag_key(t.name) == key and t.type == tag_type), None)

    async def adopt(self) -> None:
        # The ledger's record is the proof of ownership. No metadata is written: the image may
        # carry another install's id, and overwriting it would take the image from that install.
        for action in self.plan.adopts:
            self.ledger.record_adopted(action.image_id, action.sha256, self.run_id)
            self.done("adopts")

    async def uploads(self) -> None:
        chunks = self._upload_chunks(self.plan.uploads)
        await self._send_windows(_async(functools.partial(self._send_uploads, c) for c in chunks))

    async def stream(self, parts: AsyncIterator[Plan]) -> None:
        """Send each part's uploads once its tags exist, as the parts come (a first sync sends
        what its scan has checked while the scan goes on: syncd.firstsync). A tag is created
        once, when the first part that needs it comes; a part waits for its tags in its own
        window, so the parts behind it (and their tags) go on."""
        creating: dict[str, asyncio.Task[None]] = {}

        def tags_for(part: Plan) -> list[asyncio.Task[None]]:
            for action in part.create_tags:
                key = tag_key(action.name)
                if key not in self.tag_ids and key not in creating:
                    creating[key] = asyncio.create_task(self._create_tag(action))
            return [creating[k] for c in part.create_tags if (k := tag_key(c.name)) in creating]

        async def send(tags: list[asyncio.Task[None]], uploads: Sequence[Upload]) -> None:
            # The bytes do not need the tags' ids: read them while the tags are created.
            reading = asyncio.ensure_future(asyncio.to_thread(self._read_all, uploads))
            try:
                await asyncio.gather(*tags)
            finally:
                bytes_read = await reading
            for chunk in self._upload_chunks(uploads):  # one window (firstsync cuts them so)
                if self.fatal:
                    return
                await self._send_uploads(chunk, bytes_read)

        async def jobs() -> AsyncIterator[Callable[[], Awaitable[None]]]:
            async for part in parts:
                tags = tags_for(part)
                yield functools.partial(send, tags, part.uploads)

        try:
            await self._send_windows(jobs())
            await asyncio.gather(*creating.values())
        finally:
            for task in creating.values():
                task.cancel()
            await asyncio.gather(*creating.values(), return_exceptions=True)

    async def _send_windows(self, jobs: AsyncIterator[Callable[[], Awaitable[None]]]) -> None:
        """Run each job (the sending of an upload window) with at most _WINDOWS_IN_FLIGHT at
        once, as they come; stop taking more once a fatal error is seen."""
        window = asyncio.Semaphore(_WINDOWS_IN_FLIGHT)
        tasks: list[asyncio.Task[None]] = []

        async def send(job: Callable[[], Awaitable[None]]) -> None:
            try:
                await job()
            finally:
                window.release()

        try:
            async for job in jobs:
                await window.acquire()
                if self.fatal:
                    window.release()
                    break
                tasks.append(asyncio.create_task(send(job)))
            await asyncio.gather(*tasks)
        except BaseException:
            # Interrupted (Ctrl-C cancels the run): no window may go on writing the ledger once
            # the run has let go of it, nor end in a "Task exception was never retrieved".
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _upload_chunks(self, planned: Sequence[Upload]) -> Iterator[list[tuple[Upload, list[str]]]]:
        """Cut the uploads into windows of up to max_concurrency full create calls.

        Sorted by tag set, so that the client, which batches each window (a multipart call
        carries one tag set), wastes a partial batch only where a window's tag sets change.
        A window holds at most max_batch_bytes / _WINDOWS_IN_FLIGHT of image data (or one image,
        if bigger), so the windows in flight hold no more than max_batch_bytes: that bounds
        memory. Every upload's tags are resolved before the first window; each window is made
        as it is taken (100k (upload, ids) pairs made at once held ~6 MB).
        """
        # The uploads of each tag set (by its sorted ids, one list shared by its uploads), in
        # plan order within a set.
        by_tag_set: dict[tuple[str, ...], tuple[list[str], list[Upload]]] = {}
        for upload in planned:
            ids = self.resolve(upload.tag_names, "upload", upload.paths[0])
            if ids is None:
                self.unlanded.add(upload.sha256)
            else:
                ids = sorted(ids)
                by_tag_set.setdefault(tuple(ids), (ids, []))[1].append(upload)
        max_items, max_bytes = upload_window(self.client.settings)
        chunk: list[tuple[Upload, list[str]]] = []
        size = 0
        for key in sorted(by_tag_set):
            ids, uploads = by_tag_set.pop(key)
            for upload in uploads:
                if chunk and (len(chunk) == max_items or size + upload.size > max_bytes):
                    yield chunk
                    chunk, size = [], 0
                chunk.append((upload, ids))
                size += upload.size
        if chunk:
            yield chunk

    def _read(self, upload: Upload) -> bytes | None:
        """Return the upload's bytes from any of its files that still holds them.

        A file is read only if its size is still the scanned size, and then at most one byte
        more than that: a file that grew (a 10 GB file in place of a 20 KB image) or changed
        is never read whole, and is sent by the next run, which scans and hashes it again."""
        reasons = []
        for rel in upload.paths:
            # The failure's subject is the first path: name the path only when there are more.
            where = f"{rel}: " if len(upload.paths) > 1 else ""
            try:
                data = _read_scanned(self.root / rel, upload.size)
            except OSError as exc:
                reasons.append(f"{where}{exc.strerror or type(exc).__name__}")
                continue
            if data is not None and hashlib.sha256(data).hexdigest() == self._file_sha(upload):
                return data
            reasons.append(f"{where}changed since it was scanned")
        why = some_paths(reasons, separator="; ")
        self.fail("upload", upload.paths[0], f"{why}; will be sent next run")
        return None

    def new_regions(self, regions: Sequence[Region]) -> tuple[NewRegion, ...]:
        """The boxes to send, their tag names resolved (every one was created before)."""
        return tuple(
            NewRegion(
                UUID(self.tag_ids[tag_key(r.tag)]),
                BoundingBox(r.box.left, r.box.top, r.box.width, r.box.height),
            )
            for r in regions
        )

    def _file_sha(self, upload: Upload) -> str:
        """The sha256 the upload's files hold: its own, unless it is prepared content."""
        return self.preparing.file_sha256(upload.sha256) if self.preparing else upload.sha256

    async def _prepared(
        self, read: list[tuple[Upload, list[str], bytes | None]]
    ) -> list[tuple[Upload, list[str], bytes | None]]:
        """The bytes to send for each upload read: prepared in the pool where files.prepare
        gave it a recipe (all of a window at once), recorded in the ledger as they are made."""
        preparing = self.preparing
        if preparing is None:
            return read

        async def one(upload: Upload, data: bytes | None) -> bytes | None:
            if data is None:
                return None
            prepared, why = await preparing.prepare(upload.sha256, data)
            if prepared is None:
                self.fail("prepare", upload.paths[0], f"{why}; it is tried again next run")
            elif prepared is not data:
                source, recipe = preparing.jobs[upload.sha256]
                self.ledger.record_prepared(upload.sha256, source, recipe, prepared)
            return prepared

        sent = await asyncio.gather(*(one(u, data) for u, _, data in read))
        return [(u, ids, data) for (u, ids, _), data in zip(read, sent, strict=True)]

    async def _send_uploads(
        self,
        chunk: list[tuple[Upload, list[str]]],
        bytes_read: Mapping[str, bytes | None] | None = None,
    ) -> None:
        landed: set[str] = set()
        try:
            await self._send_read(chunk, landed, bytes_read)
        finally:
            self.unlanded.update(u.sha256 for u, _ in chunk if u.sha256 not in landed)

    def _read_all(self, uploads: Sequence[Upload]) -> dict[str, bytes | None]:
        """Each upload's bytes by content (None: no file holds them any more, a failure)."""
        return {u.sha256: self._read(u) for u in uploads}

    async def _send_read(
        self,
        chunk: list[tuple[Upload, list[str]]],
        landed: set[str],
        bytes_read: Mapping[str, bytes | None] | None = None,
    ) -> None:
        """Read (unless `bytes_read` has them), (prepare,) and send one window; add each
        content that landed an image."""
        if bytes_read is None:
            bytes_read = await asyncio.to_thread(self._read_all, [u for u, _ in chunk])
        read = [(u, ids, bytes_read[u.sha256]) for u, ids in chunk]
        read = await self._prepared(read)
        sendable = [(u, ids, data) for u, ids, data in read if data is not None]
        if not sendable or self.fatal:
            return
        by_sha = {u.sha256: (u, ids) for u, ids, _ in sendable}
        # An image with boxes carries no tags of its own: its boxes' tags are its tags.
        items = [
            UploadItem(u.sha256, data, regions=self.new_regions(u.regions))
            if u.regions
            else UploadItem(u.sha256, data, tuple(UUID(t) for t in ids))
            for u, ids, data in sendable
        ]
        self.ledger.record_upload_started(by_sha, self.run_id)
        metadata = dict(chunk[0][0].metadata)
        settled: set[str] = set()
        try:
            async for results in self.client.upload_images(self.project_id, items, metadata):
                with self.ledger.transaction():  # one commit per answered batch
                    for result in results:
                        settled.add(result.key)
                        self._settle_upload(*by_sha[result.key], result)
                        if result.ok and result.image is not None:
                            landed.add(result.key)
        except ApiError as error:
            unsettled = [u for sha, (u, _) in by_sha.items() if sha not in settled]
            if len(unsettled) == 1 and not error.fatal and error.code in CONTENT_ERROR_CODES:
                # A call of one image refused for its bytes: the verdict is on that content.
                self.ledger.record_upload_result(unsettled[0].sha256, self.run_id)
                self.reject(unsettled[0], error.code or "", error.service_message or str(error))
                return
            # Pending rows stay: the batch may have landed before its answer was lost.
            self.api_failed(error, "upload", [u.paths[0] for u in unsettled])

    def _settle_upload(self, upload: Upload, tag_ids: list[str], result: UploadResult) -> None:
        image = result.image
        if result.ok and image is not None and upload.regions:
            self.ledger.record_upload_result(upload.sha256, self.run_id, image_id=str(image.id))
            self.ledger.record_image_regions(
                str(image.id), [remote_region(r) for r in image.regions]
            )
            if result.status is UploadStatus.OK_DUPLICATE:
                # The image was there already: the service keeps its own boxes, not the ones
                # sent. The next run diffs them (from the regions just recorded).
                self.result.settled = False
            self.done("uploads")
        elif result.ok and image is not None:
            applied = {str(t).lower() for t in image.tag_ids}
            self.ledger.record_upload_result(
                upload.sha256, self.run_id, image_id=str(image.id), tag_ids=applied
            )
            if image.regions:
                self.ledger.record_image_regions(
                    str(image.id), [remote_region(r) for r in image.regions]
                )
            # A duplicate of an image already there may lack some wanted tags; extra tags it
            # has are left to the next run's plan, which sees them in the listing.
            self.late_tag_pairs += [(str(image.id), t) for t in tag_ids if t not in applied]
            if not applied <= set(tag_ids):
                self.result.settled = False
            self.done("uploads")
        elif result.ok:
            # OKDuplicate without the image (the spec does not promise it): the pending row
            # stays, and the next run's full listing finds and hashes the image.
            _log.info("duplicate_without_image", path=upload.paths[0])
            self.result.settled = False
            self.done("uploads")
        else:
            status = str(result.status)
            self.ledger.record_upload_result(upload.sha256, self.run_id, error=status, code=status)
            if status in CONTENT_VERDICTS:
                self.reject(upload, status)
                return
            self.fail(
                "upload", upload.paths[0], f"the service refused the image ({status})", status
            )

    async def edit_regions(self) -> None:
        """Delete, then create, the regions the plan changes; record each answer as it comes."""
        edits = self.plan.edit_regions
        if not edits:
            return
        by_image = {e.image_id.lower(): e for e in edits}
        broken: set[str] = set()  # images whose edit failed: their creates are not sent
        for edit in edits:  # a tag that could not be created: that image's boxes wait
            names = sorted({r.tag for r in edit.create}, key=tag_key)
            if self.resolve(names, "edit_regions", edit.paths[0]) is None:
                broken.add(edit.image_id.lower())
        self.ledger.set_regions_pending(True)
        answered = await self._delete_regions(
            [e for e in edits if e.image_id.lower() not in broken], broken
        )
        if self.fatal:
            return
        entries = [
            RegionEntry(UUID(e.image_id), region)
            for e in edits
            if e.image_id.lower() not in broken
            for region in self.new_regions(e.create)
        ]
        lookups: set[str] = set()
        try:
            async for result in self.client.create_image_regions(self.project_id, entries):
                with self.ledger.transaction():  # one commit per answered batch
                    for image_id, region in result.created:
                        self.ledger.record_regions_added(str(image_id), [remote_region(region)])
                    self.done("regions_created", len(result.created))
                for entry in result.duplicated:
                    lookups.add(str(entry.image_id).lower())
                for entry in result.exceeded:
                    edit = by_image[str(entry.image_id).lower()]
                    if edit.image_id.lower() not in broken:
                        broken.add(edit.image_id.lower())
                        self.fail(
                            "edit_regions",
                            edit.paths[0],
                            "a box was not added: the image is at its limit of regions",
                        )
        except ApiError as error:
            answered = False
            unsent = [e for e in edits if e.image_id.lower() not in broken]
            broken.update(e.image_id.lower() for e in unsent)
            self.api_failed(error, "edit_regions", [e.paths[0] for e in unsent])
        if lookups and not self.fatal:
            answered = await self._look_up_regions(sorted(lookups)) and answered
        for edit in edits:
            if edit.image_id.lower() not in broken:
                self.done("edit_regions")
        if answered:
            self.ledger.set_regions_pending(False)

    async def _delete_regions(self, edits: Sequence[EditRegions], broken: set[str]) -> bool:
        """Delete the edits' old regions; return False if a call went unanswered."""
        owner = {r.region_id.lower(): e for e in edits for r in e.delete}
        if not owner:
            return True
        gone: set[str] = set()
        try:
            async for deleted in self.client.delete_image_regions(self.project_id, list(owner)):
                ids = [str(i).lower() for i in deleted]
                self.ledger.record_regions_deleted(ids)
                gone.update(ids)
                self.done("regions_deleted", len(ids))
        except ApiError as error:
            failed = {owner[i].image_id.lower(): owner[i] for i in owner if i not in gone}
            broken.update(failed)
            self.api_failed(error, "edit_regions", [e.paths[0] for e in failed.values()])
            return False
        return True

    async def _look_up_regions(self, image_ids: Sequence[str]) -> bool:
        """Record the regions of images the service said already had some of the boxes sent
        (their ids were not in the answer); return False if the lookup failed."""
        try:
            images = await self.client.get_images_by_ids(self.project_id, image_ids)
        except ApiError as error:
            if error.fatal:
                self.fatal = self.fatal or error
            _log.warning("region_lookup_failed", images=len(image_ids), error=str(error))
            return False
        for image in images:
            self.ledger.record_image_regions(
                str(image.id), [remote_region(r) for r in image.regions]
            )
        return True

    async def remove_tags(self) -> None:
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for action in self.plan.remove_tags:
            groups[tuple(sorted(action.tag_ids))].append(action.image_id)
        for tag_ids, image_ids in groups.items():
            confirmed: set[str] = set()
            try:
                async for pairs in self.client.remove_tags(self.project_id, image_ids, tag_ids):
                    with self.ledger.transaction():  # one commit per answered batch
                        for pair in pairs:
                            image_id = str(pair.image_id)
                            self.ledger.record_image_tags(image_id, removed=[str(pair.tag_id)])
                            if image_id not in confirmed:
                                confirmed.add(image_id)
                                self.done("remove_tags")
            except ApiError as error:
                unconfirmed = [i for i in image_ids if i.lower() not in confirmed]
                self.api_failed(error, "remove_tags", unconfirmed)
                if self.fatal:
                    return

    async def add_tags(self) -> None:
        pairs: list[tuple[str, str]] = list(self.late_tag_pairs)
        for action in self.plan.add_tags:
            ids = self.resolve(action.tag_names, "add_tags", action.image_id)
            if ids is not None:
                pairs += [(action.image_id, t) for t in ids]
        if not pairs:
            return
        wanted = {i.lower() for i, _ in pairs}
        counted: set[str] = set()
        try:
            async for result in self.client.add_tags(
                self.project_id, [ApiTagPair(UUID(i), UUID(t)) for i, t in pairs]
            ):
                with self.ledger.transaction():  # one commit per answered batch
                    for pair in (*result.created, *result.duplicated):
                        image_id = str(pair.image_id)
                        self.ledger.record_image_tags(image_id, added=[str(pair.tag_id)])
                        counted.add(image_id)
                for pair in result.exceeded:
                    self.fail(
                        "add_tags",
                        str(pair.image_id),
                        f"tag {pair.tag_id} not added: the image is at its tag limit",
                    )
        except ApiError as error:
            self.api_failed(error, "add_tags", sorted(wanted - counted))
        planned = {a.image_id.lower() for a in self.plan.add_tags}
        self.done("add_tags", len(counted & planned))

    async def deletes(self) -> None:
        planned = len(self.plan.delete_images) + len(self.plan.delete_tags)
        if self.result.failures and planned:
            self.result.skipped_deletes = planned
            _log.warning("deletes_skipped", deletes=planned, failures=len(self.result.failures))
            return
        ids = [d.image_id for d in self.plan.delete_images]
        held_back = False
        if ids and self.trash is not None:
            ids, held_back = await self._keep_in_trash(self.trash)
        gone: set[str] = set()
        try:
            if ids:
                async for deleted in self.client.delete_images(self.project_id, ids):
                    with self.ledger.transaction():  # one commit per answered batch
                        for image_id in deleted:
                            self.ledger.record_image_deleted(str(image_id))
                            gone.add(str(image_id))
                    self.done("delete_images", len(deleted))
        except ApiError as error:
            self.api_failed(error, "delete_image", [i for i in ids if i.lower() not in gone])
            return
        if held_back:  # an image that stays may still carry a tag planned to go
            self.result.skipped_deletes += len(self.plan.delete_tags)
            return
        for tag in self.plan.delete_tags:
            try:
                await self.client.delete_tag(self.project_id, tag.tag_id)
            except TagNotFoundError:
                pass  # already gone: the state asked for
            except ApiError as error:
                self.api_failed(error, "delete_tag", [tag.name])
                if self.fatal:
                    return
                continue
            self.ledger.record_tag_deleted(tag.tag_id)
            self.done("delete_tags")

    async def _keep_in_trash(self, trash: Trash) -> tuple[list[str], bool]:
        """Download the originals into the trash; return the ids safe to delete, and whether
        any image was held back (its original could not be kept: fail closed)."""
        # A prepared image's bytes are its prepared content's, not the key the plan names.
        sent = self.preparing.sent_sha256 if self.preparing else (lambda sha: sha)
        wanted = [(d.image_id, sent(d.sha256)) for d in self.plan.delete_images]
        safe, failed = await keep_originals(self.client, self.project_id, trash, wanted)
        for image_id, reason in failed:
            self.fail("trash", image_id, reason)
        keep = {i.lower() for i in safe}
        return [i for i, _ in wanted if i.lower() in keep], bool(failed)


async def execute(
    plan: Plan,
    *,
    client: TrainingClient,
    ledger: Ledger,
    root: Path,
    project_id: str,
    remote: RemoteSnapshot,
    run_id: int,
    progress: Progress | None = None,
    trash: Trash | None = None,
    describe: Describe | None = None,
    preparing: Preparing | None = None,
    continuing: Execution | None = None,
) -> Execution:
    """Apply `plan`; return what was done and what failed. Raises the first fatal ApiError
    (bad key, project gone, service down after retries) once in-flight work has settled.

    With `continuing` (what stream_uploads did earlier in the same run), the result adds to it,
    and its failures hold back the deletes as this plan's own would.
    With `trash`, each image's original is kept there before it is deleted (syncd.trash); an
    image whose original cannot be kept is not deleted, and is reported as a `trash` failure.
    With `describe`, the log line of a failed item about an image also names its file.
    With `preparing` (files.prepare), content with a recipe is prepared before it is sent."""
    run = _Run(plan, client, ledger, root, project_id, remote, run_id, progress or _no_progress)
    run.trash = trash
    run.describe = describe
    run.preparing = preparing
    if continuing is not None:
        run.result = continuing
    steps = (
        run.create_tags,
        run.adopt,
        run.uploads,
        run.edit_regions,
        run.remove_tags,
        run.add_tags,
        run.deletes,
    )
    for step in steps:
        await step()
        if run.fatal is not None:
            raise run.fatal
    return run.result


async def stream_uploads(
    parts: AsyncIterator[Plan],
    *,
    client: TrainingClient,
    ledger: Ledger,
    root: Path,
    project_id: str,
    remote: RemoteSnapshot,
    run_id: int,
    progress: Progress | None = None,
) -> tuple[Execution, frozenset[str]]:
    """Apply plans of tags and uploads as they come (each part's tags are created before its
    uploads; a tag already created is not asked again); return what was done and the contents
    whose upload did not land. Raises the first fatal ApiError once in-flight work has settled.
    """
    run = _Run(Plan(), client, ledger, root, project_id, remote, run_id, progress or _no_progress)
    await run.stream(parts)
    if run.fatal is not None:
        raise run.fatal
    return run.result, frozenset(run.unlanded)


async def _async(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _read_scanned(path: Path, size: int) -> bytes | None:
    """Return the file's bytes if it still holds exactly `size` of them, else None; never reads
    more than `size + 1` bytes (the one extra proves the file did not grow while it was read)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not S_ISREG(st.st_mode) or st.st_size != size:
            return None
        data = f.read(size + 1)
    return data if len(data) == size else None


def _no_progress(kind: str, n: int) -> None:
    pass
