"""All human output of the CLI: summaries, tables, CSV, JSON documents, the progress line.

Public names: progress_line, ProgressLine, wait_text, connecting_text, error, interrupted, warnings,
json_document, reconcile_summary, skipped_by_extension, status_summary, last_run_words,
pull_summary, iteration_line, train_document, train_summary, review_document, review_table,
review_csv, links_made, image_where, kept_summary, SHOWN_ITEMS, PATHS_PER_IMAGE.

Text from the service or the disk (tag and file names, error messages) is passed through
`syncd.display.printable` before it reaches a terminal, and `csv_cell` before a spreadsheet: it is
shown, never obeyed (issue 13). `--json` output needs neither (json.dumps escapes).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from syncd.display import csv_cell, printable, printable_tree, some_paths

if TYPE_CHECKING:
    from syncd.api import Iteration, Wait
    from syncd.core.planner import EditRegions
    from syncd.core.regions import Box, Region
    from syncd.pull import PullReport
    from syncd.reconcile import ImageFiles, MirrorReport
    from syncd.review import Review, Verdict

SHOWN_ITEMS = 10  # items of each list a human summary shows
SHOWN_PROBLEMS = 5  # problem files a reconcile summary names (`status` and --json list more)
STATUS_PROBLEMS = 20  # problem files `syncd status` names (--json lists them all)
PATHS_PER_IMAGE = 3  # files named for one image (the same bytes in several folders)
_REDRAW_SECONDS = 0.1  # the progress line is redrawn at most this often


# --- errors, warnings, JSON ---------------------------------------------------------------------


def error(message: str, code: int, as_json: bool) -> int:
    """Print the one error line on stderr (and, under --json, the document on stdout); return
    `code`."""
    print(f"syncd: error: {printable(message)}", file=sys.stderr)
    if as_json:
        json_document({"exit_code": code, "error": message})
    return code


def interrupted() -> None:
    print("syncd: interrupted", file=sys.stderr)


def warnings(lines: Iterable[str], out: IO[str]) -> None:
    for warning in lines:
        print(f"syncd: warning: {warning}", file=out)


def json_document(document: dict[str, Any]) -> None:
    """One JSON document on stdout (json.dumps escapes what a terminal would obey)."""
    print(json.dumps(document))


# --- the progress line --------------------------------------------------------------------------

# How often the live line is redrawn while syncd waits (connecting, a retry's countdown): often
# enough that a countdown in whole seconds never looks stuck.
_TICK_SECONDS = 0.5


def _seconds(seconds: float) -> str:
    """A wait for a person: whole seconds, rounded up ("next in 4 s"), tenths under one."""
    return f"{math.ceil(seconds)} s" if seconds >= 1 else f"{max(seconds, 0.0):.1f} s"


def wait_text(wait: Wait, waited: float) -> str:
    """The live line for a wait `waited` seconds in: "service unreachable: attempt 3 of 8, next
    in 4 s"; once the wait is over, the attempt being made."""
    left = wait.seconds - waited
    if wait.attempt == 0:  # the pacer's spacing, before any attempt
        return f"{wait.reason}: next request in {_seconds(left)}" if left > 0 else wait.reason
    if left > 0:
        return f"{wait.reason}: attempt {wait.attempt} of {wait.of}, next in {_seconds(left)}"
    return f"{wait.reason}: attempt {wait.attempt + 1} of {wait.of} sent, waiting for an answer"


def connecting_text(endpoint: str, waited: float) -> str:
    where = "the embedded emulator" if endpoint == "embedded" else printable(endpoint)
    return f"connecting to {where}" + (f" ({_seconds(waited)})" if waited >= 1 else "")


