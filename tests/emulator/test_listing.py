"""Reading: auth and not-found errors, filters, ordering, stable paging, counts, API versions."""

from __future__ import annotations

import random

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.emulator.support import (
    API_BASE,
    PREVIEW_BASE,
    api_client,
    count,
    csv,
    error_code,
    list_all,
    new_project,
    new_tag,
    random_ids,
    seeded_images,
    upload,
)

# --- auth, not found, bad ids ------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_key_is_401_with_an_error_body(
    emulator: EmulatorServer, project_id: str, key: str | None
) -> None:
    with api_client(emulator.url, key=key) as anonymous:
        for r in (
            anonymous.get("/projects"),
            anonymous.get(f"/projects/{project_id}/images"),
            anonymous.post(f"/projects/{project_id}/tags", params={"name": "x"}),
        ):
            assert r.status_code == 401, r.text
            body = r.json()
            error = body.get("error", body)
            assert error["message"]
    with api_client(emulator.url) as keyed:
        assert keyed.get(f"/projects/{project_id}/tags").json() == []


def test_the_key_never_appears_in_responses(emulator: EmulatorServer, project_id: str) -> None:
    with api_client(emulator.url, key="wrong-key-SECRET-xyz") as http:
        assert "SECRET" not in http.get("/projects").text


def test_unknown_project_is_404_not_found_project(http: httpx.Client) -> None:
    missing = random_ids(1)[0]
    for r in (
        http.get(f"/projects/{missing}"),
        http.get(f"/projects/{missing}/images"),
        http.get(f"/projects/{missing}/images/count"),
        http.get(f"/projects/{missing}/tags"),
        http.post(f"/projects/{missing}/tags", params={"name": "x"}),
    ):
        assert r.status_code == 404, r.text
        assert error_code(r) == "NotFoundProject"


def test_unknown_tag_is_404_not_found_tag(http: httpx.Client, project_id: str) -> None:
    missing = random_ids(1)[0]
    for r in (
        http.get(f"/projects/{project_id}/tags/{missing}"),
        http.delete(f"/projects/{project_id}/tags/{missing}"),
    ):
        assert r.status_code == 404, r.text
        assert error_code(r) == "NotFoundTag"
    (image,) = upload(http, project_id, seeded_images(1))
    r = http.post(
        f"/projects/{project_id}/images/tags",
        json={"tags": [{"imageId": image["id"], "tagId": missing}]},
    )
    assert r.status_code == 404, r.text
    assert error_code(r) == "NotFoundTag"


def test_unknown_image_is_404_not_found_image(http: httpx.Client, project_id: str) -> None:
    """Tagging an image that does not exist names the image (the spec is silent on which op)."""
    tag = new_tag(http, project_id, "Dog")
    r = http.post(
        f"/projects/{project_id}/images/tags",
        json={"tags": [{"imageId": random_ids(1)[0], "tagId": tag}]},
    )
    assert r.status_code == 404, r.text
    assert error_code(r) == "NotFoundImage"
    assert count(http, project_id, "images/tagged/count") == 0


def test_unknown_images_by_id_are_left_out(http: httpx.Client, project_id: str) -> None:
    (image,) = upload(http, project_id, seeded_images(1))
    r = http.get(
        f"/projects/{project_id}/images/id", params={"imageIds": csv([*random_ids(2), image["id"]])}
    )
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()] == [image["id"]]


def test_metadata_for_an_unknown_image_is_error_image_not_found(
    http: httpx.Client, project_id: str
) -> None:
    (image,) = upload(http, project_id, seeded_images(1))
    missing = random_ids(1)[0]
    r = http.post(
        f"/projects/{project_id}/images/metadata",
        params={"imageIds": csv([image["id"], missing])},
        json={"k": "v"},
    )
    assert r.status_code == 207, r.text
    body = r.json()
    assert body["isBatchSuccessful"] is False
    assert {(e["imageId"], e["status"]) for e in body["images"]} == {
        (image["id"], "OK"),
        (missing, "ErrorImageNotFound"),
    }


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/projects/not-a-uuid", {}),
        ("GET", "/projects/not-a-uuid/images", {}),
        ("GET", "/projects/{pid}/tags/123", {}),
        ("GET", "/projects/{pid}/images", {"tagIds": "nope"}),
        ("GET", "/projects/{pid}/images/id", {"imageIds": "nope"}),
        ("DELETE", "/projects/{pid}/images", {"imageIds": "nope"}),
        ("POST", "/projects/{pid}/images", {"tagIds": "nope"}),
    ],
)
@pytest.mark.slow
def test_a_malformed_uuid_is_400_not_500(
    http: httpx.Client, project_id: str, method: str, path: str, params: dict[str, str]
) -> None:
    r = http.request(method, path.format(pid=project_id), params=params)
    assert r.status_code == 400, r.text
    assert error_code(r).startswith("BadRequest")


