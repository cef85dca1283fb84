"""A first sync into an empty project uploads what the scan has checked while it checks the rest.

Public names: CheckedFiles, Streamed, streams, held_sizes, upload_while_checking, tags_ahead,
start_tags_ahead, with_tags_ahead, undo_tags_ahead.

Why: at a first sync every file is new, and the uploads, most of the run (the quota allows 10
calls a second), waited until the whole tree was hashed and decoded: ~3.5 s at 10,000 small
images with the quota idle, and most of the 33 s the line idled in bench G (2,000 camera JPEGs).

When (`streams`): a run that changes the project (not a dry run), of a classification mirror
without `files.prepare`, not held back by the daemon, whose project the listing's first page
found empty, so nothing in it can be adopted, moved or deleted; and whose root carries no other
project's marker.

How it stays exact: the scan hands over each file as it is checked (syncd.scan.check_tree's
`on_file`); files that are ok are gathered into parts of one upload window, and each part is
planned by the planner itself (syncd.core.planner.plan) against the project's tags and no
images, so its uploads, tag names, conflicts and metadata are the plan's. The run then goes on
as any other: the whole snapshot is recorded, the project is read back from the ledger (which
holds every answered upload; only the images of contents not done, so a 100k-image first sync
does not load them all again), and a plan of the whole tree does what is left: files held
back, a tag that a later copy of the same bytes adds. That plan counts the contents streamed as
uploaded (the planner's `uploaded`, `Streamed.tried`) without building their 100k Uploads.

- A content is streamed once: a later file with the same bytes is left to that plan.
- Where a later copy could change the verdict on its content (a Multiclass project, where two
  tags on one content are a conflict; a tree with negative files, whose bytes may also be tagged
  elsewhere), a file whose size another file shares is held back too: no image is uploaded
  that the whole tree's plan would refuse.
- A content whose upload did not land (a failure, a refusal) is not tried again by that plan:
  each item is tried once a run, as in a run that does not stream.
- The root marker is written before the first upload, as a run that does not stream writes it.

Tags created with the reads (`tags_ahead`): the uploads need their tags' ids, and a tag was
created only once the project and its tags were read, so a first sync spent a round trip idle
with the quota's first second mostly unused (three reads of its ten calls). A first sync (a
ledger that never listed the project, a root without the marker) whose tree would stream
creates the tags of its first folders while the reads are out: as many as fit beside the reads
in that second. A tag that exists already is refused (TagNameNotUnique) and the listing has it;
any other failure leaves the create to the plan. If the run then stops before it plans (a
project of the wrong kind, a read that fails), the tags it created are deleted again: such a
run leaves the project as it found it.

Left as it is: in a Multilabel project, bytes copied into more folders than an image takes tags
(100) are sent with the first folder's tag before the copies are seen; the whole plan then
reports the conflict and keeps that image, where a run that does not stream sends nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Container, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from syncd.api import ApiError, Tag, TrainingClient
from syncd.api import TagType as ApiTagType
from syncd.config import MirrorConfig
from syncd.core.mapping import TagAssignment, TagMapper, tag_key
from syncd.core.model import (
    ClassificationType,
    LedgerView,
    LocalFile,
    LocalSnapshot,
    MarkerState,
    RemoteSnapshot,
    TagType,
)
from syncd.core.planner import CreateTag, Plan, plan
from syncd.executor import Execution, Progress, stream_uploads, upload_window
from syncd.ledger import Ledger
from syncd.remote import COUNT_READS, ProjectCounts, RemoteRead, read_remote, remote_tag
from syncd.scan import Walked

_log = structlog.get_logger(component="firstsync")


class CheckedFiles:
    """The scan's checked files, handed from its thread to the event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._files: list[LocalFile] = []
        self._closed = False
        self._wanted = True
        self._ready = asyncio.Event()

    def put(self, file: LocalFile) -> None:
        """Hand over one file (the scan's thread). The loop is woken once per batch."""
        with self._lock:
            if not self._wanted:
                return
            wake = not self._files
            self._files.append(file)
        if wake:
            self._loop.call_soon_threadsafe(self._ready.set)

    def close(self) -> None:
        """No more files (the scan ended, however it ended)."""
        with self._lock:
            self._closed = True
        self._loop.call_soon_threadsafe(self._ready.set)

    def discard(self) -> None:
        """Nobody will read them: keep none."""
        with self._lock:
            self._wanted = False
            self._files = []

    async def batches(self) -> AsyncIterator[list[LocalFile]]:
        """Every file handed over, a batch at a time, until the scan ends."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                files, self._files = self._files, []
                closed = self._closed
            if files:
                yield files
            if closed:
                return


@dataclass
class _Tally:
    """What the parts planned: counts for the report, and which contents.

    One set holds every content of the tree (`seen`); what a part did not plan to upload is
    kept apart (`unsent`, rarely any), not as a second 100k set of what it did."""

    planned: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)  # contents put in a part (later copies are not)
    unsent: set[str] = field(default_factory=set)  # contents in a part its plan did not upload
    again: set[str] = field(default_factory=set)  # contents with a file found after one was sent

    def done(self, unlanded: AbstractSet[str]) -> AbstractSet[str]:
        """Contents sent from their only file that landed (Streamed.done): `seen` itself, made so
        in place (the stream's end is a first sync's peak: each copy of a 100k set is 4 MB)."""
        done = self.seen
        done -= self.unsent
        done -= self.again
        done -= unlanded
        return done


@dataclass(frozen=True)
class _AnyOf:
    """In any of a few sets, without copying them into one (a union of 100k contents is 4 MB
    more at the whole tree's plan, a first sync's peak)."""

    sets: tuple[AbstractSet[str], ...]

    def __contains__(self, item: object) -> bool:
        return any(item in s for s in self.sets)


@dataclass
class Streamed:
    """What a streamed first sync did before the whole tree's plan."""

    remote: RemoteRead  # the project as the first page found it (empty)
    execution: Execution
    unlanded: frozenset[str]  # contents tried whose upload did not land
    planned: Counter[str]  # uploads and tags the parts planned
    # Contents uploaded once, from their only file: nothing is left to plan for them.
    done: AbstractSet[str] = frozenset()

    @property
    def tried(self) -> Container[str]:
        """Contents with nothing left to upload: done, or tried once (their upload did not land:
        each item is tried once a run). The whole tree's plan makes no Upload for them (the
        planner's `uploaded`): the ledger's `contents` holds only the images of the others."""
        return _AnyOf((self.done, self.unlanded))

    def left_to(self, whole: Plan) -> Plan:
        """The whole tree's plan (made with `tried` uploaded) without the creates of tags whose
        creation failed (each is tried once a run)."""
        failed_tags = {
            tag_key(f.subject) for f in self.execution.failures if f.operation == "create_tag"
        }
        return replace(
            whole,
            create_tags=tuple(c for c in whole.create_tags if tag_key(c.name) not in failed_tags),
        )