class ProgressLine:
    """One live line on a terminal: done counts per kind and a rate, a status, or what syncd is
    waiting for (connecting, a retry, a throttled or paced wait), drawn by tqdm.

    While the line is up, whatever is written to sys.stderr (log lines, warnings) goes through
    tqdm.write, which clears the line, writes, and draws it again below: nothing glues onto it.
    tqdm is imported here, on a terminal only: a run in a pipe (CI, systemd, the benchmarks)
    never pays for it."""

    def __init__(self, out: IO[str], rate_kind: str = "uploads") -> None:
        self.out = out
        self.rate_kind = rate_kind
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self.drawn = 0.0
        self._status: str | None = None
        self._wait: tuple[Wait, float] | None = None  # the wait, and when it began
        self._connecting: tuple[str, float] | None = None  # the endpoint, and since when
        self._lock = threading.RLock()
        self._bar: Any = None  # the tqdm instance, made on the first draw
        self._stderr: IO[str] | None = None  # sys.stderr as it was before the line
        self._proxy: Any = None  # what sys.stderr is while the line is up (tqdm's DummyTqdmFile)
        self._ticking = threading.Event()
        self._closed = threading.Event()

    # --- what the engine and the client tell it

    def __call__(self, kind: str, n: int) -> None:
        """Count `n` more of `kind` (the engine's progress callback) and redraw now and then."""
        self.counts[kind] = self.counts.get(kind, 0) + n
        if time.monotonic() - self.drawn >= _REDRAW_SECONDS:
            self._draw()

    def show(self, text: str) -> None:
        """Replace the line with `text` (already printable)."""
        self._status = text
        self._draw()

    def connecting(self, endpoint: str) -> None:
        """Say syncd is connecting to `endpoint`, until the first answer."""
        self._connecting = (endpoint, time.monotonic())
        self._draw()
        self._tick()

    def waiting(self, wait: Wait) -> None:
        """Show a wait (TrainingClient.on_wait) until an answer or another wait replaces it. A
        paced wait does not hide a retry's wait that is still counting down."""
        now = time.monotonic()
        shown = self._wait
        if wait.attempt == 0 and shown and shown[0].attempt and shown[0].seconds > now - shown[1]:
            return
        self._wait = (wait, now)
        self._draw()
        self._tick()

    def answered(self, operation: str, outcome: str) -> None:
        """An attempt ended (TrainingClient.on_call): nothing is being waited for any more; a
        retry's wait, if any, is told right after this."""
        if self._wait is not None or self._connecting is not None:
            self._wait = self._connecting = None
            self._draw()

    # --- drawing

    def text(self) -> str:
        """What the line says now."""
        now = time.monotonic()
        if self._wait is not None:
            wait, began = self._wait
            return wait_text(wait, now - began)
        if self._connecting is not None:
            endpoint, since = self._connecting
            return connecting_text(endpoint, now - since)
        if self._status is not None:
            return self._status
        if not self.counts:
            return ""
        rate = self.counts.get(self.rate_kind, 0) / max(now - self.started, 1e-9)
        parts = [f"{k.replace('_', ' ')} {v}" for k, v in self.counts.items()]
        return " · ".join(parts) + f" · {rate:.1f} {self.rate_kind}/s"

    def _draw(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            if self._bar is None:
                self._open()
            self.drawn = time.monotonic()
            self._bar.set_description_str(self.text(), refresh=True)

    def _open(self) -> None:
        from tqdm import tqdm
        from tqdm.contrib import DummyTqdmFile

        self._bar = tqdm(
            file=self.out,
            bar_format="{desc}",  # the line is ours; tqdm keeps it in place and cut to the width
            leave=False,  # cleared when closed: the summary follows
            dynamic_ncols=True,
            mininterval=_REDRAW_SECONDS,
        )
        if self.out is sys.stderr:
            self._stderr = sys.stderr
            self._proxy = sys.stderr = DummyTqdmFile(sys.stderr)

    def _tick(self) -> None:
        """Redraw every _TICK_SECONDS while a wait or a connection is shown (a countdown)."""
        if self._ticking.is_set():
            return
        self._ticking.set()

        def run() -> None:
            while not self._closed.wait(_TICK_SECONDS):
                if self._wait is not None or self._connecting is not None:
                    self._draw()

        threading.Thread(target=run, name="syncd-progress-line", daemon=True).start()

    def close(self) -> None:
        """Clear the line and give sys.stderr back."""
        with self._lock:
            self._closed.set()
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if self._stderr is not None:
                sys.stderr = self._stderr
                leftover = "".join(self._proxy._buf)
                self._proxy._buf = []  # written below, not again when the proxy is collected
                if leftover:  # a write with no newline yet
                    sys.stderr.write(leftover)
                self._stderr = self._proxy = None


@contextlib.contextmanager
def progress_line(
    out: IO[str], enabled: bool, rate_kind: str = "uploads"
) -> Iterator[ProgressLine | None]:
    """A ProgressLine on `out` if `enabled` (a terminal, no --json), else None; the line is
    cleared when the block ends, however it ends."""
    if not enabled:
        yield None
        return
    line = ProgressLine(out, rate_kind)
    try:
        yield line
    finally:
        line.close()


# --- reconcile ----------------------------------------------------------------------------------


def _listed(out: IO[str], name: str, lines: list[str]) -> None:
    if lines:
        print(f"  {name} ({len(lines)}):", file=out)
        for line in lines[:SHOWN_ITEMS]:
            print(f"    {line}", file=out)
        if len(lines) > SHOWN_ITEMS:
            print(f"    ... and {len(lines) - SHOWN_ITEMS} more (--json lists all)", file=out)


def reconcile_summary(report: MirrorReport, out: IO[str]) -> None:
    """The human summary of one mirror's reconcile."""
    data = printable_tree(report.to_json())  # server text and file names: shown, never obeyed
    title = f"mirror {report.name} -> project {report.project_id} at {data['endpoint']}"
    if report.dry_run:
        title += " (dry run: nothing was changed)"
    print(title, file=out)
    local, remote = data["local"], data["remote"]
    hashed = (
        "unchanged since the last run in sync"
        if local["unchanged"]
        else f"{local['hashed']} hashed and {local['decoded']} decoded this run"
    )
    print(f"  local: {local['ok']} files ok, {local['problems']} with problems, {hashed}", file=out)
    if local["skipped_by_extension"]:
        print(f"  {skipped_by_extension(local['skipped_by_extension'])}", file=out)
    for line in prepare_lines(data["prepare"]):
        print(f"  {line}", file=out)
    print(
        f"  remote: {remote['images']} images ({remote['listing']} check"
        f", {remote['downloads_hashed']} originals hashed), {data['api_calls']} API calls",
        file=out,
    )
    # Here, not at the top: this module is imported at every start, the engine only when needed.
    from syncd.reconcile import ACTION_KINDS

    rows = []
    for kind in ACTION_KINDS:
        planned = data["planned"][kind]
        done = "-" if report.dry_run else str(data["done"][kind])
        if planned or (done not in ("-", "0")):
            rows.append((kind, planned, done))
    # 14 fits every classification kind; a detection run's `regions_created` widens it.
    width = max([14, *(len(kind) + 1 for kind, _, _ in rows)])
    print(f"  {'action':<{width}}{'planned':>9}{'done':>9}", file=out)
    for kind, planned, done in rows:
        print(f"  {kind:<{width}}{planned:>9}{done:>9}", file=out)
    if report.dry_run:
        _plan_items(report, out)
    _problem_files(out, data["problems"], SHOWN_PROBLEMS, "`syncd status` lists more, --json all")
    _listed(
        out,
        "failed",
        [f"{f['operation']} {_failed_subject(report, f)}: {f['message']}" for f in data["failed"]],
    )
    _listed(out, "conflicts", [_conflict_line(c) for c in data["conflicts"]])
    _listed(out, "warnings", data["warnings"])
    kept_summary(report, out)
    if data["skipped_deletes"]:
        print(f"  deletes skipped: {data['skipped_deletes']} (something failed earlier)", file=out)
    if data["refused"]:
        print(f"  {data['refused']['message']}", file=out)
    training = data.get("training")
    if training:
        if training["started"]:
            what = f"started {training['iteration']} ({training['iteration_id']})"
        else:
            what = f"not started: {training['reason']}"
        changed = f"{training['changed_images']} images changed, threshold {training['threshold']}"
        print(f"  training: {what} ({changed})", file=out)
    verdict = "in sync" if report.in_sync else "not everything is mirrored"
    if report.dry_run:
        verdict = "plan only"
    print(f"  result: {verdict}", file=out)


def prepare_lines(prepare: dict[str, Any]) -> list[str]:
    """files.prepare in the summary: what it prepared and re-prepares, or, off, what it would
    take (syncd.prepare.PrepareSummary)."""
    lines = []
    if not prepare["enabled"] and prepare["would_take"]:
        parts = []
        if prepare["would_take_skipped"]:
            parts.append(f"{prepare['would_take_skipped']} skipped for their format")
        if prepare["would_take_refused"]:
            parts.append(f"{prepare['would_take_refused']} refused for their size")
        lines.append(
            f"files.prepare would take {prepare['would_take']} of these files "
            f"({', '.join(parts)}): it converts and scales down a copy to send, the file stays "
            "as it is (config.example.yaml)"
        )
    if prepare["prepared"]:
        lines.append(f"prepared: {_files(prepare['prepared'])} converted or scaled down and sent")
    if prepare["reprepare"]:
        lines.append(
            f"re-prepare: {_files(prepare['reprepare'])} already in the project prepared again "
            "(their files.prepare settings changed); each old image goes as `delete` says"
        )
    return lines


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def skipped_by_extension(counts: dict[str, int]) -> str:
    """`skipped 12 .webp, 3 .tiff: not accepted by the service` (counts most first)."""
    listed = ", ".join(f"{n} {suffix}" for suffix, n in counts.items())
    return f"skipped {listed}: not accepted by the service"


def _conflict_line(conflict: dict[str, Any]) -> str:
    """One conflict on one line: its paths capped (`and 105 more`)."""
    line = f"{conflict['kind']}: {conflict['detail']}"
    return f"{line}: {some_paths(conflict['paths'])}" if conflict["paths"] else line


def _problem_files(
    out: IO[str], problems: list[dict[str, str]], shown: int, more: str, *, since: bool = False
) -> None:
    """Name the first `shown` problem files (already printable): path, reason, what to do."""
    if not problems:
        return
    print(f"  problems ({len(problems)} files):", file=out)
    for p in problems[:shown]:
        when = f" since {_when(p['since'])}" if since and p.get("since") else ""
        print(f"    {p['path']}: {p['kind']} ({p['detail']}){when}; {p['advice']}", file=out)
    if len(problems) > shown:
        print(f"    ... and {len(problems) - shown} more ({more})", file=out)


def image_where(files: ImageFiles, note: str = "") -> str:
    """One image named by its file(s) and id: `Cat/a.jpg (image <id>)`; content no file holds
    now by its last known path (`Dog/a.jpg (gone; image <id>)`); none known, plainly."""
    more = len(files.paths) - PATHS_PER_IMAGE
    where = ", ".join(files.paths[:PATHS_PER_IMAGE]) + (f" +{more} more" if more > 0 else "")
    about = [f"image {files.image_id}"]
    if not files.paths:
        where = "no local file; foreign" if files.foreign else "no local file known"
    elif files.gone:
        about.insert(0, "gone")
    if note:
        about.append(note)
    return printable(f"{where} ({'; '.join(about)})")


# Failures whose subject is an image id (the others name a path, a sha256 or a tag already).
_IMAGE_OPERATIONS = frozenset({"remove_tags", "add_tags", "delete_image", "trash", "download"})


def _failed_subject(report: MirrorReport, failure: dict[str, Any]) -> str:
    """A failure's subject; an image by its file(s) and id."""
    subject = str(failure["subject"])
    if failure["operation"] in _IMAGE_OPERATIONS:
        return image_where(report.image_files(subject))
    return subject


def _conflict_lines(report: MirrorReport) -> list[str]:
    """Conflicts about some content: its files, and the image that holds it, if any."""
    lines = []
    for c in report.plan.conflicts:
        if c.sha256 is None:
            continue  # a note about tags, not about one image's content
        image_id = report.image_of(c.sha256)
        held = f"image {image_id}" if image_id else "not in the project"
        more = len(c.paths) - PATHS_PER_IMAGE
        where = ", ".join(c.paths[:PATHS_PER_IMAGE]) + (f" +{more} more" if more > 0 else "")
        lines.append(f"{where} ({held}): {c.kind}: {c.detail}")
    return lines


def _plan_items(report: MirrorReport, out: IO[str]) -> None:
    plan = report.plan
    where = report.image_files
    items: list[tuple[str, list[str]]] = [
        ("create tag", [f"{a.name} ({a.type})" for a in plan.create_tags]),
        (
            "upload",
            [f"{a.paths[0]} -> {list(a.tag_names)}{_boxes(a.regions)}" for a in plan.uploads],
        ),
        ("adopt", [image_where(where(a.image_id)) for a in plan.adopts]),
        ("edit boxes", [_region_edit_line(e) for e in plan.edit_regions]),
        (
            "remove tags",
            [f"{image_where(where(a.image_id))}: {list(a.tag_names)}" for a in plan.remove_tags],
        ),
        (
            "add tags",
            [f"{image_where(where(a.image_id))}: {list(a.tag_names)}" for a in plan.add_tags],
        ),
        (
            "delete image",
            [image_where(where(a.image_id), str(a.reason)) for a in plan.delete_images],
        ),
        ("delete tag", [a.name for a in plan.delete_tags]),
        ("conflict", _conflict_lines(report)),
    ]
    for verb, lines in items:
        for line in lines[:SHOWN_ITEMS]:
            print(f"    {verb}: {printable(line)}", file=out)
        if len(lines) > SHOWN_ITEMS:
            every = " (--json lists every delete)" if verb == "delete image" else ""
            print(f"    {verb}: ... and {len(lines) - SHOWN_ITEMS} more{every}", file=out)


def _boxes(regions: Sequence[Region]) -> str:
    """`, 2 boxes` for an upload with boxes (object detection); empty without."""
    if not regions:
        return ""
    return f", {len(regions)} box{'es' if len(regions) != 1 else ''}"


def _region_names(regions: Sequence[Region]) -> str:
    """`2 boxes [fork, knife]`: how many, and their tags (each once, by name)."""
    names = sorted({r.tag for r in regions}, key=str.casefold)
    return f"{len(regions)} box{'es' if len(regions) != 1 else ''} {names}"


def _region_edit_line(edit: EditRegions) -> str:
    """`images/a.jpg: delete 1 box ['knife'], create 1 box ['knife']` (the image by its file)."""
    parts = []
    if edit.delete:
        parts.append(f"delete {_region_names(edit.deleted)}")
    if edit.create:
        parts.append(f"create {_region_names(edit.create)}")
    more = f" (+{len(edit.paths) - 1} more files)" if len(edit.paths) > 1 else ""
    return f"{edit.paths[0]}{more}: {', '.join(parts)}"


# What each reason to keep a remote image means, in the summary's words (KeptGroup.why).
_KEPT_WHY = {
    "policy_keep": "under `delete: keep` (no local file)",
    "foreign": "foreign: not this ledger's upload or adoption, never deleted",
    "local_problem": "content still in the tree, in a file with a problem or a conflict",
    "not_listed": "foreign, and not in this run's listing",
    "unidentified": "content unknown (never hashed), never deleted",
    "refused": "refused by the guard",
}


def kept_summary(report: MirrorReport, out: IO[str]) -> None:
    """What stays in the project though no wanted file holds it, and why: a count per reason,
    then the first few images by file and id. Deletes the guard refused count as kept."""
    groups = report.kept_groups
    if not groups:
        return
    print(f"  kept, not deleted ({sum(g.count for g in groups)}):", file=out)
    for group in groups:
        why = _KEPT_WHY.get(group.why, group.why)
        detail = f": {group.detail}" if group.detail else ""
        print(f"    {why}{printable(detail)} ({group.count}):", file=out)
        for files in group.examples:
            print(f"      {image_where(files)}", file=out)
        if group.count > len(group.examples):
            print(f"      ... and {group.count - len(group.examples)} more", file=out)


# --- status -------------------------------------------------------------------------------------


def status_summary(entry: dict[str, Any], out: IO[str]) -> None:
    """The human account of one mirror's ledger (a `status` entry), and the service's counts."""
    entry = printable_tree(entry)
    print(
        f"mirror {entry['name']} -> project {entry['project_id']} at {entry['endpoint']}", file=out
    )
    print(f"  root: {entry['root']}", file=out)
    print(f"  ledger: {entry['ledger']}", file=out)
    if not entry.get("synced"):
        print("  never synced (run `syncd reconcile`)", file=out)
    else:
        problems = ", ".join(f"{k} {v}" for k, v in entry["problems"].items()) or "none"
        images = ", ".join(f"{k} {v}" for k, v in entry["images"].items()) or "none"
        print(f"  files: {entry['files']} ({entry['files_ok']} ok; problems: {problems})", file=out)
        print(f"  images: {entry['images_total']} ({images}); tags: {entry['tags']}", file=out)
        if entry["pending_uploads"]:
            print(f"  uploads never answered: {entry['pending_uploads']}", file=out)
        last = entry["last_run"]
        print(f"  last run: {last_run_words(last)}", file=out)
        if last["error"]:
            print(f"    error: {last['error']}", file=out)
        _problem_files(
            out, entry.get("problem_files", []), STATUS_PROBLEMS, "--json lists all", since=True
        )
        for error in entry["recent_errors"][:SHOWN_ITEMS]:
            print(
                f"  error {error['at']} {error['operation']} {error['subject']}: "
                f"{error['message']}",
                file=out,
            )
    if "remote" in entry:
        remote = entry["remote"]
        verdict = "agrees with" if entry["remote_agrees"] else "differs from"
        print(
            f"  service: {remote['images']} images, {remote['tags']} tags ({verdict} the ledger)",
            file=out,
        )


# The last run's outcome (syncd.ledger.RunOutcome) and counts (the plan's, `done_<kind>`), in words.
_OUTCOME_WORDS = {
    "ok": "in sync",
    "partial": "finished, not everything mirrored",
    "failed": "failed",
    "interrupted": "interrupted (the process stopped mid-run)",
    "running": "still running",
}
_ACTION_WORDS = (  # (kind, verb, noun) in the order a run does them
    ("create_tags", "created", "tag"),
    ("adopts", "adopted", "image"),
    ("uploads", "uploaded", "image"),
    ("edit_regions", "changed the boxes of", "image"),  # object detection
    ("regions_deleted", "deleted", "region"),
    ("regions_created", "created", "region"),
    ("remove_tags", "removed tags from", "image"),
    ("add_tags", "added tags to", "image"),
    ("delete_images", "deleted", "image"),
    ("delete_tags", "deleted", "tag"),
)
_REPORT_WORDS = (  # (kind, one, many): what the plan found but did not do
    ("refused_deletes", "delete refused", "deletes refused"),
    ("conflicts", "conflict", "conflicts"),
    ("kept", "remote image kept", "remote images kept"),
    ("unidentified", "unidentified image", "unidentified images"),
)


def _when(stamp: str | None) -> str:
    """An ISO timestamp from the ledger as `2026-12-02 15:26:59 UTC` (as it is if unreadable)."""
    if not stamp:
        return "-"
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def last_run_words(last: dict[str, Any]) -> str:
    """A `status` entry's last run as a sentence: `#3 in sync, 2026-12-02 15:26:59 UTC: created
    4 tags, uploaded 12 images; 8 API calls` (`uploaded 11 of 12 images` when some failed)."""
    counts: dict[str, int] = last["counts"]
    outcome = _OUTCOME_WORDS.get(last["outcome"], last["outcome"])
    when = _when(last["finished_at"] or last["started_at"])
    if not counts:  # a run that stopped before it counted anything (failed, interrupted)
        return f"#{last['run_id']} {outcome}, {when}"
    parts = []
    for kind, verb, noun in _ACTION_WORDS:
        planned, done = counts.get(kind, 0), counts.get(f"done_{kind}", 0)
        if planned or done:
            amount = f"{done} of {planned}" if done < planned else str(done)
            parts.append(f"{verb} {amount} {noun}{'' if max(planned, done) == 1 else 's'}")
    for kind, one, many in _REPORT_WORDS:
        if counts.get(kind):
            parts.append(f"{counts[kind]} {one if counts[kind] == 1 else many}")
    text = f"#{last['run_id']} {outcome}, {when}: {', '.join(parts) or 'nothing to change'}"
    calls = counts.get("api_calls")
    if calls is not None:
        text += f"; {calls} API call{'' if calls == 1 else 's'}"
    return text


# --- pull ---------------------------------------------------------------------------------------


def pull_summary(report: PullReport, out: IO[str]) -> None:
    """The human summary of a pull."""
    where = printable(f"{report.into} from {report.endpoint}")
    print(f"pulled project {report.project_id} into {where}", file=out)
    print(
        f"  images: {report.images}; downloaded {report.downloaded}"
        f" ({report.bytes_downloaded / 1e6:.1f} MB), already here and verified {report.verified},"
        f" extra links/copies {report.extra_files}; {report.api_calls} API calls",
        file=out,
    )
    kept = [(path, f"image {image_id} differs: kept as it is") for path, image_id in report.kept]
    for title, rows in (
        ("skipped", report.skipped),
        ("failed", report.failed),
        ("kept, edited here", kept),
    ):
        _listed(out, title, [f"{printable(subject)}: {printable(why)}" for subject, why in rows])
    pull_export_lines(report, out)
    if report.complete:
        verdict = "complete"
    elif report.changed:
        verdict = "the project changed during the pull: pull again"
    elif not report.verified_ok:
        verdict = "the export does not read back as the project: see above"
    else:
        verdict = "not every image was pulled"
    print(f"  result: {verdict}", file=out)


def pull_export_lines(report: PullReport, out: IO[str]) -> None:
    """`pull --format`: what was written, what the format leaves out, the read-back, changes."""
    export = report.export
    if report.format != "folders":
        split = ", ".join(f"{part} {n}" for part, n in export.split.items())
        files = len(export.files)
        print(
            f"  format: {report.format} ({report.kind} project); {files} annotation"
            f" file{'' if files == 1 else 's'}" + (f"; lines: {split}" if split else ""),
            file=out,
        )
    left_out = [f"{n} {printable(why)}" for why, n in sorted(export.left_out.items())]
    _listed(out, "left out by the format's rules", left_out)
    held = [f"{printable(what)} ({n or 'none here'})" for what, n in report.cannot_hold]
    if held:
        print(f"  not kept by {report.format}: {'; '.join(held)}", file=out)
    check = report.verify
    if report.not_verified:
        print(f"  verified: no; {printable(report.not_verified)}", file=out)
    elif check is not None:
        boxes = f", {check.boxes} boxes within 1 px" if check.boxes else ""
        if check.ok:
            print(
                f"  verified: read back with {check.reader}: {check.images} images as in the"
                f" project{boxes}",
                file=out,
            )
        else:
            more = check.more_differences
            print(
                f"  verified: read back with {check.reader}: {check.images} images read,"
                f" {check.expected} expected",
                file=out,
            )
            lines = [printable(d) for d in check.differences]
            if more:
                lines.append(f"... and {more} more differences")
            _listed(out, "differences", lines)
    if report.changed:
        shown = ", ".join(printable(c) for c in report.changed)
        print(f"  changed in the project during the pull: {shown}", file=out)


# --- train --------------------------------------------------------------------------------------


def iteration_line(iteration: Iteration, elapsed: float) -> str:
    """The progress line's text while `train --wait` polls."""
    return printable(f"{iteration.name}: {iteration.status} ({elapsed:.0f} s)")


def train_document(iteration: Iteration, endpoint: str, exit_code: int) -> dict[str, Any]:
    """`train --json`'s document."""
    return {
        "exit_code": exit_code,
        "endpoint": endpoint,
        "iteration_id": str(iteration.id),
        "name": iteration.name,
        "status": iteration.status,
        "trained_at": iteration.trained_at.isoformat() if iteration.trained_at else None,
    }


def train_summary(iteration: Iteration, endpoint: str, waited: bool, out: IO[str]) -> None:
    """The one line `train` prints: the iteration, where, and its status."""
    shown = printable(f"{iteration.name} ({iteration.id}) at {endpoint}: {iteration.status}")
    print(shown if waited else f"{shown} (started; --wait waits)", file=out)


# --- review -------------------------------------------------------------------------------------


def _where(v: Verdict) -> list[str]:
    return list(v.paths) or [f"(not local) image {v.image_id}"]


def review_table(review: Review, out: IO[str]) -> None:
    """A human table: one line per file, worst first."""
    if review.detection:
        review_detection_table(review, out)
        return
    it = review.iteration
    print(
        printable(f"{it.name} ({it.id})") + f": {len(review.listed)} of {review.reviewed} images"
        f" listed (own tag under {review.threshold:g}, or another tag wins)",
        file=out,
    )
    if not review.listed:
        return
    rows = [
        (
            str(rank),
            printable(where),
            printable("+".join(v.expected)),
            f"{v.expected_probability:.2f}",
            printable(v.predicted),
            f"{v.predicted_probability:.2f}",
        )
        for rank, v in enumerate(review.listed, 1)
        for where in _where(v)
    ]
    header = ("#", "file", "tagged", "p", "predicted", "p")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


def links_made(links: int, into: Path, out: IO[str]) -> None:
    print(f"{links} symlinks under {into} (<tagged>→<predicted>/)", file=out)


CSV_FIELDS = (
    "image_id",
    "path",
    "local",
    "expected",
    "expected_probability",
    "predicted",
    "predicted_probability",
    "reason",
)


def review_csv(review: Review, out: IO[str]) -> None:
    """CSV, one row per (image, local file); a not-local image has one row with no path. Cells a
    spreadsheet would run as formulas are neutralised (`csv_cell`); numbers stay numbers."""
    if review.detection:
        review_detection_csv(review, out)
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for v in review.listed:
        for path in v.paths or ("",):
            row = (
                v.image_id,
                path,
                "yes" if v.local else "no",
                "+".join(v.expected),
                f"{v.expected_probability:.6f}",
                v.predicted,
                f"{v.predicted_probability:.6f}",
                v.reason,
            )
            writer.writerow([csv_cell(cell) for cell in row])


def review_document(review: Review) -> dict[str, Any]:
    """`review --format json`'s document."""
    it = review.iteration
    return {
        "iteration": {"id": str(it.id), "name": it.name, "status": it.status},
        "threshold": review.threshold,
        "reviewed": review.reviewed,
        "listed": [v.to_json() for v in review.listed],
        "detections": [d.to_json() for d in review.detections],
    }


# --- review of a detection iteration --------------------------------------------------------------

BOX_PROBLEMS = {
    "missed": "box missed",
    "other tag": "box found as another tag",
    "no box": "confident prediction, no box",
}


def _box_text(box: Box) -> str:
    return f"{box.left:.3f},{box.top:.3f},{box.width:.3f},{box.height:.3f}"


def review_detection_table(review: Review, out: IO[str]) -> None:
    """A human table for a detection iteration: one line per finding, images with most first."""
    from syncd.review import MATCH_IOU

    it = review.iteration
    findings = sum(len(d.findings) for d in review.detections)
    print(
        printable(f"{it.name} ({it.id})") + f": {len(review.detections)} of {review.reviewed}"
        f" images listed, {findings} boxes (IoU >= {MATCH_IOU:g}, p >= {review.threshold:g})",
        file=out,
    )
    rows = [
        (
            str(rank),
            printable(where),
            BOX_PROBLEMS.get(f.kind, f.kind),
            printable(f.tag),
            _box_text(f.box),
            printable(f.predicted) if f.kind == "other tag" else "",
            f"{f.probability:.2f}" if f.probability else "",
        )
        for rank, d in enumerate(review.detections, 1)
        for where in (list(d.paths) or [f"(not local) image {d.image_id}"])
        for f in d.findings
    ]
    header = ("#", "file", "finding", "tag", "box (l,t,w,h)", "predicted", "p")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


DETECTION_CSV_FIELDS = (
    "image_id",
    "path",
    "local",
    "finding",
    "tag",
    "left",
    "top",
    "width",
    "height",
    "predicted",
    "probability",
)


def review_detection_csv(review: Review, out: IO[str]) -> None:
    """CSV for a detection iteration: one row per (finding, local file)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DETECTION_CSV_FIELDS)
    for d in review.detections:
        for path in d.paths or ("",):
            for f in d.findings:
                row = (
                    d.image_id,
                    path,
                    "yes" if d.local else "no",
                    f.kind,
                    f.tag,
                    f"{f.box.left:.4f}",
                    f"{f.box.top:.4f}",
                    f"{f.box.width:.4f}",
                    f"{f.box.height:.4f}",
                    f.predicted,
                    f"{f.probability:.6f}",
                )
                writer.writerow([csv_cell(cell) for cell in row])


def overlays_made(links: int, into: Path, out: IO[str]) -> None:
    print(f"{links} symlinks, each with its .overlay.jpg, under {into}", file=out)
