"""Helpers for the end-to-end tests: a sandbox (tree + config + project), the CLI, the remote.

Public names: MIRROR_NAME, STANDARD_TREE, Sandbox, Run, RemoteImage, remote_images,
remote_content, remote_tags, expected_content, sha256, write_tree, ledger_snapshot, ledger_meta,
age, UploadCalls, service_refused_gif.

Everything the tests check about the project is read over plain HTTP (listing, tags, and the
original bytes from each image's URI), never through syncd's own code.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from syncd.cli.main import main
from tests.support.images import image_bytes, write_image
from tests.support.project_view import RemoteImage, content, remote_images, sha256
from tests.support.spec_check import SpecChecker

MIRROR_NAME = "t"
REPO = Path(__file__).resolve().parents[2]

# rel path -> seed. Distinct seeds give distinct bytes; formats follow the suffix.
STANDARD_TREE: dict[str, int] = {
    "Dog/d0.jpg": 100,
    "Dog/d1.jpg": 101,
    "Dog/d2.png": 102,
    "Dog/d3.jpg": 103,
    "Cat/c0.jpg": 200,
    "Cat/c1.png": 201,
    "Cat/c2.bmp": 202,
    "Bird/b0.jpg": 300,
    "Bird/b1.gif": 301,
    "Bird/b2.jpg": 302,
    "_negative/n0.jpg": 400,
    "_negative/n1.png": 401,
}


def write_tree(root: Path, tree: Mapping[str, int]) -> None:
    """Write one seeded image per entry of tree under root."""
    for rel, seed in tree.items():
        write_image(root / rel, seed)


def expected_content(
    root: Path, *, skip: frozenset[str] = frozenset(), negative: str = "_negative"
) -> dict[str, frozenset[str]]:
    """sha256 -> tag names the project should hold for the tree (mode `top`, defaults).

    Hidden files (the marker) and paths in `skip` are left out; the same bytes in several folders
    give one entry carrying every folder's tag; the negative folder gives the tag "Negative".
    """
    out: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel in skip or any(p.startswith(".") for p in rel.split("/")):
            continue
        parts = rel.split("/")
        tags = out.setdefault(sha256(path.read_bytes()), set())
        if len(parts) > 1:
            tags.add("Negative" if parts[0] == negative else parts[0])
    return {h: frozenset(t) for h, t in out.items()}


def remote_content(http: httpx.Client, project_id: str) -> dict[str, frozenset[str]]:
    """sha256 -> tag names; fails if two images hold the same bytes (a duplicate upload)."""
    return content(remote_images(http, project_id))


def remote_tags(http: httpx.Client, project_id: str) -> dict[str, dict[str, Any]]:
    """Tag name -> Tag (id, type, imageCount) as GetTags answers."""
    r = http.get(f"/projects/{project_id}/tags")
    assert r.status_code == 200, r.text
    return {t["name"]: t for t in r.json()}


def ledger_meta(path: Path, key: str) -> str | None:
    """One value of the ledger's meta table (read-only), e.g. its `ledger_id`."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    db.close()
    return None if row is None else str(row[0])


def ledger_snapshot(path: Path) -> tuple[bytes, list[str]]:
    """The ledger file's bytes and a dump of its rows (read-only; never writes the file)."""
    data = path.read_bytes()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = list(db.iterdump())
    db.close()
    return data, rows


