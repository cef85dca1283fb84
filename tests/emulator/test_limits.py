"""Every limit the spec documents, enforced with a 400 and a spec error code, and no side effect.

Where the spec states a limit but no code, the code must be a sensible member of the enum
(support.TOO_MANY_CODES); the spec checker separately proves it is in the enum at all.
"""

from __future__ import annotations

import httpx
import pytest

from syncd.emulator.limits import Quotas
from tests.emulator.support import (
    TOO_MANY_CODES,
    api_client,
    count,
    csv,
    error_code,
    new_project,
    new_tag,
    post_files,
    post_images,
    random_ids,
    seeded_images,
    upload,
)


def _tags(http: httpx.Client, project_id: str, n: int) -> list[str]:
    return [new_tag(http, project_id, f"t{i}") for i in range(n)]


def _assert_too_many(r: httpx.Response) -> None:
    assert r.status_code == 400, r.text
    assert error_code(r) in TOO_MANY_CODES, r.text


# --- create batches: 64 images, 20 tags -------------------------------------------------------


def test_multipart_batch_of_64_is_accepted_and_65_rejected(
    http: httpx.Client, project_id: str
) -> None:
    _assert_too_many(post_images(http, project_id, seeded_images(65)))
    assert count(http, project_id) == 0
    assert post_images(http, project_id, seeded_images(64, start=100)).status_code == 200
    assert count(http, project_id) == 64


def test_files_batch_of_64_is_accepted_and_65_rejected(http: httpx.Client, project_id: str) -> None:
    _assert_too_many(post_files(http, project_id, seeded_images(65)))
    assert count(http, project_id) == 0
    assert post_files(http, project_id, seeded_images(64, start=100)).status_code == 200
    assert count(http, project_id) == 64


def test_create_with_21_tags_is_rejected_and_20_accepted(
    http: httpx.Client, project_id: str
) -> None:
    tags = _tags(http, project_id, 21)
    _assert_too_many(post_images(http, project_id, seeded_images(1), tag_ids=tags))
    _assert_too_many(post_files(http, project_id, seeded_images(1), tag_ids=tags))
    assert count(http, project_id) == 0
    assert post_images(http, project_id, seeded_images(1), tag_ids=tags[:20]).status_code == 200
    assert (
        post_files(http, project_id, seeded_images(1, start=5), tag_ids=tags[:20]).status_code
        == 200
    )
    assert count(http, project_id, "images/tagged/count") == 2


# --- listings: tagIds <= 20, ids <= 256, take <= 256 ------------------------------------------


@pytest.mark.parametrize("path", ["images", "images/tagged"])
def test_listing_with_21_tag_ids_is_rejected(
    http: httpx.Client, project_id: str, path: str
) -> None:
    tags = _tags(http, project_id, 21)
    _assert_too_many(http.get(f"/projects/{project_id}/{path}", params={"tagIds": csv(tags)}))
    ok = http.get(f"/projects/{project_id}/{path}", params={"tagIds": csv(tags[:20])})
    assert ok.status_code == 200 and ok.json() == []


@pytest.mark.parametrize("path", ["images/count", "images/tagged/count"])
def test_counts_take_more_than_20_tag_ids(http: httpx.Client, project_id: str, path: str) -> None:
    """The count endpoints document no maxItems on tagIds (docs/spec/DIGEST.md §9, point 4)."""
    tags = _tags(http, project_id, 22)
    upload(http, project_id, seeded_images(1), tag_ids=tags[21:])
    assert count(http, project_id, path, tagIds=csv(tags)) == 1


def test_images_by_ids_takes_256_ids_and_rejects_257(http: httpx.Client, project_id: str) -> None:
    created = upload(http, project_id, seeded_images(3))
    ids = [image["id"] for image in created] + random_ids(253)
    r = http.get(f"/projects/{project_id}/images/id", params={"imageIds": csv(ids)})
    assert r.status_code == 200, r.text
    assert {image["id"] for image in r.json()} == {image["id"] for image in created}
    too_many = ids + random_ids(1)
    _assert_too_many(
        http.get(f"/projects/{project_id}/images/id", params={"imageIds": csv(too_many)})
    )


def test_delete_images_takes_256_ids_and_rejects_257(http: httpx.Client, project_id: str) -> None:
    created = upload(http, project_id, seeded_images(3))
    ids = [image["id"] for image in created] + random_ids(254)
    _assert_too_many(http.delete(f"/projects/{project_id}/images", params={"imageIds": csv(ids)}))
    assert count(http, project_id) == 3
    r = http.delete(f"/projects/{project_id}/images", params={"imageIds": csv(ids[:256])})
    assert r.status_code == 204, r.text
    assert count(http, project_id) == 0


