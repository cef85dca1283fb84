"""The ledger on real SQLite files: schema, refusals, per-item records, views, status."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from syncd.core.model import (
    ClassificationType,
    ImageOwner,
    LocalFile,
    LocalSnapshot,
    MarkerState,
    Problem,
    ProblemKind,
    RemoteImage,
    RemoteRegion,
    RemoteSnapshot,
    RemoteTag,
    TagType,
)
from syncd.errors import LedgerBusyError, LedgerRefusedError
from syncd.ledger import (
    SCHEMA_VERSION,
    Ledger,
    LedgerLock,
    RunOutcome,
    lock_path,
)

PID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger.open(tmp_path / "state" / "l.sqlite", project_id=PID) as led:
        yield led


def snapshot(*files: LocalFile, root_exists: bool = True) -> LocalSnapshot:
    return LocalSnapshot("/data", root_exists, MarkerState.PRESENT, files)


def lf(path: str, sha: str | None = "A", **kw: object) -> LocalFile:
    return LocalFile(
        path, 10, 5, 7, sha, ("Dog",), False, image_format="jpeg", hashed_at_ns=9, **kw
    )


def test_new_ledger_is_private_versioned_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "l.sqlite"
    with Ledger.open(path) as led:
        assert led.schema_version == SCHEMA_VERSION
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: p.write_bytes(b"not a database at all" * 100), "not a readable SQLite file"),
        (
            lambda p: sqlite3.connect(p).execute("CREATE TABLE photos (x)").connection.commit(),
            "not a syncd ledger",
        ),
        (
            lambda p: sqlite3.connect(p).executescript(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                "INSERT INTO meta VALUES ('schema_version', '99');"
            ),
            "newer syncd (schema 99",
        ),
    ],
    ids=["corrupt", "foreign-sqlite", "newer-schema"],
)
def test_unusable_files_are_refused_and_left_untouched(tmp_path: Path, prepare, message) -> None:
    path = tmp_path / "l.sqlite"
    prepare(path)
    before = path.read_bytes()
    with pytest.raises(LedgerRefusedError, match=r"move it away|upgrade syncd") as caught:
        Ledger.open(path)
    assert message in str(caught.value)
    assert path.read_bytes() == before


def test_a_ledger_of_another_project_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    Ledger.open(path, project_id=PID).close()
    with pytest.raises(LedgerRefusedError, match="belongs to project"):
        Ledger.open(path, project_id="99999999-2222-3333-4444-555555555555")
    Ledger.open(path, project_id=PID.upper()).close()  # ids compare case-insensitively


def test_transaction_rolls_back_on_error(ledger: Ledger) -> None:
    run = ledger.begin_run()
    with pytest.raises(RuntimeError), ledger.transaction():
        ledger.record_upload_result("A", run, image_id="i1")
        raise RuntimeError("crash mid-transaction")
    assert ledger.view().images == {}


def test_scan_round_trip_and_vanished_files(ledger: Ledger) -> None:
    run = ledger.begin_run()
    problem = Problem(ProblemKind.NOT_AN_IMAGE, "text")
    first = snapshot(lf("Dog/a.jpg"), lf("Dog/b.jpg", "B", problem=problem))
    assert ledger.record_scan(first, run) is True
    assert ledger.record_scan(first, ledger.begin_run()) is False  # the same tree: no change
    cached = ledger.cached_files()
    assert set(cached) == {"Dog/a.jpg", "Dog/b.jpg"}
    assert (cached["Dog/a.jpg"].sha256, cached["Dog/a.jpg"].hashed_at_ns) == ("A", 9)
    assert ledger.status().problems == {"not_an_image": 1}
    run2 = ledger.begin_run()
    assert ledger.record_scan(snapshot(lf("Dog/a.jpg")), run2) is True  # b.jpg went
    assert set(ledger.cached_files()) == {"Dog/a.jpg"}
    ledger.record_scan(snapshot(root_exists=False), ledger.begin_run())  # an unmounted root
    assert set(ledger.cached_files()) == {"Dog/a.jpg"}


def test_gone_paths_remember_where_an_images_content_was_until_the_image_goes(
    ledger: Ledger,
) -> None:
    run = ledger.begin_run()
    ledger.record_upload_result("A", run, image_id="i-a")
    ledger.record_upload_result("B", run, image_id="i-b")
    ledger.record_scan(snapshot(lf("Dog/a.jpg"), lf("Dog/b.jpg", "B"), lf("Dog/n.jpg", "N")), run)
    assert ledger.gone_paths() == {}

    # a.jpg deleted, b.jpg rewritten with other bytes, n.jpg (never uploaded) deleted
    ledger.record_scan(snapshot(lf("Dog/b.jpg", "C")), ledger.begin_run())
    assert ledger.gone_paths() == {"A": ("Dog/a.jpg",), "B": ("Dog/b.jpg",)}

    ledger.record_scan(snapshot(lf("Dog/a.jpg"), lf("Dog/b.jpg", "C")), ledger.begin_run())
    assert ledger.gone_paths() == {"B": ("Dog/b.jpg",)}  # a.jpg is back where it was
    ledger.record_image_deleted("i-b")
    assert ledger.gone_paths() == {}  # nothing left to name

    # moved, then moved again, then deleted: the last path it was seen at, not the first
    ledger.record_scan(snapshot(lf("Dog/a.jpg"), lf("Cat/a.jpg", "C")), ledger.begin_run())
    ledger.record_scan(snapshot(lf("Bird/a.jpg"), lf("Cat/a.jpg", "C")), ledger.begin_run())
    assert ledger.gone_paths() == {}  # the content is still in the tree: its file names it
    ledger.record_scan(snapshot(lf("Cat/a.jpg", "C")), ledger.begin_run())
    assert ledger.gone_paths() == {"A": ("Bird/a.jpg",)}


def test_a_first_scan_is_recorded_without_a_set_of_its_contents(ledger: Ledger) -> None:
    """A first sync records its 100k files while its uploads go on, at its peak: the record may
    hold a few pointers a file beyond the files, not a set of every content (built for the
    gone_paths a first sync has none of: ~50 B a content, 4 MB more at 100k, bench E)."""
    n = 20_000
    first = snapshot(*(lf(f"Dog/{i:06}.jpg", f"{i:064x}") for i in range(n)))
    run = ledger.begin_run()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert ledger.record_scan(first, run) is True
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    per_file = (peak - before) / n
    print(f"{per_file:.0f} B a file above the snapshot")
    assert per_file < 40
    assert len(ledger.cached_files()) == n


def test_a_settled_mark_lasts_until_the_next_run_begins(ledger: Ledger) -> None:
    ledger.begin_run()
    ledger.mark_settled("token-1")
    mark = ledger.settled()
    assert mark is not None and mark.token == "token-1"
    ledger.begin_run()  # a run cut short after this must not vouch for the one after it
    assert ledger.settled() is None


def test_remote_summary_counts_images_per_tag_without_loading_them(ledger: Ledger) -> None:
    assert ledger.remote_summary() is None  # never listed
    listing = RemoteSnapshot(
        PID,
        ClassificationType.MULTILABEL,
        (RemoteTag("t1", "Dog"), RemoteTag("t2", "Cat")),
        (
            RemoteImage("i1", frozenset({"t1"}), {}, "A"),
            RemoteImage("i2", frozenset({"t1", "t2"}), {}, "B"),
            RemoteImage("i3", frozenset(), {}, None),
        ),
        True,
    )
    ledger.record_remote_snapshot(listing, ledger.begin_run())
    summary = ledger.remote_summary()
    assert summary is not None
    assert (summary.images, dict(summary.images_per_tag)) == (3, {"t1": 2, "t2": 1})
    assert summary.tags == {RemoteTag("t1", "Dog"), RemoteTag("t2", "Cat")}
    assert summary.all_hashed is False  # i3's content is unknown

    # A run that ends in sync keeps the summary with its mark: the next reads it, not the images.
    ledger.mark_settled("token")
    mark = ledger.settled()
    assert mark is not None and mark.summary == summary
    assert dict(mark.summary.images_per_tag) == dict(summary.images_per_tag)


def test_upload_results_owners_and_view(ledger: Ledger) -> None:
    run = ledger.begin_run()
    ledger.record_upload_started(["A", "B", "C"], run)
    assert set(ledger.pending_uploads()) == {"A", "B", "C"}
    ledger.record_upload_result("A", run, image_id="I-A", tag_ids=["T-DOG"])
    ledger.record_upload_result("B", run, error="bad format", code="ErrorImageFormat")
    assert ledger.pending_uploads() == ("C",)  # a crash would leave C here
    ledger.record_adopted("f1", "D", run)
    view = ledger.view()
    assert view.images["i-a"].owner is ImageOwner.SYNCD
    assert view.images["i-a"].tag_ids == frozenset({"t-dog"})
    assert view.images["f1"].owner is ImageOwner.ADOPTED
    assert view.knows_files
    assert ledger.errors() == ()  # the executor records it once, under the file's path


def test_duplicate_answer_adopts_a_foreign_image(ledger: Ledger) -> None:
    run = ledger.begin_run()
    listing = RemoteSnapshot(PID, ClassificationType.MULTILABEL, (), (RemoteImage("f1"),), True)
    ledger.record_remote_snapshot(listing, run)
    assert ledger.view().images["f1"].owner is ImageOwner.FOREIGN
    assert not ledger.view().knows_files
    ledger.record_upload_result("A", run, image_id="f1")  # the service said OKDuplicate
    assert ledger.view().images["f1"].owner is ImageOwner.ADOPTED


def test_tags_and_image_tag_changes(ledger: Ledger) -> None:
    run = ledger.begin_run()
    ledger.record_tag(RemoteTag("t1", "Dog"), created_by_syncd=True)
    ledger.record_tag(RemoteTag("t2", "Negative", TagType.NEGATIVE))
    ledger.record_upload_result("A", run, image_id="i1", tag_ids=["t1"])
    ledger.record_image_tags("i1", added=["t2"], removed=["t1"])
    assert ledger.view().images["i1"].tag_ids == frozenset({"t2"})
    assert ledger.view().created_tag_ids == frozenset({"t1"})
    ledger.record_tag_deleted("t2")
    assert ledger.view().images["i1"].tag_ids == frozenset()
    ledger.record_image_deleted("i1")
    assert ledger.view().images == {}


def test_remote_snapshot_round_trip_is_the_cheap_path(ledger: Ledger) -> None:
    run = ledger.begin_run()
    assert ledger.cached_remote() is None  # never listed: a listing is needed
    ledger.record_upload_result("A", run, image_id="i1", tag_ids=["t1"])
    listing = RemoteSnapshot(
        PID,
        ClassificationType.MULTICLASS,
        (RemoteTag("t1", "Dog"), RemoteTag("t2", "Cat")),
        (
            RemoteImage("i1", frozenset({"t2"})),  # retagged in the portal
            RemoteImage(
                "i2", frozenset(), {"syncd": ledger.ledger_id}
            ),  # this ledger's, unrecorded
            RemoteImage("f1", frozenset({"t1"}), {"by": "portal"}),
            # the mirror's name (another install's, or the old mark) proves nothing
            RemoteImage("f2", frozenset(), {"syncd": "default"}),
        ),
        True,
    )
    ledger.record_remote_snapshot(listing, run)
    cached = ledger.cached_remote()
    assert cached is not None and not cached.complete
    assert cached.classification is ClassificationType.MULTICLASS
    assert {t.name for t in cached.tags} == {"Dog", "Cat"}
    images = {i.image_id: i for i in cached.images}
    assert images["i1"].sha256 == "A" and images["i1"].tag_ids == frozenset({"t2"})
    assert dict(images["f1"].metadata) == {"by": "portal"}
    owners = {k: v.owner for k, v in ledger.view().images.items()}
    assert owners == {
        "i1": ImageOwner.SYNCD,
        "i2": ImageOwner.SYNCD,
        "f1": ImageOwner.FOREIGN,
        "f2": ImageOwner.FOREIGN,
    }
    # a later complete listing without i2, f2 and tag t2 forgets them
    later = RemoteSnapshot(
        PID, ClassificationType.MULTICLASS, (RemoteTag("t1", "Dog"),), listing.images[::2], True
    )
    ledger.record_remote_snapshot(later, run)
    assert set(ledger.view().images) == {"i1", "f1"}
    assert [t.name for t in ledger.cached_remote().tags] == ["Dog"]


def test_runs_and_status(ledger: Ledger, tmp_path: Path) -> None:
    crashed = ledger.begin_run()
    run = ledger.begin_run()
    ledger.finish_run(run, RunOutcome.PARTIAL, {"uploaded": 3, "failed": 1})
    last = ledger.last_run()
    assert (last.run_id, last.outcome, dict(last.counts)) == (
        run,
        RunOutcome.PARTIAL,
        {"failed": 1, "uploaded": 3},
    )
    # the run that never finished is marked interrupted, not left running
    row = sqlite3.connect(ledger.path).execute(
        "SELECT outcome FROM runs WHERE run_id = ?", [crashed]
    )
    assert row.fetchone()[0] == "interrupted"
    status = ledger.status()
    assert (status.files, status.images, status.pending_uploads) == (0, {}, 0)


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger.open(path) as led:
        run = led.begin_run()
        led.record_upload_result("A", run, image_id="i1")
    with Ledger.open(path) as led:
        assert led.view().images["i1"].sha256 == "A"


def test_results_from_worker_threads_are_all_recorded(ledger: Ledger) -> None:
    run = ledger.begin_run()

    def worker(n: int) -> None:
        for k in range(50):
            ledger.record_upload_result(f"S{n}-{k}", run, image_id=f"i{n}-{k}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.view().images) == 200


# --- one writer per ledger ----------------------------------------------------------------------

_HOLD = """
import sys, time
from syncd.ledger import Ledger
ledger = Ledger.open(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
ledger.close()
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding `path`'s writer lock for `seconds` (once it printed "locked")."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def test_a_second_writer_gets_ledger_busy_naming_the_ledger_and_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    holder = _holder(path, 60)
    try:
        with pytest.raises(LedgerBusyError) as busy:
            Ledger.open(path, project_id=PID)
        assert str(path) in str(busy.value)
        assert f"pid {holder.pid}" in str(busy.value)
        # Reading needs no lock and writes nothing.
        with Ledger.open_read_only(path) as reader:
            assert reader.schema_version == SCHEMA_VERSION
    finally:
        holder.kill()
        holder.wait()
    with Ledger.open(path, project_id=PID):  # the kernel dropped the dead holder's lock
        pass


@pytest.mark.slow
def test_a_writer_waits_its_bound_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    holder = _holder(path, 0.5)
    try:
        with Ledger.open(path, project_id=PID, wait_lock=30):  # returns once the holder ends
            pass
    finally:
        holder.wait()


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with LedgerLock.acquire(path, command="syncd run"):  # the daemon's, held for its life
        with Ledger.open(path, project_id=PID) as first:
            first.begin_run()
        with Ledger.open(path, project_id=PID) as second:
            assert second.last_run() is not None
        assert "syncd run" in lock_path(path).read_text()
    assert lock_path(path).read_text() == ""  # released: no stale pid left


def test_read_only_open_of_a_new_empty_file_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    path.touch()
    with Ledger.open_read_only(path) as reader:
        assert reader.empty
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.sqlite"]
    assert path.stat().st_size == 0


def test_each_ledger_has_a_random_id_of_its_own_that_lasts(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "a.sqlite", project_id=PID) as a:
        first = a.ledger_id
        assert a.view().ledger_id == first
    with Ledger.open(tmp_path / "b.sqlite", project_id=PID) as b:
        other = b.ledger_id
    assert len(first) == 32 and int(first, 16) >= 0  # 128 random bits, hex
    assert first != other  # two installs of one mirror name never share it
    with Ledger.open(tmp_path / "a.sqlite", project_id=PID) as again:
        assert again.ledger_id == first


def test_a_ledger_from_before_the_id_gets_one_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Ledger.open(path, project_id=PID).close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = 'ledger_id'")
    db.close()
    with Ledger.open(path, project_id=PID) as led:
        made = led.ledger_id
        assert len(made) == 32
    with Ledger.open(path, project_id=PID) as led:
        assert led.ledger_id == made


_PLUGIN = """
import sqlite_utils


@sqlite_utils.hookimpl
def prepare_connection(conn):
    conn.execute("CREATE TABLE IF NOT EXISTS planted_by_plugin (x)")
"""


@pytest.mark.parametrize("read_only", [False, True])
def test_no_installed_sqlite_utils_plugin_touches_the_ledger(
    tmp_path: Path, read_only: bool
) -> None:
    # A sqlite-utils plugin installed in the same environment would run its hook on every
    # connection sqlite-utils opens; the ledger's must not be one of them.
    site = tmp_path / "site"
    (site / "planter-1.0.dist-info").mkdir(parents=True)
    (site / "planter-1.0.dist-info" / "METADATA").write_text("Name: planter\nVersion: 1.0\n")
    (site / "planter-1.0.dist-info" / "entry_points.txt").write_text(
        "[sqlite_utils]\nplanter = planter\n"
    )
    (site / "planter.py").write_text(_PLUGIN)
    ledger_path = tmp_path / "ledger.db"
    Ledger.open(ledger_path, project_id="p").close()  # created before the plugin is on the path
    opener = "open_read_only" if read_only else "open"
    script = (
        "import sqlite_utils.plugins as p, sys\n"
        "from syncd.ledger import Ledger\n"
        f"Ledger.{opener}(sys.argv[1], project_id='p').close()\n"
        "print(sorted(d.project_name for _, d in p.pm.list_plugin_distinfo()))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # The plugin is visible to sqlite-utils in this environment (the test would prove nothing
    # otherwise) ...
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite_utils; sqlite_utils.Database(memory=True);"
            "import sqlite_utils.plugins as p; print(len(p.pm.get_plugins()))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(probe.stdout) >= 1
    # ... and yet opening the ledger neither loads it nor lets it change the file.
    run = subprocess.run(
        [sys.executable, "-c", script, str(ledger_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "[]"
    tables = sqlite3.connect(ledger_path).execute("SELECT name FROM sqlite_master").fetchall()
    assert ("planted_by_plugin",) not in tables


def test_a_version_1_ledger_is_upgraded_keeping_its_data(tmp_path: Path) -> None:
    """A ledger written by the syncd before issue 15 (schema 1, made here from that schema's own
    text) gains the verdict and problem tables and keeps what it knew."""
    from syncd.ledger import _SCHEMA_V1

    path = tmp_path / "v1.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_V1)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("schema_version", "1"), ("project_id", PID), ("ledger_id", "ab" * 16)],
        )
        db.execute(
            "INSERT INTO local_files (path, size, mtime_ns, inode, sha256) "
            "VALUES ('Dog/a.jpg', 10, 5, 7, 'A')"
        )
    db.close()
    # `syncd status` reads it as it is, before any run upgrades it (read-only never migrates).
    with Ledger.open_read_only(path) as reader:
        assert reader.schema_version == 1
        state = reader.status()
        assert (state.files, state.problem_files) == (1, ())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "1",
        )
    db.close()

    with Ledger.open(path, project_id=PID) as led:
        assert led.schema_version == SCHEMA_VERSION == 5
        assert led.ledger_id == "ab" * 16
        assert set(led.cached_files()) == {"Dog/a.jpg"}
        assert led.rejected_content() == {} and led.problems() == ()
        led.record_rejected_content("A", "ErrorImageFormat", "cannot decode")
        assert led.rejected_content() == {"A": ("ErrorImageFormat", "cannot decode")}
    with Ledger.open_read_only(path) as reader:
        assert reader.rejected_content() == {"A": ("ErrorImageFormat", "cannot decode")}


def test_a_version_2_ledger_is_upgraded_and_its_files_are_read_once_more(tmp_path: Path) -> None:
    """A ledger of the syncd before issue 18 (schema 2) never decoded its files: it keeps its
    hashes, and marks every file as not yet checked, so the next scan reads and decodes it once."""
    from syncd.ledger import _SCHEMA_V1, _SCHEMA_V2

    path = tmp_path / "v2.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_V1)
        db.executescript(_SCHEMA_V2)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("schema_version", "2"), ("project_id", PID), ("ledger_id", "cd" * 16)],
        )
        db.execute(
            "INSERT INTO local_files (path, size, mtime_ns, inode, sha256, image_format,"
            " hashed_at_ns) VALUES ('Dog/a.jpg', 10, 5, 7, 'A', 'jpeg', 9000000000)"
        )
    db.close()

    with Ledger.open(path, project_id=PID) as led:
        assert led.schema_version == SCHEMA_VERSION == 5
        (cached,) = led.cached_files().values()
        assert (cached.sha256, cached.image_format) == ("A", "jpeg")
        assert cached.content_checked is False and cached.content_problem is None


def test_a_problem_keeps_its_first_seen_time_until_it_clears_or_changes_kind(
    ledger: Ledger,
) -> None:
    first = ledger.record_problems(
        [("a.jpg", "not_an_image", "text", "replace it"), ("b.jpg", "empty", "0 bytes", "fill")]
    )
    again = ledger.record_problems(
        [("a.jpg", "not_an_image", "text", "replace it"), ("b.jpg", "too_large", "7 MB", "shrink")]
    )
    assert again["a.jpg"] == first["a.jpg"]  # the same problem: still since the first run
    assert again["b.jpg"] >= first["b.jpg"]
    assert [(p.path, p.kind, p.since) for p in ledger.problems()] == [
        ("a.jpg", "not_an_image", first["a.jpg"]),
        ("b.jpg", "too_large", again["b.jpg"]),
    ]
    ledger.record_problems([])
    assert ledger.problems() == ()


def test_a_refused_upload_is_recorded_once_by_its_caller_not_by_hash(ledger: Ledger) -> None:
    run = ledger.begin_run()
    ledger.record_upload_started(["A"], run)
    ledger.record_upload_result("A", run, error="ErrorStorage", code="ErrorStorage")
    assert ledger.pending_uploads() == ()
    assert ledger.errors() == ()  # the executor records it under the file's path


def test_a_version_3_ledger_is_upgraded_to_keep_regions(tmp_path: Path) -> None:
    """A ledger of the syncd before issue 17 (schema 3) gains the regions table, keeps what it
    knew, and cannot vouch for a project's regions until a full listing has recorded them."""
    from syncd.ledger import _SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3

    path = tmp_path / "v3.sqlite"
    with sqlite3.connect(path) as db:
        for script in (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3):
            db.executescript(script)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("schema_version", "3"),
                ("project_id", PID),
                ("ledger_id", "ef" * 16),
                ("classification", "Multilabel"),
            ],
        )
        db.execute(
            "INSERT INTO images (image_id, sha256, owner, tag_ids) VALUES ('img1', 'A', 'syncd',"
            " '[\"t1\"]')"
        )
    db.close()
    # Read-only (status) reads a schema 3 file as it is: no regions table, no regions.
    with Ledger.open_read_only(path) as reader:
        assert reader.schema_version == 3
        cached = reader.cached_remote()
        assert cached is not None and cached.images[0].regions == ()

    with Ledger.open(path, project_id=PID) as led:
        assert led.schema_version == SCHEMA_VERSION >= 4
        assert led.regions_unknown()  # never listed with regions: a full listing first
        box = RemoteRegion("r1", "t1", 0.1, 0.2, 0.3, 0.4)
        run = led.begin_run()
        listed = RemoteImage("img1", frozenset({"t1"}), {}, "A", (box,))
        led.record_remote_snapshot(
            RemoteSnapshot(PID, ClassificationType.MULTILABEL, (), (listed,), complete=True), run
        )
        led.mark_regions_listed()
        assert not led.regions_unknown()
        cached = led.cached_remote()
        assert cached is not None and cached.images[0].sha256 == "A"
        assert cached.images[0].regions == (box,)


