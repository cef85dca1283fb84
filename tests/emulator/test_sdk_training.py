"""Conformance of the simulated training routes, judged by the official SDK (3.1.1) over HTTP.

train_project, get_iterations, get_iteration, get_iteration_performance, get_image_performances
and get_image_performance_count must deserialize into the SDK's models with the fields set, and
the refusals must reach the SDK as CustomVisionErrorException with the service's code. Every
JSON response is also checked against the spec by the fixtures.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImagePerformance,
    Iteration,
    IterationPerformance,
)
from msrest.authentication import ApiKeyCredentials

from syncd.emulator.server import EmulatorServer
from tests.support import TEST_KEY
from tests.support.images import image_bytes

PER_TAG = 60


@pytest.fixture
def trainer(
    start_emulator: Callable[..., EmulatorServer],
) -> Iterator[tuple[CustomVisionTrainingClient, EmulatorServer]]:
    server = start_emulator(training_seconds=0)
    client = CustomVisionTrainingClient(
        server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    yield client, server
    client.close()


def _project(trainer: CustomVisionTrainingClient) -> tuple[str, dict[str, str]]:
    """A multilabel project with tags Cat and Dog, PER_TAG images each."""
    project = trainer.create_project("sdk-training", classification_type="Multilabel")
    tags = {}
    for offset, name in enumerate(("Cat", "Dog")):
        tag = trainer.create_tag(project.id, name)
        tags[name] = tag.id
        entries = [
            ImageFileCreateEntry(
                name=f"{name}{i}.png", contents=image_bytes(offset * 1000 + i, "png")
            )
            for i in range(PER_TAG)
        ]
        for start in range(0, PER_TAG, 64):
            batch = ImageFileCreateBatch(images=entries[start : start + 64], tag_ids=[tag.id])
            assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    return project.id, tags


def test_sdk_trains_and_reads_iterations(
    trainer: tuple[CustomVisionTrainingClient, EmulatorServer],
) -> None:
    client, _ = trainer
    project_id, _ = _project(client)
    iteration = client.train_project(project_id)
    assert isinstance(iteration, Iteration) and uuid.UUID(iteration.id)
    assert iteration.status == "Completed" and iteration.project_id == project_id
    assert isinstance(iteration.created, datetime) and isinstance(iteration.trained_at, datetime)
    assert iteration.training_type == "Regular" and iteration.exportable is False

    listed = client.get_iterations(project_id)
    assert [i.id for i in listed] == [iteration.id]
    fetched = client.get_iteration(project_id, iteration.id)
    assert (fetched.id, fetched.name, fetched.status) == (iteration.id, "Iteration 1", "Completed")

    with pytest.raises(CustomVisionErrorException) as excinfo:
        client.train_project(project_id)
    assert excinfo.value.response.status_code == 400
    assert excinfo.value.error.code == "BadRequestTrainingNotNeeded"
    forced = client.train_project(project_id, force_train=True)
    assert forced.name == "Iteration 2"


def test_sdk_reads_image_performances_and_their_count(
    trainer: tuple[CustomVisionTrainingClient, EmulatorServer],
) -> None:
    client, server = trainer
    project_id, tags = _project(client)
    iteration = client.train_project(project_id)

    assert client.get_image_performance_count(project_id, iteration.id) == 2 * PER_TAG
    assert client.get_image_performance_count(project_id, iteration.id, tag_ids=[tags["Dog"]]) == (
        PER_TAG
    )
    seen: list[ImagePerformance] = []
    while True:
        page = client.get_image_performances(project_id, iteration.id, take=50, skip=len(seen))
        seen.extend(page)
        if len(page) < 50:
            break
    assert len({p.id for p in seen}) == 2 * PER_TAG
    for perf in seen:
        assert isinstance(perf, ImagePerformance) and isinstance(perf.created, datetime)
        assert perf.image_uri.startswith(f"{server.url}/")
        assert [t.tag_name for t in perf.tags] in (["Cat"], ["Dog"])
        assert perf.predictions[0].tag_name == perf.tags[0].tag_name
        assert {p.tag_id for p in perf.predictions} == set(tags.values())
        assert all(0.0 <= p.probability <= 1.0 for p in perf.predictions)

    oldest = client.get_image_performances(
        project_id, iteration.id, tag_ids=[tags["Cat"]], order_by="Oldest", take=5
    )
    assert [t.tag_name for p in oldest for t in p.tags] == ["Cat"] * 5

    performance = client.get_iteration_performance(project_id, iteration.id, threshold=0.5)
    assert isinstance(performance, IterationPerformance)
    assert {t.name for t in performance.per_tag_performance} == {"Cat", "Dog"}
    assert performance.precision == 1.0 and performance.recall == 1.0


def test_sdk_sees_the_validation_refusal(
    trainer: tuple[CustomVisionTrainingClient, EmulatorServer],
) -> None:
    client, _ = trainer
    project = client.create_project("empty", classification_type="Multiclass")
    with pytest.raises(CustomVisionErrorException) as excinfo:
        client.train_project(project.id)
    assert excinfo.value.error.code == "BadRequestTrainingValidationFailed"
