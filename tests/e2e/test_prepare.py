"""files.prepare (issue 18): every image a user has can go in. A tree of what phones, scanners
and the web produce is synced to the emulator over HTTP; each file ends as the README documents
(converted, scaled down, turned upright, sent as it is, or refused with the service's rule), and
every image the project holds is within the service's limits (the emulator enforces them too).
Identity stays the local file's content: a no-op prepares and sends nothing, a move is a retag,
a changed setting re-prepares only the files it affects."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox, UploadCalls, age
from tests.support import TEST_KEY
from tests.support.images import (
    animated_gif,
    cmyk_jpeg,
    heic,
    noise_jpeg,
    png16,
    rotated_jpeg,
    tiff,
    webp,
    wide_png,
)
from tests.support.project_view import sha256
from tests.support.spec_check import SpecChecker

SIX_MB = 6 * 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
MAX_SIDE = 10_240

BIG_JPEG = "Dog/phone_9mb.jpg"
WIDE_PNG = "Dog/panorama_12000x800.png"
STRIP = "Dog/strip_30_to_1.png"
PHOTO_WEBP = "Cat/photo.webp"
LOGO_WEBP = "Cat/logo_lossless_alpha.webp"
SCAN_TIFF = "Cat/scan.tiff"
PHONE_HEIC = "Cat/phone.heic"
TRUNCATED = "Cat/truncated.jpg"
CMYK = "Cat/cmyk.jpg"
DEEP_PNG = "Cat/deep_16bit.png"
ANIMATED = "Cat/animated.gif"
ROTATED = "Cat/rotated_exif6.jpg"

# How each file ends (README "Preparing images"): the format the project holds, or None when the
# file's own bytes are sent as they are.
CONVERTED = {
    BIG_JPEG: "JPEG",
    WIDE_PNG: "PNG",
    PHOTO_WEBP: "JPEG",
    LOGO_WEBP: "PNG",
    SCAN_TIFF: "PNG",
    PHONE_HEIC: "JPEG",
    ROTATED: "JPEG",
}
AS_THEY_ARE = (CMYK, DEEP_PNG, ANIMATED)
REFUSED = {STRIP: "aspect_ratio", TRUNCATED: "not_decodable"}


@pytest.fixture
def upload_calls(spec_checker: SpecChecker) -> UploadCalls:
    return UploadCalls(spec_checker)


@pytest.fixture
def emulator(upload_calls: UploadCalls) -> Iterator[EmulatorServer]:
    with EmulatorServer(training_key=TEST_KEY, response_observer=upload_calls.observe) as server:
        yield server


def truncated_jpeg() -> bytes:
    data = rotated_jpeg(1899, orientation=1, size=(96, 64))
    return data[: len(data) * 2 // 3]


def write_phone_tree(box: Sandbox) -> dict[str, bytes]:
    """The issue's tree (HEIC only where pillow-heif is installed); returns path -> bytes."""
    files = {
        BIG_JPEG: noise_jpeg(),
        WIDE_PNG: wide_png((12_000, 800)),
        STRIP: wide_png((300, 10)),
        PHOTO_WEBP: webp(1801),
        LOGO_WEBP: webp(1802, lossless=True, alpha=True),
        SCAN_TIFF: tiff(1803),
        TRUNCATED: truncated_jpeg(),
        CMYK: cmyk_jpeg(1804),
        DEEP_PNG: png16(1805),
        ANIMATED: animated_gif(1806),
        ROTATED: rotated_jpeg(1807, orientation=6, size=(64, 48)),
    }
    phone = heic(1808)
    if phone is not None:
        files[PHONE_HEIC] = phone
    for rel, data in files.items():
        (box.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (box.root / rel).write_bytes(data)
    age(box.root, 60)
    return files


def originals(box: Sandbox) -> dict[str, bytes]:
    """image id -> the bytes the project holds (its original, downloaded)."""
    out = {}
    listing = box.http.get(f"/projects/{box.project_id}/images", params={"take": 256})
    assert listing.status_code == 200, listing.text
    for image in listing.json():
        got = box.http.get(image["originalImageUri"])
        assert got.status_code == 200
        out[image["id"]] = got.content
    return out


def assert_within_the_service_limits(data: bytes) -> Image.Image:
    assert len(data) <= SIX_MB
    with Image.open(io.BytesIO(data), formats=["JPEG", "PNG", "BMP", "GIF"]) as img:
        img.load()  # decodes in full
        long, short = max(img.size), min(img.size)
        assert long <= MAX_SIDE and long <= 25 * short, img.size
        return img


def test_each_file_of_a_phone_and_scanner_tree_ends_as_documented(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    files = write_phone_tree(sandbox)
    sandbox.write_config(files={"prepare": {}})
    expected_uploads = len(files) - len(REFUSED)

    run = sandbox.reconcile()

    assert run.exit_code == 1, str(run)  # the two files no preparing can mend
    problems = {p["path"]: p["kind"] for p in run.mirror["problems"]}
    assert problems == REFUSED, str(run)
    assert run.mirror["done"]["uploads"] == expected_uploads, str(run)
    assert run.mirror["failed"] == []
    prepared = len([rel for rel in CONVERTED if rel in files])
    assert run.mirror["prepare"]["prepared"] == prepared
    held = originals(sandbox)
    assert len(held) == expected_uploads
    by_sha = {sha256(data): data for data in held.values()}
    formats = []
    for data in held.values():
        img = assert_within_the_service_limits(data)
        formats.append((img.format, img.size))
    for rel in AS_THEY_ARE:  # legal as they are: their own bytes, untouched
        assert sha256(files[rel]) in by_sha, rel
    for rel in CONVERTED:
        if rel in files:
            assert sha256(files[rel]) not in by_sha, f"{rel} was sent unprepared"
    # The 12,000 px panorama at the largest size allowed, the 9 MB photo under 6 MB, the EXIF
    # orientation applied (stored 64 x 48, shown 48 x 64), the lossless WEBP with alpha a PNG.
    assert ("PNG", (MAX_SIDE, 682)) in formats, formats
    assert ("JPEG", (48, 64)) in formats, formats
    pngs_with_alpha = [
        data for data in held.values() if Image.open(io.BytesIO(data)).mode in ("RGBA", "LA")
    ]
    assert len(pngs_with_alpha) == 1

    summary = sandbox.cli("reconcile", "--config", str(sandbox.config_path))
    assert "decoded this run" in summary.stdout
    assert upload_calls.count > 0


def test_a_second_run_prepares_and_sends_nothing_and_a_move_is_a_retag(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    files = write_phone_tree(sandbox)
    sandbox.write_config(files={"prepare": {}})
    first = sandbox.reconcile()
    assert first.mirror["failed"] == [], str(first)
    calls = upload_calls.count
    before = originals(sandbox)

    second = sandbox.reconcile()

    assert second.mirror["local"]["decoded"] == 0, str(second)
    assert second.mirror["local"]["hashed"] == 0
    assert second.mirror["prepare"]["prepared"] == 0
    assert second.mirror["planned"]["uploads"] == 0
    assert upload_calls.count == calls, "a no-op sent something"

    (sandbox.root / "Dog").mkdir(exist_ok=True)
    shutil.move(sandbox.root / PHOTO_WEBP, sandbox.root / "Dog/photo.webp")
    third = sandbox.reconcile()

    assert third.mirror["planned"]["uploads"] == 0, str(third)
    assert third.mirror["done"]["add_tags"] == third.mirror["done"]["remove_tags"] == 1
    assert third.mirror["prepare"]["prepared"] == 0
    assert upload_calls.count == calls
    after = originals(sandbox)
    assert after == before  # the same images, the same bytes: only the tags moved
    assert len(files) > 0


def test_changed_settings_re_prepare_only_the_files_they_affect_and_the_dry_run_says_so(
    sandbox: Sandbox,
) -> None:
    files = write_phone_tree(sandbox)
    sandbox.write_config(files={"prepare": {}})
    assert sandbox.reconcile().mirror["failed"] == []
    jpeg_outputs = len([rel for rel, fmt in CONVERTED.items() if fmt == "JPEG" and rel in files])

    sandbox.write_config(files={"prepare": {"jpeg_quality": 80}})
    dry = sandbox.reconcile("--dry-run")

    assert dry.mirror["prepare"]["reprepare"] == jpeg_outputs, str(dry)
    assert dry.mirror["planned"]["uploads"] == jpeg_outputs
    assert dry.mirror["planned"]["delete_images"] == jpeg_outputs  # delete: mirror
    text = sandbox.cli("reconcile", "--config", str(sandbox.config_path), "--dry-run")
    assert f"re-prepare: {jpeg_outputs} files already in the project" in text.stdout, str(text)

    run = sandbox.reconcile()
    assert run.mirror["prepare"]["prepared"] == jpeg_outputs, str(run)
    assert run.mirror["done"]["delete_images"] == jpeg_outputs
    assert len(originals(sandbox)) == len(files) - len(REFUSED)
    assert sandbox.reconcile().mirror["planned"]["uploads"] == 0


def test_without_prepare_the_summary_says_what_files_prepare_would_take(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    files = write_phone_tree(sandbox)

    run = sandbox.reconcile()

    convertible = len([rel for rel in files if rel.endswith((".webp", ".tiff", ".heic"))])
    prepare = run.mirror["prepare"]
    assert prepare["enabled"] is False
    assert prepare["would_take_skipped"] == convertible, str(run)
    assert prepare["would_take_refused"] == 2, str(run)  # the 9 MB photo, the 12,000 px PNG
    problems = {p["path"]: p["kind"] for p in run.mirror["problems"]}
    assert problems == {**REFUSED, BIG_JPEG: "too_large", WIDE_PNG: "too_many_pixels"}
    # The files the service takes as they are go in as they are, the rotated JPEG unturned.
    assert run.mirror["done"]["uploads"] == len(AS_THEY_ARE) + 1, str(run)
    held = {sha256(data) for data in originals(sandbox).values()}
    assert held == {sha256(files[rel]) for rel in (*AS_THEY_ARE, ROTATED)}
    text = sandbox.cli("reconcile", "--config", str(sandbox.config_path))
    line = (
        f"files.prepare would take {convertible + 2} of these files ({convertible} skipped "
        "for their format, 2 refused for their size)"
    )
    assert line in text.stdout, str(text)
    for data in originals(sandbox).values():
        assert_within_the_service_limits(data)


def test_pull_of_prepared_images_leaves_the_local_originals_standing_for_them(
    sandbox: Sandbox,
) -> None:
    files = write_phone_tree(sandbox)
    sandbox.write_config(files={"prepare": {}})
    assert sandbox.reconcile().mirror["failed"] == []
    prepared = len([rel for rel in CONVERTED if rel in files])

    pulled = sandbox.cli("pull", "--config", str(sandbox.config_path), "--json")

    assert pulled.document is not None, str(pulled)
    assert pulled.document["originals"] == prepared, str(pulled)
    for rel, data in files.items():
        assert (sandbox.root / rel).read_bytes() == data, f"{rel} was overwritten"
    # Only the images sent as they are were written out (named by their ids); no converted
    # second copy of any prepared file.
    written = {
        p.relative_to(sandbox.root).as_posix()
        for p in sandbox.root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    } - set(files)
    assert len(written) == len(AS_THEY_ARE), written
    age(sandbox.root, 60)
    after = sandbox.reconcile()
    assert after.mirror["planned"]["uploads"] == 0, str(after)
    assert after.mirror["planned"]["delete_images"] == 0


def test_a_lost_ledger_adopts_the_prepared_images_by_preparing_the_files_again(
    sandbox: Sandbox, upload_calls: UploadCalls
) -> None:
    files = write_phone_tree(sandbox)
    sandbox.write_config(files={"prepare": {}})
    assert sandbox.reconcile().mirror["failed"] == []
    calls = upload_calls.count
    sandbox.ledger.unlink()
    sandbox.write_config(adopt_foreign_images=True)

    run = sandbox.reconcile()

    held = len(files) - len(REFUSED)
    assert run.mirror["planned"]["uploads"] == 0, str(run)
    assert run.mirror["done"]["adopts"] == held, str(run)
    assert upload_calls.count == calls
    again = sandbox.reconcile()
    assert again.mirror["prepare"]["prepared"] == 0 and again.mirror["planned"]["uploads"] == 0


def test_turning_prepare_off_reads_nothing_and_deletes_no_image_a_file_still_stands_for(
    sandbox: Sandbox,
) -> None:
    files = write_phone_tree(sandbox)
    sandbox.write_config(files={"prepare": {}})
    assert sandbox.reconcile().mirror["failed"] == []
    held = len(originals(sandbox))

    sandbox.write_config(files={"prepare": None})
    run = sandbox.reconcile("--allow-mass-delete")

    assert run.mirror["local"]["decoded"] == 0, str(run)  # judged again from the facts
    problems = {p["path"]: p["kind"] for p in run.mirror["problems"]}
    assert problems[WIDE_PNG] == "too_many_pixels" and problems[BIG_JPEG] == "too_large"
    # The panorama and the photo are still in the tree: their images stay. The converted
    # formats are no longer mirrored (skipped by extension), and go under `delete: mirror`; the
    # rotated JPEG is sent as it is now, in place of its upright copy.
    converted_formats = len([rel for rel in files if rel.endswith((".webp", ".tiff", ".heic"))])
    assert run.mirror["planned"]["delete_images"] == converted_formats + 1, str(run)
    assert run.mirror["planned"]["uploads"] == 1
    assert run.mirror["prepare"]["reprepare"] == 1
    assert len(originals(sandbox)) == held - converted_formats


def _prepared_rows(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM prepared").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet
    finally:
        db.close()


@pytest.mark.slow
def test_ctrl_c_while_preparing_stops_with_130_and_no_traceback(sandbox: Sandbox) -> None:
    for i in range(8):  # distinct 9 MB photos: the same noise, a different tail after the image
        path = sandbox.root / "Dog" / f"photo{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(noise_jpeg() + bytes(i + 1))
    age(sandbox.root, 60)
    sandbox.write_config(files={"prepare": {}})
    argv = [sys.executable, "-m", "syncd", "reconcile", "--config", str(sandbox.config_path)]
    child = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while _prepared_rows(sandbox.ledger) == 0 and child.poll() is None:
            assert time.monotonic() < deadline, "nothing was prepared in 2 minutes"
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGINT)  # as a terminal does: the whole process group
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, (out, err)
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()


def test_a_deleted_prepared_image_lands_in_the_trash_named_for_what_it_holds(
    sandbox: Sandbox,
) -> None:
    """The trash keeps what the service had: for `photo.webp` sent as a JPEG, the JPEG. Named
    `photo.webp` it would not open as what its name says; `photo.webp.jpg` says both."""
    from tests.support.images import image_bytes, webp

    photo = sandbox.root / "Dog" / "photo.webp"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(webp(1901))
    (photo.parent / "stays.jpg").write_bytes(image_bytes(1902))  # the root is not emptied
    age(sandbox.root, 60)
    trash = sandbox.tmp / "trash"
    sandbox.write_config(files={"prepare": {}}, trash_dir=str(trash))
    first = sandbox.reconcile()
    assert first.exit_code == 0 and first.mirror["done"]["uploads"] == 2, str(first)

    photo.unlink()
    run = sandbox.reconcile()

    assert run.exit_code == 0 and run.mirror["done"]["delete_images"] == 1, str(run)
    (kept,) = (p for p in trash.rglob("*") if p.is_file())
    assert kept.relative_to(next(trash.iterdir())).as_posix() == "Dog/photo.webp.jpg"
    assert kept.read_bytes()[:3] == b"\xff\xd8\xff"  # the JPEG that was sent
