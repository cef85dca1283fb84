"""Image creation: batch statuses, duplicates, bad images, formats, URIs, real-service shapes."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path

import httpx
import pytest
from PIL import Image

from syncd.emulator.embedded import EMBEDDED_BASE_URL, embedded_transport
from tests.emulator.support import (
    count,
    csv,
    new_tag,
    post_files,
    post_images,
    seeded_images,
    upload,
)
from tests.support import TEST_KEY
from tests.support.images import image_bytes

SIX_MB = 6 * 1024 * 1024


def _statuses(r: httpx.Response) -> list[str]:
    return [entry["status"] for entry in r.json()["images"]]


def test_all_ok_batch_is_200_with_one_result_per_image(http: httpx.Client, project_id: str) -> None:
    images = seeded_images(3)
    r = post_images(http, project_id, images)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["isBatchSuccessful"] is True
    assert _statuses(r) == ["OK", "OK", "OK"]
    # Multipart sourceUrl is the part's filename with its quotes kept [R].
    assert [e["sourceUrl"] for e in body["images"]] == [f'"{name}"' for name, _ in images]
    assert len({e["image"]["id"] for e in body["images"]}) == 3
    assert count(http, project_id) == 3


def test_create_results_echo_null_tag_names_and_listings_fill_them(
    http: httpx.Client, project_id: str
) -> None:
    tag = new_tag(http, project_id, "Dog")
    (created,) = upload(http, project_id, seeded_images(1), tag_ids=[tag])
    assert [(t["tagId"], t["tagName"]) for t in created["tags"]] == [(tag, None)]
    (listed,) = http.get(f"/projects/{project_id}/images").json()
    assert [(t["tagId"], t["tagName"]) for t in listed["tags"]] == [(tag, "Dog")]


def test_untagged_images_carry_no_tags_or_metadata_key(http: httpx.Client, project_id: str) -> None:
    (created,) = upload(http, project_id, seeded_images(1))
    for path in ("images", "images/untagged", f"images/id?imageIds={created['id']}"):
        (image,) = http.get(f"/projects/{project_id}/{path}").json()
        assert "tags" not in image, (path, image)
        assert "metadata" not in image, (path, image)


def test_same_bytes_again_is_ok_duplicate_with_the_existing_image(
    http: httpx.Client, project_id: str
) -> None:
    """OKDuplicate is not a creation: the batch is 207 with isBatchSuccessful false, as the real
    service answers (cognitive-services-python-sdk-samples issues #56, #98)."""
    first, second = seeded_images(2)
    (original,) = upload(http, project_id, [first])
    r = post_images(http, project_id, [("again.png", first[1]), second])
    assert r.status_code == 207, r.text
    assert r.json()["isBatchSuccessful"] is False
    assert _statuses(r) == ["OKDuplicate", "OK"]
    assert r.json()["images"][0]["image"]["id"] == original["id"]
    assert count(http, project_id) == 2


def test_same_bytes_twice_in_one_batch_make_one_image(http: httpx.Client, project_id: str) -> None:
    (image,) = seeded_images(1)
    r = post_images(http, project_id, [image, ("copy.png", image[1])])
    assert r.status_code == 207, r.text
    assert _statuses(r) == ["OK", "OKDuplicate"]
    ids = [e["image"]["id"] for e in r.json()["images"]]
    assert ids[0] == ids[1]
    assert count(http, project_id) == 1


def test_duplicates_are_per_project(http: httpx.Client, project_id: str) -> None:
    from tests.emulator.support import new_project

    images = seeded_images(1)
    upload(http, project_id, images)
    upload(http, new_project(http, "other"), images)


@pytest.mark.parametrize(
    "bad",
    [b"hello, I am a text file\n", image_bytes(7, "png")[:60], b"\x89PNG\r\n\x1a\n" + b"\0" * 40],
    ids=["text", "truncated-png", "png-magic-then-garbage"],
)
def test_a_file_that_is_not_an_image_is_error_image_format(
    http: httpx.Client, project_id: str, bad: bytes
) -> None:
    r = post_images(http, project_id, [("good.png", image_bytes(1, "png")), ("bad.png", bad)])
    assert r.status_code == 207, r.text
    assert r.json()["isBatchSuccessful"] is False
    assert _statuses(r) == ["OK", "ErrorImageFormat"]
    assert "image" not in r.json()["images"][1] or not r.json()["images"][1]["image"]
    assert count(http, project_id) == 1


def _big_bmp() -> bytes:
    # 1450 x 1450 x 3 bytes, rows padded to 4: 6,310,454 bytes, just over 6 MB.
    buf = io.BytesIO()
    Image.new("RGB", (1450, 1450), (10, 20, 30)).save(buf, format="BMP")
    return buf.getvalue()


def test_an_image_over_6_mb_is_error_image_size(http: httpx.Client, project_id: str) -> None:
    big = _big_bmp()
    assert len(big) > SIX_MB
    r = post_images(http, project_id, [("big.bmp", big), ("small.png", image_bytes(1, "png"))])
    assert r.status_code == 207, r.text
    assert _statuses(r) == ["ErrorImageSize", "OK"]
    r = post_files(http, project_id, [("big.bmp", big)])
    assert r.status_code == 207, r.text
    assert _statuses(r) == ["ErrorImageSize"]
    assert count(http, project_id) == 1


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("1", size).save(buf, format="PNG")  # 1 bit a pixel: a 10,241 px side stays small
    return buf.getvalue()


@pytest.mark.parametrize(
    ("size", "status"),
    [
        ((10_240, 500), "OK"),  # «Max image height/width: 10,240 px» (DIGEST.md §6)
        ((500, 10_241), "ErrorImageSize"),
        ((250, 10), "OK"),  # «Aspect ratio shouldn't be larger than 25:1»
        ((260, 10), "ErrorImageSize"),
        ((10, 260), "ErrorImageSize"),
    ],
    ids=["10240-wide", "10241-high", "25-to-1", "26-to-1", "1-to-26"],
)
def test_an_image_past_the_side_or_aspect_limit_is_error_image_size(
    http: httpx.Client, project_id: str, size: tuple[int, int], status: str
) -> None:
    r = post_images(http, project_id, [("a.png", _png(size)), ("small.png", image_bytes(1, "png"))])
    assert _statuses(r) == [status, "OK"], r.text
    assert count(http, project_id) == (2 if status == "OK" else 1)


def test_octet_stream_single_upload(http: httpx.Client, project_id: str) -> None:
    tag = new_tag(http, project_id, "Cat")
    data = image_bytes(3, "jpeg", size=(40, 30))
    r = http.post(
        f"/projects/{project_id}/images",
        params={"tagIds": tag},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["images"]
    assert entry["status"] == "OK"
    assert (entry["image"]["width"], entry["image"]["height"]) == (40, 30)
    assert count(http, project_id, "images/tagged/count", tagIds=tag) == 1


@pytest.mark.parametrize("fmt", ["jpeg", "png", "bmp", "gif"])
@pytest.mark.slow
def test_every_supported_format_is_accepted_with_its_dimensions(
    http: httpx.Client, project_id: str, fmt: str
) -> None:
    data = image_bytes(11, fmt, size=(37, 21))
    (image,) = upload(http, project_id, [(f"a.{fmt}", data)])
    assert (image["width"], image["height"]) == (37, 21)
    (via_files,) = post_files(
        http, project_id, [(f"b.{fmt}", image_bytes(12, fmt, size=(21, 37)))]
    ).json()["images"]
    assert via_files["status"] == "OK"
    assert (via_files["image"]["width"], via_files["image"]["height"]) == (21, 37)


def test_image_uris_serve_the_uploaded_bytes(http: httpx.Client, project_id: str) -> None:
    data = image_bytes(5, "jpeg", size=(64, 48))
    (created,) = upload(http, project_id, [("a.jpg", data)])
    (listed,) = http.get(f"/projects/{project_id}/images").json()
    for image in (created, listed):
        original = httpx.get(image["originalImageUri"], timeout=30)
        assert original.status_code == 200
        assert original.content == data
        for key in ("resizedImageUri", "thumbnailUri"):
            served = httpx.get(image[key], timeout=30)
            assert served.status_code == 200, key
            Image.open(io.BytesIO(served.content)).verify()  # a real image, whatever its size


def test_files_batch_applies_batch_tags_and_metadata_to_every_image(
    http: httpx.Client, project_id: str
) -> None:
    tag = new_tag(http, project_id, "Bird")
    r = post_files(http, project_id, seeded_images(2), tag_ids=[tag], metadata={"src": "cam1"})
    assert r.status_code == 200, r.text
    ids = [e["image"]["id"] for e in r.json()["images"]]
    listed = http.get(f"/projects/{project_id}/images/id", params={"imageIds": csv(ids)}).json()
    assert len(listed) == 2
    for image in listed:
        assert image["metadata"] == {"src": "cam1"}
        assert [t["tagId"] for t in image["tags"]] == [tag]


def test_create_image_tags_answers_lists_never_null(http: httpx.Client, project_id: str) -> None:
    tag = new_tag(http, project_id, "Dog")
    (image,) = upload(http, project_id, seeded_images(1))
    pair = {"imageId": image["id"], "tagId": tag}
    first = http.post(f"/projects/{project_id}/images/tags", json={"tags": [pair]})
    assert first.status_code == 200, first.text
    assert first.json() == {"created": [pair], "duplicated": [], "exceeded": []}
    again = http.post(f"/projects/{project_id}/images/tags", json={"tags": [pair]})
    assert again.json() == {"created": [], "duplicated": [pair], "exceeded": []}
    assert count(http, project_id, "images/tagged/count") == 1


def test_delete_image_tags_and_images(http: httpx.Client, project_id: str) -> None:
    tag = new_tag(http, project_id, "Dog")
    a, b = upload(http, project_id, seeded_images(2), tag_ids=[tag])
    r = http.delete(
        f"/projects/{project_id}/images/tags", params={"imageIds": a["id"], "tagIds": tag}
    )
    assert r.status_code == 204 and r.content == b""
    assert count(http, project_id, "images/untagged/count") == 1
    r = http.delete(f"/projects/{project_id}/images", params={"imageIds": csv([a["id"], b["id"]])})
    assert r.status_code == 204 and r.content == b""
    assert count(http, project_id) == 0
    # Deleting frees the content: the same bytes are a new image, not a duplicate.
    upload(http, project_id, seeded_images(1))


def test_in_process_transport_serves_the_same_api(tmp_path: Path) -> None:
    async def flow() -> None:
        transport = embedded_transport(tmp_path)
        async with httpx.AsyncClient(
            transport=transport, base_url=EMBEDDED_BASE_URL, headers={"Training-Key": TEST_KEY}
        ) as client:
            base = "/customvision/v3.3/training"
            domains = (await client.get(f"{base}/domains")).json()
            r = await client.post(
                f"{base}/projects", params={"name": "p", "domainId": domains[0]["id"]}
            )
            assert r.status_code == 200, r.text
            pid = r.json()["id"]
            files = [("imageData", (name, data, "image/png")) for name, data in seeded_images(2)]
            r = await client.post(f"{base}/projects/{pid}/images", files=files)
            assert r.status_code == 200, r.text
            listed = (await client.get(f"{base}/projects/{pid}/images")).json()
            assert {i["id"] for i in listed} == {e["image"]["id"] for e in r.json()["images"]}
            assert (await client.get(f"{base}/projects/{pid}/images/count")).json() == 2

    asyncio.run(flow())


def _jpeg_scan_then(tail: bytes) -> bytes:
    """A real JPEG's segments up to and including its scan header, then `tail` for its data."""
    data = image_bytes(21, "jpeg", size=(40, 30))
    sos = data.find(b"\xff\xda")
    return data[: sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")] + tail


def _garbage(n: int) -> bytes:
    rng = random.Random(5)
    return bytes(rng.randrange(256) for _ in range(n))


@pytest.mark.parametrize(
    "bad",
    [
        _jpeg_scan_then(_garbage(3000)),  # cut short: no end of image
        _jpeg_scan_then(_garbage(3000) + b"\xff\xd9"),  # garbage in the scan, then an end
    ],
    ids=["scan-then-garbage", "garbage-scan-with-end"],
)
def test_a_jpeg_with_a_valid_header_and_a_corrupt_body_is_error_image_format(
    http: httpx.Client, project_id: str, bad: bytes
) -> None:
    """A decoder reading the scan meets markers no JPEG may hold there and gives up (libjpeg:
    «Unsupported marker type»); the emulator reads the scan's markers the same way."""
    with pytest.raises(OSError):  # Pillow (libjpeg) cannot decode it either
        Image.open(io.BytesIO(bad)).load()
    r = post_images(http, project_id, [("good.jpg", image_bytes(1, "jpeg")), ("bad.jpg", bad)])
    assert r.status_code == 207, r.text
    assert _statuses(r) == ["OK", "ErrorImageFormat"]


def _jpeg(**options: object) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (64, 48), (200, 10, 10))
    for i in range(48):
        img.putpixel((i, i), (i * 5, 255 - i * 5, 0))
    img.save(buf, format="JPEG", **options)
    return buf.getvalue()


@pytest.mark.parametrize(
    "options",
    [{"progressive": True}, {"restart_marker_blocks": 1}, {"optimize": True}],
    ids=["progressive", "restart-markers", "optimized"],
)
def test_well_formed_jpeg_variants_are_accepted(
    http: httpx.Client, project_id: str, options: dict[str, object]
) -> None:
    data = _jpeg(**options)
    Image.open(io.BytesIO(data)).load()
    (image,) = upload(http, project_id, [("a.jpg", data)])
    assert (image["width"], image["height"]) == (64, 48)