def streams(mirror: MirrorConfig, counts: ProjectCounts, walked: Walked) -> bool:
    """True if this run's uploads may start before its scan ends (see the module's notes; the
    caller knows whether it is a dry run, or held back)."""
    return _tree_streams(mirror, walked) and counts.first_page is not None and not counts.first_page


def _tree_streams(mirror: MirrorConfig, walked: Walked) -> bool:
    """streams() as far as the mirror and the walked tree can tell, before the project is read."""
    return (
        not mirror.annotations.detection
        and mirror.files.prepare is None
        and walked.root_exists
        and walked.marker is not MarkerState.FOREIGN
        and bool(walked.found)
    )


def tags_ahead(mirror: MirrorConfig, walked: Walked, rate_per_second: float) -> list[CreateTag]:
    """The tags to create with the reads of a first sync whose tree would stream: the first
    folders' (in path order), as many as fit beside the reads in the quota's first second; none
    if the tree would not stream, or carries the root marker (it was synced before: a lost
    ledger's rebuild, whose project has the tags already, would spend the calls on refusals).
    The names are spelt as the planner spells them (the first path's spelling of each key); the
    caller knows whether the ledger ever listed the project."""
    budget = int(rate_per_second) - COUNT_READS
    if budget <= 0 or walked.marker is not MarkerState.ABSENT or not _tree_streams(mirror, walked):
        return []
    # A file's tags depend on its folder alone: one path of each folder, in path order.
    firsts: dict[str, str] = {}
    for path, *_ in walked.found:
        firsts.setdefault(path.rpartition("/")[0], path)
    mapper = TagMapper(mirror.tags)
    wanted: dict[str, CreateTag] = {}
    for path in sorted(firsts.values()):
        found = mapper.assign(path)
        if not isinstance(found, TagAssignment):
            continue
        if found.negative:
            name = mirror.tags.negative_tag_name
            wanted.setdefault(tag_key(name), CreateTag(name, TagType.NEGATIVE))
        for name in found.tags:
            wanted.setdefault(tag_key(name), CreateTag(name, TagType.REGULAR))
        if len(wanted) >= budget:
            break
    return list(wanted.values())[:budget]


