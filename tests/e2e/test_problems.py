"""Problem files named wherever the operator looks: the reconcile summary, `status`, the JSON; and
the service's verdict on content remembered, so the same bytes are not sent again.

The tree holds one of every kind of problem file: a .jpg holding text, a file over 6 MB, an
unreadable file (skipped as root, who reads mode-000 files), a symlink leaving the root, a JPEG
whose header is valid but whose body is garbage (found by decoding it locally: not_decodable),
a GIF that Pillow decodes but the service refuses (ErrorImageFormat), and the same bytes in a
negative and a regular folder (a tag conflict).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import (
    STANDARD_TREE,
    Sandbox,
    UploadCalls,
    service_refused_gif,
    write_tree,
)
from tests.support import TEST_KEY
from tests.support.images import image_bytes
from tests.support.spec_check import SpecChecker


@pytest.fixture
def upload_calls(spec_checker: SpecChecker) -> UploadCalls:
    return UploadCalls(spec_checker)


@pytest.fixture
def emulator(upload_calls: UploadCalls) -> Iterator[EmulatorServer]:
    """The shared fixture's emulator, counting upload requests too."""
    with EmulatorServer(training_key=TEST_KEY, response_observer=upload_calls.observe) as server:
        yield server


def corrupt_jpeg(seed: int) -> bytes:
    """A JPEG's real header (every segment up to the scan), then garbage where the picture was:
    the first bytes say JPEG, so only a decoder (the service) finds it broken."""
    data = image_bytes(seed, "jpeg")
    scan = data.find(b"\xff\xda")
    garbage = bytes((seed * 7 + i * 13) % 251 for i in range(2000))
    return data[:scan] + garbage


ROOT_IS_ROOT = os.geteuid() == 0
CORRUPT = "Cat/corrupt.jpg"
REFUSED = "Cat/refused.gif"
NOT_AN_IMAGE = "Dog/notes.jpg"
TOO_BIG = "Bird/huge.jpg"
UNREADABLE = "Bird/locked.jpg"
LINK = "Dog/outside.jpg"
CONFLICT = ("Dog/twin.jpg", "_negative/twin.jpg")


def every_kind_of_problem(box: Sandbox) -> set[str]:
    """Write STANDARD_TREE and one file of every problem kind; return the problem paths."""
    write_tree(box.root, STANDARD_TREE)
    root = box.root
    (root / NOT_AN_IMAGE).write_text("my notes, not a picture\n", encoding="utf-8")
    (root / TOO_BIG).write_bytes(image_bytes(901, "jpeg") + b"\0" * (6 * 1024 * 1024 + 1))
    outside = box.tmp / "outside.jpg"
    outside.write_bytes(image_bytes(902, "jpeg"))
    (root / LINK).symlink_to(outside)
    (root / CORRUPT).write_bytes(corrupt_jpeg(903))
    (root / REFUSED).write_bytes(service_refused_gif(908))
    twin = image_bytes(904, "jpeg")
    for rel in CONFLICT:
        (root / rel).write_bytes(twin)
    paths = {NOT_AN_IMAGE, TOO_BIG, LINK, CORRUPT, REFUSED, *CONFLICT}
    if not ROOT_IS_ROOT:
        (root / UNREADABLE).write_bytes(image_bytes(905, "jpeg"))
        (root / UNREADABLE).chmod(0)
        paths.add(UNREADABLE)
    return paths


