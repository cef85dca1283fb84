"""The client's object detection calls against the emulator over real HTTP, read back by the
official SDK: the project's domain type, regions at create, CreateImageRegions and
DeleteImageRegions in legal batches (64 a call), the 300 regions per image, and predictions'
bounding boxes in image performances."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import UUID

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

from syncd.api import (
    BoundingBox,
    DomainType,
    NewRegion,
    RegionEntry,
    TrainingClient,
    UploadItem,
    UploadStatus,
)
from syncd.api.limits import (
    MAX_REGION_IDS_PER_DELETE,
    MAX_REGIONS_PER_CREATE,
    MAX_REGIONS_PER_IMAGE,
)
from syncd.emulator.server import EmulatorServer
from tests.api.conftest import RecordingTransport, make_client
from tests.support import TEST_KEY
from tests.support.images import image_bytes

pytestmark = pytest.mark.anyio


def _sdk(server: EmulatorServer) -> CustomVisionTrainingClient:
    return CustomVisionTrainingClient(
        server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )


def _grid(count: int) -> list[BoundingBox]:
    """count distinct small boxes inside the unit square (20 a row)."""
    return [
        BoundingBox(round((i % 20) * 0.05, 4), round((i // 20) * 0.05, 4), 0.04, 0.04)
        for i in range(count)
    ]


def _recording(server: EmulatorServer) -> tuple[RecordingTransport, Callable[[], TrainingClient]]:
    transport = RecordingTransport(httpx.AsyncHTTPTransport())
    return transport, lambda: make_client(server.url, transport=transport)


async def test_the_project_domain_says_detection_or_classification(
    emulator: EmulatorServer,
) -> None:
    async with make_client(emulator.url) as client:
        detection = await client.create_project("od", detection=True)
        classification = await client.create_project("cls")
        assert detection.classification_type is None
        found = await client.project_domain(detection.id)
        assert found is not None and found.type == DomainType.OBJECT_DETECTION and found.detection
        other = await client.project_domain(classification.id)
        assert other is not None and other.type == DomainType.CLASSIFICATION
        assert not other.detection
    sdk = _sdk(emulator)
    assert sdk.get_domain(sdk.get_project(str(detection.id)).settings.domain_id).type == (
        "ObjectDetection"
    )


async def test_new_images_carry_their_regions_in_the_create_call(
    emulator: EmulatorServer,
) -> None:
    transport, client_for = _recording(emulator)
    async with client_for() as client:
        project = await client.create_project("od", detection=True)
        fork = await client.create_tag(project.id, "fork")
        knife = await client.create_tag(project.id, "knife")
        boxed = UploadItem(
            "a.png",
            image_bytes(1, "png"),
            regions=(
                NewRegion(fork.id, BoundingBox(0.1, 0.2, 0.3, 0.4)),
                NewRegion(knife.id, BoundingBox(0.5, 0.5, 0.25, 0.25)),
            ),
        )
        bare = UploadItem("b.png", image_bytes(2, "png"))
        results = [
            r async for batch in client.upload_images(project.id, [boxed, bare]) for r in batch
        ]
        assert [r.status for r in results] == [UploadStatus.OK, UploadStatus.OK]
        [created] = [r.image for r in results if r.key == "a.png"]
        assert created is not None
        assert {(r.tag_name, r.box) for r in created.regions} == {
            ("fork", BoundingBox(0.1, 0.2, 0.3, 0.4)),
            ("knife", BoundingBox(0.5, 0.5, 0.25, 0.25)),
        }
        listed = {i.id: i for i in await client.get_images_by_ids(project.id, [created.id])}
        assert {r.region_id for r in listed[created.id].regions} == {
            r.region_id for r in created.regions
        }
    # One create call (files: the only format with regions), nothing after it.
    creates = [r for r in transport.requests if r.url.path.endswith("/images/files")]
    assert len(creates) == 1 and "/images/regions" not in "".join(transport.paths())
    assert len(json.loads(creates[0].content)["images"][0]["regions"]) == 2
    [image] = _sdk(emulator).get_images_by_ids(str(project.id), image_ids=[str(created.id)])
    assert sorted((r.tag_name, r.left, r.top, r.width, r.height) for r in image.regions) == [
        ("fork", 0.1, 0.2, 0.3, 0.4),
        ("knife", 0.5, 0.5, 0.25, 0.25),
    ]


async def test_regions_are_created_and_deleted_in_batches_of_64(
    emulator: EmulatorServer,
) -> None:
    transport, client_for = _recording(emulator)
    async with client_for() as client:
        project = await client.create_project("od", detection=True)
        fork = await client.create_tag(project.id, "fork")
        [[uploaded]] = [
            b
            async for b in client.upload_images(
                project.id, [UploadItem("a.png", image_bytes(1, "png"))]
            )
        ]
        assert uploaded.image is not None
        image_id = uploaded.image.id
        entries = [RegionEntry(image_id, NewRegion(fork.id, box)) for box in _grid(130)]
        results = [r async for r in client.create_image_regions(project.id, entries)]
        created = [region for result in results for _, region in result.created]
        assert len(created) == 130
        assert all(not r.duplicated and not r.exceeded for r in results)
        posts = [
            r for r in transport.requests if r.method == "POST" and r.url.path.endswith("/regions")
        ]
        assert sorted(len(json.loads(r.content)["regions"]) for r in posts) == [2, 64, 64]
        assert max(len(json.loads(r.content)["regions"]) for r in posts) <= MAX_REGIONS_PER_CREATE

        # Sending the same entries again creates nothing: they come back duplicated.
        again = [r async for r in client.create_image_regions(project.id, entries[:3])]
        assert sum(len(r.duplicated) for r in again) == 3
        assert sum(len(r.created) for r in again) == 0

        doomed = [r.region_id for r in created[:70]]
        gone = [i async for batch in client.delete_image_regions(project.id, doomed) for i in batch]
        assert sorted(gone) == sorted(doomed)
        deletes = [r for r in transport.requests if r.method == "DELETE"]
        sizes = sorted(len(r.url.params["regionIds"].split(",")) for r in deletes)
        assert sizes == [6, 64] and max(sizes) <= MAX_REGION_IDS_PER_DELETE
    [image] = _sdk(emulator).get_images_by_ids(str(project.id), image_ids=[str(image_id)])
    assert {UUID(r.region_id) for r in image.regions} == {r.region_id for r in created[70:]}


async def test_300_regions_go_and_301_are_reported_without_a_call(
    emulator: EmulatorServer,
) -> None:
    transport, client_for = _recording(emulator)
    async with client_for() as client:
        project = await client.create_project("od", detection=True)
        fork = await client.create_tag(project.id, "fork")
        full = tuple(NewRegion(fork.id, b) for b in _grid(MAX_REGIONS_PER_IMAGE))
        over = tuple(NewRegion(fork.id, b) for b in _grid(MAX_REGIONS_PER_IMAGE + 1))
        items = [
            UploadItem("full.png", image_bytes(1, "png"), regions=full),
            UploadItem("over.png", image_bytes(2, "png"), regions=over),
        ]
        results = {
            r.key: r async for batch in client.upload_images(project.id, items) for r in batch
        }
        assert results["full.png"].status is UploadStatus.OK
        assert results["over.png"].status is UploadStatus.ERROR_REGION_LIMIT_EXCEED
        full_image = results["full.png"].image
        assert full_image is not None and len(full_image.regions) == MAX_REGIONS_PER_IMAGE
        # The 301st region on a full image comes back exceeded.
        extra = RegionEntry(full_image.id, NewRegion(fork.id, BoundingBox(0.0, 0.9, 0.05, 0.05)))
        [result] = [r async for r in client.create_image_regions(project.id, [extra])]
        assert result.exceeded == (extra,) and not result.created
    [create] = [r for r in transport.requests if r.url.path.endswith("/images/files")]
    assert [e["name"] for e in json.loads(create.content)["images"]] == ["image0.png"]


async def test_image_performances_carry_the_predicted_boxes(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    server = start_emulator(training_seconds=0)
    async with make_client(server.url) as client:
        project = await client.create_project("od", detection=True)
        fork = await client.create_tag(project.id, "fork")
        items = [
            UploadItem(
                f"{n}.png",
                image_bytes(n, "png"),
                regions=(NewRegion(fork.id, BoundingBox(0.1, 0.1, 0.5, 0.5)),),
            )
            for n in range(15)
        ]
        async for _ in client.upload_images(project.id, items):
            pass
        iteration = await client.train_project(project.id)
        performances = [p async for p in client.iter_image_performances(project.id, iteration.id)]
    assert len(performances) == 15
    for performance in performances:
        assert [r.tag_name for r in performance.regions] == ["fork"]
        boxes = [p.bounding_box for p in performance.predictions]
        assert boxes and all(isinstance(b, BoundingBox) for b in boxes)
