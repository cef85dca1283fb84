"""syncd.prepare on real image bytes: what each file is judged to need, and the bytes it gets.

The recipe names only the settings that change a file's output, so a changed setting touches only
the files it affects; the prepared bytes are within the service's limits and the same every time.
"""

from __future__ import annotations

import dataclasses
import io
import platform
import random
import subprocess
import sys
import tracemalloc

import pytest
from PIL import Image

from syncd.config import PrepareConfig
from syncd.core.model import LocalFile, LocalSnapshot, MarkerState, Problem, ProblemKind
from syncd.prepare import (
    ImageFacts,
    PrepareError,
    content_key,
    inspect,
    judge,
    prepare_bytes,
    summarize,
)
from tests.support.images import noise_jpeg, rotated_jpeg, webp, wide_png

ON = PrepareConfig()
SIX_MB = 6 * 1024 * 1024


def facts_of(data: bytes, prepare: PrepareConfig = ON) -> ImageFacts:
    found = inspect(data, prepare)
    assert isinstance(found, ImageFacts), found
    return found


def recipe_of(data: bytes, prepare: PrepareConfig = ON) -> str | Problem | None:
    return judge(facts_of(data), len(data), prepare)


def test_the_recipe_holds_only_the_settings_that_change_the_output() -> None:
    photo, logo = webp(1, lossless=False), webp(2, lossless=True, alpha=True)
    lower = dataclasses.replace(ON, jpeg_quality=80)
    assert recipe_of(photo) == "v1:jpeg:q90:fit"
    assert recipe_of(photo, lower) == "v1:jpeg:q80:fit"
    # A PNG output has no JPEG quality: another quality is the same recipe, the same key.
    assert recipe_of(logo) == recipe_of(logo, lower) == "v1:png:fit"
    assert content_key("a" * 64, "v1:png:fit") != content_key("a" * 64, "v1:jpeg:q90:fit")
    assert content_key("a" * 64, None) == "a" * 64  # sent as it is: its own hash


def test_a_legal_upright_image_is_sent_as_it_is_and_a_turned_one_only_with_orient() -> None:
    upright, turned = rotated_jpeg(3, orientation=1), rotated_jpeg(4, orientation=6)
    assert recipe_of(upright) is None
    assert recipe_of(turned) == "v1:jpeg:q90:orient6:fit"
    assert recipe_of(turned, dataclasses.replace(ON, orient=False)) is None


def test_what_preparing_cannot_mend_and_what_is_refused_without_it() -> None:
    strip = recipe_of(wide_png((300, 10)))
    assert isinstance(strip, Problem) and strip.kind is ProblemKind.ASPECT_RATIO
    wide = wide_png((12_000, 800))
    refused = judge(facts_of(wide), len(wide), None)
    assert isinstance(refused, Problem) and refused.kind is ProblemKind.TOO_MANY_PIXELS
    photo = webp(5)
    off = judge(facts_of(photo), len(photo), None)
    assert isinstance(off, Problem) and off.kind is ProblemKind.NOT_AN_IMAGE
    assert "WEBP" in off.detail
    not_webp = judge(facts_of(photo), len(photo), dataclasses.replace(ON, formats=("tiff",)))
    assert isinstance(not_webp, Problem)


def test_a_truncated_body_does_not_decode() -> None:
    data = rotated_jpeg(6, orientation=1, size=(96, 64))
    found = inspect(data[: len(data) * 2 // 3], ON)
    assert isinstance(found, Problem) and found.kind is ProblemKind.NOT_DECODABLE


def test_a_9_mb_photo_is_scaled_under_6_mb_the_same_bytes_every_time() -> None:
    data = noise_jpeg()
    recipe = recipe_of(data)
    assert recipe == "v1:jpeg:q90:fit"
    first = prepare_bytes(data, recipe)
    assert len(first) <= SIX_MB
    assert prepare_bytes(data, recipe) == first  # deterministic: adoption relies on it
    with Image.open(io.BytesIO(first)) as img:
        assert img.format == "JPEG"


def test_a_25_to_1_image_over_the_side_limit_stays_within_25_to_1_when_scaled() -> None:
    data = wide_png((12_500, 500))  # 25:1 exactly
    recipe = recipe_of(data)
    assert isinstance(recipe, str)
    with Image.open(io.BytesIO(prepare_bytes(data, recipe))) as img:
        width, height = img.size
    assert width == 10_240 and width <= 25 * height


def test_a_conversion_over_6_mb_without_downscale_is_an_error_naming_the_setting() -> None:
    # A lossy WEBP with transparency becomes a PNG: small as a WEBP, over 6 MB as a PNG.
    rng = random.Random(18)
    noise = Image.frombytes("RGBA", (1600, 1600), rng.randbytes(1600 * 1600 * 4))
    small = io.BytesIO()
    noise.save(small, "WEBP", quality=50)
    assert len(small.getvalue()) < SIX_MB
    recipe = recipe_of(small.getvalue(), dataclasses.replace(ON, downscale=False))
    assert recipe == "v1:png"
    with pytest.raises(PrepareError, match=r"files\.prepare\.downscale is off"):
        prepare_bytes(small.getvalue(), recipe)
    fitted = prepare_bytes(small.getvalue(), "v1:png:fit")
    assert len(fitted) <= SIX_MB


def test_a_phone_jpeg_with_a_second_picture_mpo_is_a_jpeg_sent_as_it_is() -> None:
    # Phones write MPO (a JPEG followed by more pictures); Pillow names its format MPO.
    first, second = Image.new("RGB", (64, 48), (1, 2, 3)), Image.new("RGB", (64, 48), (9, 9, 9))
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second])
    assert facts_of(out.getvalue()).format == "jpeg"
    assert recipe_of(out.getvalue()) is None


def test_the_summary_of_a_first_sync_without_prepare_builds_nothing_per_file() -> None:
    """summarize runs just after the plan, at a first sync's peak: with no prepared content it
    builds no table of every file (a dict of 100k files was ~5 MB there)."""
    n = 20_000
    files = tuple(
        LocalFile(f"a/{i:06}.png", 10, 1, 1, f"{i:064x}", ("a",), image_format="png")
        for i in range(n)
    )
    local = LocalSnapshot(root="/r", root_exists=True, marker=MarkerState.PRESENT, files=files)
    uploads = [f.sha256 or "" for f in files]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        summary = summarize(None, local, uploads, (), {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.reprepare == 0
    assert (peak - before) / n < 10  # bytes a file


# A pool process frees one image and allocates the next: run in a fresh interpreter (the malloc
# settings are per process), counting the page faults of the second 24 MB allocation.
_REUSE_PROBE = """
import resource, sys
from syncd.prepare import _worker_start
if sys.argv[1] == "pool":
    _worker_start()
block = bytearray(24 * 1024 * 1024)
del block
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = bytearray(24 * 1024 * 1024)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
def test_a_pool_process_reuses_the_memory_an_image_freed_without_faulting_it_in_again() -> None:
    def faults(kind: str) -> int:
        probe = [sys.executable, "-c", _REUSE_PROBE, kind]
        return int(subprocess.run(probe, capture_output=True, check=True, text=True).stdout)

    pages = 24 * 1024 * 1024 // 4096
    assert faults("plain") > pages // 2  # glibc's default: given back, faulted in again
    assert faults("pool") < pages // 10
