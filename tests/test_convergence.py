"""The top test of convergence: a hypothesis state machine edits the tree, drifts the project,
injects faults and crashes reconciles mid-plan; after every clean reconcile the project holds
exactly one image per distinct local content with exactly its folders' tags, and the next
reconcile has nothing to do.

The emulator runs in-process (its ASGI app over one in-memory store that outlives every client);
a crash is a BaseException raised from the transport after k requests, so whatever the ledger and
the emulator committed before it stays, as after a kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from syncd.api import ClientSettings, Pacer, TrainingClient
from syncd.config import parse_config
from syncd.credentials import TrainingKey
from syncd.emulator.app import create_app
from syncd.emulator.embedded import EMBEDDED_BASE_URL
from syncd.emulator.faults import DroppedResponse, Faults
from syncd.emulator.store import Store
from syncd.errors import ServiceError
from syncd.reconcile import reconcile_mirror
from tests.support.images import write_image

PROJECT_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
FOLDERS = ("Dog", "Cat", "Bird", "_negative", "")
NEW_FOLDER_NAMES = ("Fox", "Owl", "Elk")


class Crash(BaseException):
    """Stands for a kill: not an Exception, so no handler on the way mistakes it for an error."""


class _Transport(httpx.AsyncBaseTransport):
    """The emulator app in-process; optionally crashes once `crash_after` requests were answered
    and the next one has been carried out."""

    def __init__(self, app: Any, crash_after: int | None) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.crash_after = crash_after

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except DroppedResponse:
            raise httpx.RemoteProtocolError("emulated drop", request=request) from None
        if self.crash_after is not None:
            if self.crash_after == 0:
                raise Crash  # after the emulator committed: the answer is lost with the process
            self.crash_after -= 1
        return response


class Convergence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="syncd-convergence-"))
        self.root = self.tmp / "dataset"
        self.root.mkdir()
        self.store = Store(None)
        self.store.create_project("c", None, None, "Multilabel", (), project_id=PROJECT_ID)
        self.clean_app = create_app(self.store, training_key=None)
        text = (
            f"state_dir: {self.tmp / 'state'}\n"
            "service: {endpoint: 'https://unused.invalid'}\n"
            f"mirror: {{name: c, root: '{self.root}', project_id: {PROJECT_ID}, delete: mirror,"
            " guard: {max_delete: 100000, max_delete_fraction: 1.0}}\n"
        )
        self.config = parse_config(text, environ={})
        self.mirror = self.config.mirrors[0]
        self.seed = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the tree ---------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("."))

    @rule(folder=st.sampled_from(FOLDERS), fmt=st.sampled_from(["jpg", "png"]))
    def add_file(self, folder: str, fmt: str) -> None:
        self.seed += 1
        write_image(self.root / folder / f"f{self.seed}.{fmt}", 1000 + self.seed)

    @precondition(lambda self: self.files())
    @rule(data=st.data(), folder=st.sampled_from(FOLDERS))
    def copy_file(self, data: st.DataObject, folder: str) -> None:
        source = data.draw(st.sampled_from(self.files()))
        self.seed += 1
        target = self.root / folder / f"copy{self.seed}{source.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    @precondition(lambda self: self.files())
    @rule(data=st.data(), folder=st.sampled_from(FOLDERS))
    def move_file(self, data: st.DataObject, folder: str) -> None:
        source = data.draw(st.sampled_from(self.files()))
        target = self.root / folder / source.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)

    @rule(old=st.sampled_from(FOLDERS[:3]), new=st.sampled_from(NEW_FOLDER_NAMES))
    def rename_folder(self, old: str, new: str) -> None:
        if (self.root / old).is_dir() and not (self.root / new).exists():
            (self.root / old).rename(self.root / new)

    # Never the last file: an empty root refuses every delete, --allow-mass-delete or not
    # (tests/e2e/test_guard.py), so the project would rightly keep its images.
    @precondition(lambda self: len(self.files()) > 1)
    @rule(data=st.data())
    def delete_file(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(self.files())).unlink()

    @precondition(lambda self: self.files())
    @rule(data=st.data())
    def overwrite_file(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.files()))
        self.seed += 1
        write_image(target, 1000 + self.seed)

    # --- the project, behind syncd's back ---------------------------------------------------

    @precondition(lambda self: self.store.count_images(PROJECT_ID))
    @rule(data=st.data())
    def drift_delete_image(self, data: st.DataObject) -> None:
        image = data.draw(st.sampled_from(self.store.images(PROJECT_ID, take=10**6)))
        self.store.delete_images(PROJECT_ID, [image.id])

    @precondition(lambda self: self.store.count_images(PROJECT_ID, tagging_status="Tagged"))
    @rule(data=st.data())
    def drift_remove_tag(self, data: st.DataObject) -> None:
        tagged = self.store.images(PROJECT_ID, tagging_status="Tagged", take=10**6)
        image = data.draw(st.sampled_from(tagged))
        self.store.remove_image_tags(PROJECT_ID, [image.id], [image.tags[0].tag_id])

    # --- reconciles -------------------------------------------------------------------------

    def reconcile(self, app: Any, crash_after: int | None = None, full: bool = False) -> Any:
        async def go() -> Any:
            settings_ = ClientSettings(
                rate_per_second=10_000, max_attempts=10, base_backoff_s=0.001, max_backoff_s=0.005
            )
            client = TrainingClient(
                EMBEDDED_BASE_URL,
                TrainingKey("convergence-key"),
                settings=settings_,
                transport=_Transport(app, crash_after),
                pacer=Pacer(10_000),
            )
            async with client:
                return await reconcile_mirror(
                    self.config, self.mirror, client, allow_mass_delete=True, full=full
                )

        return asyncio.run(go())

    @rule(k=st.integers(min_value=0, max_value=12))
    def crash_mid_reconcile(self, k: int) -> None:
        with contextlib.suppress(Crash):
            self.reconcile(self.clean_app, crash_after=k)

    @rule(seed=st.integers(0, 2**16))
    def reconcile_under_faults(self, seed: int) -> None:
        faults = Faults(fail_rate=0.2, drop_rate=0.1, seed=seed)
        # ServiceError: the retry budget ran out; the run stops and the next one finishes the job.
        with contextlib.suppress(ServiceError):
            self.reconcile(create_app(self.store, training_key=None, faults=faults))

    @rule()
    def reconcile_and_check(self) -> None:
        report = self.reconcile(self.clean_app)
        assert not report.failures, report.failures
        expected, conflicted = self.expected()
        assert self.remote(skip=conflicted) == expected
        again = self.reconcile(self.clean_app)
        assert again.plan.is_empty, again.plan.counts()
        assert again.remote.listing == "counts"

    # --- what should be -----------------------------------------------------------------------

    def expected(self) -> tuple[dict[str, frozenset[str]], set[str]]:
        """sha256 -> tag names for the tree; and the contents in conflict (left alone)."""
        tags: dict[str, set[str]] = {}
        negative: set[str] = set()
        for path in self.files():
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            parts = path.relative_to(self.root).parts
            tags.setdefault(sha, set())
            if len(parts) > 1 and parts[0] == "_negative":
                negative.add(sha)
            elif len(parts) > 1:
                tags[sha].add(parts[0])
        conflicted = {sha for sha in negative if tags[sha]}
        expected = {
            sha: frozenset({"Negative"} if sha in negative else names)
            for sha, names in tags.items()
            if sha not in conflicted
        }
        return expected, conflicted

    def remote(self, skip: set[str]) -> dict[str, frozenset[str]]:
        names = {t.id: t.name for t in self.store.tags(PROJECT_ID)}
        out: dict[str, frozenset[str]] = {}
        for image in self.store.images(PROJECT_ID, take=10**6):
            blob = self.store.blob(image.token)
            assert blob is not None
            sha = hashlib.sha256(blob[0]).hexdigest()
            if sha in skip:
                continue
            assert sha not in out, f"two images hold {sha}"
            out[sha] = frozenset(names[t.tag_id] for t in image.tags)
        return out


Convergence.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestConvergence = pytest.mark.slow(pytest.mark.timeout(600)(Convergence.TestCase))
