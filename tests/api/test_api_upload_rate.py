"""A tier that limits the image-creating calls apart (F0: uploads near 2/s, other calls 10/s):
`upload_rate_per_second` paces the uploads to it without slowing the rest to the same rate.

The emulator plays the tier's limit (`Faults(upload_tps=2)`: a token bucket over the
image-creating calls, 429 past it). With the uploads' own rate set, five upload calls meet no
429; with only the shared rate of 10/s, they go together and meet the tier's 429s.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from syncd.emulator.faults import Faults
from syncd.emulator.server import EmulatorServer
from tests.api.conftest import RecordingTransport, make_client, seeded_items

pytestmark = pytest.mark.anyio

UPLOAD_CALLS = 5
IMAGES = 64 * (UPLOAD_CALLS - 1) + 1  # 64 images a call: five calls


async def _upload_statuses(emulator: EmulatorServer, **settings: float) -> list[int | str]:
    """Upload IMAGES images in one go; return the statuses of the upload requests sent."""
    recording = RecordingTransport(httpx.AsyncHTTPTransport())
    async with make_client(emulator.url, transport=recording, **settings) as client:
        project = await client.create_project("upload-rate")
        items = seeded_items(IMAGES, 0)
        results = [r async for batch in client.upload_images(project.id, items) for r in batch]
        assert len(results) == IMAGES and all(r.ok for r in results)
    return [
        status
        for request, status in zip(recording.requests, recording.statuses, strict=True)
        if request.method == "POST" and request.url.path.endswith(("/images", "/images/files"))
    ]


async def test_uploads_paced_at_their_own_rate_meet_no_429_of_the_tier(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = start_emulator(faults=Faults(upload_tps=2))
    statuses = await _upload_statuses(
        emulator, rate_per_second=10, upload_rate_per_second=2, max_attempts=8
    )
    assert len(statuses) == UPLOAD_CALLS
    assert 429 not in statuses


async def test_without_their_own_rate_the_uploads_meet_the_tiers_429(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    """The other side of the test above: it would see the 429s if the setting did nothing."""
    emulator = start_emulator(faults=Faults(upload_tps=2))
    statuses = await _upload_statuses(emulator, rate_per_second=10, max_attempts=8)
    assert 429 in statuses
