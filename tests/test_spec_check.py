"""The spec checker itself: real example bodies pass, hand-made bad bodies are caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.spec_check import SpecChecker, check_response, find_operation

BASE = "/customvision/v3.3/training"
PID = "64b822c5-8082-4b36-a426-27225f4aa18c"
JSON = {"Content-Type": "application/json; charset=utf-8"}
EXAMPLES = Path(__file__).parents[1] / "docs" / "spec" / "examples"


def _image(**overrides: object) -> dict[str, object]:
    image: dict[str, object] = {
        "id": "4d6eb844-42ee-42bc-bd6f-c32455ef07c9",
        "created": "2017-12-19T15:56:10Z",
        "width": 32,
        "height": 24,
        "resizedImageUri": "http://127.0.0.1:1/blob/a",
        "originalImageUri": "http://127.0.0.1:1/blob/a",
        "thumbnailUri": "http://127.0.0.1:1/blob/a",
    }
    image.update(overrides)
    return image


def _check(
    method: str, path: str, status: int, body: object, raw: bytes | None = None
) -> list[str]:
    data = raw if raw is not None else json.dumps(body).encode()
    return check_response(method, f"{BASE}{path}", status, JSON, data)


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", f"/projects/{PID}/images/count", "GetImageCount"),
        ("GET", f"/projects/{PID}/images/id", "GetImagesByIds"),
        ("GET", f"/projects/{PID}/images/tagged/count", "GetTaggedImageCount"),
        ("POST", f"/projects/{PID}/images", "CreateImagesFromData"),
        ("DELETE", f"/projects/{PID}/images", "DeleteImages"),
        ("POST", "/projects/import", "ImportProject"),
        ("GET", f"/projects/{PID}", "GetProject"),
    ],
)
def test_literal_segments_win_over_parameters(method: str, path: str, operation: str) -> None:
    op = find_operation(method, path)
    assert op is not None and op.operation_id == operation


def test_a_good_image_list_passes() -> None:
    assert (
        _check("GET", f"/projects/{PID}/images", 200, [_image(), _image(metadata={"k": "v"})]) == []
    )


@pytest.mark.parametrize(
    ("bad_image", "fragment"),
    [
        (_image(id="not-a-uuid"), "uuid"),
        (_image(created="2017-12-19 15:56:10"), "date-time"),
        (_image(width="32"), "integer"),
        (_image(id=None), "None"),
        (_image(imageID="4d6eb844-42ee-42bc-bd6f-c32455ef07c9"), "imageID"),
        (_image(tags=[{"tagId": PID, "tagName": None, "created": "2017-12-19T15:56:10Z"}]), "None"),
        (_image(metadata={"k": 1}), "string"),
    ],
)
def test_a_bad_image_is_caught(bad_image: dict[str, object], fragment: str) -> None:
    problems = _check("GET", f"/projects/{PID}/images", 200, [bad_image])
    assert problems and fragment in " ".join(problems), problems


def test_create_results_may_echo_a_null_tag_name_as_the_real_service_does() -> None:
    image = _image(tags=[{"tagId": PID, "tagName": None, "created": "2017-12-19T15:56:10Z"}])
    body = {
        "isBatchSuccessful": True,
        "images": [{"sourceUrl": '"a.jpg"', "status": "OK", "image": image}],
    }
    assert _check("POST", f"/projects/{PID}/images", 200, body) == []


def test_an_unknown_create_status_is_caught() -> None:
    body = {"isBatchSuccessful": False, "images": [{"sourceUrl": '"a.jpg"', "status": "Duplicate"}]}
    assert _check("POST", f"/projects/{PID}/images", 207, body)


def test_counts_must_be_bare_numbers() -> None:
    assert _check("GET", f"/projects/{PID}/images/count", 200, 3) == []
    assert _check("GET", f"/projects/{PID}/images/count", 200, "3")
    assert _check("GET", f"/projects/{PID}/images/count", 200, {"count": 3})
    assert _check("GET", f"/projects/{PID}/images/count", 200, True)


def test_error_bodies_need_a_known_code_and_a_message() -> None:
    path = f"/projects/{PID}"
    assert _check("GET", path, 404, {"code": "NotFoundProject", "message": "no"}) == []
    assert _check("GET", path, 404, {"code": "ProjectMissing", "message": "no"})
    assert _check("GET", path, 404, {"code": "NotFoundProject"})
    assert _check("GET", path, 404, {"error": {"code": "NotFoundProject", "message": "no"}})
    assert _check("GET", path, 500, None, raw=b"Internal Server Error")


def test_undocumented_success_statuses_and_bodies_on_204_are_caught() -> None:
    assert _check("DELETE", f"/projects/{PID}/images", 200, None, raw=b"")
    assert _check("DELETE", f"/projects/{PID}/images", 204, None, raw=b"") == []
    assert _check("DELETE", f"/projects/{PID}/images", 204, {"deleted": 1})
    assert _check("GET", f"/projects/{PID}/images", 201, [])
    assert _check("GET", f"/projects/{PID}/nowhere", 200, [])


def test_gateway_errors_may_use_either_error_shape() -> None:
    path = f"/projects/{PID}/images"
    apim = {"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 1 seconds."}}
    assert _check("GET", path, 429, apim) == []
    assert _check("GET", path, 401, {"code": "Unauthorized", "message": "Access denied"}) == []
    assert _check("GET", path, 429, None, raw=b"slow down")
    assert _check("GET", path, 401, {"message": "Access denied"})


def test_non_api_paths_are_skipped() -> None:
    assert check_response("GET", "/blobs/abc", 200, {"content-type": "image/png"}, b"\x89PNG") == []


def test_json_bodies_must_say_they_are_json() -> None:
    problems = check_response("GET", f"{BASE}/projects/{PID}/images/count", 200, {}, b"3")
    assert problems and "content-type" in problems[0]


def test_the_v3_4_preview_prefix_is_checked_too() -> None:
    path = f"/customvision/v3.4-preview/training/projects/{PID}/images/count"
    assert check_response("GET", path, 200, JSON, b'"3"')


def test_the_checker_collects_violations() -> None:
    checker = SpecChecker()
    checker.observe("GET", f"{BASE}/projects/{PID}/images/count", 200, JSON, b"3")
    assert checker.violations == []
    checker.observe("GET", f"{BASE}/projects/{PID}/images/count", 200, JSON, b"[]")
    assert len(checker.violations) == 1 and "GetImageCount" in checker.report()
    assert checker.responses_checked == 2


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_spec_examples_with_real_shapes_pass(example: Path) -> None:
    """The spec's own examples pass, once their string-encoded counts are undone."""
    spec = json.loads(
        (
            Path(__file__).parents[1] / "docs" / "spec" / "customvision-training-v3.3.json"
        ).read_text()
    )
    method, template = next(
        (m, p)
        for p, item in spec["paths"].items()
        for m, op in item.items()
        if isinstance(op, dict) and op.get("operationId") == example.stem
    )
    path = template.replace("{projectId}", PID).replace("{tagId}", PID)
    for status, response in json.loads(example.read_text())["responses"].items():
        body = response.get("body", "")
        if body == "":
            raw = b""
        elif isinstance(body, str):
            raw = body.encode()  # counts are written as strings in the examples: '10'
        else:
            raw = json.dumps(body).encode()
        assert check_response(method.upper(), f"{BASE}{path}", int(status), JSON, raw) == []