def start_tags_ahead(
    mirror: MirrorConfig, client: TrainingClient, ledger: Ledger, walked: Walked
) -> asyncio.Task[list[Tag]] | None:
    """Start creating the tags a first sync's tree wants while the reads are out, if this is
    a first sync (the ledger never listed the project) that would stream."""
    if not ledger.never_listed():
        return None
    wanted = tags_ahead(mirror, walked, client.settings.rate_per_second)
    if not wanted:
        return None
    return asyncio.create_task(_create_tags(client, mirror.project_id, wanted))


def with_tags_ahead(counts: ProjectCounts, created: list[Tag], ledger: Ledger) -> ProjectCounts:
    """The counts with the tags created ahead among the project's (the listing, read at the same
    time, may hold them already), each recorded as syncd's."""
    listed = {str(t.id).lower() for t in counts.tags}
    for tag in created:
        ledger.record_tag(remote_tag(tag), created_by_syncd=True)
    return replace(
        counts, tags=[*counts.tags, *(t for t in created if str(t.id).lower() not in listed)]
    )


async def undo_tags_ahead(
    client: TrainingClient, project_id: str, ahead: asyncio.Task[list[Tag]], cancelled: bool
) -> None:
    """The run stops before its plan: delete the tags it created ahead, which no image has (not
    when cancelled: an interrupted run leaves at once, and a next run finds them listed)."""
    if cancelled:
        ahead.cancel()
        await asyncio.gather(ahead, return_exceptions=True)
        return
    created = (await asyncio.gather(ahead, return_exceptions=True))[0]
    if isinstance(created, list):
        await _delete_tags(client, project_id, created)


async def _create_tags(
    client: TrainingClient, project_id: str, wanted: list[CreateTag]
) -> list[Tag]:
    """Create the tags at once; return those created. A tag that could not be created is left
    to the plan (which finds one that exists in the listing, or creates it)."""

    async def one(tag: CreateTag) -> Tag | None:
        try:
            return await client.create_tag(project_id, tag.name, ApiTagType(tag.type))
        except ApiError as error:
            _log.debug(
                "tag_ahead_not_created", tag=tag.name, code=error.code or type(error).__name__
            )
            return None

    created = await asyncio.gather(*(one(t) for t in wanted))
    return [t for t in created if t is not None]


async def _delete_tags(client: TrainingClient, project_id: str, created: list[Tag]) -> None:
    for tag in created:
        try:
            await client.delete_tag(project_id, tag.id)
        except ApiError as error:
            _log.warning(
                "tag_ahead_not_deleted",
                tag=tag.name,
                code=error.code or type(error).__name__,
                detail="created before the project was read; delete it in the portal if unwanted",
            )
        else:
            _log.debug("tag_ahead_deleted", tag=tag.name)


