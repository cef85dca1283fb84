"""The daemon in front of a service that echoes the key: no form of it in its log, its metrics
page or its state; the service's unknown error codes count as `other`; and a metrics address off
loopback is warned about once, at start."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.daemon.conftest import World
from tests.support import TEST_KEY
from tests.support.hostile import HostileServer
from tests.support.images import write_image
from tests.support.key_echo import echoing_script, leaks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _files_with_a_form(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            forms = leaks(path.read_bytes(), TEST_KEY)
            if forms:
                found[str(path.relative_to(root))] = forms
    return found


def test_the_daemon_facing_an_echoing_service_shows_no_key_and_labels_junk_other(
    world: World,
) -> None:
    port = _free_port()
    with HostileServer(echoing_script(world.url, world.project_id), upstream=world.url) as bad:
        world.write_config(
            service={"endpoint": bad.url},
            daemon={"metrics_address": f"0.0.0.0:{port}"},
        )
        daemon = world.start_daemon()
        daemon.wait_ready()
        write_image(world.root / "Dog" / "a.jpg", 1)

        def failure_counted() -> str | None:
            page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return page if 'code="other"' in page else None

        page = daemon.wait_for(failure_counted, "the upload's failure counted as code 'other'")
        assert daemon.stop() == 0

    assert 'syncd_failures_total{code="other",mirror="t",operation="upload"}' in page
    found = leaks(page, TEST_KEY)
    assert not found, f"the metrics page holds the key as {found}"
    log = daemon.log_path.read_text(errors="replace")
    found = leaks(log, TEST_KEY)
    assert not found, f"the daemon log holds the key as {found}"
    assert _files_with_a_form(world.tmp / "state") == {}
    warnings = [e for e in daemon.events("config_warning") if "metrics_address" in e["warning"]]
    assert len(warnings) == 1 and "not a loopback address" in warnings[0]["warning"]