@dataclass
class Run:
    """One CLI run: exit code, output, and the --json document if there was one."""

    exit_code: int
    stdout: str
    stderr: str
    document: dict[str, Any] | None = None

    @property
    def mirror(self) -> dict[str, Any]:
        """The only mirror's section of the --json document."""
        assert self.document is not None, f"no JSON on stdout:\n{self.stdout}\n{self.stderr}"
        mirrors = self.document["mirrors"]
        assert len(mirrors) == 1, mirrors
        return mirrors[0]

    def problem_paths(self) -> set[str]:
        return {p["path"] for p in self.mirror["problems"]}

    def failed_subjects(self) -> set[str]:
        return {f["subject"] for f in self.mirror["failed"]}

    def __str__(self) -> str:  # shown by pytest when an assertion on a Run fails
        return f"exit {self.exit_code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Sandbox:
    """A dataset root, a state dir, a config file and a project in an emulator over HTTP."""

    tmp: Path
    endpoint: str
    project_id: str
    http: httpx.Client
    capsys: pytest.CaptureFixture[str]
    mirror_options: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.tmp / "dataset"

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def ledger(self) -> Path:
        return self.state_dir / f"{MIRROR_NAME}.ledger.sqlite"

    @property
    def config_path(self) -> Path:
        return self.tmp / "syncd.yaml"

    def write_config(self, **mirror_options: Any) -> Path:
        """Write the config; keyword options are merged into the `mirror:` section."""
        self.mirror_options = _merge(self.mirror_options, mirror_options)
        mirror = {
            "name": MIRROR_NAME,
            "root": str(self.root),
            "project_id": self.project_id,
            "delete": "mirror",
            "ledger": str(self.ledger),
        }
        config = {
            "state_dir": str(self.state_dir),
            "service": {"endpoint": self.endpoint, "rate_per_second": 50, "max_attempts": 3},
            "mirror": _merge(mirror, self.mirror_options),
        }
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return self.config_path

    def cli(self, *args: str) -> Run:
        """Run `syncd <args>` in this process, capturing its output."""
        self.capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse exits this way
            code = exc.code if isinstance(exc.code, int) else 2
        out, err = self.capsys.readouterr()
        document = None
        if "--json" in args and out.strip():
            document = json.loads(out)
        return Run(code, out, err, document)

    def reconcile(self, *args: str) -> Run:
        """`syncd reconcile --config <ours> --json <args>`; checks the JSON's exit code agrees."""
        run = self.cli("reconcile", "--config", str(self.config_path), "--json", *args)
        assert run.document is not None, str(run)
        assert run.document["exit_code"] == run.exit_code, str(run)
        if run.exit_code == 0 and "--dry-run" not in args:
            # Exit 0 means everything planned was done: the two tallies must agree.
            for mirror in run.document["mirrors"]:
                planned = {k: mirror["planned"][k] for k in mirror["done"]}
                assert mirror["done"] == planned, f"exit 0 but done != planned\n{run}"
        return run

    def status(self, *args: str) -> Run:
        return self.cli("status", "--config", str(self.config_path), *args)

    def subprocess_cli(self, *args: str, env: Mapping[str, str] | None = None) -> Run:
        """Run `python -m syncd <args>` as a child process (all of its output captured)."""
        proc = subprocess.run(
            [sys.executable, "-m", "syncd", *args],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        document = None
        if "--json" in args and proc.stdout.strip():
            document = json.loads(proc.stdout)
        return Run(proc.returncode, proc.stdout, proc.stderr, document)

    def content(self) -> dict[str, frozenset[str]]:
        return remote_content(self.http, self.project_id)

    def images(self) -> list[RemoteImage]:
        return remote_images(self.http, self.project_id)

    def expected(self, skip: frozenset[str] = frozenset()) -> dict[str, frozenset[str]]:
        return expected_content(self.root, skip=skip)


AN_HOUR = 3600


def age(root: Path, seconds: int = AN_HOUR) -> None:
    """Give every file an mtime `seconds` old: a tree synced long ago, not seconds after writing
    (the scanner does not trust a hash taken within 2 s of the file's mtime)."""
    then = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            os.utime(path, (then, then))


_UPLOAD = re.compile(r"/projects/[^/]+/images(/files)?$")


class UploadCalls:
    """Every upload request the emulator answered, whatever the answer."""

    def __init__(self, spec: SpecChecker) -> None:
        self.spec = spec
        self.count = 0
        self.lock = threading.Lock()

    def observe(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        self.spec.observe(method, path, status, headers, body)
        if method == "POST" and _UPLOAD.search(path):
            with self.lock:
                self.count += 1


def service_refused_gif(seed: int) -> bytes:
    """A GIF without its trailer byte: Pillow decodes its frame, so the local check passes it,
    and the service (the emulator reads a GIF's blocks up to the trailer) refuses it."""
    return image_bytes(seed, "gif")[:-1]
