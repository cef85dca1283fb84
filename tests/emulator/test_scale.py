"""100,000 images in one project (the S0 quota): counts and deep pages stay cheap.

The images are seeded through the Store's own `create_images` (HTTP-uploading 100k images would
take minutes on two cores); everything measured afterwards goes over HTTP. No wall-time limits:
a deep page (skip=99,000) is compared with the first page as a ratio.
"""

from __future__ import annotations

import io
import statistics
import struct
import time
from collections.abc import Callable

import httpx
import pytest
from PIL import Image

from syncd.emulator.server import EmulatorServer
from syncd.emulator.store.records import Upload
from tests.emulator.support import api_client, count, new_project, new_tag

TOTAL = 100_000
BATCH = 2_000
DEEP_SKIP = 99_000
RATIO_LIMIT = 20


def _bmp_factory() -> Callable[[int], bytes]:
    """Return seq -> a distinct, valid 2x2 BMP (the seq is written into the pixels)."""
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="BMP")
    template = buf.getvalue()
    offset = struct.unpack_from("<I", template, 10)[0]  # where the pixel array starts
    return lambda seq: template[:offset] + struct.pack("<I", seq) + template[offset + 4 :]


def _median_seconds(http: httpx.Client, url: str, params: dict[str, object]) -> float:
    """Median wall time of 7 identical GETs (the first one warms caches like the others)."""
    times = []
    for _ in range(7):
        started = time.perf_counter()
        r = http.get(url, params=params)
        times.append(time.perf_counter() - started)
        assert r.status_code == 200, r.text
    return statistics.median(times)


@pytest.mark.slow
def test_counts_and_deep_pages_at_100k_images(
    start_emulator: Callable[..., EmulatorServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_emulator()
    with api_client(server.url) as http:
        pid = new_project(http)
        tag = new_tag(http, pid, "half")
        bmp = _bmp_factory()
        seeding = time.perf_counter()
        for start in range(0, TOTAL, BATCH):
            uploads = [Upload(f"{seq}.bmp", bmp(seq)) for seq in range(start, start + BATCH)]
            # Every other batch tagged, so tagged and untagged listings are both deep.
            tags = [tag] if (start // BATCH) % 2 == 0 else []
            results = server.store.create_images(pid, uploads, tags, None)
            assert {r.status for r in results} == {"OK"}
        seeding = time.perf_counter() - seeding

        assert count(http, pid) == TOTAL
        assert count(http, pid, "images/tagged/count") == TOTAL // 2
        assert count(http, pid, "images/untagged/count") == TOTAL // 2
        assert count(http, pid, "images/count", tagIds=tag) == TOTAL // 2

        listing = f"/projects/{pid}/images"
        first = http.get(listing, params={"take": 256}).json()
        deep = http.get(listing, params={"take": 256, "skip": DEEP_SKIP}).json()
        # Newest-first ranks 99,000..99,255 are oldest-first ranks 999 down to 744.
        oldest_skip = TOTAL - DEEP_SKIP - 256
        oldest = http.get(
            listing, params={"take": 256, "skip": oldest_skip, "orderBy": "Oldest"}
        ).json()
        assert len(first) == len(deep) == 256
        assert [i["id"] for i in deep] == [i["id"] for i in reversed(oldest)]
        assert {i["id"] for i in first}.isdisjoint(i["id"] for i in deep)
        assert len(http.get(listing, params={"skip": TOTAL - 10}).json()) == 10

        figures = {}
        # The tagged/untagged/by-tag listings hold 50,000 images, so their deep page is 49,000.
        for name, path, params, skip in (
            ("images", "images", {}, DEEP_SKIP),
            ("tagged", "images/tagged", {}, DEEP_SKIP // 2),
            ("untagged", "images/untagged", {}, DEEP_SKIP // 2),
            ("by-tag", "images", {"tagIds": tag}, DEEP_SKIP // 2),
        ):
            url = f"/projects/{pid}/{path}"
            figures[name] = (
                _median_seconds(http, url, {**params, "take": 256}),
                _median_seconds(http, url, {**params, "take": 256, "skip": skip}),
            )
        count_s = _median_seconds(http, f"/projects/{pid}/images/count", {})
        first_s = figures["images"][0]

    with capsys.disabled():
        print(f"\nscale: seeded {TOTAL} images via Store in {seeding:.1f} s")
        for name, (shallow, deep_s) in figures.items():
            print(
                f"scale: {name:8s} skip=0 {shallow * 1000:7.1f} ms, deep {deep_s * 1000:7.1f} ms,"
                f" ratio {deep_s / shallow:4.1f}"
            )
        print(f"scale: count {count_s * 1000:.1f} ms (first page {first_s * 1000:.1f} ms)")
    for name, (shallow, deep_s) in figures.items():
        assert deep_s / shallow < RATIO_LIMIT, (name, figures)
    assert count_s / first_s < RATIO_LIMIT