# --- filters -----------------------------------------------------------------------------------


@pytest.fixture
def zoo(http: httpx.Client, project_id: str) -> dict[str, object]:
    """dog: 2 images, cat: 2, both: 1 (dog+cat), none: 2 untagged; metadata on some."""
    dog = new_tag(http, project_id, "Dog")
    cat = new_tag(http, project_id, "Cat")
    bird = new_tag(http, project_id, "Bird")
    dogs = [i["id"] for i in upload(http, project_id, seeded_images(2, start=0), tag_ids=[dog])]
    cats = [i["id"] for i in upload(http, project_id, seeded_images(2, start=10), tag_ids=[cat])]
    both = [i["id"] for i in upload(http, project_id, seeded_images(1, start=20), [dog, cat])]
    none = [i["id"] for i in upload(http, project_id, seeded_images(2, start=30))]
    meta = f"/projects/{project_id}/images/metadata"
    assert http.post(
        meta, params={"imageIds": csv([dogs[0], none[0]])}, json={"src": "a"}
    ).is_success
    assert http.post(meta, params={"imageIds": dogs[0]}, json={"src": "a", "q": "1"}).is_success
    assert http.post(meta, params={"imageIds": cats[0]}, json={"src": "b", "q": "1"}).is_success
    return {
        "dog": dog,
        "cat": cat,
        "bird": bird,
        "dogs": dogs,
        "cats": cats,
        "both": both,
        "none": none,
    }


def _ids(http: httpx.Client, project_id: str, path: str = "images", **params: object) -> set[str]:
    return {i["id"] for i in list_all(http, project_id, path, **params)}


def test_tag_filter_is_or(http: httpx.Client, project_id: str, zoo: dict) -> None:
    dog, cat, bird = zoo["dog"], zoo["cat"], zoo["bird"]
    for path in ("images", "images/tagged"):
        assert _ids(http, project_id, path, tagIds=dog) == {*zoo["dogs"], *zoo["both"]}
        assert _ids(http, project_id, path, tagIds=csv([dog, cat])) == {
            *zoo["dogs"],
            *zoo["cats"],
            *zoo["both"],
        }
        assert _ids(http, project_id, path, tagIds=bird) == set()
    assert count(http, project_id, "images/tagged/count", tagIds=csv([dog, cat])) == 5
    assert count(http, project_id, "images/count", tagIds=dog) == 3
    assert count(http, project_id, "images/tagged/count", tagIds=bird) == 0


def test_tagging_status_filter(http: httpx.Client, project_id: str, zoo: dict) -> None:
    tagged = {*zoo["dogs"], *zoo["cats"], *zoo["both"]}
    untagged = set(zoo["none"])
    assert _ids(http, project_id, taggingStatus="Tagged") == tagged
    assert _ids(http, project_id, taggingStatus="Untagged") == untagged
    assert _ids(http, project_id, taggingStatus="All") == tagged | untagged
    assert _ids(http, project_id) == tagged | untagged
    assert _ids(http, project_id, "images/tagged") == tagged
    assert _ids(http, project_id, "images/untagged") == untagged
    assert count(http, project_id, taggingStatus="Tagged") == 5
    assert count(http, project_id, taggingStatus="Untagged") == 2
    assert count(http, project_id) == 7
    assert count(http, project_id, "images/tagged/count") == 5
    assert count(http, project_id, "images/untagged/count") == 2


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("src eq 'a'", {"dogs0", "none0"}),
        ("src ne 'a'", {"cats0"}),
        ("src eq 'a' and q eq '1'", {"dogs0"}),
        ("src eq 'b' or q eq '1'", {"dogs0", "cats0"}),
        ("src eq 'zzz'", set()),
    ],
)
@pytest.mark.slow
def test_metadata_filter(
    http: httpx.Client, project_id: str, zoo: dict, expression: str, expected: set[str]
) -> None:
    """`ne` matches images that have the key with another value (images without the key have
    no value to compare; an OData-style reading the spec's wording does not contradict)."""
    names = {"dogs0": zoo["dogs"][0], "none0": zoo["none"][0], "cats0": zoo["cats"][0]}
    want = {names[n] for n in expected}
    assert _ids(http, project_id, **{"$filter": expression}) == want
    assert count(http, project_id, **{"$filter": expression}) == len(want)


def test_metadata_filter_combines_with_tag_and_status_filters(
    http: httpx.Client, project_id: str, zoo: dict
) -> None:
    f = {"$filter": "src eq 'a'"}
    assert _ids(http, project_id, taggingStatus="Untagged", **f) == {zoo["none"][0]}
    assert _ids(http, project_id, tagIds=zoo["dog"], **f) == {zoo["dogs"][0]}
    assert count(http, project_id, taggingStatus="Tagged", **f) == 1


