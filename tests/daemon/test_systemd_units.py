"""The systemd units in systemd/ pass `systemd-analyze verify` (skipped where it is missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
NAMES = ("syncd.service", "syncd-reconcile.service", "syncd-reconcile.timer")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify also checks that ExecStart's binary exists: point it at this environment's syncd.
    syncd = Path(sys.executable).parent / "syncd"
    assert syncd.exists(), "install the package (pip install -e .) to get the syncd script"
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/usr/local/bin/syncd", str(syncd))
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in NAMES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 0 and not problems, result.stderr


def test_the_service_is_type_notify_with_a_watchdog_and_hardening() -> None:
    text = (UNITS / "syncd.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=60",
        "Restart=on-failure",
        "LoadCredential=training-key:/etc/syncd/training-key",
        "StateDirectory=syncd",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "User=syncd",
        "ExecStart=/usr/local/bin/syncd run --config /etc/syncd/syncd.yaml",
    ):
        assert f"\n{line}\n" in text, line


REPO = UNITS.parent
# The documents whose install steps an operator follows.
INSTALL_DOCS = (REPO / "README.md", REPO / "docs" / "daemon.md")


def _directives(name: str, key: str) -> list[str]:
    """Every value of `key=` in the unit (a space-separated list counts as several)."""
    values = []
    for line in (UNITS / name).read_text().splitlines():
        if line.startswith(f"{key}="):
            values += line.split("=", 1)[1].split()
    return values


def _installs(doc: Path, target: str) -> list[str]:
    """The repository files that `doc`'s shell lines install at `target`."""
    sources = []
    for line in doc.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()  # a shell comment is not a word
        if "install" in words and words[-1] == target:
            sources.append(words[-2])
    return sources


@pytest.mark.parametrize("name", NAMES)
def test_each_documentation_link_exists_after_the_documented_install(name: str) -> None:
    links = _directives(name, "Documentation")
    assert links, f"{name} has no Documentation="
    for link in links:
        # Only file: links: no man page is installed, and the project has no public URL.
        assert link.startswith("file:/"), f"{name}: {link} is not a file syncd installs"
        target = link.removeprefix("file:")
        for doc in INSTALL_DOCS:
            sources = _installs(doc, target)
            assert sources, f"{doc.name}'s install steps do not create {target} ({name})"
            assert all((REPO / s).is_file() for s in sources), (doc.name, sources)


def _timer_decision(doc: str) -> str:
    """The `SuccessExitStatus=...` value the docs give for syncd-reconcile.service."""
    found = re.findall(r"`syncd-reconcile\.service` has `SuccessExitStatus=([^`]*)`", doc)
    assert len(found) == 1, "docs/daemon.md does not state the timer's exit-1 decision once"
    return found[0]


def test_the_timer_service_treats_exit_1_as_the_docs_say() -> None:
    # Exit 1 is "finished, not everything mirrored": a problem file keeps it so until the file
    # is fixed. The decision (not a unit failure) is written in the unit and in the docs.
    documented = _timer_decision((REPO / "docs" / "daemon.md").read_text(encoding="utf-8"))
    assert _directives("syncd-reconcile.service", "SuccessExitStatus") == documented.split()
    unit = (UNITS / "syncd-reconcile.service").read_text()
    comment = unit.split("\nSuccessExitStatus=")[0].rsplit("\n", 1)[-1]
    assert comment.startswith("#") and "docs/daemon.md" in comment, comment
