"""Every client method round-trips against the emulator over real HTTP (and once in-process)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from syncd.api import (
    ClientSettings,
    Order,
    TaggingStatus,
    TagPair,
    TagType,
    TrainingClient,
    UploadItem,
    UploadStatus,
    choose_upload_format,
)
from syncd.api.errors import BadRequestError, TagNotFoundError
from syncd.api.limits import MAX_IMAGE_BYTES, UploadFormat
from syncd.emulator.embedded import EMBEDDED_BASE_URL, embedded_transport
from syncd.emulator.server import EmulatorServer
from tests.api.conftest import RecordingTransport, make_client, seeded_items
from tests.support.images import image_bytes

pytestmark = pytest.mark.anyio


def _images_in(upload: httpx.Request) -> int:
    """How many images one recorded upload request carried (either format)."""
    if upload.url.path.endswith("/images/files"):
        return len(json.loads(upload.content)["images"])
    return upload.content.count(b'name="imageData"')


async def _all(client: TrainingClient, project_id: str | UUID, **kwargs: object) -> list:
    return [image async for image in client.iter_images(project_id, **kwargs)]  # type: ignore[arg-type]


async def test_projects_round_trip(emulator: EmulatorServer) -> None:
    async with make_client(emulator.url) as client:
        project = await client.create_project("birds", description="garden")
        assert project.name == "birds" and project.classification_type == "Multilabel"
        assert project.domain_id is not None
        assert await client.get_project(project.id) == project
        assert project.id in {p.id for p in await client.list_projects()}


async def test_tags_round_trip(emulator: EmulatorServer, project_id: str) -> None:
    async with make_client(emulator.url) as client:
        dog = await client.create_tag(project_id, "Dog")
        negative = await client.create_tag(project_id, "Negative", TagType.NEGATIVE)
        assert (dog.name, dog.type, dog.image_count) == ("Dog", TagType.REGULAR, 0)
        assert negative.type is TagType.NEGATIVE
        assert {t.id for t in await client.list_tags(project_id)} == {dog.id, negative.id}
        with pytest.raises(BadRequestError) as caught:
            await client.create_tag(project_id, "Dog")
        assert caught.value.code == "BadRequestTagNameNotUnique"
        assert not caught.value.replayed
        await client.delete_tag(project_id, dog.id)
        assert [t.id for t in await client.list_tags(project_id)] == [negative.id]
        with pytest.raises(TagNotFoundError):
            await client.delete_tag(project_id, dog.id)


@pytest.mark.slow
async def test_upload_then_count_list_and_look_up(
    emulator: EmulatorServer, project_id: str
) -> None:
    async with make_client(emulator.url) as client:
        dog = await client.create_tag(project_id, "Dog")
        cat = await client.create_tag(project_id, "Cat")
        items = (
            seeded_items(70, 0, [dog.id])
            + seeded_items(5, 100, [dog.id, cat.id])
            + seeded_items(6, 200)
        )
        batches = [batch async for batch in client.upload_images(project_id, items)]
        results = [r for batch in batches for r in batch]
        assert len(batches) >= 2  # 81 images: more than one call's 64
        assert sorted(r.key for r in results) == sorted(i.key for i in items)
        assert all(r.status is UploadStatus.OK and r.image for r in results)
        by_key = {r.key: r.image for r in results}
        assert by_key["img100.png"].tag_ids == {dog.id, cat.id}  # type: ignore[union-attr]

        assert await client.count_images(project_id) == 81
        assert await client.count_images(project_id, tagging_status=TaggingStatus.TAGGED) == 75
        assert await client.count_images(project_id, tag_ids=[cat.id]) == 5
        assert await client.count_images(project_id, tagging_status=TaggingStatus.UNTAGGED) == 6
        assert await client.count_images(project_id, tag_ids=[dog.id, cat.id]) == 75

        listed = await _all(client, project_id, page_size=16)  # several pages
        assert len(listed) == 81 and len({i.id for i in listed}) == 81
        assert [i.created for i in listed] == sorted(i.created for i in listed)  # oldest first
        assert {i.id: i.tag_ids for i in listed} == {
            r.image.id: r.image.tag_ids for r in results if r.image
        }
        newest = await _all(
            client, project_id, order=Order.NEWEST, tagging_status=TaggingStatus.UNTAGGED
        )
        assert len(newest) == 6 and all(not i.tag_ids for i in newest)
        cats = await _all(client, project_id, tag_ids=[cat.id])
        assert {i.id for i in cats} == {by_key[f"img{n}.png"].id for n in range(100, 105)}  # type: ignore[union-attr]

        wanted = [i.id for i in listed[:40]] + [UUID(int=7)]  # one id that names nothing
        found = await client.get_images_by_ids(project_id, wanted)
        assert {i.id for i in found} == set(wanted[:40])
        assert await client.get_images_by_ids(project_id, []) == []


async def test_duplicates_bad_bytes_and_oversize_images_come_back_per_item(
    emulator: EmulatorServer, project_id: str
) -> None:
    recording = RecordingTransport(httpx.AsyncHTTPTransport())
    async with make_client(emulator.url, transport=recording) as client:
        (first,) = [
            r async for batch in client.upload_images(project_id, seeded_items(1)) for r in batch
        ]
        items = [
            UploadItem("again.png", image_bytes(0, "png")),
            UploadItem("notes.txt", b"this is not an image"),
            UploadItem("huge.jpg", b"\xff\xd8" + bytes(MAX_IMAGE_BYTES)),
            UploadItem("new.png", image_bytes(1, "png")),
        ]
        uploads_before = len(recording.paths("POST"))
        results = {
            r.key: r async for batch in client.upload_images(project_id, items) for r in batch
        }
        assert results["again.png"].status is UploadStatus.OK_DUPLICATE
        assert results["again.png"].image_id == first.image_id
        assert results["notes.txt"].status is UploadStatus.ERROR_IMAGE_FORMAT
        assert results["notes.txt"].image is None
        assert results["huge.jpg"].status is UploadStatus.ERROR_IMAGE_SIZE
        assert results["new.png"].status is UploadStatus.OK
        # The oversize image never went over the wire: one upload call, three parts.
        assert len(recording.paths("POST")) == uploads_before + 1
        assert _images_in(recording.requests[-1]) == 3
        assert await client.count_images(project_id) == 2


@pytest.mark.slow
async def test_upload_with_metadata_and_over_twenty_tags_in_either_format(
    emulator: EmulatorServer, project_id: str
) -> None:
    recording = RecordingTransport(httpx.AsyncHTTPTransport())
    async with make_client(emulator.url, transport=recording) as client:
        tags = [await client.create_tag(project_id, f"t{n}") for n in range(25)]
        tag_ids = tuple(t.id for t in tags)
        metadata = {"source": "syncd", "run": "7"}
        for n, settings in enumerate(
            # call_cost_bytes decides: dear calls -> files, dear bytes -> multipart.
            [ClientSettings(call_cost_bytes=1 << 30), ClientSettings(call_cost_bytes=1)]
        ):
            client.settings = settings
            items = seeded_items(3, 1000 * n, tag_ids)
            expected = choose_upload_format(items, metadata, settings)
            results = [
                r async for b in client.upload_images(project_id, items, metadata) for r in b
            ]
            assert all(r.status is UploadStatus.OK for r in results)
            path = "/images/files" if expected is UploadFormat.FILES else "/images"
            assert recording.paths("POST").count(f"/projects/{project_id}{path}") == 1
            images = await client.get_images_by_ids(project_id, [r.image_id for r in results])
            assert len(images) == 3
            for image in images:
                assert image.tag_ids == set(tag_ids)  # 20 with the upload, 5 added after
                assert dict(image.metadata) == metadata


def test_the_cost_model_picks_the_cheaper_format() -> None:
    settings = ClientSettings()
    one_tag = (UUID(int=1),)
    # Big images, one tag set: raw bytes win even when metadata costs a call per batch.
    big = [UploadItem(f"b{n}", bytes(2_000_000), one_tag) for n in range(10)]
    assert choose_upload_format(big, {"k": "v"}, settings) is UploadFormat.MULTIPART
    # Small images, each with its own tag set: one files call beats 40 multipart calls.
    small = [UploadItem(f"s{n}", bytes(20_000), (UUID(int=n + 1),)) for n in range(40)]
    assert choose_upload_format(small, None, settings) is UploadFormat.FILES
    # Small images in one tag set without metadata: same call count, fewer bytes.
    assert (
        choose_upload_format(
            [UploadItem(f"s{n}", bytes(20_000), one_tag) for n in range(40)], None, settings
        )
        is UploadFormat.MULTIPART
    )


@pytest.mark.slow
async def test_tag_changes_metadata_and_deletes_in_many_batches(
    emulator: EmulatorServer, project_id: str
) -> None:
    recording = RecordingTransport(httpx.AsyncHTTPTransport())
    async with make_client(emulator.url, transport=recording) as client:
        dog = await client.create_tag(project_id, "Dog")
        cat = await client.create_tag(project_id, "Cat")
        results = [r async for b in client.upload_images(project_id, seeded_items(150)) for r in b]
        ids = [r.image_id for r in results if r.image_id]
        assert len(ids) == 150

        pairs = [TagPair(i, t) for i in ids for t in (dog.id, cat.id)]  # 300 pairs: 3 calls
        added = [b async for b in client.add_tags(project_id, pairs)]
        assert len(added) == 3
        assert sum(len(b.created) for b in added) == 300
        again = [b async for b in client.add_tags(project_id, pairs[:10])]
        assert [len(b.duplicated) for b in again] == [10]
        assert await client.count_images(project_id, tag_ids=[cat.id]) == 150

        removed = [p async for b in client.remove_tags(project_id, ids[:100], [cat.id]) for p in b]
        assert len(removed) == 100
        assert recording.paths("DELETE").count(f"/projects/{project_id}/images/tags") == 2
        assert await client.count_images(project_id, tag_ids=[cat.id]) == 50

        updated = [
            m async for b in client.update_metadata(project_id, ids[:70], {"k": "v"}) for m in b
        ]
        assert len(updated) == 70 and all(m.status == "OK" for m in updated)
        assert await client.count_images(project_id, metadata_filter="k eq 'v'") == 70

        deleted = [i async for b in client.delete_images(project_id, ids[:140]) for i in b]
        assert sorted(deleted) == sorted(ids[:140])
        assert await client.count_images(project_id) == 10
        # Deleting again is not an error: the images are gone, as asked.
        assert [i async for b in client.delete_images(project_id, ids[:5]) for i in b] == ids[:5]


async def test_download_streams_the_original_and_sends_no_key(
    emulator: EmulatorServer, project_id: str
) -> None:
    recording = RecordingTransport(httpx.AsyncHTTPTransport())
    async with make_client(emulator.url, transport=recording) as client:
        items = seeded_items(2, fmt="jpeg")
        results = [r async for b in client.upload_images(project_id, items) for r in b]
        for item, result in zip(items, results, strict=True):
            assert result.image and result.image.original_uri
            data = b"".join([c async for c in client.download(result.image.original_uri)])
            assert hashlib.sha256(data).digest() == hashlib.sha256(item.data).digest()
    downloads = [r for r in recording.requests if "/customvision/" not in r.url.path]
    api_calls = [r for r in recording.requests if "/customvision/" in r.url.path]
    assert len(downloads) == 2
    assert all("training-key" not in r.headers for r in downloads)
    assert all("training-key" in r.headers for r in api_calls)


async def test_the_in_process_transport_serves_the_same_client(tmp_path: Path) -> None:
    from tests.support import TEST_KEY

    transport = embedded_transport(tmp_path, training_key=TEST_KEY)
    async with make_client(EMBEDDED_BASE_URL, transport=transport) as client:
        project = await client.create_project("embedded")
        tag = await client.create_tag(project.id, "Dog")
        items = seeded_items(3, tag_ids=[tag.id])
        results = [r async for b in client.upload_images(project.id, items) for r in b]
        assert [r.status for r in results] == [UploadStatus.OK] * 3
        assert await client.count_images(project.id, tagging_status=TaggingStatus.TAGGED) == 3
        image = (await _all(client, project.id))[0]
        assert image.original_uri
        data = b"".join([c async for c in client.download(image.original_uri)])
        assert data in {i.data for i in items}
        [_ async for _ in client.delete_images(project.id, [r.image_id for r in results])]
        assert await client.count_images(project.id) == 0


def test_the_cost_model_follows_the_uplink_and_the_rate() -> None:
    """A call is worth what the uplink carries in the time the rate quota gives it."""
    one_tag = (UUID(int=1),)
    mid = [UploadItem(f"m{n}", bytes(200_000), one_tag) for n in range(64)]
    metadata = {"k": "v"}
    mbit_100 = 100e6 / 8
    # S0 (10 calls/s) on 100 Mbit/s: a call is worth 1.25 MB; a third more bytes of base64
    # (4.3 MB) costs more than multipart's second call: raw bytes.
    s0 = ClientSettings(rate_per_second=10, uplink_bytes_per_s=mbit_100)
    assert s0.call_cost() == pytest.approx(1.25e6)
    assert choose_upload_format(mid, metadata, s0) is UploadFormat.MULTIPART
    # F0 (2 calls/s) on the same line: a call is worth 6.25 MB; one files call wins.
    f0 = ClientSettings(rate_per_second=2, uplink_bytes_per_s=mbit_100)
    assert choose_upload_format(mid, metadata, f0) is UploadFormat.FILES
    # A gigabit line at 10/s: calls are dear again (12.5 MB each): files.
    fast = ClientSettings(rate_per_second=10, uplink_bytes_per_s=1e9 / 8)
    assert choose_upload_format(mid, metadata, fast) is UploadFormat.FILES
    # Camera-like images (1-2 MB) go raw on any line up to a gigabit: bytes on the wire stay
    # within 2 % of the image bytes.
    camera = [UploadItem(f"c{n}", bytes(1_500_000), one_tag) for n in range(64)]
    assert choose_upload_format(camera, metadata, fast) is UploadFormat.MULTIPART
