"""Simulated training over HTTP: TrainProject, iterations, performance, and the misprediction seam.

The emulator cannot learn; what is checked is what a client sees: the spec's shapes (every
response is spec-checked by the fixtures), its paging limits, the refusals a client must handle
(nothing changed, too few images, training in progress) and predictions that are stable and
follow the seam.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.emulator.support import (
    TOO_MANY_CODES,
    api_client,
    csv,
    error_code,
    new_project,
    new_tag,
    seeded_images,
    upload,
)

Start = Callable[..., EmulatorServer]


def _trainable(http: httpx.Client, per_tag: int = 5) -> tuple[str, dict[str, str], list[dict]]:
    """A project with tags A and B, per_tag images each; return (project, tag ids, images)."""
    project_id = new_project(http)
    tags = {name: new_tag(http, project_id, name) for name in ("A", "B")}
    images: list[dict] = []
    for name, start in (("A", 0), ("B", 1000)):
        batch = seeded_images(per_tag, start)
        for i in range(0, per_tag, 64):  # «with a maximum of 64 files»
            images += upload(http, project_id, batch[i : i + 64], [tags[name]])
    return project_id, tags, images


def _seam(http: httpx.Client, project_id: str) -> str:
    """The absolute URL of the emulator-only misprediction seam (not under the API base)."""
    root = str(http.base_url).split("/customvision")[0]
    return f"{root}/emulator/projects/{project_id}/mispredictions"


def _train(http: httpx.Client, project_id: str, **params: Any) -> httpx.Response:
    return http.post(f"/projects/{project_id}/train", params=params)


def _performances(
    http: httpx.Client, project_id: str, iteration_id: str, take: int = 256, **params: Any
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    path = f"/projects/{project_id}/iterations/{iteration_id}/performance/images"
    while True:
        r = http.get(path, params={**params, "take": take, "skip": len(out)})
        assert r.status_code == 200, r.text
        out.extend(r.json())
        if len(r.json()) < take:
            return out


@pytest.fixture
def fast(start_emulator: Start) -> httpx.Client:
    """An emulator whose iterations complete as soon as they are created."""
    server = start_emulator(training_seconds=0)
    return api_client(server.url)


def test_train_creates_a_completed_iteration_listed_and_fetched(fast: httpx.Client) -> None:
    project_id, _, _ = _trainable(fast)
    r = _train(fast, project_id)
    assert r.status_code == 200, r.text
    iteration = r.json()
    assert (iteration["name"], iteration["status"], iteration["projectId"]) == (
        "Iteration 1",
        "Completed",
        project_id,
    )
    assert iteration["trainedAt"] is not None
    assert iteration["classificationType"] == "Multilabel"
    listed = fast.get(f"/projects/{project_id}/iterations").json()
    assert [i["id"] for i in listed] == [iteration["id"]]
    fetched = fast.get(f"/projects/{project_id}/iterations/{iteration['id']}")
    assert fetched.status_code == 200 and fetched.json() == iteration


def test_nothing_changed_is_refused_unless_forced_and_a_change_trains(fast: httpx.Client) -> None:
    project_id, tags, images = _trainable(fast)
    assert _train(fast, project_id).status_code == 200
    again = _train(fast, project_id)
    assert again.status_code == 400
    assert error_code(again) == "BadRequestTrainingNotNeeded"
    forced = _train(fast, project_id, forceTrain="true")
    assert forced.status_code == 200 and forced.json()["name"] == "Iteration 2"
    # A retag is a change: the next training is needed again.
    r = fast.post(
        f"/projects/{project_id}/images/tags",
        json={"tags": [{"imageId": images[0]["id"], "tagId": tags["B"]}]},
    )
    assert r.status_code == 200
    assert _train(fast, project_id).status_code == 200
    assert len(fast.get(f"/projects/{project_id}/iterations").json()) == 3


def test_too_few_tags_or_images_per_tag_is_refused(fast: httpx.Client) -> None:
    project_id = new_project(fast)
    a = new_tag(fast, project_id, "A")
    upload(fast, project_id, seeded_images(6, 0), [a])
    one_tag = _train(fast, project_id)
    assert one_tag.status_code == 400
    assert error_code(one_tag) == "BadRequestTrainingValidationFailed"
    b = new_tag(fast, project_id, "Bee")
    upload(fast, project_id, seeded_images(4, 100), [b])
    few = _train(fast, project_id)
    assert few.status_code == 400
    assert error_code(few) == "BadRequestTrainingValidationFailed"
    assert "Bee" in few.json()["message"]
    assert fast.get(f"/projects/{project_id}/iterations").json() == []


def test_an_iteration_still_training_cannot_be_reviewed_or_retrained(start_emulator: Start) -> None:
    http = api_client(start_emulator(training_seconds=3600).url)
    project_id, _, _ = _trainable(http)
    iteration = _train(http, project_id).json()
    assert (iteration["status"], iteration["trainedAt"]) == ("Training", None)
    base = f"/projects/{project_id}/iterations/{iteration['id']}/performance"
    for path in (base, f"{base}/images", f"{base}/images/count"):
        r = http.get(path)
        assert r.status_code == 400, path
        assert error_code(r) == "BadRequestIterationIsNotTrained"
    busy = _train(http, project_id, forceTrain="true")
    assert busy.status_code == 400 and error_code(busy) == "BadRequestTrainingAlreadyInProgress"


@pytest.mark.slow
def test_image_performances_page_within_the_limits_and_match_the_count(fast: httpx.Client) -> None:
    project_id, tags, images = _trainable(fast, per_tag=140)
    untagged = upload(fast, project_id, seeded_images(3, 5000))
    iteration_id = _train(fast, project_id).json()["id"]
    base = f"/projects/{project_id}/iterations/{iteration_id}/performance/images"
    count = fast.get(f"{base}/count").json()
    assert count == 280  # tagged images only: «Defaults to all tagged images»
    walked = _performances(fast, project_id, iteration_id)
    assert len(walked) == count
    assert {p["id"] for p in walked} == {i["id"] for i in images}
    assert not {p["id"] for p in walked} & {i["id"] for i in untagged}
    # Newest first by default, oldest first on request; default take is 50, at most 256.
    assert [p["id"] for p in walked] == [i["id"] for i in reversed(images)]
    oldest = _performances(fast, project_id, iteration_id, orderBy="Oldest")
    assert [p["id"] for p in oldest] == [i["id"] for i in images]
    assert len(fast.get(base).json()) == 50
    too_many = fast.get(base, params={"take": 257})
    assert too_many.status_code == 400 and error_code(too_many) in TOO_MANY_CODES
    only_b = _performances(fast, project_id, iteration_id, tagIds=tags["B"])
    assert len(only_b) == 140 == fast.get(f"{base}/count", params={"tagIds": tags["B"]}).json()
    assert all(p["tags"][0]["tagName"] == "B" for p in only_b)
    over = fast.get(base, params={"tagIds": csv([tags["A"]] * 21)})
    assert over.status_code == 400


def test_predictions_follow_own_tags_are_stable_and_follow_the_seam(fast: httpx.Client) -> None:
    project_id, tags, images = _trainable(fast)
    marked = images[0]["id"]  # tagged A
    r = fast.post(_seam(fast, project_id), json={"imageId": marked, "tagId": tags["B"]})
    assert r.status_code == 204, r.text
    first = _train(fast, project_id).json()["id"]
    second = _train(fast, project_id, forceTrain="true").json()["id"]
    by_id = {p["id"]: p for p in _performances(fast, project_id, first)}
    assert by_id == {p["id"]: p for p in _performances(fast, project_id, second)}
    for image_id, perf in by_id.items():
        ranked = perf["predictions"]
        assert [p["probability"] for p in ranked] == sorted(
            (p["probability"] for p in ranked), reverse=True
        )
        own = {t["tagName"] for t in perf["tags"]}
        if image_id == marked:
            assert ranked[0]["tagName"] == "B" and own == {"A"}
            assert next(p for p in ranked if p["tagName"] == "A")["probability"] < 0.1
        else:
            assert ranked[0]["tagName"] in own and ranked[0]["probability"] >= 0.8
            assert all(p["probability"] <= 0.2 for p in ranked[1:])
    perf = fast.get(
        f"/projects/{project_id}/iterations/{first}/performance", params={"threshold": 0.5}
    )
    assert perf.status_code == 200
    per_tag = {t["name"]: t for t in perf.json()["perTagPerformance"]}
    assert per_tag["B"]["precision"] == pytest.approx(5 / 6)
    assert per_tag["A"]["recall"] == pytest.approx(4 / 5)


def test_the_iteration_keeps_its_training_set_after_edits(fast: httpx.Client) -> None:
    project_id, _, images = _trainable(fast)
    iteration_id = _train(fast, project_id).json()["id"]
    r = fast.delete(f"/projects/{project_id}/images", params={"imageIds": images[0]["id"]})
    assert r.status_code == 204
    assert images[0]["id"] in {p["id"] for p in _performances(fast, project_id, iteration_id)}


def test_the_seam_needs_the_key_and_real_ids(fast: httpx.Client) -> None:
    project_id, tags, images = _trainable(fast)
    path = _seam(fast, project_id)
    body = {"imageId": images[0]["id"], "tagId": tags["B"]}
    no_key = httpx.post(path, json=body)
    assert no_key.status_code == 401
    wrong = fast.post(path, json={**body, "imageId": "00000000-0000-0000-0000-000000000001"})
    assert wrong.status_code == 404 and error_code(wrong) == "NotFoundImage"


def test_unknown_iterations_are_404(fast: httpx.Client) -> None:
    project_id, _, _ = _trainable(fast)
    missing = "00000000-0000-0000-0000-000000000002"
    for path in ("", "/performance", "/performance/images", "/performance/images/count"):
        r = fast.get(f"/projects/{project_id}/iterations/{missing}{path}")
        assert r.status_code == 404 and error_code(r) == "NotFoundIteration", path
