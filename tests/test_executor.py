"""The executor between plan and service: races with the tree and the project, and its rules.

Each test scans a real tree, reads the in-process emulator with syncd.remote, plans, then changes
something behind the plan's back (a file, a tag) before executing, as a slow run would meet it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.api import ClientSettings, Pacer, TrainingClient
from syncd.config import MirrorConfig, parse_config
from syncd.credentials import TrainingKey
from syncd.emulator.app import create_app
from syncd.emulator.embedded import EMBEDDED_BASE_URL
from syncd.emulator.store import Store
from syncd.executor import Execution, execute
from syncd.ledger import Ledger
from syncd.planner import Plan, plan
from syncd.remote import RemoteRead, read_remote
from syncd.scan import scan, write_marker
from tests.support.images import write_image

PROJECT_ID = "6a1f3c2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "dataset"
        self.root.mkdir()
        self.store = Store(None)
        self.store.create_project("x", None, None, "Multilabel", (), project_id=PROJECT_ID)
        config = parse_config(
            f"state_dir: {tmp / 'state'}\n"
            f"mirror: {{name: x, root: '{self.root}', project_id: {PROJECT_ID}, delete: mirror}}\n",
            environ={},
        )
        self.mirror: MirrorConfig = config.mirrors[0]
        assert self.mirror.ledger is not None
        self.ledger = Ledger.open(self.mirror.ledger, project_id=PROJECT_ID)
        self.app = create_app(self.store, training_key=None)

    def client(self) -> TrainingClient:
        return TrainingClient(
            EMBEDDED_BASE_URL,
            TrainingKey("executor-test-key"),
            settings=ClientSettings(rate_per_second=1000),
            transport=httpx.ASGITransport(app=self.app),
            pacer=Pacer(1000),
        )

    def read(self) -> tuple[Plan, RemoteRead, int]:
        async def go() -> tuple[Plan, RemoteRead, int]:
            run_id = self.ledger.begin_run()
            local = scan(self.mirror, self.ledger.cached_files())
            self.ledger.record_scan(local, run_id)
            async with self.client() as client:
                remote = await read_remote(client, PROJECT_ID, self.ledger, local, run_id=run_id)
            return plan(local, self.ledger.view(), remote.snapshot, self.mirror), remote, run_id

        return asyncio.run(go())

    def execute(self, the_plan: Plan, remote: RemoteRead, run_id: int) -> Execution:
        async def go() -> Execution:
            async with self.client() as client:
                return await execute(
                    the_plan,
                    client=client,
                    ledger=self.ledger,
                    root=self.root,
                    project_id=PROJECT_ID,
                    remote=remote.snapshot,
                    run_id=run_id,
                )

        return asyncio.run(go())

    def sync(self) -> Execution:
        return self.execute(*self.read())

    def remote_images(self) -> list[Any]:
        return self.store.images(PROJECT_ID, take=10**6)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    s.ledger.close()
    s.store.close()


def test_a_tag_made_elsewhere_after_the_listing_is_used_not_failed(setup: Setup) -> None:
    write_image(setup.root / "Dog/a.jpg", 1)
    the_plan, remote, run_id = setup.read()
    assert [t.name for t in the_plan.create_tags] == ["Dog"]
    portal_tag = setup.store.create_tag(PROJECT_ID, "Dog", None, "Regular")

    result = setup.execute(the_plan, remote, run_id)

    assert result.failures == []
    [image] = setup.remote_images()
    assert [t.tag_id for t in image.tags] == [portal_tag.id]
    # The tag is not syncd's, so delete_empty_tags may never remove it.
    assert portal_tag.id not in setup.ledger.view().created_tag_ids


def test_a_file_rewritten_after_the_scan_is_not_sent_with_stale_bytes(setup: Setup) -> None:
    write_image(setup.root / "Dog/a.jpg", 1)
    write_image(setup.root / "Dog/b.jpg", 2)
    the_plan, remote, run_id = setup.read()
    write_image(setup.root / "Dog/a.jpg", 3)  # new bytes, after the plan was made

    result = setup.execute(the_plan, remote, run_id)

    assert [(f.operation, f.subject) for f in result.failures] == [("upload", "Dog/a.jpg")]
    assert "changed since it was scanned" in result.failures[0].message
    assert len(setup.remote_images()) == 1  # b.jpg only; a.jpg's new bytes wait for the next run
    setup.sync()
    assert len(setup.remote_images()) == 2


def test_a_file_removed_after_the_scan_is_reported_and_the_rest_goes_on(setup: Setup) -> None:
    write_image(setup.root / "Dog/a.jpg", 1)
    write_image(setup.root / "Cat/b.jpg", 2)
    the_plan, remote, run_id = setup.read()
    (setup.root / "Dog/a.jpg").unlink()

    result = setup.execute(the_plan, remote, run_id)

    assert [f.subject for f in result.failures] == ["Dog/a.jpg"]
    assert "No such file" in result.failures[0].message
    assert result.done["uploads"] == 1


def test_deletes_are_skipped_when_something_earlier_failed(setup: Setup) -> None:
    write_image(setup.root / "Dog/a.jpg", 1)
    write_image(setup.root / "Dog/b.jpg", 2)
    setup.sync()
    write_marker(setup.root, PROJECT_ID)  # as a first successful reconcile does
    (setup.root / "Dog/b.jpg").unlink()  # b's image is to be deleted (delete: mirror)
    write_image(setup.root / "Dog/c.jpg", 3)  # c is to be uploaded ...
    the_plan, remote, run_id = setup.read()
    assert len(the_plan.delete_images) == 1 and len(the_plan.uploads) == 1
    (setup.root / "Dog/c.jpg").unlink()  # ... and its upload fails

    result = setup.execute(the_plan, remote, run_id)

    assert result.skipped_deletes == 1
    assert result.done["delete_images"] == 0
    assert len(setup.remote_images()) == 2  # b's image is still there
