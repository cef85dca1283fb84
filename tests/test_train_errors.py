"""syncd.train raises the engine's typed errors for the service's two kinds of "no training"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from syncd.api.errors import error_class
from syncd.errors import NothingToTrainError, TrainingRefusedError
from syncd.train import start_training


class _Refusing:
    """A client whose TrainProject answers 400 with `code` (as the client's error tree types it)."""

    def __init__(self, code: str) -> None:
        self.code = code

    async def train_project(self, project_id: str, **_: Any) -> Any:
        error = error_class(400, self.code)
        raise error("train_project", status=400, code=self.code, service_message="no")


def _start(code: str) -> None:
    asyncio.run(start_training(_Refusing(code), "pid"))  # type: ignore[arg-type]


def test_nothing_changed_is_nothing_to_train() -> None:
    with pytest.raises(NothingToTrainError, match="--force"):
        _start("BadRequestTrainingNotNeeded")


def test_a_400_about_the_data_is_training_refused_with_the_services_answer() -> None:
    with pytest.raises(TrainingRefusedError) as caught:
        _start("BadRequestTrainingValidationFailed")
    assert str(caught.value).startswith("the service would not train: ")
    assert "BadRequestTrainingValidationFailed" in caught.value.detail