def test_region_changes_keep_ids_and_the_image_tags_follow_the_regions(ledger: Ledger) -> None:
    run = ledger.begin_run()
    ledger.record_upload_result("A", run, image_id="IMG", tag_ids=[])
    fork = RemoteRegion("R1", "T-FORK", 0.1, 0.1, 0.2, 0.2)
    knife = RemoteRegion("R2", "T-KNIFE", 0.5, 0.5, 0.2, 0.2)
    ledger.record_image_regions("IMG", [fork, knife])
    assert ledger.view().images["img"].tag_ids == {"t-fork", "t-knife"}
    ledger.record_regions_deleted(["R2"])
    assert ledger.view().images["img"].tag_ids == {"t-fork"}
    moved = RemoteRegion("r3", "t-knife", 0.6, 0.5, 0.2, 0.2)
    ledger.record_regions_added("IMG", [moved])
    cached = ledger.cached_remote()
    assert cached is None  # never listed: no classification recorded
    regions = ledger._image_regions()["img"]
    assert sorted(r.region_id for r in regions) == ["r1", "r3"]
    assert ledger.view().images["img"].tag_ids == {"t-fork", "t-knife"}
    # A crash between sending region calls and their answers leaves the mark.
    ledger.set_regions_pending(True)
    assert ledger.regions_unknown()
    ledger.set_regions_pending(False)
    ledger.mark_regions_listed()
    assert not ledger.regions_unknown()
    ledger.record_image_deleted("img")
    assert ledger._image_regions() == {}


