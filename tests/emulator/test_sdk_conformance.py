"""Conformance: the official SDK (azure-cognitiveservices-vision-customvision 3.1.1) as the judge.

Every test drives the emulator over real HTTP with `CustomVisionTrainingClient`, which calls the
`/customvision/v3.4-preview/training` path, and checks that what comes back deserializes into the
SDK's models with the fields set. The `emulator` fixture validates every JSON response against
the spec's schemas as well (tests/support/spec_check.py), so a test here fails on either judge.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    Domain,
    Image,
    ImageCreateResult,
    ImageCreateSummary,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageProcessingSettings,
    ImageTagCreateEntry,
    Project,
    Tag,
)
from msrest.authentication import ApiKeyCredentials
from msrest.pipeline import ClientRawResponse

from syncd.emulator.server import EmulatorServer
from tests.support import TEST_KEY
from tests.support.images import image_bytes, write_image

WIDTH, HEIGHT = 32, 24  # tests/support/images.py's default
PREVIEW_PATH = "/customvision/v3.4-preview/training/"


def _client(url: str, key: str) -> CustomVisionTrainingClient:
    # As the SDK quickstart builds it; the header spelling is the quickstart's.
    return CustomVisionTrainingClient(url, ApiKeyCredentials(in_headers={"Training-key": key}))


@pytest.fixture
def trainer(emulator: EmulatorServer) -> Iterator[CustomVisionTrainingClient]:
    client = _client(emulator.url, TEST_KEY)
    yield client
    client.close()


@pytest.fixture
def project(trainer: CustomVisionTrainingClient) -> Project:
    """A multilabel classification project on the General domain, picked as the quickstart does."""
    domain = next(
        d for d in trainer.get_domains() if d.type == "Classification" and d.name == "General"
    )
    return trainer.create_project("sdk", domain_id=domain.id, classification_type="Multilabel")


def _entries(seeds: Sequence[int], fmt: str = "jpeg", **kwargs: Any) -> list[ImageFileCreateEntry]:
    return [
        ImageFileCreateEntry(name=f"img{seed}.{fmt}", contents=image_bytes(seed, fmt), **kwargs)
        for seed in seeds
    ]


def _upload(
    trainer: CustomVisionTrainingClient,
    project_id: str,
    seeds: Sequence[int],
    tag_ids: Sequence[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> list[Image]:
    """Create images from files that must all be OK; return them in upload order."""
    batch = ImageFileCreateBatch(
        images=_entries(seeds), tag_ids=list(tag_ids) if tag_ids else None, metadata=metadata
    )
    summary = trainer.create_images_from_files(project_id, batch)
    assert summary.is_batch_successful is True
    assert [r.status for r in summary.images] == ["OK"] * len(seeds)
    return [r.image for r in summary.images]


def _raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> ClientRawResponse:
    """Call an SDK operation with raw=True, to see the HTTP status it got as well."""
    result = call(*args, raw=True, **kwargs)
    assert isinstance(result, ClientRawResponse)
    return result


def _error(excinfo: pytest.ExceptionInfo[CustomVisionErrorException]) -> tuple[int, str]:
    exc = excinfo.value
    return exc.response.status_code, exc.error.code


def _assert_image(image: Image, emulator_url: str) -> None:
    """An Image as the SDK sees it: ids, stamps, size and URIs on the emulator all set."""
    assert uuid.UUID(image.id)
    assert isinstance(image.created, datetime) and image.created.tzinfo is not None
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    for uri in (image.original_image_uri, image.resized_image_uri, image.thumbnail_uri):
        assert uri.startswith(f"{emulator_url}/"), uri


def _walk(list_page: Callable[..., list[Image]], take: int) -> list[str]:
    """Page through a listing with skip/take until a short page; return the ids in order."""
    ids: list[str] = []
    while True:
        page = list_page(take=take, skip=len(ids))
        ids.extend(image.id for image in page)
        if len(page) < take:
            return ids


# --- domains and projects -----------------------------------------------------------------------


def test_quickstart_project_lifecycle(
    trainer: CustomVisionTrainingClient, emulator: EmulatorServer
) -> None:
    domains = trainer.get_domains()
    assert domains and all(isinstance(d, Domain) for d in domains)
    assert all(uuid.UUID(d.id) and d.name and d.type for d in domains)
    assert {d.type for d in domains} == {"Classification", "ObjectDetection"}
    domain = next(d for d in domains if d.type == "Classification" and d.name == "General")

    raw = _raw(trainer.create_project, "Birds", description="sdk test", domain_id=domain.id)
    assert PREVIEW_PATH in raw.response.url  # the SDK 3.1.1 path, served as v3.3
    created: Project = raw.output
    assert created.name == "Birds" and created.description == "sdk test"
    assert created.settings.domain_id == domain.id
    assert created.settings.classification_type == "Multiclass"  # the service's default
    assert isinstance(created.created, datetime) and isinstance(created.last_modified, datetime)

    assert [p.id for p in trainer.get_projects()] == [created.id]
    fetched = trainer.get_project(created.id)
    assert (fetched.id, fetched.name, fetched.settings.domain_id) == (
        created.id,
        "Birds",
        domain.id,
    )

    trainer.delete_project(created.id)
    assert trainer.get_projects() == []
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.get_project(created.id)
    assert _error(excinfo) == (404, "NotFoundProject")


def test_project_settings_carry_image_processing_settings(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    """ProjectSettings in full: the SDK reads imageProcessingSettings (augmentation methods) from
    CreateProject, GetProject and UpdateProject alike."""
    for read in (
        project,
        trainer.get_project(project.id),
        trainer.update_project(
            project.id, Project(name="renamed", description="", settings=project.settings)
        ),
    ):
        settings = read.settings.image_processing_settings
        assert isinstance(settings, ImageProcessingSettings)
        assert settings.augmentation_methods == {}  # the spec names no transforms
        assert read.settings.use_negative_set is True


# --- tags ----------------------------------------------------------------------------------------


def test_tag_lifecycle_regular_and_negative(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    dog = trainer.create_tag(project.id, "Dog", description="good boy")
    negative = trainer.create_tag(project.id, "Negative", type="Negative")
    assert isinstance(dog, Tag) and uuid.UUID(dog.id)
    assert (dog.name, dog.description, dog.type, dog.image_count) == (
        "Dog",
        "good boy",
        "Regular",
        0,
    )
    assert (negative.type, negative.description) == ("Negative", None)

    assert {t.id: t.name for t in trainer.get_tags(project.id)} == {
        dog.id: "Dog",
        negative.id: "Negative",
    }
    assert trainer.get_tag(project.id, dog.id).name == "Dog"

    renamed = trainer.update_tag(
        project.id, dog.id, Tag(name="Hound", description="renamed", type="Regular")
    )
    assert (renamed.id, renamed.name, renamed.description) == (dog.id, "Hound", "renamed")
    assert trainer.get_tag(project.id, dog.id).name == "Hound"

    trainer.delete_tag(project.id, dog.id)
    assert [t.id for t in trainer.get_tags(project.id)] == [negative.id]
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.get_tag(project.id, dog.id)
    assert _error(excinfo) == (404, "NotFoundTag")


def test_tag_image_count_follows_tagging(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    tag = trainer.create_tag(project.id, "Cat")
    _upload(trainer, project.id, [1, 2, 3], tag_ids=[tag.id])
    assert trainer.get_tag(project.id, tag.id).image_count == 3


# --- creating images -------------------------------------------------------------------------


def test_create_images_from_files_sets_every_field(
    trainer: CustomVisionTrainingClient, project: Project, emulator: EmulatorServer
) -> None:
    batch_tag = trainer.create_tag(project.id, "Bird")
    own_tag = trainer.create_tag(project.id, "Owl")
    entries = [
        *_entries([1], tag_ids=[own_tag.id]),  # per-entry tags add to the batch's
        *_entries([2], fmt="png"),
    ]
    batch = ImageFileCreateBatch(
        images=entries, tag_ids=[batch_tag.id], metadata={"source": "sdk", "hash": "abc"}
    )
    raw = _raw(trainer.create_images_from_files, project.id, batch)
    assert raw.response.status_code == 200
    summary: ImageCreateSummary = raw.output
    assert summary.is_batch_successful is True
    results: list[ImageCreateResult] = summary.images
    assert [(r.source_url, r.status) for r in results] == [
        ('"img1.jpeg"', "OK"),
        ('"img2.png"', "OK"),
    ]

    first, second = (r.image for r in results)
    for image in (first, second):
        _assert_image(image, emulator.url)
        assert image.metadata == {"source": "sdk", "hash": "abc"}
        # Create results echo tagName null [R]; the SDK keeps it as None.
        assert all(t.tag_name is None and isinstance(t.created, datetime) for t in image.tags)
    assert {t.tag_id for t in first.tags} == {batch_tag.id, own_tag.id}
    assert [t.tag_id for t in second.tags] == [batch_tag.id]

    # The URIs the SDK got serve the uploaded bytes, with no key.
    fetched = httpx.get(first.original_image_uri, timeout=10)
    assert fetched.status_code == 200 and fetched.content == image_bytes(1, "jpeg")

    # Listings fill the tag names in.
    listed = {i.id: i for i in trainer.get_images_by_ids(project.id, [first.id, second.id])}
    assert {t.tag_name for t in listed[first.id].tags} == {"Bird", "Owl"}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "bmp", "gif"])
@pytest.mark.slow
def test_create_images_from_data_multipart_from_an_open_file(
    trainer: CustomVisionTrainingClient,
    project: Project,
    emulator: EmulatorServer,
    tmp_path: Path,
    fmt: str,
) -> None:
    tag = trainer.create_tag(project.id, "Fish")
    path = tmp_path / f"fish.{fmt}"
    data = write_image(path, seed=5, fmt=fmt)
    with path.open("rb") as image_file:
        raw = _raw(trainer.create_images_from_data, project.id, image_file, tag_ids=[tag.id])
    assert raw.response.request.headers["Content-Type"].startswith("multipart/form-data")
    assert raw.response.status_code == 200
    summary: ImageCreateSummary = raw.output
    assert summary.is_batch_successful is True
    (result,) = summary.images
    # The SDK sends the file's basename; the service echoes it with its quotes [R].
    assert (result.source_url, result.status) == (f'"fish.{fmt}"', "OK")
    _assert_image(result.image, emulator.url)
    assert [t.tag_id for t in result.image.tags] == [tag.id]
    assert httpx.get(result.image.original_image_uri, timeout=10).content == data


def test_create_images_from_data_bytes_then_duplicate_then_bad_format(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    data = image_bytes(7, "png")
    first = trainer.create_images_from_data(project.id, data)
    assert first.is_batch_successful is True
    (created,) = first.images
    assert (created.source_url, created.status) == ("", "OK")  # a part without a filename
    assert created.image.tags is None  # untagged: no `tags` at all [R]

    raw = _raw(trainer.create_images_from_data, project.id, data)
    assert raw.response.status_code == 207
    assert raw.output.is_batch_successful is False
    (duplicate,) = raw.output.images
    assert duplicate.status == "OKDuplicate"
    assert duplicate.image.id == created.image.id

    raw = _raw(trainer.create_images_from_data, project.id, b"this is not an image at all")
    assert raw.response.status_code == 207
    assert raw.output.is_batch_successful is False
    (bad,) = raw.output.images
    assert (bad.status, bad.image) == ("ErrorImageFormat", None)
    assert trainer.get_image_count(project.id) == 1


def test_mixed_files_batch_is_207_with_a_status_per_image(
    trainer: CustomVisionTrainingClient, project: Project, emulator: EmulatorServer
) -> None:
    (existing,) = _upload(trainer, project.id, [1])
    entries = [
        *_entries([2]),
        ImageFileCreateEntry(name="again.jpeg", contents=image_bytes(1, "jpeg")),
        ImageFileCreateEntry(name="notes.txt", contents=b"plain text, not an image"),
    ]
    raw = _raw(trainer.create_images_from_files, project.id, ImageFileCreateBatch(images=entries))
    assert raw.response.status_code == 207
    summary: ImageCreateSummary = raw.output
    assert summary.is_batch_successful is False
    assert [(r.source_url, r.status) for r in summary.images] == [
        ('"img2.jpeg"', "OK"),
        ('"again.jpeg"', "OKDuplicate"),
        ('"notes.txt"', "ErrorImageFormat"),
    ]
    new, duplicate, bad = summary.images
    _assert_image(new.image, emulator.url)
    assert duplicate.image.id == existing.id
    assert bad.image is None
    assert trainer.get_image_count(project.id) == 2


def test_negative_and_regular_tag_on_one_image_is_a_per_image_error(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    regular = trainer.create_tag(project.id, "Dog")
    negative = trainer.create_tag(project.id, "Nothing", type="Negative")
    entries = [
        *_entries([1], tag_ids=[negative.id]),
        *_entries([2], tag_ids=[regular.id]),
    ]
    batch = ImageFileCreateBatch(images=entries, tag_ids=[regular.id])
    raw = _raw(trainer.create_images_from_files, project.id, batch)
    assert raw.response.status_code == 207
    assert [r.status for r in raw.output.images] == [
        "ErrorNegativeAndRegularTagOnSameImage",
        "OK",
    ]
    assert trainer.get_image_count(project.id) == 1


# --- listing, paging, counting -------------------------------------------------------------------


def test_tagged_and_untagged_paging_walks_every_image_once_newest_first(
    trainer: CustomVisionTrainingClient, project: Project, emulator: EmulatorServer
) -> None:
    tag = trainer.create_tag(project.id, "Tree")
    tagged = [image.id for image in _upload(trainer, project.id, range(7), tag_ids=[tag.id])]
    untagged = [image.id for image in _upload(trainer, project.id, range(7, 12))]

    def tagged_page(take: int, skip: int) -> list[Image]:
        return trainer.get_tagged_images(project.id, take=take, skip=skip)

    def untagged_page(take: int, skip: int) -> list[Image]:
        return trainer.get_untagged_images(project.id, take=take, skip=skip)

    assert _walk(tagged_page, take=3) == tagged[::-1]
    assert _walk(untagged_page, take=2) == untagged[::-1]
    oldest = trainer.get_tagged_images(project.id, order_by="Oldest", take=256)
    assert [i.id for i in oldest] == tagged

    (first,) = trainer.get_tagged_images(project.id, take=1)
    _assert_image(first, emulator.url)
    assert [(t.tag_id, t.tag_name) for t in first.tags] == [(tag.id, "Tree")]
    (lonely,) = trainer.get_untagged_images(project.id, take=1)
    assert lonely.tags is None

    assert trainer.get_tagged_image_count(project.id) == 7
    assert trainer.get_tagged_image_count(project.id, tag_ids=[tag.id]) == 7
    assert trainer.get_untagged_image_count(project.id) == 5
    assert trainer.get_image_count(project.id) == 12
    assert trainer.get_image_count(project.id, tagging_status="Untagged") == 5


def test_get_images_filters_by_tags_status_and_metadata(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    dog = trainer.create_tag(project.id, "Dog")
    cat = trainer.create_tag(project.id, "Cat")
    dogs = _upload(trainer, project.id, [1, 2], tag_ids=[dog.id], metadata={"site": "north"})
    cats = _upload(trainer, project.id, [3], tag_ids=[cat.id], metadata={"site": "south"})
    plain = _upload(trainer, project.id, [4], metadata={"site": "north"})
    all_ids = [i.id for i in (*dogs, *cats, *plain)]

    def ids(**kwargs: Any) -> list[str]:
        return [i.id for i in trainer.get_images(project.id, **kwargs)]

    assert ids() == all_ids[::-1]
    assert ids(order_by="Oldest") == all_ids
    assert ids(order_by="Oldest", take=2, skip=1) == all_ids[1:3]
    assert ids(tag_ids=[dog.id]) == [dogs[1].id, dogs[0].id]
    assert set(ids(tag_ids=[dog.id, cat.id])) == {i.id for i in (*dogs, *cats)}  # union
    assert ids(tagging_status="Untagged") == [plain[0].id]
    assert set(ids(filter="site eq 'north'")) == {i.id for i in (*dogs, *plain)}
    assert ids(filter="site ne 'north'") == [cats[0].id]
    assert set(ids(filter="site eq 'south' or site eq 'north'")) == set(all_ids)
    assert ids(filter="site eq 'north'", tagging_status="Untagged") == [plain[0].id]
    assert trainer.get_image_count(project.id, filter="site eq 'north'") == 3
    assert trainer.get_image_count(project.id, filter="site eq 'north' and site ne 'north'") == 0


def test_get_images_by_ids_returns_known_ids_oldest_first(
    trainer: CustomVisionTrainingClient, project: Project, emulator: EmulatorServer
) -> None:
    images = _upload(trainer, project.id, [1, 2, 3])
    wanted = [images[2].id, str(uuid.uuid4()), images[0].id]
    found = trainer.get_images_by_ids(project.id, wanted)
    assert [i.id for i in found] == [images[0].id, images[2].id]  # oldest first [R]
    for image in found:
        _assert_image(image, emulator.url)


# --- tags on images, metadata, deletion --------------------------------------------------------


def test_create_and_delete_image_tags(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    tag = trainer.create_tag(project.id, "Leaf")
    images = _upload(trainer, project.id, [1, 2])
    entries = [ImageTagCreateEntry(image_id=i.id, tag_id=tag.id) for i in images]

    summary = trainer.create_image_tags(project.id, tags=entries)
    assert {(e.image_id, e.tag_id) for e in summary.created} == {(i.id, tag.id) for i in images}
    assert (summary.duplicated, summary.exceeded) == ([], [])  # empty lists are [] [R]
    again = trainer.create_image_tags(project.id, tags=entries[:1])
    assert (again.created, [(e.image_id, e.tag_id) for e in again.duplicated]) == (
        [],
        [(images[0].id, tag.id)],
    )
    assert trainer.get_tagged_image_count(project.id) == 2

    trainer.delete_image_tags(project.id, [images[0].id], [tag.id])
    assert [i.id for i in trainer.get_untagged_images(project.id)] == [images[0].id]
    assert [i.id for i in trainer.get_tagged_images(project.id, tag_ids=[tag.id])] == [images[1].id]

    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.create_image_tags(
            project.id, tags=[ImageTagCreateEntry(image_id=str(uuid.uuid4()), tag_id=tag.id)]
        )
    assert _error(excinfo) == (404, "NotFoundImage")


def test_update_image_metadata_merges_and_reports_each_image(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    image, other = _upload(trainer, project.id, [1, 2], metadata={"site": "north"})
    raw = _raw(trainer.update_image_metadata, project.id, [image.id], {"hash": "f00d"})
    assert raw.response.status_code == 200
    summary = raw.output
    assert summary.is_batch_successful is True
    (entry,) = summary.images
    assert (entry.image_id, entry.status) == (image.id, "OK")
    assert entry.metadata == {"hash": "f00d", "site": "north"}
    (listed,) = trainer.get_images(project.id, filter="hash eq 'f00d'")
    assert listed.id == image.id and listed.metadata == {"hash": "f00d", "site": "north"}

    missing = str(uuid.uuid4())
    raw = _raw(trainer.update_image_metadata, project.id, [other.id, missing], {"k": "v"})
    assert raw.response.status_code == 207
    assert raw.output.is_batch_successful is False
    assert [(e.image_id, e.status) for e in raw.output.images] == [
        (other.id, "OK"),
        (missing, "ErrorImageNotFound"),
    ]


def test_delete_images_by_id_and_all(trainer: CustomVisionTrainingClient, project: Project) -> None:
    images = _upload(trainer, project.id, [1, 2, 3])
    raw = _raw(trainer.delete_images, project.id, image_ids=[images[0].id])
    assert raw.response.status_code == 204
    assert trainer.get_images_by_ids(project.id, [images[0].id]) == []
    assert trainer.get_image_count(project.id) == 2

    raw = _raw(trainer.delete_images, project.id, all_images=True)
    assert raw.response.status_code == 202  # «Using this flag will return a 202 response»
    assert trainer.get_image_count(project.id) == 0
    assert trainer.get_images(project.id) == []


# --- errors as the SDK sees them ---------------------------------------------------------------


def test_wrong_key_raises_with_the_gateway_code_and_no_key_echoed(
    emulator: EmulatorServer,
) -> None:
    wrong_key = "wrong-key-0000"
    client = _client(emulator.url, wrong_key)
    try:
        with pytest.raises(CustomVisionErrorException) as excinfo:
            client.get_projects()
    finally:
        client.close()
    assert _error(excinfo) == (401, "401")
    assert "Access denied" in excinfo.value.error.message
    assert wrong_key not in str(excinfo.value) and TEST_KEY not in str(excinfo.value)


def test_unknown_project_is_not_found_project(trainer: CustomVisionTrainingClient) -> None:
    unknown = str(uuid.uuid4())
    for call in (
        lambda: trainer.get_project(unknown),
        lambda: trainer.get_tags(unknown),
        lambda: trainer.get_tagged_images(unknown),
        lambda: trainer.get_image_count(unknown),
    ):
        with pytest.raises(CustomVisionErrorException) as excinfo:
            call()
        assert _error(excinfo) == (404, "NotFoundProject")


def test_tag_name_not_unique(trainer: CustomVisionTrainingClient, project: Project) -> None:
    trainer.create_tag(project.id, "Dog")
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.create_tag(project.id, "Dog")
    assert _error(excinfo) == (400, "BadRequestTagNameNotUnique")
    assert [t.name for t in trainer.get_tags(project.id)] == ["Dog"]


def test_more_than_64_images_in_a_batch_is_refused_whole(
    trainer: CustomVisionTrainingClient, project: Project
) -> None:
    batch = ImageFileCreateBatch(images=_entries(range(65)))
    with pytest.raises(CustomVisionErrorException) as excinfo:
        trainer.create_images_from_files(project.id, batch)
    assert _error(excinfo) == (400, "BadRequestImageBatch")
    assert trainer.get_image_count(project.id) == 0
    # 64 is within the limit.
    assert len(_upload(trainer, project.id, range(64))) == 64
