"""Bad inputs beyond test_bad_inputs.py: odd names, symlink loops, files changing under the run,
quotas, a wrong project, an endpoint that is not the service, ledgers syncd must not touch.

Each: a specific message naming the file or key, the run going on where it can, nothing lost
(the invariant checker agrees with the tree afterwards, wherever the run could finish).
"""

from __future__ import annotations

import http.server
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from syncd.emulator.limits import DEFAULT_QUOTAS, Quotas
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import STANDARD_TREE, Sandbox, sha256, write_tree
from tests.support import TEST_KEY
from tests.support.images import image_bytes, write_image
from tests.support.invariants import check_invariants
from tests.support.spec_check import SpecChecker

API = "/customvision/v3.3/training"


def _service(box: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=box.endpoint, headers={"Training-Key": TEST_KEY}, timeout=30)


def _violations(box: Sandbox, skip: frozenset[str] = frozenset()) -> list[str]:
    with _service(box) as service:
        return [
            str(v)
            for v in check_invariants(box.root, box.ledger, service, box.project_id, skip=skip)
        ]


def _new_project(client: httpx.Client) -> str:
    r = client.post("/projects", params={"name": "bad", "classificationType": "Multilabel"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@contextmanager
def _own_emulator(
    box: Sandbox,
    spec_checker: SpecChecker,
    *,
    quotas: Quotas = DEFAULT_QUOTAS,
    on_response: Callable[[str, str], None] | None = None,
) -> Iterator[Sandbox]:
    """Point the sandbox at a fresh emulator with these quotas; `on_response(method, path)` runs
    in the server for every API response (a seam between syncd's scan and its uploads)."""

    def observe(
        method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        spec_checker.observe(method, path, status, headers, body)
        if on_response is not None:
            on_response(method, path)

    with EmulatorServer(training_key=TEST_KEY, quotas=quotas, response_observer=observe) as server:
        client = httpx.Client(
            base_url=f"{server.url}{API}", headers={"Training-Key": TEST_KEY}, timeout=30
        )
        with client:
            box.endpoint = server.url
            box.http = client
            box.project_id = _new_project(client)
            box.write_config()
            yield box


# --- names ----------------------------------------------------------------------------------


def test_names_with_spaces_newlines_and_emoji_are_mirrored(sandbox: Sandbox) -> None:
    names = {
        "Dog/my dog at the beach.jpg": 501,
        "Dog/line\nbreak.jpg": 502,
        "Dog/🐶 rex.png": 503,
        "Cat 🐱/tab\tname.jpg": 504,
        "Bird/   leading spaces.jpg": 505,
        'Bird/"quoted" & <angled>.gif': 506,
    }
    write_tree(sandbox.root, names)

    run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == len(names)
    assert sandbox.content() == sandbox.expected()
    assert "cat 🐱" in {t.casefold() for tags in sandbox.content().values() for t in tags}
    assert _violations(sandbox) == []


def test_a_non_utf8_file_name_is_reported_and_the_rest_goes(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    bad = os.fsencode(sandbox.root / "Dog") + b"/caf\xe9.jpg"  # Latin-1 bytes, not UTF-8
    with open(bad, "wb") as f:
        f.write(image_bytes(510))
    bad_folder = os.fsencode(sandbox.root) + b"/\xff\xfe"
    os.mkdir(bad_folder)
    with open(bad_folder + b"/x.jpg", "wb") as f:
        f.write(image_bytes(511))

    run = sandbox.reconcile()

    assert run.exit_code == 1, str(run)
    problems = {p["kind"] for p in run.mirror["problems"]}
    assert problems == {"non_utf8_name"}, str(run)
    assert len(run.mirror["problems"]) == 2, str(run)
    assert run.mirror["done"]["uploads"] == len(STANDARD_TREE)
    # The rest is mirrored; the checker is told to skip the two names syncd must refuse.
    assert "caf" in run.stdout + run.stderr
    skip = frozenset({"Dog/caf\udce9.jpg", "\udcff\udcfe/x.jpg"})
    assert _violations(sandbox, skip) == []
    # And the next run says the same, no worse (the ledger took the surrogates in its stride).
    again = sandbox.reconcile()
    assert again.exit_code == 1 and again.mirror["planned"]["uploads"] == 0, str(again)


# --- symlinks -------------------------------------------------------------------------------


@pytest.mark.parametrize("follow", [False, True])
def test_a_symlink_loop_is_reported_and_the_tree_still_syncs(
    sandbox: Sandbox, follow: bool
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    (sandbox.root / "Dog" / "again").symlink_to(sandbox.root / "Dog")  # Dog/again/again/...
    (sandbox.root / "Cat" / "up").symlink_to(sandbox.root)
    sandbox.write_config(files={"follow_symlinks": follow})

    run = sandbox.reconcile()

    assert run.exit_code == 1, str(run)
    kinds = {p["path"]: p["kind"] for p in run.mirror["problems"]}
    want = "symlink_loop" if follow else "symlink"
    assert kinds == {"Dog/again": want, "Cat/up": want}, str(run)
    assert run.mirror["done"]["uploads"] == len(STANDARD_TREE)
    assert sandbox.content() == sandbox.expected()


# --- the tree changing under the run ----------------------------------------------------------


def test_a_file_removed_between_scan_and_upload_is_reported_and_nothing_else_is_lost(
    sandbox: Sandbox, spec_checker: SpecChecker
) -> None:
    victim = "Cat/c1.png"
    removed = threading.Event()
    armed = threading.Event()

    def remove_after_planning(method: str, path: str) -> None:
        # Creating the first tag comes after the scan and the plan, before any file is read
        # (in a project that holds images: a first sync reads a window while its tags go).
        tag_create = method == "POST" and path.endswith("/tags")
        if armed.is_set() and tag_create and not removed.is_set():
            (sandbox.root / victim).unlink()
            removed.set()

    with _own_emulator(sandbox, spec_checker, on_response=remove_after_planning) as box:
        write_tree(sandbox.root, {"Seed/s.jpg": 519})
        assert box.reconcile().exit_code == 0
        write_tree(sandbox.root, STANDARD_TREE)
        armed.set()
        run = box.reconcile()

        assert removed.is_set()
        assert run.exit_code == 1, str(run)
        assert victim in run.problem_paths() | run.failed_subjects(), str(run)
        assert run.mirror["done"]["uploads"] == len(STANDARD_TREE) - 1
        assert box.content() == box.expected()

        again = box.reconcile()
        assert again.exit_code == 0, str(again)
        assert _violations(box) == []


def test_a_file_rewritten_between_scan_and_upload_is_not_sent_under_its_old_hash(
    sandbox: Sandbox, spec_checker: SpecChecker
) -> None:
    victim = "Dog/d1.jpg"
    rewritten = threading.Event()
    armed = threading.Event()
    new_bytes = image_bytes(520)

    def rewrite_after_planning(method: str, path: str) -> None:
        tag_create = method == "POST" and path.endswith("/tags")
        if armed.is_set() and tag_create and not rewritten.is_set():
            (sandbox.root / victim).write_bytes(new_bytes)
            rewritten.set()

    old_bytes = image_bytes(STANDARD_TREE[victim])
    with _own_emulator(sandbox, spec_checker, on_response=rewrite_after_planning) as box:
        # A project that holds an image: a first sync into an empty one reads each window
        # while its tags are created, so the tag create is no seam there.
        write_tree(sandbox.root, {"Seed/s.jpg": 519})
        assert box.reconcile().exit_code == 0
        write_tree(sandbox.root, STANDARD_TREE)
        old_bytes = (sandbox.root / victim).read_bytes()
        armed.set()
        run = box.reconcile()

        assert rewritten.is_set()
        assert run.exit_code == 1, str(run)
        assert victim in run.problem_paths() | run.failed_subjects(), str(run)
        held = {i.sha256 for i in box.images()}
        assert sha256(old_bytes) not in held  # the old bytes are gone from disk: never sent

        again = box.reconcile()
        assert again.exit_code == 0, str(again)
        assert sha256(new_bytes) in {i.sha256 for i in box.images()}
        assert _violations(box) == []


# --- quotas ---------------------------------------------------------------------------------


def test_more_folders_than_the_tag_quota_names_the_folders_left_out(
    sandbox: Sandbox, spec_checker: SpecChecker
) -> None:
    folders = [f"Class{n}" for n in range(7)]
    tree = {f"{folder}/img.jpg": 600 + n for n, folder in enumerate(folders)}
    write_tree(sandbox.root, tree)
    with _own_emulator(sandbox, spec_checker, quotas=Quotas(max_tags_per_project=4)) as box:
        run = box.reconcile()

        assert run.exit_code == 1, str(run)
        tags_made = {t["name"] for t in box.http.get(f"/projects/{box.project_id}/tags").json()}
        assert len(tags_made) == 4
        left_out = set(folders) - tags_made
        assert len(left_out) == 3
        failed = " ".join(f["subject"] + " " + f["message"] for f in run.mirror["failed"])
        text = failed + " " + " ".join(str(p) for p in run.mirror["problems"])
        for folder in left_out:
            assert folder in text, str(run)
        # The folders that did get a tag are mirrored; nothing uploaded twice.
        content = box.content()
        assert {next(iter(t)) for t in content.values() if t} == tags_made

        again = box.reconcile()
        assert again.exit_code == 1, str(again)
        assert box.content() == content  # nothing lost, nothing sent twice


def test_a_full_project_reports_the_files_left_out_and_keeps_the_rest(
    sandbox: Sandbox, spec_checker: SpecChecker
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with _own_emulator(sandbox, spec_checker, quotas=Quotas(max_images_per_project=8)) as box:
        run = box.reconcile()

        assert run.exit_code == 1, str(run)
        assert len(box.images()) == 8
        assert len(run.mirror["failed"]) == len(STANDARD_TREE) - 8, str(run)
        for failure in run.mirror["failed"]:
            assert failure["subject"] in STANDARD_TREE, str(run)
            assert "limit" in failure["message"].lower() or "quota" in failure["message"].lower(), (
                str(run)
            )

        again = box.reconcile()
        assert again.exit_code == 1, str(again)
        assert len(box.images()) == 8  # nothing lost, nothing duplicated
        assert len({i.sha256 for i in box.images()}) == 8


# --- the service is not what the config says -------------------------------------------------


def test_a_wrong_project_id_exits_3_naming_it_and_the_right_one_then_works(
    sandbox: Sandbox,
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    right, wrong = sandbox.project_id, str(uuid.uuid4())
    sandbox.project_id = wrong
    sandbox.write_config()

    run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 3, str(run)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and wrong in lines[0], str(run)
    assert "Traceback" not in run.stdout + run.stderr
    # The typo fixed, the next run works: the ledger was not bound to the project that is not.
    sandbox.project_id = right
    sandbox.write_config()
    fixed = sandbox.reconcile()
    assert fixed.exit_code == 0, str(fixed)
    assert sandbox.content() == sandbox.expected()


class _Impostor(http.server.BaseHTTPRequestHandler):
    body = b""
    content_type = "text/html"

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _impostor(body: bytes, content_type: str) -> Iterator[str]:
    handler = type("Handler", (_Impostor,), {"body": body, "content_type": content_type})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


IMPOSTORS = {
    "html": (b"<!doctype html><html><body>Sign in to continue</body></html>", "text/html"),
    "broken_json": (b'{"id": "0000', "application/json"),
    "wrong_json": (b'{"hello": ["world"]}', "application/json"),
    "json_array": (b"[1, 2, 3]", "application/json"),
}


@pytest.mark.parametrize("answer", sorted(IMPOSTORS))
def test_an_endpoint_that_is_not_the_service_is_one_clear_error(
    sandbox: Sandbox, answer: str
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with _impostor(*IMPOSTORS[answer]) as url:
        sandbox.endpoint = url
        sandbox.write_config()
        run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 3, str(run)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("syncd: error: "), str(run)
    assert "Traceback" not in run.stdout + run.stderr
    assert TEST_KEY not in run.stdout + run.stderr


# --- ledgers syncd must not touch --------------------------------------------------------------


def _newer_schema(ledger: Path) -> None:
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()


def _corrupt(ledger: Path) -> None:
    data = bytearray(ledger.read_bytes())
    data[0:16] = b"definitely not!!"  # the SQLite header
    ledger.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("spoil", "says"),
    [(_corrupt, "not a readable SQLite file"), (_newer_schema, "newer syncd")],
    ids=["corrupt", "newer_schema"],
)
def test_a_ledger_syncd_must_not_touch_is_refused_and_left_as_it_was(
    synced: Sandbox, spoil: Callable[[Path], None], says: str
) -> None:
    spoil(synced.ledger)
    before = synced.ledger.read_bytes()
    write_image(synced.root / "Dog" / "new.jpg", 530)
    images_before = {i.id for i in synced.images()}

    run = synced.subprocess_cli("reconcile", "--config", str(synced.config_path))

    assert run.exit_code == 2, str(run)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, str(run)
    assert str(synced.ledger) in lines[0] and says in lines[0], str(run)
    assert synced.ledger.read_bytes() == before
    assert {i.id for i in synced.images()} == images_before  # nothing sent on a ledger it refused
