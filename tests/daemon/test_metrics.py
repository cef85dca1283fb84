"""`daemon.metrics_address`: Prometheus text on localhost, counting what the daemon did."""

from __future__ import annotations

import socket

import httpx

from syncd.daemon.metrics import parse_address
from tests.daemon.conftest import World
from tests.support.images import write_image


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        series, _, label_text = key.partition("{")
        got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if series == name and got == want:
            return float(value)
    return None


def test_metrics_count_uploads_api_calls_and_pending_work(world: World) -> None:
    port = _free_port()
    world.write_config(daemon={"metrics_address": f"127.0.0.1:{port}"})
    daemon = world.start_daemon()
    daemon.wait_ready()
    write_image(world.root / "Dog" / "a.jpg", 1)
    write_image(world.root / "Dog" / "b.jpg", 2)

    def scraped() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        done = _sample(text, "syncd_actions_total", mirror="t", action="uploads")
        return text if done == 2 else None

    text = daemon.wait_for(scraped, "2 uploads counted in /metrics")
    assert _sample(text, "syncd_files", mirror="t", state="ok") == 2
    assert _sample(text, "syncd_pending_paths", mirror="t") == 0
    assert (
        _sample(text, "syncd_api_calls_total", operation="upload_images", status="200") or 0
    ) >= 1
    assert (_sample(text, "syncd_last_full_reconcile_timestamp_seconds", mirror="t") or 0) > 0
    assert _sample(text, "syncd_throttled_total") == 0
    assert "tk-TEST" not in text  # the key is nowhere, not even in a label
    assert daemon.stop() == 0


def test_metrics_address_is_validated() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address(":9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "host:", "host:99999", "host:http"):
        try:
            parse_address(bad)
        except ValueError as exc:
            assert "host:port" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_failure_codes_become_labels_only_from_the_known_set() -> None:
    from syncd.daemon.metrics import Metrics, metric_code
    from tests.support import TEST_KEY

    assert metric_code("NotFoundProject") == "NotFoundProject"
    assert metric_code("BadRequestTagNameNotUnique") == "BadRequestTagNameNotUnique"
    assert metric_code("ErrorImageSize") == "ErrorImageSize"  # an upload status
    assert metric_code("ReadTimeout") == "ReadTimeout"  # a transport error's name
    assert metric_code("429") == "429"
    assert metric_code(None) == metric_code("") == ""
    for junk in (f"NotFound{TEST_KEY}", TEST_KEY, "x" * 5000, "Bad\nRequest", "4290", "***"):
        assert metric_code(junk) == "other"

    metrics = Metrics()
    metrics.observe_call("get_project", f"{TEST_KEY}")
    metrics.observe_call("get_project", "503")
    from prometheus_client import generate_latest

    page = generate_latest(metrics.registry).decode()
    assert TEST_KEY not in page
    assert 'status="other"' in page and 'status="503"' in page
