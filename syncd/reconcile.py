"""One reconcile of one mirror: scan, read the project, plan, execute, record. The edges meet here.

Public names: reconcile_mirror, open_client, open_ledger, client_settings, service_error,
require_project, MirrorReport, ImageFiles, KeptGroup, ACTION_KINDS, KEPT_EXAMPLES.

What stops a run is raised as a typed error (syncd.errors: ServiceError and its kinds,
LedgerRefusedError, LedgerBusyError; LocalIOError, ProjectKindError, CredentialsError); what a
run found and did, a failed item included, is in the MirrorReport.

    walk (filesystem) + counts (HTTP, at the same time; the listing's first page in place of
    the count when the ledger cannot be trusted) + check (hash, once the walk is done)
        -> unchanged on both sides since a run that ended in sync? done: nothing to plan
           (only then does the check wait for the counts: if they agree it is not needed)
        -> read_remote (ledger or listing) -> plan (pure) -> execute -> marker

A dry run does all the reading (including hashing downloads a rebuild needs) against a private
copy of the ledger, and sends nothing: the real ledger file and the project are left as they were.
So a dry run takes no writer lock, and works while `syncd run` or a reconcile holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import secrets
import sqlite3
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog

from syncd.api import (
    ApiError,
    AuthenticationError,
    ClientSettings,
    Project,
    ProjectNotFoundError,
    Tag,
    TrainingClient,
)
from syncd.config import Config, MirrorConfig, ServiceConfig
from syncd.core.mapping import placement
from syncd.core.model import ImageOwner, LocalSnapshot, MarkerState, ProblemKind, RemoteSnapshot
from syncd.core.planner import DeleteImage, EditRegions, GuardReason, KeepReason, Plan, plan
from syncd.core.policy import DeletePolicy
from syncd.core.regions import Region
from syncd.credentials import CredentialsError, TrainingKey
from syncd.detection import annotate, annotation_problems
from syncd.errors import (
    KeyRefusedError,
    LedgerOfAnotherProjectError,
    ProjectMissingError,
    ServiceAnswerError,
    ServiceError,
    ServiceUnreachableError,
)
from syncd.executor import Execution, Rejection, execute
from syncd.firstsync import (
    CheckedFiles,
    Streamed,
    held_sizes,
    start_tags_ahead,
    streams,
    undo_tags_ahead,
    upload_while_checking,
    with_tags_ahead,
)
from syncd.ledger import (
    Ledger,
    LedgerRefusedError,
    RemoteSummary,
    RunOutcome,
    SettledMark,
    connect_read_only,
)
from syncd.localio import LocalIOError, sqlite_local_fault, writing
from syncd.log import redact_secret
from syncd.prepare import (
    Preparer,
    PrepareSummary,
    known_as_prepared,
    learn_prepared,
    preparing_for,
    summarize,
)
from syncd.problems import (
    FileProblem,
    advice_for,
    apply_verdicts,
    conflict_problems,
    file_problems,
)
from syncd.remote import (
    ProjectCounts,
    ProjectKindError,
    RemoteRead,
    read_counts,
    read_remote,
    trusted_counts,
)
from syncd.scan import MARKER_NAME, Walked, check_tree, walk_tree, write_marker
from syncd.train import train_after_sync
from syncd.trash import Trash, trash_folder

ACTION_KINDS = (
    "create_tags",
    "adopts",
    "uploads",
    "edit_regions",  # images whose boxes changed (object detection), and the regions:
    "regions_created",
    "regions_deleted",
    "remove_tags",
    "add_tags",
    "delete_images",
    "delete_tags",
)

# The domain of a detection mirror's project in the embedded emulator: General (object
# detection), as the "select a domain" docs page lists it (docs/spec/REGIONS.md).
EMBEDDED_DETECTION_DOMAIN = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"

REJECTED = ProblemKind.REJECTED_BY_SERVICE
CHANGED_WHILE_READING = ProblemKind.CHANGED_WHILE_READING

# Images a report names for each reason some were kept (the summary shows "the first few");
# the settled mark keeps as many, so a run that plans nothing can still say what is kept.
KEPT_EXAMPLES = 3
REFUSED = "refused"  # KeptGroup.why of deletes the guard refused
UNIDENTIFIED = "unidentified"  # KeptGroup.why of images of unknown content (never deleted)

_log = structlog.get_logger(component="sync")

Progress = Callable[[str, int], None]
# The daemon's settle rule: takes the scan, returns it with files still being written held back.
Hold = Callable[[LocalSnapshot], LocalSnapshot]


@dataclass(frozen=True)
class ImageFiles:
    """Where one image's content is in the tree, or was last seen there: what a message about
    the image names beside its id."""

    image_id: str
    paths: tuple[str, ...]  # the files holding the content now, else where it was last seen
    gone: bool  # no file holds the content now: `paths` are its last known places
    foreign: bool  # not this ledger's (it neither uploaded nor adopted it)

    def log_fields(self) -> dict[str, Any]:
        """A log line's fields naming the image by its file: `path` (its first file, or where
        its content was last seen, then with `gone`), `other_paths` (how many more files)."""
        fields: dict[str, Any] = {"path": self.paths[0] if self.paths else None}
        if len(self.paths) > 1:
            fields["other_paths"] = len(self.paths) - 1
        if self.gone:
            fields["gone"] = True
        return fields


@dataclass(frozen=True)
class KeptGroup:
    """Remote images left in place for one reason: how many, and the first few by file.

    `why` is a KeepReason value, REFUSED (then `detail` names the guard's reasons) or
    UNIDENTIFIED."""

    why: str
    count: int
    examples: tuple[ImageFiles, ...]
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "why": self.why,
            "count": self.count,
            "detail": self.detail,
            "examples": [
                {
                    "image_id": f.image_id,
                    "paths": list(f.paths),
                    "gone": f.gone,
                    "foreign": f.foreign,
                }
                for f in self.examples
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeptGroup:
        examples = tuple(
            ImageFiles(e["image_id"], tuple(e["paths"]), bool(e["gone"]), bool(e["foreign"]))
            for e in data["examples"]
        )
        return cls(str(data["why"]), int(data["count"]), examples, str(data.get("detail", "")))


def _kept_from_json(text: str | None) -> tuple[KeptGroup, ...]:
    """The kept account a settled run left (empty if none, or unreadable: it is only a note)."""
    try:
        return tuple(KeptGroup.from_json(g) for g in json.loads(text or "[]"))
    except (ValueError, KeyError, TypeError):
        return ()


@dataclass
class MirrorReport:
    """Everything a run of one mirror found, planned and did (printed as a table or JSON)."""

    name: str
    project_id: str
    dry_run: bool
    # Left out of the repr: at 100k files it would be megabytes, and asyncio.run reprs its
    # finished main task (and so this result) when it restores the SIGINT handler.
    local: LocalSnapshot = field(repr=False)
    remote: RemoteRead = field(repr=False)
    plan: Plan = field(repr=False)
    execution: Execution | None = field(default=None, repr=False)
    api_calls: int = 0
    warnings: list[str] = field(default_factory=list)
    training: dict[str, Any] | None = None  # what train_after_sync did (syncd.train)
    endpoint: str = ""  # the service the run talked to: `embedded` or its URL
    # path -> since when the ledger has known its current problem (set at the end of the run)
    problem_since: dict[str, str] = field(default_factory=dict, repr=False)
    # What a first sync planned and sent while its scan ran (syncd.firstsync), before `plan`.
    streamed: Counter[str] = field(default_factory=Counter, repr=False)

    def planned(self) -> dict[str, int]:
        """The run's planned actions by kind: the plan's, and what was streamed before it."""
        counts = self.plan.counts()
        for kind, n in self.streamed.items():
            counts[kind] += n
        return counts

    @property
    def _rejected(self) -> list[Rejection]:
        return self.execution.rejected if self.execution else []

    # Problems inside a detection mirror's usable annotation files, by the annotation's path.
    annotation_problems: tuple[FileProblem, ...] = field(default=(), repr=False)

    def file_problems(self) -> list[FileProblem]:
        """Each problem file once, by path: what the scan refused, and the bytes the service
        refused (this run, or a verdict remembered from an earlier one)."""
        out = file_problems(self.local) + list(self.annotation_problems)
        for rejected in self._rejected:
            out += [
                FileProblem(path, str(REJECTED), rejected.detail, advice_for(REJECTED))
                for path in rejected.paths
            ]
        return sorted(out, key=lambda p: p.path)

    def tracked_problems(self) -> list[FileProblem]:
        """The problems `status` lists and the daemon logs as they appear and clear: the problem
        files and each file of a blocking tag conflict; not a file still being written (it is
        read again next run)."""
        out = [p for p in self.file_problems() if p.kind != CHANGED_WHILE_READING]
        return out + conflict_problems(self.plan.conflicts)

    # sha256 -> where content no file holds now was last seen (Ledger.gone_paths), and the ids
    # (lower-case) of the images this ledger owns: read before the plan runs, for image_files.
    gone_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    owned_ids: frozenset[str] = field(default=frozenset(), repr=False)
    # What the last run in sync kept, when this run did not plan (it read no images): None if
    # it planned.
    kept_before: tuple[KeptGroup, ...] | None = field(default=None, repr=False)
    # files.prepare: what it did this run, or would take were it on (syncd.prepare).
    preparation: PrepareSummary = field(default_factory=PrepareSummary, repr=False)

    @cached_property
    def kept_groups(self) -> tuple[KeptGroup, ...]:
        """The images left in the project though no wanted file holds them, by reason: kept by
        the plan, of unknown content, or refused by the guard."""
        if self.kept_before is not None:
            return self.kept_before
        ids: dict[tuple[str, str], list[str]] = {}
        for kept in self.plan.kept:
            ids.setdefault((str(kept.reason), ""), []).append(kept.image_id)
        if self.plan.unidentified:
            ids[(UNIDENTIFIED, "")] = list(self.plan.unidentified)
        refused = self.plan.refused
        if refused is not None and refused.images:
            reasons = ", ".join(str(r) for r in refused.reasons)
            ids[(REFUSED, reasons)] = [d.image_id for d in refused.images]
        return tuple(
            KeptGroup(why, len(group), tuple(map(self.image_files, group[:KEPT_EXAMPLES])), detail)
            for (why, detail), group in ids.items()
        )

    @cached_property
    def _paths_by_sha(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for f in self.local.files:
            if f.sha256:
                out.setdefault(f.sha256, []).append(f.path)
        return {sha: tuple(paths) for sha, paths in out.items()}

    @cached_property
    def _sha_by_image(self) -> dict[str, str]:
        images = self.remote.snapshot.images
        out = {i.image_id.lower(): i.sha256 for i in images if i.sha256}
        out.update({a.image_id.lower(): a.sha256 for a in self.plan.adopts})
        return out

    def image_files(self, image_id: str) -> ImageFiles:
        """The files of one image of this run: where its content is now, else where it was
        last seen, else none (a foreign image never seen here)."""
        key = image_id.lower()
        sha = self._sha_by_image.get(key)
        foreign = key not in self.owned_ids
        paths = self._paths_by_sha.get(sha, ()) if sha else ()
        if paths:
            return ImageFiles(image_id, paths, False, foreign)
        last = self.gone_paths.get(sha, ()) if sha else ()
        return ImageFiles(image_id, last, bool(last), foreign)

    def _delete_json(self, delete: DeleteImage) -> dict[str, Any]:
        """One planned delete by file and id: the whole delete plan can be reviewed in JSON."""
        files = self.image_files(delete.image_id)
        return {
            "image_id": delete.image_id,
            "paths": list(files.paths),
            "gone": files.gone,
            "foreign": files.foreign,
            "reason": str(delete.reason),
        }

    def image_of(self, sha256: str) -> str | None:
        """The id of an image holding this content (the first by id), or None."""
        ids = sorted(i for i, sha in self._sha_by_image.items() if sha == sha256)
        return ids[0] if ids else None

    @property
    def problems(self) -> list[dict[str, str]]:
        return [
            {**p.to_json(), "since": self.problem_since.get(p.path, "")}
            for p in self.file_problems()
        ]

    @property
    def failures(self) -> list[dict[str, str | None]]:
        failed = self.execution.failures if self.execution else []
        out: list[dict[str, str | None]] = [
            {"operation": f.operation, "subject": f.subject, "code": f.code, "message": f.message}
            for f in failed
        ]
        out += [
            {"operation": "download", "subject": image_id, "code": None, "message": message}
            for image_id, message in self.remote.download_failures
        ]
        return out

    @property
    def root_missing(self) -> bool:
        """The root folder does not exist: nothing was mirrored, under any delete policy."""
        return not self.local.root_exists

    @property
    def in_sync(self) -> bool:
        """Everything planned was done: no failed item, problem file, blocking conflict, refused
        or skipped delete, and the root exists."""
        blocking = any(c.kind.blocking for c in self.plan.conflicts)
        skipped = self.execution.skipped_deletes if self.execution else 0
        if self.failures or self.problems or blocking or self.plan.refused or skipped:
            return False
        return not self.root_missing  # never "in sync", even when nothing would be deleted (keep)

    @property
    def exit_code(self) -> int:
        """The run's verdict as the README numbers it in the JSON and the daemon's log: 0 in
        sync, 1 not everything mirrored (errors that stop a run are raised, never numbered here)."""
        return 0 if self.in_sync else 1

    @property
    def changed_images(self) -> int:
        """Images this run changed: uploads, deletes, and images retagged."""
        if self.execution is None:
            return 0
        done = self.execution.done
        retagged = {a.image_id for a in self.plan.add_tags}
        retagged.update(r.image_id for r in self.plan.remove_tags)
        edited = done.get("edit_regions", 0)  # images whose boxes changed
        return done.get("uploads", 0) + done.get("delete_images", 0) + len(retagged) + edited

    def to_json(self) -> dict[str, Any]:
        local = self.local
        refused = self.plan.refused
        done = self.execution.done if self.execution else {}
        return {
            "name": self.name,
            "project_id": self.project_id,
            "endpoint": self.endpoint,
            "dry_run": self.dry_run,
            "local": {
                "files": local.file_count + len(local.skipped),
                "ok": local.ok_count - sum(len(r.paths) for r in self._rejected),
                "problems": len(self.problems),
                "hashed": local.hashed,
                "decoded": local.decoded,  # images decoded (Pillow): new or changed content only
                "unchanged": bool(local.unchanged_files),
                "skipped_by_extension": dict(local.unaccepted),  # formats the service refuses
            },
            "root_missing": self.root_missing,
            "remote": {
                "listing": self.remote.listing,
                "images": self.remote.images,
                "downloads_hashed": self.remote.downloads_hashed,
            },
            "planned": self.planned(),
            "done": {kind: done.get(kind, 0) for kind in ACTION_KINDS},
            "skipped_deletes": self.execution.skipped_deletes if self.execution else 0,
            "failed": self.failures,
            "problems": self.problems,
            "conflicts": [
                {"kind": str(c.kind), "detail": c.detail, "paths": list(c.paths)}
                for c in self.plan.conflicts
            ],
            "refused": None
            if refused is None
            else {
                "message": refused.message,
                "images": len(refused.images),
                "tags": len(refused.tags),
                "overridable": refused.overridable,
            },
            "warnings": self.warnings,
            "kept_images": [g.to_json() for g in self.kept_groups],
            "delete_images": [self._delete_json(d) for d in self.plan.delete_images],
            "edit_regions": [_edit_json(e) for e in self.plan.edit_regions],
            "training": self.training,
            "prepare": self.preparation.to_json(),
            "api_calls": self.api_calls,
            "exit_code": self.exit_code,
        }


def _edit_json(edit: EditRegions) -> dict[str, Any]:
    """One image's planned box changes, by file: the whole region plan can be reviewed."""

    def boxes(regions: tuple[Region, ...]) -> list[dict[str, Any]]:
        return [
            {"tag": r.tag, "box": [r.box.left, r.box.top, r.box.width, r.box.height]}
            for r in regions
        ]

    return {
        "image_id": edit.image_id,
        "paths": list(edit.paths),
        "delete": [
            {"region_id": remote.region_id, **shown}
            for remote, shown in zip(edit.delete, boxes(edit.deleted), strict=True)
        ],
        "create": boxes(edit.create),
    }


# --- the edges ----------------------------------------------------------------------------------


def client_settings(service: ServiceConfig) -> ClientSettings:
    return ClientSettings(
        rate_per_second=service.rate_per_second,
        upload_rate_per_second=service.upload_rate_per_second,
        max_concurrency=service.max_concurrency,
        max_attempts=service.max_attempts,
        connect_timeout_s=service.connect_timeout,
        read_timeout_s=service.read_timeout,
        request_deadline_s=service.request_deadline,
        max_retry_after_s=service.max_retry_after,
        uplink_bytes_per_s=service.uplink_mbps * 1e6 / 8,
    )


def _training_key(service: ServiceConfig) -> TrainingKey | None:
    try:
        key = service.training_key.load()
    except CredentialsError:
        if service.is_embedded:
            return None  # the embedded emulator takes any key, or none
        raise
    redact_secret(key.reveal())
    return key


@contextlib.asynccontextmanager
async def open_client(
    service: ServiceConfig, mirrors: tuple[MirrorConfig, ...] = ()
) -> AsyncIterator[TrainingClient]:
    """Yield a TrainingClient for the configured endpoint. The embedded emulator runs in-process
    on `emulator_dir` and creates the projects `mirrors` name if they do not exist yet."""
    key = _training_key(service)
    settings = client_settings(service)
    if service.is_embedded:
        from syncd.emulator.embedded import EMBEDDED_BASE_URL, embedded_transport
        from syncd.emulator.store import ApiError as EmulatorError

        transport = embedded_transport(service.emulator_dir)
        for mirror in mirrors:
            try:
                transport.store.project(mirror.project_id.lower())
            except EmulatorError:
                # A detection mirror (annotations.format) gets an object detection project.
                detection = mirror.annotations.detection
                transport.store.create_project(
                    mirror.name,
                    None,
                    EMBEDDED_DETECTION_DOMAIN if detection else None,
                    None if detection else "Multilabel",
                    (),
                    project_id=mirror.project_id,
                )
                _log.info("embedded_project_created", project_id=mirror.project_id)
        # The embedded emulator accepts any key, but wants one in the header like the service.
        # A random one: any key is scrubbed from every log line, and a word would be too.
        key = key or TrainingKey(secrets.token_hex(16))
        client = TrainingClient(EMBEDDED_BASE_URL, key, settings=settings, transport=transport)
    else:
        client = TrainingClient(service.endpoint, key, settings=settings)
    async with client:
        yield client


@contextlib.contextmanager
def open_ledger(mirror: MirrorConfig, dry_run: bool = False) -> Iterator[Ledger]:
    """The mirror's ledger, locked for writing (LedgerBusyError if another process writes it);
    for a dry run, a private copy of it (the file is neither locked nor touched). Raise
    LedgerRefusedError for a ledger syncd must not touch.

    A local fault in the block (the ledger's disk, the tree's, a pull target's) leaves as the
    LocalIOError that names the path."""
    assert mirror.ledger is not None  # load_config sets it
    where = mirror.ledger  # the file a disk fault is about
    try:
        if not dry_run:
            ledger = Ledger.open(mirror.ledger, project_id=mirror.project_id)
            with ledger:
                yield ledger
            return
        with tempfile.TemporaryDirectory(prefix="syncd-dry-run-") as tmp:
            copy = where = Path(tmp) / "ledger.sqlite"
            if mirror.ledger.exists():
                _copy_sqlite(mirror.ledger, copy)
            ledger = Ledger.open(copy, project_id=mirror.project_id)
            with ledger:
                yield ledger
    except sqlite3.Error as exc:
        fault = sqlite_local_fault(where, "write the ledger", exc)
        if fault is None:
            raise
        raise fault from None


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite file read-only (WAL included) with the backup API."""
    try:
        src = connect_read_only(source)
        with contextlib.closing(src), contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise LedgerRefusedError(f"ledger {source} is not a readable SQLite file ({exc})") from None


def _write_marker(
    mirror: MirrorConfig, marker: MarkerState | None, files: int, the_plan: Plan
) -> None:
    """Write the root marker at the first sync of a tree (`marker` None: no root; `files`: how
    many candidates it holds); raise LocalIOError if it cannot be written (nothing is sent then:
    a tree synced without its marker would refuse every delete from then on, and a tree that
    cannot be written now is better said now)."""
    if marker is not MarkerState.ABSENT or not files:
        return
    if the_plan.refused and GuardReason.MARKER_MISSING in the_plan.refused.reasons:
        return  # a tree syncd does not recognise does not get the marker by itself
    hint = "or create it by hand: one line, the project id"
    with writing(Path(mirror.root) / MARKER_NAME, "write the root marker", hint):
        write_marker(Path(mirror.root), mirror.project_id)


# --- one run ------------------------------------------------------------------------------------


async def reconcile_mirror(
    config: Config,
    mirror: MirrorConfig,
    client: TrainingClient,
    *,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
    full: bool = False,
    progress: Progress | None = None,
    hold: Hold | None = None,
    walk: Callable[[MirrorConfig], Walked] = walk_tree,
    trusted_project: Project | None = None,
) -> MirrorReport:
    """Reconcile one mirror; raise a typed error (syncd.errors) for what stops the run.

    `hold`, if given, filters the scan before anything records or plans from it (`syncd run`
    holds back files that have not settled yet). `walk` walks the tree (the CLI's walk was started
    in a child process as the command began: syncd.earlywalk). `trusted_project`: the daemon read
    the counts a moment ago (this is that read's project) and had no failed item since, so the
    ledger's account is trusted instead of asking again (remote.trusted_counts); not for a full
    run."""
    try:
        return await _reconcile_mirror(
            config,
            mirror,
            client,
            _Options(dry_run, allow_mass_delete, full, progress, hold, walk, trusted_project),
        )
    except LedgerOfAnotherProjectError:
        # A ledger of another project is most often a mistyped project_id: name that first.
        await require_project(client, mirror, config.service.endpoint)
        raise


async def _reconcile_mirror(
    config: Config, mirror: MirrorConfig, client: TrainingClient, options: _Options
) -> MirrorReport:
    dry_run = options.dry_run
    calls_before = client.api_calls
    with open_ledger(mirror, dry_run) as ledger:
        settled = ledger.settled()  # read before begin_run clears it
        run_id = ledger.begin_run()
        try:
            report = await _reconcile(mirror, client, ledger, run_id, options, settled)
            report.endpoint = config.service.endpoint
            if report.local.root_exists:  # a missing root keeps what the ledger knew
                rows = [p.row() for p in report.tracked_problems()]
                report.problem_since = ledger.record_problems(rows)
            if mirror.train_after_sync and not dry_run and report.in_sync:
                report.training = await train_after_sync(client, mirror, report.changed_images)
        except ApiError as exc:
            ledger.finish_run(run_id, RunOutcome.FAILED, error=str(exc))
            if isinstance(exc, ProjectNotFoundError) and not dry_run:
                ledger.unbind_if_never_synced()
            raise service_error(exc, mirror, config.service.endpoint) from None
        except (ProjectKindError, LocalIOError) as exc:
            ledger.finish_run(run_id, RunOutcome.FAILED, error=str(exc))
            raise
        except BaseException:
            ledger.finish_run(run_id, RunOutcome.INTERRUPTED, error="interrupted")
            raise
        report.api_calls = client.api_calls - calls_before
        counts = {**report.planned(), "api_calls": report.api_calls}
        if report.execution is not None:
            counts.update({f"done_{k}": v for k, v in report.execution.done.items()})
        outcome = RunOutcome.OK if report.in_sync else RunOutcome.PARTIAL
        ledger.finish_run(run_id, outcome, counts)
        token = _settled_token(mirror, report.local.digest)
        in_sync = report.execution is not None and report.execution.settled
        if outcome is RunOutcome.OK and in_sync and token is not None:
            # A run that changed nothing leaves the summary it read; any other counts it again.
            same = settled if settled and report.local.unchanged_files else None
            kept = json.dumps([g.to_json() for g in report.kept_groups], ensure_ascii=False)
            ledger.mark_settled(token, same.summary if same else None, kept)
        return report


def _settled_token(mirror: MirrorConfig, digest: str | None) -> str | None:
    """What a run that ended in sync leaves for the next: the mirror's settings and the tree's
    stat digest. A run that finds both the same need not load its files (see _reconcile)."""
    if digest is None:
        return None
    settings = hashlib.sha256(repr(mirror).encode()).hexdigest()[:32]
    return f"{settings}:{digest}"


@dataclass(frozen=True)
class _Options:
    """How one reconcile runs (reconcile_mirror's keyword arguments)."""

    dry_run: bool
    allow_mass_delete: bool
    full: bool
    progress: Progress | None
    hold: Hold | None
    walk: Callable[[MirrorConfig], Walked] = walk_tree
    trusted_project: Project | None = None


def _trusted_counts(
    options: _Options, ledger: Ledger, summary: RemoteSummary | None, mirror: MirrorConfig
) -> ProjectCounts | None:
    if options.trusted_project is None or options.full:
        return None
    return trusted_counts(options.trusted_project, ledger, summary, mirror.annotations.format)


def _unchanged_since(settled: SettledMark | None, mirror: MirrorConfig, walked: Walked) -> bool:
    """True if the last run ended in sync under the same settings, and no name or stat in the
    tree has changed since (the marker is still there too)."""
    token = _settled_token(mirror, walked.digest)
    same = settled is not None and token is not None and settled.token == token
    return walked.marker is MarkerState.PRESENT and same


async def _reconcile(
    mirror: MirrorConfig,
    client: TrainingClient,
    ledger: Ledger,
    run_id: int,
    options: _Options,
    settled: SettledMark | None,
) -> MirrorReport:
    progress = options.progress
    on_checked = None if progress is None else (lambda: progress("checked", 1))
    # The walk and the check (disk, CPU) and the reads (network) need nothing of each other:
    # overlap. Only a tree that may be unchanged since a run in sync waits for the counts
    # before it is checked (if they agree, nothing is checked at all).
    walking = asyncio.create_task(asyncio.to_thread(options.walk, mirror))
    checking: asyncio.Task[LocalSnapshot] | None = None
    stop_checking = threading.Event()  # the reads failed: the run stops, the check with it
    summary = settled.summary if settled is not None else None
    counts = _trusted_counts(options, ledger, summary, mirror)
    counting = None
    if counts is None:
        counting = asyncio.ensure_future(
            read_counts(
                client,
                mirror.project_id,
                ledger,
                full=options.full,
                summary=summary,
                annotations=mirror.annotations.format,
            )
        )
    # A first sync into an empty project may upload files as the check passes them
    # (syncd.firstsync): the check hands them over as it goes, until the counts say no. Not in
    # a dry run, nor in the daemon's (which holds back files that have not settled).
    refused_before = ledger.rejected_content()
    checked = None
    if not options.dry_run and options.hold is None and counting is not None:
        checked = CheckedFiles(asyncio.get_running_loop())
    streaming: asyncio.Task[Streamed] | None = None
    ahead: asyncio.Task[list[Tag]] | None = None  # tags created with the reads (firstsync)
    created_ahead: list[Tag] = []
    try:
        walked = await walking
        if not _unchanged_since(settled, mirror, walked):
            checking = _start_check(walked, mirror, ledger, on_checked, stop_checking, checked)
        if checked is not None and counting is not None and not counting.done():
            ahead = start_tags_ahead(mirror, client, ledger, walked)
        if counting is not None:
            counts = await counting
        assert counts is not None
        if ahead is not None:
            created_ahead = await ahead
            counts = with_tags_ahead(counts, created_ahead, ledger)
        if checked is not None and checking is not None:
            if streams(mirror, counts, walked):
                # Before anything is sent, as below: a first sync killed halfway keeps its marker.
                _write_marker(mirror, walked.marker, len(walked.found), Plan())
                upload = upload_while_checking(
                    checked,
                    mirror=mirror,
                    client=client,
                    ledger=ledger,
                    counts=counts,
                    held=held_sizes(mirror, walked, counts.classification),
                    refused=refused_before,
                    run_id=run_id,
                    progress=progress,
                )
                streaming = _stream(upload, stop_checking)
            else:
                checked.discard()
    except BaseException as exc:
        if counting is not None:
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)
        # A thread cannot be cancelled: let the walk and the check end first (the check stops
        # at its next file: a wrong project id is said at once, not after hashing the tree).
        stop_checking.set()
        if ahead is not None:
            cancelled = not isinstance(exc, Exception)
            await undo_tags_ahead(client, mirror.project_id, ahead, cancelled)
        await asyncio.gather(*(t for t in (walking, checking) if t), return_exceptions=True)
        raise
    assert counts is not None
    walked = walking.result()
    if checking is None and counts.agree and _unchanged_since(settled, mirror, walked):
        # In sync then, nothing changed on either side since: the plan is empty by construction,
        # and a 100k-file no-op need not load, record or plan a single file.
        _log.info("planned", mirror=mirror.name, listing=counts.listing, unchanged=True)
        report = MirrorReport(
            mirror.name,
            mirror.project_id,
            options.dry_run,
            walked.unchanged(),
            counts.tags_only(),
            Plan(),
        )
        report.kept_before = _kept_from_json(settled.kept if settled else None)
        report.preparation = summarize(mirror.files.prepare, report.local, (), (), {})
        report.execution = None if options.dry_run else Execution()
        return report
    # While a first sync streams, what the tree holds is recorded beside its uploads.
    streamed: Streamed | None = None
    try:
        local = await (checking or _start_check(walked, mirror, ledger, on_checked))
        # The snapshot holds every file now: let the walk's list (100k stat tuples, ~16 MB at a
        # first sync) go before the ledger, the listing and the plan add theirs.
        del walked, walking
        if options.hold is not None:
            local = options.hold(local)
        # Bytes the service refused before are not sent again: the file is a problem until it
        # changes. (Those a streamed first sync met are its own to report, as an execution's.)
        local = apply_verdicts(local, refused_before)
        local, regions, annotation_problems = await _read_annotations(mirror, local)
        # Where each image's content lived, read before this scan forgets the files that are
        # gone: the trash puts a deleted original back at its path (only needed with a trash).
        trash_paths = ledger.local_paths_by_image() if _trashing(mirror) else {}
        ledger.record_scan(local, run_id)
        if local.root_exists:
            ledger.forget_rejected_content_not_in_tree()
            ledger.forget_prepared_not_held()
        if streaming is not None:
            streamed = await streaming
    except BaseException:
        if streaming is not None:
            await _stopped(streaming)
        raise
    rest: set[str] | None = None  # a streamed first sync: the contents it did not finish
    if streamed is not None:
        # The project as the ledger has it: the empty listing and every streamed upload answered;
        # only the images of contents left to plan (100k images loaded held ~150 MB more).
        rest = {f.sha256 for f in local.files if f.sha256 and f.sha256 not in streamed.done}
        cached = ledger.cached_remote(rest)
        assert cached is not None  # the listing was recorded
        listed = len(streamed.remote.snapshot.images)  # what the listing found: said as read
        remote = dataclasses.replace(streamed.remote, snapshot=cached, image_count=listed)
    else:
        remote = await read_remote(
            client,
            mirror.project_id,
            ledger,
            local,
            full=options.full,
            run_id=run_id,
            on_hashed=None if progress is None else (lambda n: progress("downloads", n)),
            counts=counts,
        )
    prepared = ledger.prepared()
    if (
        mirror.adopt_foreign_images
        and mirror.files.prepare is not None
        and remote.listing == "full"
    ):
        # Content prepared elsewhere (or before a lost ledger) is known by preparing it again.
        with Preparer() as preparer:
            root = str(mirror.root)
            learnt = await learn_prepared(local, remote.snapshot, prepared, root, preparer)
        recipes = {f.sha256: f.recipe for f in local.files if f.sha256 in learnt}
        for key, (source, prepared_sha) in learnt.items():
            ledger.record_prepared_hash(key, source, recipes[key] or "", prepared_sha)
        prepared.update(learnt)
    if prepared:  # a listing hashes a prepared image's bytes: name it by its local content
        snapshot = known_as_prepared(remote.snapshot, prepared)
        remote = dataclasses.replace(remote, snapshot=snapshot)
    view = ledger.view(rest)
    the_plan = plan(
        local,
        view,
        remote.snapshot,
        mirror,
        allow_mass_delete=options.allow_mass_delete,
        regions=regions,
        uploaded=streamed.tried if streamed is not None else frozenset(),
    )
    if streamed is not None:
        the_plan = streamed.left_to(the_plan)
    report = MirrorReport(mirror.name, mirror.project_id, options.dry_run, local, remote, the_plan)
    if streamed is not None:
        report.streamed = streamed.planned
    if created_ahead:  # planned and done before the plan
        report.streamed["create_tags"] += len(created_ahead)
    report.annotation_problems = annotation_problems
    report.gone_paths = ledger.gone_paths()
    report.preparation = summarize(
        mirror.files.prepare,
        local,
        [u.sha256 for u in the_plan.uploads],
        [i.sha256 for i in view.images.values() if i.sha256 and i.owner is not ImageOwner.FOREIGN],
        prepared,
    )
    report.owned_ids = frozenset(
        image_id for image_id, known in view.images.items() if known.owner is not ImageOwner.FOREIGN
    )
    if report.root_missing:
        report.warnings.append(
            f"the root folder {mirror.root} does not exist: nothing was uploaded or deleted "
            "(mount it, or fix `root` in the config)"
        )
    foreign = sum(1 for k in the_plan.kept if k.reason is KeepReason.FOREIGN)
    if foreign:
        report.warnings.append(
            f"{foreign} image(s) with no local file kept: this ledger did not upload or adopt "
            "them (foreign: another install's, or a lost ledger's); delete them in the portal "
            "if they are unwanted, or set adopt_foreign_images"
        )
    _log.info("planned", mirror=mirror.name, listing=remote.listing, **report.planned())
    if options.dry_run:
        return report
    # Before anything is sent: a first sync killed halfway must leave the marker too, or every
    # later run with a delete in it would see "synced before, marker missing" and refuse for good.
    _write_marker(mirror, local.marker if local.root_exists else None, len(local.files), the_plan)
    with Preparer() as preparer:  # its processes start on the first file to prepare, if any
        preparing = preparing_for(local.files, prepared, preparer)
        report.execution = await execute(
            the_plan,
            client=client,
            ledger=ledger,
            root=Path(mirror.root),
            project_id=mirror.project_id,
            remote=remote.snapshot,
            run_id=run_id,
            progress=progress,
            trash=_trash(mirror, remote.snapshot, trash_paths) if the_plan.delete_images else None,
            describe=lambda image_id: report.image_files(image_id).log_fields(),
            preparing=preparing,
            continuing=streamed.execution if streamed is not None else None,
        )
    if created_ahead:
        report.execution.done["create_tags"] += len(created_ahead)
    report.preparation.prepared = preparing.prepared
    return report


def _stream(
    upload: Coroutine[Any, Any, Streamed], stop_checking: threading.Event
) -> asyncio.Task[Streamed]:
    """Run a first sync's uploads beside its check; if they fail, the check stops too (as it
    does when a read fails: the run's error is said at once, not after hashing the tree)."""

    def stop_if_failed(task: asyncio.Task[Streamed]) -> None:
        if not task.cancelled() and task.exception() is not None:
            stop_checking.set()

    streaming = asyncio.create_task(upload)
    streaming.add_done_callback(stop_if_failed)
    return streaming


async def _stopped(streaming: asyncio.Task[Streamed]) -> None:
    """Stop a stream the run gives up on (its in-flight uploads stay pending in the ledger);
    raise its own failure if it failed: that is why the check stopped."""
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    failure = None if streaming.cancelled() else streaming.exception()
    if failure is not None:
        raise failure from None


class _CheckStopped(Exception):
    """The run stopped while the tree was being checked (raised in the check's thread)."""


def _start_check(
    walked: Walked,
    mirror: MirrorConfig,
    ledger: Ledger,
    on_checked: Callable[[], None] | None,
    stop: threading.Event | None = None,
    handed: CheckedFiles | None = None,
) -> asyncio.Task[LocalSnapshot]:
    """Hash and check the walked files (what the ledger's cache does not vouch for) in a
    thread; it ends at the next file once `stop` is set (raising _CheckStopped). With `handed`,
    each checked file is handed over as it is known, and `handed` closed when the check ends."""
    cached = ledger.cached_files()

    def checked() -> None:
        if stop is not None and stop.is_set():
            raise _CheckStopped
        if on_checked is not None:
            on_checked()

    def check() -> LocalSnapshot:
        try:
            return check_tree(
                walked,
                mirror,
                cached,
                on_checked=checked,
                on_file=None if handed is None else handed.put,
            )
        finally:
            if handed is not None:
                handed.close()

    return asyncio.create_task(asyncio.to_thread(check))


async def _read_annotations(
    mirror: MirrorConfig, local: LocalSnapshot
) -> tuple[LocalSnapshot, dict[str, tuple[Region, ...]] | None, tuple[FileProblem, ...]]:
    """A detection mirror's boxes (syncd.detection): the snapshot with images whose annotation
    cannot be used turned into problems, each usable image's boxes by path, and the problems
    inside usable annotation files. A classification mirror: the snapshot as it is, and None."""
    if not mirror.annotations.detection or not local.root_exists:
        return local, None, ()
    annotated = await asyncio.to_thread(annotate, local, mirror)
    return annotated.local, annotated.regions, tuple(annotation_problems(annotated.problems))


def _trashing(mirror: MirrorConfig) -> bool:
    return mirror.trash_dir is not None and mirror.delete is DeletePolicy.MIRROR


def _trash(
    mirror: MirrorConfig, remote: RemoteSnapshot, paths: dict[str, tuple[str, ...]]
) -> Trash | None:
    """This run's trash (a folder named by the time now), or None without `trash_dir`."""
    if mirror.trash_dir is None or not _trashing(mirror):
        return None
    images = {i.image_id.lower(): i for i in remote.images}
    tags = {t.tag_id.lower(): t for t in remote.tags}

    def fallback(image_id: str) -> tuple[str, ...]:
        image = images.get(image_id)
        carried = [tags[t.lower()] for t in image.tag_ids if t.lower() in tags] if image else []
        folders = placement(carried, mirror)
        return folders if isinstance(folders, tuple) else ("",)

    return Trash(trash_folder(mirror.trash_dir, datetime.now(UTC)), paths, fallback)


async def require_project(client: TrainingClient, mirror: MirrorConfig, endpoint: str) -> None:
    """Raise ProjectMissingError if `mirror`'s project does not exist at the endpoint (and the
    ServiceError of any other failure to ask); return if it does."""
    try:
        await client.get_project(mirror.project_id)
    except ApiError as exc:
        raise service_error(exc, mirror, endpoint) from None


def service_error(exc: ApiError, mirror: MirrorConfig, endpoint: str = "") -> ServiceError:
    """The typed error an ApiError that stops work on `mirror` stands for (message included);
    `endpoint` (the config's) is named where it helps."""
    if isinstance(exc, AuthenticationError):
        return KeyRefusedError(
            f"the service refused the training key ({exc}); check the key's source "
            "(service.training_key) and that it belongs to this resource",
            mirror.name,
        )
    if isinstance(exc, ProjectNotFoundError):
        where = endpoint or "this endpoint"
        return ProjectMissingError(
            f"project {mirror.project_id} not found at {where} (mirror {mirror.name!r}: check "
            "its project_id)",
            mirror.name,
        )
    if exc.fatal:
        return ServiceUnreachableError(f"cannot reach the service: {exc}", mirror.name)
    return ServiceAnswerError(f"the service answered an error: {exc}", mirror.name)
