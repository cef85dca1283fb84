"""The emulator's line and tiers: `--bandwidth` paces bodies over a link shared by every
connection, the wire's bytes are counted both ways, and `--tier F0` answers the free tier's
quotas and rates with the service's own codes.

Times are read from the emulator's own accounting (the link time it booked for each body, see
syncd/emulator/wire.py), never from the wall clock.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
)
from msrest.authentication import ApiKeyCredentials

from syncd.emulator.faults import Faults
from syncd.emulator.options import add_arguments, bandwidth, tier_settings
from syncd.emulator.server import EmulatorServer
from syncd.emulator.wire import Transfer
from tests.emulator.support import api_client, new_project, new_tag, post_images
from tests.support import TEST_KEY
from tests.support.images import image_bytes

StartEmulator = Callable[..., EmulatorServer]
RATE = 250_000.0  # bytes per second: a ~300 KB body needs about 1.2 s of the line


def _big_image(seed: int) -> bytes:
    """An uncompressed BMP of ~300 KB: its bytes on the wire are its size."""
    return image_bytes(seed, "bmp", size=(320, 320))


def _uploads(server: EmulatorServer) -> list[Transfer]:
    return [
        t
        for t in server.wire.transfers
        if t.direction == "up" and t.method == "POST" and t.path.endswith("/images")
    ]


def test_an_upload_holds_the_line_for_its_bytes_over_the_bandwidth(
    start_emulator: StartEmulator,
) -> None:
    server = start_emulator(faults=Faults(bandwidth=RATE))
    with api_client(server.url) as http:
        project = new_project(http)
        server.wire.reset()
        r = post_images(http, project, [("a.bmp", _big_image(1))])
    assert r.status_code == 200, r.text
    sent = int(r.request.headers["content-length"])
    assert sent > 300_000
    [upload] = _uploads(server)
    assert upload.bytes == sent
    # The body was booked on the line for sent / RATE seconds and could not cross it faster.
    assert upload.span_s >= sent / RATE * 0.999
    stats = server.wire.snapshot()
    assert stats["received_bytes"] == sent
    assert stats["uplink_booked_bytes"] == sent
    assert stats["uplink_booked_seconds"] == pytest.approx(sent / RATE, rel=1e-6)
    assert stats["sent_bytes"] == len(r.content)


def test_two_concurrent_uploads_share_the_bandwidth(start_emulator: StartEmulator) -> None:
    server = start_emulator(faults=Faults(bandwidth=RATE))
    with api_client(server.url) as http:
        project = new_project(http)
    server.wire.reset()
    together = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def send(seed: int) -> None:
        with api_client(server.url) as http:
            together.wait()
            answers.append(post_images(http, project, [(f"{seed}.bmp", _big_image(seed))]))

    threads = [threading.Thread(target=send, args=(seed,)) for seed in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [r.status_code for r in answers] == [200, 200]
    first, second = sorted(_uploads(server), key=lambda t: t.first_start or 0.0)
    alone = first.bytes / RATE
    # Each took its turns with the other: on one line per connection each would cross in
    # `alone`; sharing one line, both were on it at once and each took well over that.
    assert second.first_start is not None and first.last_end is not None
    assert second.first_start < first.last_end
    assert first.span_s >= 1.2 * alone
    assert second.span_s >= 1.2 * alone
    # The line never carried more than its rate: both bodies took their sum's time on it.
    assert server.wire.snapshot()["uplink_booked_bytes"] == first.bytes + second.bytes
    assert max(first.last_end or 0, second.last_end or 0) - first.first_start >= (
        (first.bytes + second.bytes) / RATE * 0.999
    )


def test_a_download_is_paced_on_the_downlink(start_emulator: StartEmulator) -> None:
    server = start_emulator(faults=Faults(bandwidth=RATE))
    with api_client(server.url) as http:
        project = new_project(http)
        r = post_images(http, project, [("d.bmp", _big_image(4))])
        assert r.status_code == 200, r.text
        uri = r.json()["images"][0]["image"]["originalImageUri"]
        server.wire.reset()
        original = httpx.get(uri, timeout=60)
    assert original.status_code == 200
    [download] = [t for t in server.wire.transfers if t.direction == "down"]
    assert download.bytes == len(original.content) > 300_000
    assert download.span_s >= download.bytes / RATE * 0.999
    assert server.wire.snapshot()["sent_bytes"] == len(original.content)


def test_without_a_bandwidth_bytes_are_still_counted(start_emulator: StartEmulator) -> None:
    server = start_emulator()
    with api_client(server.url) as http:
        project = new_project(http)
        server.wire.reset()
        r = post_images(http, project, [("c.bmp", _big_image(5))])
    assert r.status_code == 200
    stats = server.wire.snapshot()
    assert stats["received_bytes"] == int(r.request.headers["content-length"])
    assert stats["sent_bytes"] == len(r.content)
    assert "uplink_booked_bytes" not in stats


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12500000", 12_500_000), ("12.5M", 12_500_000), ("100Mbit", 12_500_000), ("1kbit", 125)],
)
def test_bandwidth_takes_bytes_or_bits(text: str, expected: float) -> None:
    assert bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0", "-5", "fast", "10Mbps"])
def test_bandwidth_refuses_nonsense(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        bandwidth(text)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_f0_quotas_are_the_documented_ones_and_explicit_options_win() -> None:
    quotas, rates = tier_settings(_args("--tier", "F0"))
    assert (quotas.max_projects, quotas.max_images_per_project, quotas.max_tags_per_project) == (
        2,
        5_000,
        50,
    )
    assert (rates["tps"], rates["train_tps"], rates["upload_tps"]) == (10, 2, 2)
    quotas, rates = tier_settings(
        _args("--tier", "F0", "--max-images-per-project", "9", "--tps", "3")
    )
    assert quotas.max_images_per_project == 9
    assert rates["tps"] == 3
    quotas, rates = tier_settings(_args())
    assert quotas.max_images_per_project == 100_000 and rates.get("tps") is None


def _past_throttle(call: Callable[[], object]) -> object:
    """Make an SDK call, waiting out the tier's 429s (the SDK does not retry them)."""
    for _ in range(30):
        try:
            return call()
        except CustomVisionErrorException as exc:
            if exc.response.status_code != 429:
                raise
            time.sleep(int(exc.response.headers.get("Retry-After", "1")))
    raise AssertionError("still throttled after 30 tries")


