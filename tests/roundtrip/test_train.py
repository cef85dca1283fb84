"""`syncd train [--wait]` and `train_after_sync`, against the emulator's simulated training."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from syncd.api import Iteration
from syncd.emulator.server import EmulatorServer
from syncd.train import POLL_BACKOFF, wait_for_iteration
from tests.e2e.support import Sandbox
from tests.roundtrip.conftest import new_sandbox
from tests.support import TEST_KEY
from tests.support.images import write_image
from tests.support.spec_check import SpecChecker


def _tree(box: Sandbox, per_tag: int = 6, start: int = 0) -> None:
    for i in range(per_tag):
        write_image(box.root / "Dog" / f"d{start + i}.jpg", 500 + start + i)
        write_image(box.root / "Cat" / f"c{start + i}.png", 900 + start + i)


def _iterations(box: Sandbox) -> list[dict]:
    r = box.http.get(f"/projects/{box.project_id}/iterations")
    assert r.status_code == 200, r.text
    return r.json()


def _train(box: Sandbox, *args: str) -> tuple[int, dict | None, str]:
    run = box.cli("train", "--config", str(box.config_path), *args)
    return run.exit_code, run.document, run.stderr


def test_train_waits_then_nothing_changed_is_exit_4_with_a_clear_message(box: Sandbox) -> None:
    _tree(box)
    assert box.reconcile().exit_code == 0
    code, doc, _ = _train(box, "--wait", "--json")
    assert code == 0 and doc is not None
    assert (doc["status"], doc["name"]) == ("Completed", "Iteration 1")
    assert [i["id"] for i in _iterations(box)] == [doc["iteration_id"]]

    code, doc, err = _train(box, "--json")
    assert code == 4
    assert doc is not None and doc["exit_code"] == 4
    assert "nothing changed" in err and "--force" in err
    assert len(_iterations(box)) == 1

    code, doc, _ = _train(box, "--force", "--json")
    assert code == 0 and doc is not None and doc["name"] == "Iteration 2"


def test_too_few_images_is_reported_with_the_services_reason(box: Sandbox) -> None:
    _tree(box, per_tag=3)
    assert box.reconcile().exit_code == 0
    code, _, err = _train(box)
    assert code == 1
    assert "BadRequestTrainingValidationFailed" in err and "Cat" in err
    assert _iterations(box) == []


@pytest.fixture
def slow_training(spec_checker: SpecChecker) -> Iterator[EmulatorServer]:
    with EmulatorServer(
        training_key=TEST_KEY, response_observer=spec_checker.observe, training_seconds=0.8
    ) as server:
        yield server


def test_wait_polls_until_the_iteration_completes(
    tmp_path: Path,
    slow_training: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    with httpx.Client(
        base_url=f"{slow_training.url}/customvision/v3.3/training",
        headers={"Training-Key": TEST_KEY},
    ) as api:
        box = new_sandbox(tmp_path, slow_training.url, api, capsys)
        _tree(box)
        assert box.reconcile().exit_code == 0
        # TrainProject answers `Training` (the emulator takes 0.8 s); --wait polls until done.
        code, doc, _ = _train(box, "--wait", "--json")
        assert code == 0 and doc is not None
        assert doc["status"] == "Completed" and doc["trained_at"] is not None
        # Without --wait the command returns at once with the iteration still training.
        code, doc, _ = _train(box, "--force", "--json")
        assert code == 0 and doc is not None
        assert (doc["status"], doc["trained_at"]) == ("Training", None)


def test_wait_polls_at_the_documented_delays() -> None:
    """0.5 s doubling to 10 s, no jitter: the shared Backoff with the same caps as ever."""
    assert (POLL_BACKOFF.first_s, POLL_BACKOFF.max_s, POLL_BACKOFF.jitter) == (0.5, 10.0, 0.0)
    training = Iteration(uuid4(), "Iteration 1", "Training", None, None, "Regular")
    completed = Iteration(training.id, "Iteration 1", "Completed", None, None, "Regular")
    answers = [training] * 7 + [completed]
    slept: list[float] = []

    class Client:
        async def get_iteration(self, project_id: str, iteration_id: Any) -> Iteration:
            return answers.pop(0)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client: Any = Client()
    done = asyncio.run(wait_for_iteration(client, "p", training, sleep=sleep))

    assert done.completed and answers == []
    assert slept == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_train_after_sync_starts_training_only_past_its_threshold(box: Sandbox) -> None:
    box.write_config(train_after_sync=5)
    _tree(box)  # 12 new images
    first = box.reconcile()
    training = first.mirror["training"]
    assert training is not None and training["started"] is True
    assert (training["changed_images"], training["threshold"]) == (12, 5)
    assert [i["id"] for i in _iterations(box)] == [training["iteration_id"]]

    write_image(box.root / "Dog" / "extra0.jpg", 7000)
    (box.root / "Cat" / "c0.png").rename(box.root / "Dog" / "c0.png")  # a retag
    below = box.reconcile()
    assert below.mirror["training"] is None  # 2 images changed < 5
    assert len(_iterations(box)) == 1

    for i in range(1, 5):
        write_image(box.root / "Cat" / f"extra{i}.png", 7000 + i)
    (box.root / "Dog" / "d5.jpg").unlink()  # a delete counts too (delete: mirror)
    past = box.reconcile()
    assert past.mirror["training"]["changed_images"] == 5
    assert past.mirror["training"]["started"] is True
    assert len(_iterations(box)) == 2

    # A no-op reconcile changes nothing, so it never trains (and a dry run never does).
    assert box.reconcile().mirror["training"] is None
    assert box.reconcile("--dry-run").mirror["training"] is None
    assert len(_iterations(box)) == 2
