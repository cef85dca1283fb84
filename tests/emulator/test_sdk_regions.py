"""Object detection in the emulator, judged by the official SDK (3.1.1) over real HTTP.

Detection domains and projects, regions at create (CreateImagesFromFiles), regions in the image
listings, CreateImageRegions (created / duplicated / exceeded), DeleteImageRegions, the
300-regions-per-image limit, coordinate validation, and simulated detection training whose
GetImagePerformances predictions carry bounding boxes. Every JSON response is also checked
against the spec by the fixtures.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageRegionCreateEntry,
    Region,
)
from msrest.authentication import ApiKeyCredentials

from syncd.emulator.limits import MAX_REGIONS_PER_IMAGE, Quotas
from syncd.emulator.server import EmulatorServer
from tests.emulator.support import api_client
from tests.support import TEST_KEY
from tests.support.images import image_bytes

# Object detection domains of the "select a domain" documentation page.
DETECTION_DOMAINS = {
    "da2e3a8a-40a5-4171-82f4-58522f70fbc1": "General",
    "9c616dff-2e7d-ea11-af59-1866da359ce6": "General [A1]",
    "1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4": "Logo",
    "3780a898-81c3-4516-81ae-3a139614e1f3": "Products on shelves",
    "a27d5ca5-bb19-49d8-a70a-fec086c47f5b": "General (compact)",
    "7ec2ac80-887b-48a6-8df9-8b1357765430": "General (compact) [S1]",
}
GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
Box = tuple[float, float, float, float]


@pytest.fixture
def start_trainer(
    start_emulator: Callable[..., EmulatorServer],
) -> Iterator[Callable[..., CustomVisionTrainingClient]]:
    clients: list[CustomVisionTrainingClient] = []

    def start(**kwargs: object) -> CustomVisionTrainingClient:
        server = start_emulator(training_seconds=0, **kwargs)
        client = CustomVisionTrainingClient(
            server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
        )
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def trainer(start_trainer: Callable[..., CustomVisionTrainingClient]) -> CustomVisionTrainingClient:
    return start_trainer()


def _detection_project(client: CustomVisionTrainingClient, *names: str) -> tuple[str, list[str]]:
    project = client.create_project("od", domain_id=GENERAL_DETECTION)
    return project.id, [client.create_tag(project.id, name).id for name in names]


def _upload(
    client: CustomVisionTrainingClient,
    project_id: str,
    seed: int,
    regions: list[tuple[str, Box]],
) -> str:
    entry = ImageFileCreateEntry(
        name=f"img{seed}.png",
        contents=image_bytes(seed, "png"),
        regions=[
            Region(tag_id=t, left=b[0], top=b[1], width=b[2], height=b[3]) for t, b in regions
        ],
    )
    summary = client.create_images_from_files(project_id, ImageFileCreateBatch(images=[entry]))
    assert summary.is_batch_successful, [i.status for i in summary.images]
    return summary.images[0].image.id


def _boxes(regions: list) -> list[tuple[str, Box]]:
    return sorted((r.tag_id, (r.left, r.top, r.width, r.height)) for r in regions or [])


def _grid(count: int) -> list[Box]:
    """count distinct small boxes inside the unit square (20 per row)."""
    return [((i % 20) * 0.05, (i // 20) * 0.05, 0.04, 0.04) for i in range(count)]


def test_detection_domains_and_project_settings(trainer: CustomVisionTrainingClient) -> None:
    domains = {d.id: d for d in trainer.get_domains()}
    for domain_id, name in DETECTION_DOMAINS.items():
        assert domains[domain_id].name == name and domains[domain_id].type == "ObjectDetection"
    project = trainer.create_project("od", domain_id=GENERAL_DETECTION)
    fetched = trainer.get_project(project.id)
    assert fetched.settings.domain_id == GENERAL_DETECTION
    assert fetched.settings.classification_type is None
    assert trainer.get_domain(fetched.settings.domain_id).type == "ObjectDetection"


def test_create_images_from_files_with_regions_shows_them_in_every_listing(
    trainer: CustomVisionTrainingClient,
) -> None:
    project_id, (fork, scissors) = _detection_project(trainer, "fork", "scissors")
    boxes = [(fork, (0.1, 0.2, 0.3, 0.4)), (scissors, (0.5, 0.5, 0.25, 0.25))]
    entry = ImageFileCreateEntry(
        name="a.png",
        contents=image_bytes(1, "png"),
        regions=[Region(tag_id=t, left=b[0], top=b[1], width=b[2], height=b[3]) for t, b in boxes],
    )
    summary = trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=[entry]))
    assert summary.is_batch_successful and summary.images[0].status == "OK"
    created = summary.images[0].image
    assert _boxes(created.regions) == sorted(boxes)
    assert all(uuid.UUID(r.region_id) for r in created.regions)

    for listing in (
        trainer.get_tagged_images(project_id),
        trainer.get_images(project_id),
        trainer.get_images_by_ids(project_id, image_ids=[created.id]),
    ):
        [image] = listing
        assert _boxes(image.regions) == sorted(boxes)
        names = {r.tag_id: r.tag_name for r in image.regions}
        assert names == {fork: "fork", scissors: "scissors"}
        assert {r.region_id for r in image.regions} == {r.region_id for r in created.regions}
        assert all(r.created is not None for r in image.regions)
        # A region tags its image with its tag, as the service shows [R RegionManipulation].
        assert {t.tag_name for t in image.tags} == {"fork", "scissors"}
    assert trainer.get_untagged_images(project_id) == []
    assert trainer.get_tag(project_id, fork).image_count == 1


def test_regions_outside_the_image_or_with_unknown_tags_are_refused(
    trainer: CustomVisionTrainingClient,
) -> None:
    project_id, (fork,) = _detection_project(trainer, "fork")
    image_id = _upload(trainer, project_id, 1, [])
    bad_boxes = [
        (0.8, 0.1, 0.3, 0.1),  # past the right edge
        (0.1, -0.1, 0.2, 0.2),  # above the top
        (0.1, 0.1, 0.0, 0.2),  # no width
        (0.1, 0.1, 0.2, 1.5),  # taller than the image
    ]
    for box in bad_boxes:
        entry = ImageRegionCreateEntry(
            image_id=image_id, tag_id=fork, left=box[0], top=box[1], width=box[2], height=box[3]
        )
        with pytest.raises(CustomVisionErrorException) as excinfo:
            trainer.create_image_regions(project_id, regions=[entry])
        assert excinfo.value.error.code == "BadRequestImageRegions", box
        files_entry = ImageFileCreateEntry(
            name="b.png",
            contents=image_bytes(2, "png"),
            regions=[Region(tag_id=fork, left=box[0], top=box[1], width=box[2], height=box[3])],
        )
        with pytest.raises(CustomVisionErrorException) as excinfo:
            trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=[files_entry]))
        assert excinfo.value.error.code == "BadRequestImageRegions", box
    unknown = ImageRegionCreateEntry(
        image_id=image_id, tag_id=str(uuid.uuid4()), left=0.1, top=0.1, width=0.1, height=0.1
    )
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.create_image_regions(project_id, regions=[unknown])
    assert excinfo.value.error.code == "NotFoundTag"
    assert trainer.get_images_by_ids(project_id, image_ids=[image_id])[0].regions is None


def test_create_image_regions_answers_created_and_duplicated(
    trainer: CustomVisionTrainingClient,
) -> None:
    project_id, (fork, scissors) = _detection_project(trainer, "fork", "scissors")
    image_id = _upload(trainer, project_id, 1, [])

    def entry(tag: str, box: Box) -> ImageRegionCreateEntry:
        return ImageRegionCreateEntry(
            image_id=image_id, tag_id=tag, left=box[0], top=box[1], width=box[2], height=box[3]
        )

    first = trainer.create_image_regions(
        project_id,
        regions=[entry(fork, (0.1, 0.1, 0.2, 0.2)), entry(scissors, (0.5, 0.5, 0.2, 0.2))],
    )
    assert len(first.created) == 2 and first.duplicated == [] and first.exceeded == []
    assert {(c.image_id, c.tag_id) for c in first.created} == {
        (image_id, fork),
        (image_id, scissors),
    }
    assert all(uuid.UUID(c.region_id) for c in first.created)

    # Same image, tag and box again: duplicated. Same box with another tag: a new region.
    again = trainer.create_image_regions(
        project_id,
        regions=[entry(fork, (0.1, 0.1, 0.2, 0.2)), entry(scissors, (0.1, 0.1, 0.2, 0.2))],
    )
    assert [(d.tag_id, d.left, d.width) for d in again.duplicated] == [(fork, 0.1, 0.2)]
    assert [c.tag_id for c in again.created] == [scissors]
    [image] = trainer.get_images_by_ids(project_id, image_ids=[image_id])
    assert len(image.regions) == 3


def test_create_image_regions_takes_at_most_64_entries(
    trainer: CustomVisionTrainingClient,
) -> None:
    project_id, (fork,) = _detection_project(trainer, "fork")
    image_id = _upload(trainer, project_id, 1, [])
    entries = [
        ImageRegionCreateEntry(
            image_id=image_id, tag_id=fork, left=b[0], top=b[1], width=b[2], height=b[3]
        )
        for b in _grid(65)
    ]
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.create_image_regions(project_id, regions=entries)
    assert excinfo.value.error.code == "BadRequestExceededBatchSize"
    assert trainer.create_image_regions(project_id, regions=entries[:64]).exceeded == []


def test_delete_image_regions_removes_them_and_the_tag_of_the_last_one(
    trainer: CustomVisionTrainingClient,
) -> None:
    project_id, (fork, scissors) = _detection_project(trainer, "fork", "scissors")
    image_id = _upload(
        trainer,
        project_id,
        1,
        [
            (fork, (0.1, 0.1, 0.2, 0.2)),
            (fork, (0.4, 0.4, 0.2, 0.2)),
            (scissors, (0.7, 0.7, 0.2, 0.2)),
        ],
    )
    [image] = trainer.get_images_by_ids(project_id, image_ids=[image_id])
    by_box = {(r.tag_id, r.left): r.region_id for r in image.regions}
    trainer.delete_image_regions(project_id, [by_box[(fork, 0.1)], by_box[(scissors, 0.7)]])
    [image] = trainer.get_images_by_ids(project_id, image_ids=[image_id])
    assert [(r.region_id, r.tag_id) for r in image.regions] == [(by_box[(fork, 0.4)], fork)]
    assert [t.tag_name for t in image.tags] == ["fork"]
    assert trainer.get_tag(project_id, scissors).image_count == 0

    trainer.delete_image_regions(project_id, [by_box[(fork, 0.4)]])
    assert trainer.get_tagged_images(project_id) == []
    [untagged] = trainer.get_untagged_images(project_id)
    assert untagged.id == image_id and untagged.regions is None
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.delete_image_regions(project_id, [])
    assert excinfo.value.error.code == "BadRequestRequiredParamIsNull"


def test_300_regions_on_an_image_are_accepted_and_the_301st_is_exceeded(
    trainer: CustomVisionTrainingClient,
) -> None:
    assert MAX_REGIONS_PER_IMAGE == 300
    project_id, (fork,) = _detection_project(trainer, "fork")
    image_id = _upload(trainer, project_id, 1, [(fork, b) for b in _grid(300)])
    [image] = trainer.get_images_by_ids(project_id, image_ids=[image_id])
    assert len(image.regions) == 300

    extra = ImageRegionCreateEntry(
        image_id=image_id, tag_id=fork, left=0.9, top=0.9, width=0.05, height=0.05
    )
    result = trainer.create_image_regions(project_id, regions=[extra])
    assert result.created == [] and [(e.image_id, e.left) for e in result.exceeded] == [
        (image_id, 0.9)
    ]
    assert len(trainer.get_images_by_ids(project_id, image_ids=[image_id])[0].regions) == 300

    # 301 regions in one create entry: that image is refused, the batch's others are created.
    too_many = ImageFileCreateEntry(
        name="big.png",
        contents=image_bytes(2, "png"),
        regions=[
            Region(tag_id=fork, left=b[0], top=b[1], width=b[2], height=b[3]) for b in _grid(301)
        ],
    )
    fine = ImageFileCreateEntry(
        name="ok.png",
        contents=image_bytes(3, "png"),
        regions=[Region(tag_id=fork, left=0.1, top=0.1, width=0.1, height=0.1)],
    )
    summary = trainer.create_images_from_files(
        project_id, ImageFileCreateBatch(images=[too_many, fine])
    )
    assert not summary.is_batch_successful
    assert [i.status for i in summary.images] == ["ErrorRegionLimitExceed", "OK"]


def test_a_classification_project_refuses_regions(trainer: CustomVisionTrainingClient) -> None:
    project = trainer.create_project("ic", classification_type="Multiclass")
    tag = trainer.create_tag(project.id, "cat").id
    entry = ImageFileCreateEntry(
        name="a.png",
        contents=image_bytes(1, "png"),
        regions=[Region(tag_id=tag, left=0.1, top=0.1, width=0.1, height=0.1)],
    )
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=[entry]))
    assert excinfo.value.error.code == "BadRequestImageRegions"


def _iou(a: Box, b: Box) -> float:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_detection_training_predicts_boxes_with_a_few_misses(
    start_trainer: Callable[..., CustomVisionTrainingClient],
) -> None:
    client = start_trainer(quotas=Quotas(min_images_per_detection_tag=15))
    project_id, (fork, scissors) = _detection_project(client, "fork", "scissors")
    for seed in range(14):
        _upload(client, project_id, seed, [(fork, (0.1, 0.1, 0.3, 0.3))])
    with pytest.raises(CustomVisionErrorException) as excinfo:
        client.train_project(project_id)
    assert excinfo.value.error.code == "BadRequestDetectionTrainingValidationFailed"

    for seed in range(14, 40):
        _upload(
            client,
            project_id,
            seed,
            [(fork, (0.1, 0.1, 0.3, 0.3)), (scissors, (0.05 + seed / 100, 0.5, 0.3, 0.4))],
        )
    iteration = client.train_project(project_id)
    assert iteration.status == "Completed" and iteration.classification_type is None
    performances = client.get_image_performances(project_id, iteration.id, take=256)
    assert len(performances) == 40
    hits = misses = 0
    for perf in performances:
        assert perf.regions, perf.id
        for region in perf.regions:
            truth = (region.left, region.top, region.width, region.height)
            found = [
                p
                for p in perf.predictions
                if p.tag_id == region.tag_id
                and p.probability >= 0.5
                and _iou(
                    truth,
                    (
                        p.bounding_box.left,
                        p.bounding_box.top,
                        p.bounding_box.width,
                        p.bounding_box.height,
                    ),
                )
                >= 0.5
            ]
            hits, misses = (hits + 1, misses) if found else (hits, misses + 1)
        for p in perf.predictions:
            box = p.bounding_box
            assert box is not None and box.left >= 0 and box.left + box.width <= 1.0000001
            assert box.top >= 0 and box.top + box.height <= 1.0000001
    assert misses > 0 and hits > 4 * misses  # a seeded few are missed, most are found

    # The same training set gives the same predictions (forced retrain).
    again = client.train_project(project_id, force_train=True)
    replay = client.get_image_performances(project_id, again.id, take=256)
    assert [
        [(p.tag_id, p.probability, p.bounding_box.left) for p in perf.predictions]
        for perf in replay
    ] == [
        [(p.tag_id, p.probability, p.bounding_box.left) for p in perf.predictions]
        for perf in performances
    ]

    performance = client.get_iteration_performance(project_id, iteration.id, threshold=0.5)
    per_tag = {t.name: t for t in performance.per_tag_performance}
    assert set(per_tag) == {"fork", "scissors"}
    for tag in per_tag.values():
        assert 0 < tag.recall <= 1 and 0 < tag.precision <= 1
        assert tag.average_precision is not None and 0 < tag.average_precision <= 1
    assert performance.recall < 1  # the misses show
    mean = sum(t.average_precision for t in per_tag.values()) / 2
    assert performance.average_precision == pytest.approx(mean)


def test_a_detection_project_has_no_classification_type(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    server = start_emulator()
    with api_client(server.url) as http:
        r = http.post("/projects", params={"name": "od", "domainId": GENERAL_DETECTION})
        assert r.status_code == 200, r.text
        settings = http.get(f"/projects/{r.json()['id']}").json()["settings"]
    assert settings["domainId"] == GENERAL_DETECTION
    assert "classificationType" not in settings


def test_seams_plant_misses_and_set_the_simulated_rates(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    """A review test needs to know exactly which boxes the model misses: it turns the seeded
    misses and false positives off for its project, then plants misses on chosen regions."""
    server = start_emulator(training_seconds=0, quotas=Quotas(min_images_per_detection_tag=2))
    client = CustomVisionTrainingClient(
        server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    project_id, (fork,) = _detection_project(client, "fork")
    for seed in range(30):
        _upload(
            client, project_id, seed, [(fork, (0.1, 0.1, 0.3, 0.3)), (fork, (0.5, 0.5, 0.3, 0.3))]
        )
    images = client.get_tagged_images(project_id, take=256)
    planted = {images[3].regions[0].region_id, images[7].regions[1].region_id}
    with api_client(server.url, base="") as http:
        seams = f"/emulator/projects/{project_id}"
        r = http.post(f"{seams}/detection-rates", json={"missRate": 0, "falsePositiveRate": 0})
        assert r.status_code == 204, r.text
        for region_id in planted:
            assert (
                http.post(f"{seams}/missed-regions", json={"regionId": region_id}).status_code
                == 204
            )
        assert http.post(f"{seams}/detection-rates", json={"missRate": 2}).status_code == 400
        unknown = http.post(f"{seams}/missed-regions", json={"regionId": str(uuid.uuid4())})
        assert unknown.status_code == 404
        keyless = api_client(server.url, base="", key=None)
        assert (
            keyless.post(f"{seams}/missed-regions", json={"regionId": region_id}).status_code == 401
        )
    iteration = client.train_project(project_id)
    missed = set()
    for perf in client.get_image_performances(project_id, iteration.id, take=256):
        for region in perf.regions:
            truth = (region.left, region.top, region.width, region.height)
            if not any(
                p.probability >= 0.5
                and _iou(
                    truth,
                    (
                        p.bounding_box.left,
                        p.bounding_box.top,
                        p.bounding_box.width,
                        p.bounding_box.height,
                    ),
                )
                >= 0.5
                for p in perf.predictions
            ):
                missed.add(region.region_id)
        assert len([p for p in perf.predictions if p.probability >= 0.5]) == len(
            perf.regions
        ) - len({r.region_id for r in perf.regions} & planted)
    assert missed == planted
    client.close()


def test_iteration_performance_counts_planted_misses_exactly(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    """With the seeded misses off, recall and each tag's AP are what was planted: 2 of fork's 20
    boxes missed gives fork recall 0.9 and AP 0.9; scissors is perfect; the mAP is their mean."""
    server = start_emulator(training_seconds=0, quotas=Quotas(min_images_per_detection_tag=2))
    client = CustomVisionTrainingClient(
        server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    project_id, (fork, scissors) = _detection_project(client, "fork", "scissors")
    for seed in range(10):
        _upload(
            client,
            project_id,
            seed,
            [
                (fork, (0.1, 0.1, 0.2, 0.2)),
                (fork, (0.6, 0.1, 0.2, 0.2)),
                (scissors, (0.1, 0.6, 0.3, 0.3)),
            ],
        )
    images = client.get_tagged_images(project_id, take=256)
    planted = [r.region_id for r in (images[2].regions[0], images[5].regions[1])]
    with api_client(server.url, base="") as http:
        seams = f"/emulator/projects/{project_id}"
        assert (
            http.post(
                f"{seams}/detection-rates", json={"missRate": 0, "falsePositiveRate": 0}
            ).status_code
            == 204
        )
        for region_id in planted:
            assert (
                http.post(f"{seams}/missed-regions", json={"regionId": region_id}).status_code
                == 204
            )
    iteration = client.train_project(project_id)
    performance = client.get_iteration_performance(project_id, iteration.id, threshold=0.5)
    per_tag = {t.name: t for t in performance.per_tag_performance}
    assert per_tag["fork"].recall == pytest.approx(0.9) and per_tag["fork"].precision == 1.0
    assert per_tag["fork"].average_precision == pytest.approx(0.9)
    assert (per_tag["scissors"].recall, per_tag["scissors"].average_precision) == (1.0, 1.0)
    assert performance.recall == pytest.approx(28 / 30) and performance.precision == 1.0
    assert performance.average_precision == pytest.approx(0.95)
    # A threshold under the misses' faint boxes counts them, off target: false positives.
    low = client.get_iteration_performance(project_id, iteration.id, threshold=0.01)
    assert {t.name: t.precision for t in low.per_tag_performance}["fork"] == pytest.approx(18 / 20)
    client.close()


def test_a_mispredicted_image_has_its_boxes_found_with_another_tag(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    server = start_emulator(training_seconds=0, quotas=Quotas(min_images_per_detection_tag=2))
    client = CustomVisionTrainingClient(
        server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    project_id, (fork, scissors) = _detection_project(client, "fork", "scissors")
    ids = [
        _upload(
            client,
            project_id,
            seed,
            [(fork, (0.1, 0.1, 0.3, 0.3)), (scissors, (0.5, 0.5, 0.3, 0.3))],
        )
        for seed in range(4)
    ]
    with api_client(server.url, base="") as http:
        rates = {"missRate": 0, "falsePositiveRate": 0}
        assert (
            http.post(f"/emulator/projects/{project_id}/detection-rates", json=rates).status_code
            == 204
        )
        r = http.post(
            f"/emulator/projects/{project_id}/mispredictions",
            json={"imageId": ids[1], "tagId": scissors},
        )
        assert r.status_code == 204, r.text
    iteration = client.train_project(project_id)
    perfs = {p.id: p for p in client.get_image_performances(project_id, iteration.id)}
    confident = [p for p in perfs[ids[1]].predictions if p.probability >= 0.5]
    assert sorted(p.tag_id for p in confident) == [scissors, scissors]
    assert sorted(round(p.bounding_box.left, 1) for p in confident) == [0.1, 0.5]
    others = [p for p in perfs[ids[0]].predictions if p.probability >= 0.5]
    assert sorted(p.tag_id for p in others) == sorted([fork, scissors])
    client.close()


def test_a_duplicate_upload_adds_its_new_regions_to_the_existing_image(
    trainer: CustomVisionTrainingClient,
) -> None:
    project_id, (fork,) = _detection_project(trainer, "fork")
    image_id = _upload(trainer, project_id, 1, [(fork, (0.1, 0.1, 0.2, 0.2))])
    again = ImageFileCreateEntry(
        name="again.png",
        contents=image_bytes(1, "png"),
        regions=[
            Region(tag_id=fork, left=0.1, top=0.1, width=0.2, height=0.2),
            Region(tag_id=fork, left=0.5, top=0.5, width=0.2, height=0.2),
        ],
    )
    summary = trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=[again]))
    assert [(i.status, i.image.id) for i in summary.images] == [("OKDuplicate", image_id)]
    [image] = trainer.get_images_by_ids(project_id, image_ids=[image_id])
    assert _boxes(image.regions) == [(fork, (0.1, 0.1, 0.2, 0.2)), (fork, (0.5, 0.5, 0.2, 0.2))]


def test_deleting_a_tag_deletes_its_regions(trainer: CustomVisionTrainingClient) -> None:
    project_id, (fork, scissors) = _detection_project(trainer, "fork", "scissors")
    image_id = _upload(
        trainer, project_id, 1, [(fork, (0.1, 0.1, 0.2, 0.2)), (scissors, (0.5, 0.5, 0.2, 0.2))]
    )
    trainer.delete_tag(project_id, scissors)
    [image] = trainer.get_images_by_ids(project_id, image_ids=[image_id])
    assert _boxes(image.regions) == [(fork, (0.1, 0.1, 0.2, 0.2))]
    assert [t.tag_id for t in image.tags] == [fork]


def test_regions_survive_a_restart_on_a_data_dir(
    start_emulator: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    server = start_emulator(data_dir=tmp_path)
    client = CustomVisionTrainingClient(
        server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    project_id, (fork,) = _detection_project(client, "fork")
    image_id = _upload(client, project_id, 1, [(fork, (0.25, 0.125, 0.5, 0.5))])
    region_id = client.get_images_by_ids(project_id, image_ids=[image_id])[0].regions[0].region_id
    client.close()
    server.stop()
    restarted = start_emulator(data_dir=tmp_path)
    client = CustomVisionTrainingClient(
        restarted.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    [image] = client.get_images_by_ids(project_id, image_ids=[image_id])
    assert [(r.region_id, r.left, r.top, r.width) for r in image.regions] == [
        (region_id, 0.25, 0.125, 0.5)
    ]
    client.close()


def test_create_image_regions_status_lists_and_float32_coordinates_on_the_wire(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    """What the SDK hides: 200 only when every entry was created, else 207; empty lists are []
    (as the service sends them); coordinates come back as the float32 the service keeps."""
    server = start_emulator()
    client = CustomVisionTrainingClient(
        server.url, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    project_id, (fork,) = _detection_project(client, "fork")
    image_id = _upload(client, project_id, 1, [])
    client.close()
    entry = {"imageId": image_id, "tagId": fork, "left": 0.1, "top": 0.1, "width": 0.4031862745}
    entry["height"] = 0.3
    with api_client(server.url) as http:
        first = http.post(f"/projects/{project_id}/images/regions", json={"regions": [entry]})
        assert first.status_code == 200, first.text
        assert first.json()["duplicated"] == [] and first.json()["exceeded"] == []
        assert first.json()["created"][0]["width"] == 0.40318626  # float32, shortest form
        again = http.post(f"/projects/{project_id}/images/regions", json={"regions": [entry]})
        assert again.status_code == 207 and again.json()["created"] == []
        listed = http.get(f"/projects/{project_id}/images/id", params={"imageIds": image_id})
        [region] = listed.json()[0]["regions"]
        assert set(region) == {
            "regionId",
            "tagName",
            "created",
            "tagId",
            "left",
            "top",
            "width",
            "height",
        }
        untagged = http.get(f"/projects/{project_id}/images/untagged").json()
        assert untagged == []