def test_a_version_3_ledger_gains_the_prepared_content_and_keeps_its_files(tmp_path: Path) -> None:
    """Schema 5 (files.prepare): each file's own hash beside its key, its decoded facts, and the
    prepared content (key -> local hash, prepared hash); a schema-3 ledger keeps what it knew."""
    from syncd.ledger import _SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3

    path = tmp_path / "v3.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_V1 + _SCHEMA_V2 + _SCHEMA_V3)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("schema_version", "3"), ("project_id", PID), ("ledger_id", "ab" * 16)],
        )
        db.execute(
            "INSERT INTO local_files (path, size, mtime_ns, inode, sha256, content_checked) "
            "VALUES ('Dog/a.jpg', 10, 5, 7, 'A', 1)"
        )
    db.close()
    with Ledger.open(path, project_id=PID) as led:
        assert led.schema_version == 5
        cached = led.cached_files()["Dog/a.jpg"]
        assert (cached.sha256, cached.file_sha256, cached.facts) == ("A", "A", None)
        assert led.prepared() == {}
        led.record_prepared("KEY", "A", "v1:jpeg:q90:fit", b"prepared bytes")
    with Ledger.open_read_only(path) as reader:
        prepared_sha = hashlib.sha256(b"prepared bytes").hexdigest()
        assert reader.prepared() == {"KEY": ("A", prepared_sha)}


def test_prepared_content_no_file_and_no_image_holds_is_forgotten(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.sqlite", project_id=PID) as led:
        run = led.begin_run()
        led.record_prepared("HELD_BY_FILE", "S1", "v1:png:fit", b"one")
        led.record_prepared("HELD_BY_IMAGE", "S2", "v1:png:fit", b"two")
        led.record_prepared("OLD_RECIPE", "S1", "v1:jpeg:q90:fit", b"three")
        file = LocalFile("Dog/a.webp", 3, 1, 1, "HELD_BY_FILE", source_sha256="S1")
        led.record_scan(LocalSnapshot("/r", True, MarkerState.PRESENT, files=(file,)), run)
        led.record_upload_result("HELD_BY_IMAGE", run, image_id="i-2")
        led.forget_prepared_not_held()
        assert set(led.prepared()) == {"HELD_BY_FILE", "HELD_BY_IMAGE"}