@pytest.mark.parametrize("path", ["images", "images/tagged", "images/untagged"])
@pytest.mark.slow
def test_take_defaults_to_50_and_is_limited_to_256(
    http: httpx.Client, project_id: str, path: str
) -> None:
    tag = new_tag(http, project_id, "t")
    tag_ids = [tag] if path == "images/tagged" else []
    for start in (0, 64, 128, 192, 256):
        upload(http, project_id, seeded_images(64, start=start), tag_ids=tag_ids)
    listing = f"/projects/{project_id}/{path}"
    assert len(http.get(listing).json()) == 50
    assert len(http.get(listing, params={"take": 256}).json()) == 256
    assert http.get(listing, params={"take": 0}).json() == []
    _assert_too_many(http.get(listing, params={"take": 257}))


# --- image tags: 128 pairs per batch; DeleteImageTags 64 images x 20 tags ---------------------


def test_create_image_tags_takes_128_pairs_and_rejects_129(
    http: httpx.Client, project_id: str
) -> None:
    images = upload(http, project_id, seeded_images(64)) + upload(
        http, project_id, seeded_images(1, start=64)
    )
    tags = _tags(http, project_id, 2)
    pairs = [{"imageId": image["id"], "tagId": tag} for image in images for tag in tags]
    _assert_too_many(http.post(f"/projects/{project_id}/images/tags", json={"tags": pairs[:129]}))
    assert count(http, project_id, "images/tagged/count") == 0
    r = http.post(f"/projects/{project_id}/images/tags", json={"tags": pairs[:128]})
    assert r.status_code == 200, r.text
    assert len(r.json()["created"]) == 128
    assert count(http, project_id, "images/tagged/count") == 64


def test_delete_image_tags_limits_64_images_and_20_tags(
    http: httpx.Client, project_id: str
) -> None:
    tags = _tags(http, project_id, 21)
    images = upload(http, project_id, seeded_images(64), tag_ids=tags[:1])
    images += upload(http, project_id, seeded_images(1, start=64), tag_ids=tags[:1])
    ids = [image["id"] for image in images]
    path = f"/projects/{project_id}/images/tags"
    _assert_too_many(http.delete(path, params={"imageIds": csv(ids), "tagIds": tags[0]}))
    _assert_too_many(http.delete(path, params={"imageIds": ids[0], "tagIds": csv(tags)}))
    assert count(http, project_id, "images/tagged/count") == 65
    r = http.delete(path, params={"imageIds": csv(ids[:64]), "tagIds": csv(tags[:20])})
    assert r.status_code == 204, r.text
    assert count(http, project_id, "images/tagged/count") == 1


# --- metadata: 64 ids, 50 pairs, key 256, value 512 -------------------------------------------


def _metadata(http: httpx.Client, project_id: str, ids: list[str], body: object) -> httpx.Response:
    return http.post(
        f"/projects/{project_id}/images/metadata", params={"imageIds": csv(ids)}, json=body
    )


def test_update_metadata_takes_64_ids_and_rejects_65(http: httpx.Client, project_id: str) -> None:
    """The text says 64, the schema's maxItems 256: the stricter wins (docs/spec/DIGEST.md §9)."""
    images = upload(http, project_id, seeded_images(64)) + upload(
        http, project_id, seeded_images(1, start=64)
    )
    ids = [image["id"] for image in images]
    _assert_too_many(_metadata(http, project_id, ids, {"k": "v"}))
    assert count(http, project_id, **{"$filter": "k eq 'v'"}) == 0
    r = _metadata(http, project_id, ids[:64], {"k": "v"})
    assert r.status_code == 200, r.text
    assert r.json()["isBatchSuccessful"] is True
    assert count(http, project_id, **{"$filter": "k eq 'v'"}) == 64


