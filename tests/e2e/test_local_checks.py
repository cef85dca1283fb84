"""Local checks before any upload (issue 18): each image is decoded in full with Pillow and held
to the service's pixel and aspect-ratio limits; a file that fails is a problem named by its path
with the service's rule quoted, and is never sent. Only new or changed content is decoded: a
no-op run decodes nothing (the report's `local.decoded`, the summary's "decoded this run")."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox, UploadCalls
from tests.support import TEST_KEY
from tests.support.images import image_bytes
from tests.support.spec_check import SpecChecker

TRUNCATED = "Cat/truncated.jpg"
TOO_WIDE = "Cat/panorama.png"
TOO_LONG = "Dog/strip.png"
TOO_BIG = "Dog/huge.jpg"
AT_THE_LIMIT = "Dog/ok_25_to_1.png"


@pytest.fixture
def upload_calls(spec_checker: SpecChecker) -> UploadCalls:
    return UploadCalls(spec_checker)


@pytest.fixture
def emulator(upload_calls: UploadCalls) -> Iterator[EmulatorServer]:
    """The shared fixture's emulator, counting upload requests too (as in test_problems)."""
    with EmulatorServer(training_key=TEST_KEY, response_observer=upload_calls.observe) as server:
        yield server


def png(size: tuple[int, int]) -> bytes:
    """A 1-bit PNG of `size`: a few KB even at 10,241 px wide."""
    buf = io.BytesIO()
    Image.new("1", size, 1).save(buf, format="PNG")
    return buf.getvalue()


def truncated_jpeg(seed: int) -> bytes:
    """A real JPEG cut a third of the way before its end: the header is whole, the body is not."""
    data = image_bytes(seed, "jpeg", size=(64, 48))
    return data[: len(data) * 2 // 3]


def age(box: Sandbox) -> None:
    """Date every file a minute back: a hash taken in the same clock tick as the file's last
    write is not trusted (scan.RACY_WINDOW_NS), so fresh files would be read again anyway."""
    then = time.time() - 60
    for path in box.root.rglob("*.*"):
        if not path.name.startswith("."):
            os.utime(path, (then, then))


def write_bad_files(box: Sandbox) -> None:
    for rel, data in (
        (TRUNCATED, truncated_jpeg(1801)),
        (TOO_WIDE, png((10_241, 500))),  # 20.5:1, so only the side is too long
        (TOO_LONG, png((26 * 10, 10))),
    ):
        (box.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (box.root / rel).write_bytes(data)


def test_each_file_the_service_would_refuse_is_named_with_its_rule_and_never_sent(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    write_bad_files(sandbox)
    (sandbox.root / TOO_BIG).write_bytes(image_bytes(1803, "jpeg") + b"\0" * 6 * 1024 * 1024)

    run = sandbox.reconcile()

    assert run.exit_code == 1, str(run)
    problems = {p["path"]: p for p in run.mirror["problems"]}
    assert set(problems) == {TRUNCATED, TOO_WIDE, TOO_LONG, TOO_BIG}, str(run)
    assert problems[TOO_BIG]["kind"] == "too_large"
    assert "«Supports images up to 6MB.»" in problems[TOO_BIG]["detail"]
    assert problems[TRUNCATED]["kind"] == "not_decodable"
    assert "Supported formats are JPEG, GIF, PNG, and BMP" in problems[TRUNCATED]["detail"]
    assert problems[TOO_WIDE]["kind"] == "too_many_pixels"
    assert "10241 x 500 px" in problems[TOO_WIDE]["detail"]
    assert "Max image height/width: 10,240 px" in problems[TOO_WIDE]["detail"]
    assert problems[TOO_LONG]["kind"] == "aspect_ratio"
    assert "26.0:1" in problems[TOO_LONG]["detail"]
    assert "shouldn't be larger than 25:1" in problems[TOO_LONG]["detail"]
    assert upload_calls.count == 0, "a file the service would refuse was sent"
    assert run.mirror["planned"]["uploads"] == 0

    summary = sandbox.cli("reconcile", "--config", str(sandbox.config_path))
    for rel in (TRUNCATED, TOO_WIDE, TOO_LONG):
        assert rel in summary.stdout, f"{rel} not named\n{summary}"
    assert "10,240 px" in summary.stdout and "25:1" in summary.stdout, str(summary)
    status = sandbox.status()
    for rel in (TRUNCATED, TOO_WIDE, TOO_LONG):
        assert f"{rel}: " in status.stdout, str(status)
    assert upload_calls.count == 0


def test_a_no_op_decodes_nothing_and_a_changed_file_is_decoded_again(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    write_bad_files(sandbox)
    (sandbox.root / AT_THE_LIMIT).write_bytes(png((250, 10)))  # 25:1 is allowed
    age(sandbox)

    first = sandbox.reconcile()
    assert first.exit_code == 1, str(first)
    assert first.mirror["local"]["decoded"] == 4, str(first)
    assert first.mirror["done"]["uploads"] == 1  # the 25:1 image, and only it
    calls = upload_calls.count

    second = sandbox.reconcile()

    assert second.exit_code == 1, str(second)
    assert second.mirror["local"]["decoded"] == 0, "a no-op decoded again"
    assert second.mirror["local"]["hashed"] == 0
    assert {p["path"] for p in second.mirror["problems"]} == {TRUNCATED, TOO_WIDE, TOO_LONG}
    assert upload_calls.count == calls, "a no-op sent something"

    (sandbox.root / TRUNCATED).write_bytes(image_bytes(1802, "jpeg"))
    third = sandbox.reconcile()

    assert third.mirror["local"]["decoded"] == 1, str(third)
    assert {p["path"] for p in third.mirror["problems"]} == {TOO_WIDE, TOO_LONG}
    assert third.mirror["done"]["uploads"] == 1
