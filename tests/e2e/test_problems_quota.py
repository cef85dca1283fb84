"""Only the service's verdict on the bytes is remembered: an image refused because the project is
full (ErrorLimitExceed) is a failure of this run, and is sent again by the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncd.emulator.limits import Quotas
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox, UploadCalls, write_tree
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker


@pytest.fixture
def upload_calls(spec_checker: SpecChecker) -> UploadCalls:
    return UploadCalls(spec_checker)


@pytest.fixture
def emulator(upload_calls: UploadCalls) -> Iterator[EmulatorServer]:
    """An emulator whose projects hold one image."""
    with EmulatorServer(
        training_key=TEST_KEY,
        response_observer=upload_calls.observe,
        quotas=Quotas(max_images_per_project=1),
    ) as server:
        yield server


def test_a_full_project_is_not_a_verdict_on_the_bytes(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    write_tree(sandbox.root, {"Dog/a.jpg": 1, "Dog/b.jpg": 2})

    first = sandbox.reconcile()
    assert first.exit_code == 1, str(first)
    (failed,) = first.mirror["failed"]
    assert failed["code"] == "ErrorLimitExceed" and failed["subject"].startswith("Dog/")
    assert first.mirror["problems"] == []
    calls = upload_calls.count

    second = sandbox.reconcile()

    assert upload_calls.count == calls + 1  # tried again: the quota may have room now
    assert [f["subject"] for f in second.mirror["failed"]] == [failed["subject"]]
    assert second.mirror["problems"] == []