def test_f0_refuses_a_third_project_and_a_51st_tag_through_the_sdk(cli_emulator) -> None:
    _, url = cli_emulator("--tier", "F0")
    trainer = CustomVisionTrainingClient(
        url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    try:
        first = trainer.create_project("one")
        trainer.create_project("two")
        with pytest.raises(CustomVisionErrorException) as excinfo:
            trainer.create_project("three")
        assert excinfo.value.error.code == "BadRequestExceedProjectLimit"
        for i in range(50):
            _past_throttle(lambda i=i: trainer.create_tag(first.id, f"tag{i}"))
        with pytest.raises(CustomVisionErrorException) as excinfo:
            _past_throttle(lambda: trainer.create_tag(first.id, "tag50"))
        assert excinfo.value.error.code == "BadRequestExceedTagPerProjectLimit"
    finally:
        trainer.close()


def test_f0_throttles_uploads_near_two_a_second_with_the_services_message(cli_emulator) -> None:
    _, url = cli_emulator("--tier", "F0")
    with api_client(url) as http:
        project = new_project(http)
        tag = new_tag(http, project, "t")
        statuses: list[int] = []
        throttled: httpx.Response | None = None
        for i in range(20):
            r = post_images(http, project, [(f"{i}.png", image_bytes(100 + i, "png"))], [tag])
            statuses.append(r.status_code)
            if r.status_code == 429:
                throttled = r
                break
        # Reads go on at 10/s meanwhile: three in a row are answered.
        reads = [http.get(f"/projects/{project}/tags").status_code for _ in range(3)]
    assert throttled is not None, statuses
    assert statuses.count(200) >= 2
    assert int(throttled.headers["retry-after"]) >= 1
    body = throttled.json()
    assert body["code"] == "429"
    assert body["message"].startswith(
        "Requests to the CreateImagesFromData Operation under Custom_Vision_Training_3.3 have"
        " exceeded rate limit of your current Custom_Vision.Training F0 pricing tier."
    )
    assert reads == [200, 200, 200]


def test_f0_throttles_train_project_near_two_a_second(cli_emulator) -> None:
    _, url = cli_emulator("--tier", "F0")
    with api_client(url) as http:
        project = new_project(http)
        answers = [http.post(f"/projects/{project}/train") for _ in range(10)]
    throttled = [r for r in answers if r.status_code == 429]
    # The project has nothing to train: the calls let through are refused by the service's rule.
    assert {r.json()["code"] for r in answers if r.status_code != 429} <= {
        "BadRequestTrainingValidationFailed",
        "BadRequestTrainingNotNeeded",
        "BadRequestNotEnoughImagesPerTag",
    }
    assert throttled, [r.status_code for r in answers]
    assert "TrainProject Operation" in throttled[0].json()["message"]
