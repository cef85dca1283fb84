"""The executor between plan and service: races with the tree and the project, and its rules.

Each test scans a real tree, reads the in-process emulator with syncd.remote, plans, then changes
something behind the plan's back (a file, a tag) before executing, as a slow run would meet it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.api import ApiError, ClientSettings, Pacer, TrainingClient
from syncd.api.errors import error_for
from syncd.config import MirrorConfig, parse_config
from syncd.core.planner import Plan, plan
from syncd.credentials import TrainingKey
from syncd.emulator.app import create_app
from syncd.emulator.embedded import EMBEDDED_BASE_URL
from syncd.emulator.faults import Faults
from syncd.emulator.store import Store
from syncd.executor import Execution, execute
from syncd.ledger import Ledger
from syncd.remote import RemoteRead, read_remote
from syncd.scan import check_tree, walk_tree, write_marker
from tests.support.images import image_bytes, write_image

PROJECT_ID = "6a1f3c2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"

# Answers a request in the emulator's place, or None to let the emulator answer it.
Refusal = Callable[[httpx.Request], httpx.Response | None]


class _Refusing(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, refuse: Refusal) -> None:
        self.inner = inner
        self.refuse = refuse

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.refuse(request) or await self.inner.handle_async_request(request)


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "dataset"
        self.root.mkdir()
        self.store = Store(None)
        self.store.create_project("x", None, None, "Multilabel", (), project_id=PROJECT_ID)
        config = parse_config(
            f"state_dir: {tmp / 'state'}\n"
            "service: {endpoint: embedded}\n"
            f"mirror: {{name: x, root: '{self.root}', project_id: {PROJECT_ID}, delete: mirror}}\n",
            environ={},
        )
        self.mirror: MirrorConfig = config.mirrors[0]
        assert self.mirror.ledger is not None
        self.ledger = Ledger.open(self.mirror.ledger, project_id=PROJECT_ID)
        self.app = create_app(self.store, training_key=None)
        self.refuse: Refusal = lambda request: None
        self.settings = ClientSettings(rate_per_second=1000)

    def client(self) -> TrainingClient:
        return TrainingClient(
            EMBEDDED_BASE_URL,
            TrainingKey("executor-test-key"),
            settings=self.settings,
            transport=_Refusing(httpx.ASGITransport(app=self.app), self.refuse),
            pacer=Pacer(1000),
        )

    def read(self) -> tuple[Plan, RemoteRead, int]:
        async def go() -> tuple[Plan, RemoteRead, int]:
            run_id = self.ledger.begin_run()
            local = check_tree(walk_tree(self.mirror), self.mirror, self.ledger.cached_files())
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


@pytest.mark.parametrize(
    ("status", "code", "fatal"),
    [
        (401, "401", True),
        (404, "NotFoundProject", True),
        (400, "BadRequestExceedTagPerProjectLimit", False),
        (400, "BadRequestTagName", False),
    ],
)
def test_a_fatal_error_stops_the_run_any_other_costs_only_its_items(
    setup: Setup, status: int, code: str, fatal: bool
) -> None:
    write_image(setup.root / "Dog/a.jpg", 1)
    write_image(setup.root / "Cat/b.jpg", 2)
    the_plan, remote, run_id = setup.read()
    refusal = httpx.Response(status, json={"code": code, "message": "refused"})

    def refuse_cat(request: httpx.Request) -> httpx.Response | None:
        creates_cat = request.url.path.endswith("/tags") and request.url.params.get("name") == "Cat"
        return refusal if request.method == "POST" and creates_cat else None

    setup.refuse = refuse_cat
    # The executor asks the error itself: the class's `fatal` decides.
    assert error_for("create_tag", refusal).fatal is fatal

    if fatal:
        with pytest.raises(ApiError) as caught:
            setup.execute(the_plan, remote, run_id)
        assert caught.value.code == code
        assert setup.remote_images() == []  # the run stopped after the step that met it
    else:
        result = setup.execute(the_plan, remote, run_id)
        assert [(f.operation, f.subject, f.code) for f in result.failures] == [
            ("create_tag", "Cat", code),
            ("upload", "Cat/b.jpg", None),
        ]
        assert result.done["uploads"] == 1  # Dog/a.jpg went on


def test_an_upload_whose_many_copies_all_went_names_a_few_of_them(setup: Setup) -> None:
    data = write_image(setup.root / "T00/a.jpg", 1)
    copies = [f"T{i:02}/a.jpg" for i in range(20)]
    for rel in copies[1:]:
        (setup.root / rel).parent.mkdir()
        (setup.root / rel).write_bytes(data)
    the_plan, remote, run_id = setup.read()
    for rel in copies:
        (setup.root / rel).unlink()

    result = setup.execute(the_plan, remote, run_id)

    (failure,) = result.failures
    assert failure.message.count("a.jpg") == 5, failure.message  # syncd.display.SHOWN_PATHS
    assert "and 15 more" in failure.message, failure.message


def test_big_uploads_keep_four_windows_on_the_line_within_the_batch_bytes(setup: Setup) -> None:
    """Camera-sized images on a slow line: while one window of uploads waits for its answer, its
    metadata call and the next read from disk, three others keep the line busy; together the
    windows hold no more image bytes than one full batch (max_batch_bytes)."""
    (setup.root / "Dog").mkdir()
    for n in range(24):  # ~300 KB each, uncompressed
        (setup.root / "Dog" / f"{n}.bmp").write_bytes(image_bytes(n, "bmp", size=(320, 320)))
    setup.app = create_app(setup.store, training_key=None, faults=Faults(bandwidth=4e6))
    setup.settings = ClientSettings(rate_per_second=1000, max_batch_bytes=4_000_000)

    result = setup.sync()

    assert result.failures == []
    assert len(setup.remote_images()) == 24
    uploads = [
        t
        for t in setup.app.state.wire.transfers
        if t.direction == "up" and t.path.endswith("/images")
    ]
    assert all(t.bytes <= 4_000_000 // 4 + 4 * 1024 for t in uploads)
    # On the line's own clock: how many upload bodies were crossing at the busiest moment.
    edges = sorted([(t.first_start, 1) for t in uploads] + [(t.last_end, -1) for t in uploads])
    crossing, busiest = 0, 0
    for _, step in edges:
        crossing += step
        busiest = max(busiest, crossing)
    assert busiest >= 3
