"""The client's training calls against the emulator: train, iterations, image performances.

Includes the replay rule of TrainProject: an answer lost after the service started training
must not start a second training nor fail the call.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import httpx
import pytest

from syncd.api import BadRequestError, NotFoundError, TrainingClient
from syncd.emulator.embedded import EMBEDDED_BASE_URL, embedded_transport
from syncd.emulator.server import EmulatorServer
from tests.api.conftest import RecordingTransport, make_client, seeded_items

pytestmark = pytest.mark.anyio


async def _project(client: TrainingClient, per_tag: int = 5) -> tuple[UUID, dict[str, UUID]]:
    project = await client.create_project("training")
    tags = {name: (await client.create_tag(project.id, name)).id for name in ("Cat", "Dog")}
    for offset, (_name, tag_id) in enumerate(tags.items()):
        items = seeded_items(per_tag, offset * 1000, [tag_id])
        async for results in client.upload_images(project.id, items):
            assert all(r.ok for r in results)
    return project.id, tags


@pytest.mark.slow
async def test_train_list_get_and_nothing_changed(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    server = start_emulator(training_seconds=0)
    async with make_client(server.url) as client:
        project_id, _ = await _project(client)
        iteration = await client.train_project(project_id)
        assert iteration.completed and iteration.finished and iteration.name == "Iteration 1"
        assert [i.id for i in await client.list_iterations(project_id)] == [iteration.id]
        assert (await client.get_iteration(project_id, iteration.id)).id == iteration.id
        with pytest.raises(BadRequestError) as excinfo:
            await client.train_project(project_id)
        assert excinfo.value.code == "BadRequestTrainingNotNeeded"
        assert "train" in str(excinfo.value)
        forced = await client.train_project(project_id, force=True)
        assert forced.name == "Iteration 2"
        with pytest.raises(NotFoundError):
            await client.get_iteration(project_id, UUID(int=7))


@pytest.mark.slow
async def test_image_performances_count_first_then_pages(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    server = start_emulator(training_seconds=0)
    recorder = RecordingTransport(httpx.AsyncHTTPTransport())
    async with make_client(server.url, transport=recorder) as client:
        project_id, tags = await _project(client, per_tag=150)
        iteration = await client.train_project(project_id)
        recorder.requests.clear()
        perfs = [p async for p in client.iter_image_performances(project_id, iteration.id)]
        assert len({p.id for p in perfs}) == 300
        paths = recorder.paths("GET")
        assert paths[0].endswith("/performance/images/count")
        assert len(paths) == 1 + 2  # ceil(300 / 256) pages
        takes = [int(r.url.params["take"]) for r in recorder.requests[1:]]
        assert takes == [256, 256]
        for perf in perfs:
            assert perf.predictions[0].tag_id in perf.tag_ids
            assert set(perf.tag_names) <= set(tags)
        assert await client.count_image_performances(project_id, iteration.id, [tags["Dog"]]) == 150


class _DropFirstTrainAnswer(httpx.AsyncBaseTransport):
    """Forward to the emulator; lose the answer of the first TrainProject after it ran."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.dropped = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/train") and not self.dropped:
            self.dropped += 1
            await response.aread()
            raise httpx.RemoteProtocolError("answer lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("training_seconds", [3600, 0], ids=["still-training", "already-done"])
@pytest.mark.slow
async def test_a_lost_train_answer_is_resolved_without_a_second_training(
    training_seconds: float,
) -> None:
    inner = embedded_transport(None, training_seconds=training_seconds)
    transport = _DropFirstTrainAnswer(inner)
    client = make_client(EMBEDDED_BASE_URL, transport=transport, base_backoff_s=0.0)
    async with client:
        project = await client.create_project("replay")
        tags = [(await client.create_tag(project.id, n)).id for n in ("A", "B")]
        for offset, tag_id in enumerate(tags):
            async for _ in client.upload_images(
                project.id, seeded_items(5, offset * 100, [tag_id])
            ):
                pass
        iteration = await client.train_project(project.id)
        assert transport.dropped == 1
        assert [i.id for i in await client.list_iterations(project.id)] == [iteration.id]