# --- ordering and paging -----------------------------------------------------------------------


def _ordered_ids(http: httpx.Client, pid: str, path: str, take: int, **params: object) -> list[str]:
    return [i["id"] for i in list_all(http, pid, path, take=take, **params)]


@pytest.mark.slow
def test_paging_is_stable_newest_first_and_oldest_first(
    http: httpx.Client, project_id: str
) -> None:
    """Many images share a creation second; every walk still yields each image exactly once,
    newest first by default, and Oldest is exactly the reverse (creation order)."""
    tag = new_tag(http, project_id, "t")
    made: list[str] = []
    tagged: list[str] = []
    for batch in range(6):
        tags = [tag] if batch % 2 == 0 else []
        ids = [
            i["id"] for i in upload(http, project_id, seeded_images(23, start=batch * 100), tags)
        ]
        made += ids
        tagged += ids if tags else []
    untagged = [i for i in made if i not in set(tagged)]
    for path, expected in (
        ("images", made),
        ("images/tagged", tagged),
        ("images/untagged", untagged),
    ):
        for take in (7, 50):
            newest = _ordered_ids(http, project_id, path, take)
            assert newest == list(reversed(expected)), path
            assert _ordered_ids(http, project_id, path, take, orderBy="Newest") == newest
            assert _ordered_ids(http, project_id, path, take, orderBy="Oldest") == expected
    created = [i["created"] for i in list_all(http, project_id, "images")]
    assert created == sorted(created, reverse=True)


def test_skip_past_the_end_is_empty(http: httpx.Client, project_id: str) -> None:
    upload(http, project_id, seeded_images(3))
    r = http.get(f"/projects/{project_id}/images", params={"skip": 3})
    assert r.status_code == 200 and r.json() == []
    r = http.get(f"/projects/{project_id}/images", params={"skip": 1, "take": 1})
    assert len(r.json()) == 1


def test_images_by_ids_come_back_oldest_first_not_in_request_order(
    http: httpx.Client, project_id: str
) -> None:
    """[R] GetImagesByIds: the real service answered oldest-first, ignoring request order."""
    made = [i["id"] for i in upload(http, project_id, seeded_images(3))]
    made += [i["id"] for i in upload(http, project_id, seeded_images(3, start=10))]
    shuffled = made[:]
    random.Random(1).shuffle(shuffled)
    r = http.get(f"/projects/{project_id}/images/id", params={"imageIds": csv(shuffled)})
    assert [i["id"] for i in r.json()] == made


def test_empty_project_answers_empty_lists_and_zero_counts(
    http: httpx.Client, project_id: str
) -> None:
    for path in ("images", "images/tagged", "images/untagged", "tags"):
        r = http.get(f"/projects/{project_id}/{path}")
        assert r.status_code == 200 and r.text.strip() == "[]", (path, r.text)
    for path in ("images/count", "images/tagged/count", "images/untagged/count"):
        r = http.get(f"/projects/{project_id}/{path}")
        assert r.status_code == 200 and r.text.strip() == "0", (path, r.text)


def test_tag_image_counts_follow_tagging(http: httpx.Client, project_id: str) -> None:
    dog = new_tag(http, project_id, "Dog")
    upload(http, project_id, seeded_images(3), tag_ids=[dog])
    assert http.get(f"/projects/{project_id}/tags/{dog}").json()["imageCount"] == 3
    (listed,) = http.get(f"/projects/{project_id}/tags").json()
    assert (listed["name"], listed["imageCount"]) == ("Dog", 3)
    r = http.delete(f"/projects/{project_id}/tags/{dog}")
    assert r.status_code == 204
    assert count(http, project_id, "images/untagged/count") == 3


# --- both prefixes -----------------------------------------------------------------------------


@pytest.mark.parametrize("base", [API_BASE, PREVIEW_BASE], ids=["v3.3", "v3.4-preview"])
def test_both_api_versions_serve_the_same_flow(emulator: EmulatorServer, base: str) -> None:
    with api_client(emulator.url, base=base) as http:
        pid = new_project(http)
        tag = new_tag(http, pid, "Dog")
        created = upload(http, pid, seeded_images(2), tag_ids=[tag])
        assert count(http, pid, "images/tagged/count") == 2
        assert {i["id"] for i in http.get(f"/projects/{pid}/images/tagged").json()} == {
            i["id"] for i in created
        }
        assert http.get(f"/projects/{pid}/tags").json()[0]["name"] == "Dog"
        assert http.get(f"/projects/{random_ids(1)[0]}").status_code == 404