def test_bytes_the_service_refuses_are_sent_once_and_not_again_until_they_change(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    write_tree(sandbox.root, {"Dog/d0.jpg": 10})
    (sandbox.root / REFUSED).parent.mkdir()
    (sandbox.root / REFUSED).write_bytes(service_refused_gif(903))

    first = sandbox.reconcile()
    assert first.exit_code == 1, str(first)
    assert upload_calls.count >= 1
    (problem,) = first.mirror["problems"]
    assert (problem["path"], problem["kind"]) == (REFUSED, "rejected_by_service"), str(first)
    assert "ErrorImageFormat" in problem["detail"], str(first)
    assert first.mirror["failed"] == [], str(first)  # listed once: a problem, not also a failure
    assert (first.mirror["local"]["ok"], first.mirror["local"]["problems"]) == (1, 1)

    calls = upload_calls.count
    second = sandbox.reconcile()

    assert upload_calls.count == calls, "the same bytes were sent again"
    assert second.exit_code == 1, str(second)
    assert second.mirror["planned"]["uploads"] == 0
    assert [p["path"] for p in second.mirror["problems"]] == [REFUSED], str(second)
    assert "ErrorImageFormat" in second.mirror["problems"][0]["detail"]

    # New bytes in the same file are a new verdict to ask for.
    (sandbox.root / REFUSED).write_bytes(image_bytes(906, "gif"))
    third = sandbox.reconcile()
    assert third.exit_code == 0, str(third)
    assert third.mirror["done"]["uploads"] == 1
    assert upload_calls.count == calls + 1


def test_the_summary_names_every_problem_file_and_says_what_to_do(sandbox: Sandbox) -> None:
    expected = every_kind_of_problem(sandbox)

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 1, str(run)
    for rel in expected - set(CONFLICT):
        assert rel in run.stdout, f"{rel} not named\n{run}"
    for rel in CONFLICT:  # the conflict names both paths (in the conflicts list)
        assert rel in run.stdout, str(run)
    assert "ErrorImageFormat" in run.stdout
    assert "exclude it" in run.stdout  # what to do about it, not only what is wrong
    problems = 5 if ROOT_IS_ROOT else 6  # the conflict's files are in the conflicts list
    assert f"problems ({problems} files)" in run.stdout, str(run)


def test_the_summary_names_the_first_few_problems_and_counts_the_rest(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, {"Dog/d0.jpg": 10})
    for i in range(8):
        (sandbox.root / f"Dog/n{i}.jpg").write_text("text", encoding="utf-8")

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 1, str(run)
    assert "problems (8 files)" in run.stdout, str(run)
    assert sum("Dog/n" in line for line in run.stdout.splitlines()) == 5, str(run)
    assert "... and 3 more" in run.stdout, str(run)


def test_status_lists_each_problem_once_by_path_with_reason_and_since(sandbox: Sandbox) -> None:
    expected = every_kind_of_problem(sandbox)
    assert sandbox.reconcile().exit_code == 1
    assert sandbox.reconcile().exit_code == 1  # a second run: nothing listed twice, nothing resent

    run = sandbox.status()
    assert run.exit_code == 0, str(run)
    for rel in expected:
        lines = [line for line in run.stdout.splitlines() if line.strip().startswith(f"{rel}:")]
        assert len(lines) == 1, f"{rel} listed {len(lines)} times\n{run}"
        assert "since 20" in lines[0], lines[0]
    assert "ErrorImageFormat" in run.stdout
    # Listed once: not as a problem and again as an error by its hash.
    assert not re.search(r"\b[0-9a-f]{64}\b", run.stdout), str(run)

    entry = sandbox.status("--json").document["mirrors"][0]
    listed = {p["path"]: p for p in entry["problem_files"]}
    assert set(listed) == expected
    assert all(p["since"] and p["detail"] and p["advice"] for p in listed.values())
    assert listed[CORRUPT]["kind"] == "not_decodable"  # found locally, never sent
    assert listed[REFUSED]["kind"] == "rejected_by_service"


def test_an_excluded_or_deleted_file_leaves_the_problem_list(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    (sandbox.root / CORRUPT).write_bytes(corrupt_jpeg(903))
    (sandbox.root / NOT_AN_IMAGE).write_text("notes", encoding="utf-8")
    assert sandbox.reconcile().exit_code == 1

    sandbox.write_config(files={"exclude": [CORRUPT]})
    (sandbox.root / NOT_AN_IMAGE).unlink()
    run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["problems"] == []
    status = sandbox.status()
    assert CORRUPT not in status.stdout and NOT_AN_IMAGE not in status.stdout, str(status)
    assert sandbox.status("--json").document["mirrors"][0]["problem_files"] == []


def test_status_caps_a_long_problem_list(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, {"Dog/d0.jpg": 10})
    for i in range(25):
        (sandbox.root / f"Dog/n{i:02}.jpg").write_text("text", encoding="utf-8")
    assert sandbox.reconcile().exit_code == 1

    run = sandbox.status()

    assert sum("Dog/n" in line for line in run.stdout.splitlines()) == 20, str(run)
    assert "and 5 more" in run.stdout, str(run)
    assert len(sandbox.status("--json").document["mirrors"][0]["problem_files"]) == 25


def test_a_followed_symlink_leaving_the_root_is_named_with_what_to_do(sandbox: Sandbox) -> None:
    sandbox.write_config(files={"follow_symlinks": True})
    write_tree(sandbox.root, {"Dog/d0.jpg": 10})
    outside = sandbox.tmp / "elsewhere.jpg"
    outside.write_bytes(image_bytes(907, "jpeg"))
    (sandbox.root / LINK).symlink_to(outside)
    assert sandbox.reconcile().exit_code == 1

    (problem,) = sandbox.status("--json").document["mirrors"][0]["problem_files"]

    assert (problem["path"], problem["kind"]) == (LINK, "symlink_outside_root")
    assert "copy the file into the tree" in problem["advice"]
    assert f"{LINK}: symlink_outside_root" in sandbox.status().stdout