def test_metadata_over_50_pairs_is_refused(http: httpx.Client, project_id: str) -> None:
    """51 pairs: a 400 or a 207 whose entries say ErrorLimitExceed; either way nothing written."""
    (image,) = upload(http, project_id, seeded_images(1))
    r = _metadata(http, project_id, [image["id"]], {f"k{i}": "v" for i in range(51)})
    if r.status_code == 207:
        assert [e["status"] for e in r.json()["images"]] == ["ErrorLimitExceed"]
    else:
        assert r.status_code == 400, r.text
        assert error_code(r) in TOO_MANY_CODES | {"BadRequestImageMetadataKey"}
    got = http.get(f"/projects/{project_id}/images/id", params={"imageIds": image["id"]}).json()
    assert not got[0].get("metadata")
    ok = _metadata(http, project_id, [image["id"]], {f"k{i}": "v" for i in range(50)})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ({"k" * 257: "v"}, "BadRequestImageMetadataKey"),
        ({"k": "v" * 513}, "BadRequestImageMetadataValue"),
    ],
    ids=["key-257", "value-513"],
)
def test_metadata_key_and_value_lengths(
    http: httpx.Client, project_id: str, metadata: dict[str, str], code: str
) -> None:
    (image,) = upload(http, project_id, seeded_images(1))
    r = _metadata(http, project_id, [image["id"]], metadata)
    assert r.status_code == 400, r.text
    assert error_code(r) == code
    ok = _metadata(http, project_id, [image["id"]], {"k" * 256: "v" * 512})
    assert ok.status_code == 200, ok.text
    assert ok.json()["images"][0]["metadata"] == {"k" * 256: "v" * 512}


# --- tags: unique names, quotas ---------------------------------------------------------------


def test_tag_names_are_unique_in_a_project(http: httpx.Client, project_id: str) -> None:
    new_tag(http, project_id, "Dog")
    r = http.post(f"/projects/{project_id}/tags", params={"name": "Dog"})
    assert r.status_code == 400, r.text
    assert error_code(r) == "BadRequestTagNameNotUnique"
    assert [t["name"] for t in http.get(f"/projects/{project_id}/tags").json()] == ["Dog"]
    other = new_project(http, "other")
    new_tag(http, other, "Dog")  # unique per project, not per account


def test_tags_per_project_quota(start_emulator) -> None:
    server = start_emulator(quotas=Quotas(max_tags_per_project=3))
    with api_client(server.url) as http:
        pid = new_project(http)
        _tags(http, pid, 3)
        r = http.post(f"/projects/{pid}/tags", params={"name": "fourth"})
        assert r.status_code == 400, r.text
        assert error_code(r) == "BadRequestExceedTagPerProjectLimit"
        assert len(http.get(f"/projects/{pid}/tags").json()) == 3


def test_projects_quota(start_emulator) -> None:
    server = start_emulator(quotas=Quotas(max_projects=1))
    with api_client(server.url) as http:
        new_project(http)
        domains = http.get("/domains").json()
        r = http.post("/projects", params={"name": "second", "domainId": domains[0]["id"]})
        assert r.status_code == 400, r.text
        assert error_code(r) == "BadRequestExceedProjectLimit"
        assert len(http.get("/projects").json()) == 1


def test_images_per_project_quota(start_emulator) -> None:
    """A full project answers ErrorLimitExceed per image (the spec's own 207 example)."""
    server = start_emulator(quotas=Quotas(max_images_per_project=3))
    with api_client(server.url) as http:
        pid = new_project(http)
        r = post_images(http, pid, seeded_images(5))
        assert r.status_code == 207, r.text
        body = r.json()
        assert body["isBatchSuccessful"] is False
        statuses = [e["status"] for e in body["images"]]
        assert statuses.count("OK") == 3 and statuses.count("ErrorLimitExceed") == 2
        assert count(http, pid) == 3
        again = post_images(http, pid, seeded_images(1, start=10))
        assert again.status_code == 207, again.text
        assert [e["status"] for e in again.json()["images"]] == ["ErrorLimitExceed"]
        assert count(http, pid) == 3


def test_tags_per_image_quota(start_emulator) -> None:
    """Pairs past the per-image tag limit come back in `exceeded` and are not applied."""
    server = start_emulator(quotas=Quotas(max_tags_per_image=2))
    with api_client(server.url) as http:
        pid = new_project(http)
        tags = _tags(http, pid, 3)
        (image,) = upload(http, pid, seeded_images(1))
        pairs = [{"imageId": image["id"], "tagId": tag} for tag in tags]
        r = http.post(f"/projects/{pid}/images/tags", json={"tags": pairs})
        assert r.status_code == 200, r.text
        assert len(r.json()["created"]) == 2 and len(r.json()["exceeded"]) == 1
        got = http.get(f"/projects/{pid}/images/id", params={"imageIds": image["id"]}).json()
        assert len(got[0]["tags"]) == 2
