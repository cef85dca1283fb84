"""`syncd pull`: a project labelled elsewhere becomes a folder tree that syncd then mirrors as is.

The project is filled over plain HTTP (as the portal would), never by syncd; what pull wrote is
read back from the disk, and what reconcile sends is read from its --json summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.emulator.faults import Faults
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import REPO, Sandbox
from tests.emulator.support import api_client
from tests.roundtrip.conftest import new_sandbox
from tests.roundtrip.support import LabelledProject, label_project, tree_files
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker

NOTHING = {
    "create_tags": 0,
    "adopts": 0,
    "uploads": 0,
    "edit_regions": 0,
    "regions_created": 0,
    "regions_deleted": 0,
    "remove_tags": 0,
    "add_tags": 0,
    "delete_images": 0,
    "delete_tags": 0,
}


def _planned(run_mirror: dict) -> dict[str, int]:
    return {k: run_mirror["planned"][k] for k in NOTHING} | {
        k: run_mirror["planned"][k] for k in ("conflicts", "refused_deletes", "unidentified")
    }


QUIET = {**NOTHING, "conflicts": 0, "refused_deletes": 0, "unidentified": 0}


def _sent_nothing(done: dict[str, int]) -> bool:
    """Every action done is 0: NOTHING's, and the detection sync's region counts with them."""
    return done.keys() >= NOTHING.keys() and not any(done.values())


def _folder(tag: str) -> str:
    return "_negative" if tag == "Negative" else tag


def _expected_tree(project: LabelledProject, multi_tag: str = "link") -> dict[str, str]:
    """Relative path -> sha256 that pull must write (files named <id>.png: all are PNGs)."""
    out = {}
    for image_id, names in project.images.items():
        folders = [_folder(n) for n in sorted(names)] or [""]
        if multi_tag == "first":
            folders = folders[:1]
        for folder in folders:
            rel = f"{folder}/{image_id}.png" if folder else f"{image_id}.png"
            out[rel] = project.sha256[image_id]
    return out


def _pull(box: Sandbox, *args: str) -> dict:
    run = box.cli("pull", "--config", str(box.config_path), "--json", *args)
    assert run.document is not None, str(run)
    assert run.document["exit_code"] == run.exit_code, str(run)
    return run.document


def test_pull_writes_the_tree_and_reconcile_then_sends_nothing(box: Sandbox) -> None:
    project = label_project(box.http, box.project_id)
    assert len(project.images) == 320

    pulled = _pull(box)
    assert pulled["exit_code"] == 0, pulled
    assert (pulled["images"], pulled["downloaded"], pulled["verified"]) == (320, 320, 0)
    assert pulled["extra_files"] == 12 + 8  # the second folder of each two-tag image
    assert tree_files(box.root) == _expected_tree(project)
    # Link rule (the default): a two-tag image is one file in both folders.
    image_id = next(i for i, names in project.images.items() if names == ("Cat", "Dog"))
    assert os.path.samefile(
        box.root / "Cat" / f"{image_id}.png", box.root / "Dog" / f"{image_id}.png"
    )
    assert (box.root / ".syncd-root").read_text().strip().endswith(box.project_id)

    run = box.reconcile()
    assert run.exit_code == 0, str(run)
    mirror = run.mirror
    assert _planned(mirror) == QUIET and _sent_nothing(mirror["done"])
    assert mirror["remote"]["listing"] == "counts"  # the ledger pull wrote stands in for a listing
    assert mirror["api_calls"] == 3
    assert mirror["local"]["ok"] == 320 + 20

    # A second pull downloads nothing: every file is verified by its hash.
    again = _pull(box)
    assert (again["downloaded"], again["verified"], again["extra_files"]) == (0, 320, 0)


@pytest.mark.parametrize("multi_tag", ["copy", "first"])
def test_multi_tag_rule(box: Sandbox, multi_tag: str) -> None:
    counts = {("Cat",): 6, ("Dog",): 6, ("Cat", "Dog"): 3}
    project = label_project(box.http, box.project_id, counts)
    box.write_config(pull={"multi_tag": multi_tag})
    assert _pull(box)["exit_code"] == 0
    assert tree_files(box.root) == _expected_tree(project, multi_tag)
    both = [i for i, names in project.images.items() if len(names) == 2]
    plan = _planned(box.reconcile("--dry-run").mirror)
    if multi_tag == "copy":
        for image_id in both:
            cat, dog = (box.root / d / f"{image_id}.png" for d in ("Cat", "Dog"))
            assert not os.path.samefile(cat, dog)
        assert plan == QUIET
    else:
        # `first` keeps the Cat folder only (C before D): the next reconcile would drop Dog.
        assert all(not (box.root / "Dog" / f"{i}.png").exists() for i in both)
        assert plan == {**QUIET, "remove_tags": 3}


def test_tags_that_cannot_be_folders_are_reported_and_skipped(box: Sandbox) -> None:
    project = label_project(box.http, box.project_id, {("Cat",): 2, ("a/b",): 2, (".hidden",): 1})
    pulled = _pull(box)
    assert pulled["exit_code"] == 1
    skipped = {s["image_id"] for s in pulled["skipped"]}
    assert skipped == {i for i, names in project.images.items() if names != ("Cat",)}
    assert set(tree_files(box.root)) == {
        f"Cat/{i}.png" for i, names in project.images.items() if names == ("Cat",)
    }
    # What was skipped stays in the project untouched: reconcile sends nothing.
    run = box.reconcile()
    assert _sent_nothing(run.mirror["done"])


@pytest.fixture
def slow_blobs(
    spec_checker: SpecChecker,
) -> Iterator[tuple[EmulatorServer, list[str], list[subprocess.Popen[bytes]]]]:
    """An emulator whose image downloads take 20 ms; records each blob GET; a process in the
    list is SIGKILLed (and taken out) by the emulator when the 60th download is answered."""
    downloads: list[str] = []
    victims: list[subprocess.Popen[bytes]] = []
    lock = threading.Lock()

    def observe(method: str, path: str, status: int, headers: dict, body: bytes) -> None:
        spec_checker.observe(method, path, status, headers, body)
        if path.startswith("/emulator/blobs/") and status == 200:
            with lock:
                downloads.append(path)
                if len(downloads) == 60 and victims:
                    os.kill(victims.pop().pid, signal.SIGKILL)  # once

    with EmulatorServer(
        training_key=TEST_KEY, response_observer=observe, faults=Faults(blob_latency_ms=20)
    ) as server:
        yield server, downloads, victims


def test_a_killed_pull_resumes_without_missing_corrupt_or_repeated_downloads(
    tmp_path: Path,
    slow_blobs: tuple[EmulatorServer, list[str], list[subprocess.Popen[bytes]]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, downloads, victims = slow_blobs
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    api = api_client(server.url)
    box = new_sandbox(tmp_path, server.url, api, capsys)
    counts = {("Dog",): 100, ("Cat",): 90, ("Cat", "Dog"): 10}
    project = label_project(api, box.project_id, counts)
    expected = _expected_tree(project)

    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "pull", "--config", str(box.config_path), "--json"],
        cwd=REPO,
        env={**os.environ, "SYNCD_TRAINING_KEY": TEST_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    victims.append(proc)
    assert proc.wait(60) == -signal.SIGKILL

    # Whatever is on disk under a real name is whole and in its place; nothing half-written.
    before = tree_files(box.root)
    assert before, "the kill came before any file landed"
    assert len(before) < len(expected), "the pull finished before the kill"
    for rel, sha in before.items():
        assert expected.get(rel) == sha, rel
    complete = {rel.rpartition("/")[2].partition(".")[0] for rel in before}

    downloads.clear()
    resumed = _pull(box)
    assert resumed["exit_code"] == 0, resumed
    assert tree_files(box.root) == expected
    assert resumed["verified"] == len(complete)
    assert resumed["downloaded"] == len(project.images) - len(complete)
    # No complete image was fetched again. (A response the emulator was still sending to the
    # killed process may land after clear(); it is for an image that was not complete.)
    token_of = {
        image["id"]: image["originalImageUri"].split("/emulator/blobs/")[1].split("/")[0]
        for image in api.get(f"/projects/{box.project_id}/images", params={"take": 256}).json()
    }
    fetched = {path.split("/")[3] for path in downloads}
    assert not fetched & {token_of[i] for i in complete}
    assert fetched >= {token_of[i] for i in project.images if i not in complete}
    assert not (box.root / ".syncd-pull").exists()
    run = box.reconcile()
    assert _sent_nothing(run.mirror["done"]) and run.mirror["remote"]["listing"] == "counts"
    api.close()


def test_project_and_endpoint_can_come_from_flags(box: Sandbox) -> None:
    project = label_project(box.http, box.project_id, {("Cat",): 3, ("Dog",): 2})
    real_endpoint, real_project = box.endpoint, box.project_id
    box.endpoint, box.project_id = "http://127.0.0.1:9", "00000000-0000-4000-8000-000000000000"
    box.write_config()  # a config naming neither the right service nor the right project

    flags = ("--project", real_project, "--endpoint", real_endpoint)
    pulled = _pull(box, *flags)

    assert pulled["exit_code"] == 0, pulled
    assert tree_files(box.root) == _expected_tree(project)
    bad = box.cli("pull", "--config", str(box.config_path), "--project", "not-a-uuid")
    assert bad.exit_code == 2 and "--project: expected a project id" in bad.stderr


def test_a_local_edit_is_kept_and_reported_never_overwritten(box: Sandbox) -> None:
    counts = {("Dog",): 4, ("Cat", "Dog"): 2}
    project = label_project(box.http, box.project_id, counts)
    box.write_config(pull={"multi_tag": "copy"})
    assert _pull(box)["exit_code"] == 0
    dog, *_ = sorted(i for i, names in project.images.items() if names == ("Dog",))
    both, *_ = sorted(i for i, names in project.images.items() if len(names) == 2)
    edits = {
        f"Dog/{dog}.png": b"edited locally",  # the only copy of a one-tag image
        f"Dog/{both}.png": b"the second copy, edited",  # Cat/ holds the first copy
    }
    for rel, data in edits.items():
        (box.root / rel).write_bytes(data)
    # The project changes meanwhile: the edited one-tag image gains a tag (a new folder).
    r = box.http.post(
        f"/projects/{box.project_id}/images/tags",
        json={"tags": [{"imageId": dog, "tagId": project.tag_ids["Cat"]}]},
    )
    assert r.status_code == 200, r.text

    again = _pull(box)

    assert again["exit_code"] == 1, again  # not everything is mirrored: the edits are kept
    assert {(k["path"], k["image_id"]) for k in again["kept"]} == {
        (f"Dog/{dog}.png", dog),
        (f"Dog/{both}.png", both),
    }
    for rel, data in edits.items():
        assert (box.root / rel).read_bytes() == data, rel
    assert tree_files(box.root)[f"Cat/{dog}.png"] == project.sha256[dog]  # the new folder
    human = box.cli("pull", "--config", str(box.config_path))
    assert human.exit_code == 1
    assert f"kept, edited here ({len(edits)}):" in human.stdout
    assert f"Dog/{dog}.png" in human.stdout and f"Dog/{both}.png" in human.stdout


def test_a_file_in_the_way_is_never_overwritten_even_with_a_new_ledger(box: Sandbox) -> None:
    project = label_project(box.http, box.project_id, {("Dog",): 3})
    image_id, *_ = sorted(project.images)
    in_the_way = box.root / "Dog" / f"{image_id}.png"
    in_the_way.parent.mkdir(parents=True)
    in_the_way.write_bytes(b"mine, not the service's")

    pulled = _pull(box)

    assert pulled["exit_code"] == 1, pulled
    assert [(k["path"], k["image_id"]) for k in pulled["kept"]] == [
        (f"Dog/{image_id}.png", image_id)
    ]
    assert in_the_way.read_bytes() == b"mine, not the service's"
    assert pulled["downloaded"] == 2
    assert not (box.root / ".syncd-pull").exists()