def held_sizes(
    mirror: MirrorConfig, walked: Walked, classification: ClassificationType
) -> set[int]:
    """Sizes shared by two files or more, when a later copy could change its content's verdict
    (Multiclass, or negative files in the tree); else none."""
    mapper = TagMapper(mirror.tags)
    negatives = any(
        isinstance(found := mapper.assign(entry[0]), TagAssignment) and found.negative
        for entry in walked.found
    )
    if classification is not ClassificationType.MULTICLASS and not negatives:
        return set()
    sizes = Counter(entry[1] for entry in walked.found)
    return {size for size, n in sizes.items() if n > 1}


async def _parts(
    files: AsyncIterator[list[LocalFile]],
    mirror: MirrorConfig,
    root: str,
    remote: RemoteSnapshot,
    view: LedgerView,
    *,
    refused: Mapping[str, object],
    held_sizes: set[int],
    window: tuple[int, int],
    tally: _Tally,
) -> AsyncIterator[Plan]:
    """Plans of a window of checked files each, as the files come; `tally` keeps count."""
    max_items, max_bytes = window
    seen = tally.seen  # contents in a part (a later copy is left to the whole plan)
    created: set[str] = set()
    part: list[LocalFile] = []
    size = 0

    def planned_part() -> Plan:
        local = LocalSnapshot(root, True, MarkerState.PRESENT, files=tuple(part))
        the_plan = plan(local, view, remote, mirror)
        tally.planned["uploads"] += len(the_plan.uploads)
        sent = {u.sha256 for u in the_plan.uploads}
        tally.unsent.update(f.sha256 for f in part if f.sha256 and f.sha256 not in sent)
        created.update(tag_key(c.name) for c in the_plan.create_tags)
        tally.planned["create_tags"] = len(created)
        return the_plan

    async for batch in files:
        for f in batch:
            sha = f.sha256
            if not f.ok or sha is None or sha in refused or f.size in held_sizes:
                continue
            if sha in seen:
                tally.again.add(sha)
                continue
            seen.add(sha)
            # Cut as the executor cuts its windows, so that a part is one window.
            if part and (len(part) == max_items or size + f.size > max_bytes):
                yield planned_part()
                part, size = [], 0
            part.append(f)
            size += f.size
    if part:
        yield planned_part()


async def upload_while_checking(
    checked: CheckedFiles,
    *,
    mirror: MirrorConfig,
    client: TrainingClient,
    ledger: Ledger,
    counts: ProjectCounts,
    held: set[int],
    refused: Mapping[str, tuple[str, str]],
    run_id: int,
    progress: Progress | None,
) -> Streamed:
    """Read the (empty) project, then upload the checked files as they come, but those of a
    size in `held` (see held_sizes); return when the scan has ended and every upload is
    answered. Contents in `refused` (the service's verdicts of earlier runs) are not sent.
    Raises what stream_uploads raises."""
    root = str(mirror.root)
    empty = LocalSnapshot(root, True, MarkerState.PRESENT)
    remote = await read_remote(
        client, mirror.project_id, ledger, empty, counts=counts, run_id=run_id
    )
    tally = _Tally()
    parts = _parts(
        checked.batches(),
        mirror,
        root,
        remote.snapshot,
        LedgerView(ledger_id=ledger.ledger_id),
        refused=refused,
        held_sizes=held,
        window=upload_window(client.settings),
        tally=tally,
    )
    execution, unlanded = await stream_uploads(
        parts,
        client=client,
        ledger=ledger,
        root=Path(mirror.root),
        project_id=mirror.project_id,
        remote=remote.snapshot,
        run_id=run_id,
        progress=progress,
    )
    return Streamed(remote, execution, unlanded, tally.planned, tally.done(unlanded))
