"""Training (simulated): TrainProject, GetIterations, GetIteration, DeleteIteration,
GetIterationPerformance, GetImagePerformances, GetImagePerformanceCount; and the test seam.

Public names: `ROUTES`, `SEAM_PREFIX`, `SEAM_ROUTES`.

Training is simulated (see store/training.py): TrainProject answers at once with a `Training`
iteration that reads `Completed` after the store's `training_seconds`; GetIterations lists oldest
first; performance calls on an iteration still training are 400 BadRequestIterationIsNotTrained.
`publishName` and `originalPublishResourceId` are left out (never published).
Object detection iterations: GetImagePerformances shows each image's `regions` and predictions
with a `boundingBox`; GetIterationPerformance takes `overlapThreshold` (default 0.5, the IoU a
box needs to count as found; the spec gives no default) and fills `averagePrecision` per tag and
overall (the mAP); classification iterations leave it null («when applicable»).
`POST /emulator/projects/{id}/mispredictions` (body `{"imageId", "tagId"}`, key required) is an
emulator-only test seam, not an API route; so are, for object detection,
`POST /emulator/projects/{id}/missed-regions` (body `{"regionId"}`: the next trainings miss that
region) and `POST /emulator/projects/{id}/detection-rates` (body `{"missRate",
"falsePositiveRate"}`, each in [0, 1], either left out = its default; 0 turns it off).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.limits import DEFAULT_TAKE, MAX_PERFORMANCE_TAGS, MAX_TAKE
from syncd.emulator.routes.blobs import blob_uri
from syncd.emulator.routes.common import (
    PROJECT_PATH,
    api,
    bad,
    base_url,
    bool_param,
    choice_param,
    id_list,
    int_param,
    json_body,
    parse_uuid,
    project_param,
    run,
    store_of,
    str_list,
)
from syncd.emulator.routes.regions import region_json
from syncd.emulator.store.records import ImagePerformance, Iteration, Prediction
from syncd.emulator.store.training import (
    DEFAULT_OVERLAP_THRESHOLD,
    DETECTION_FALSE_POSITIVE_RATE,
    DETECTION_MISS_RATE,
)

SEAM_PREFIX = "/emulator/projects"  # test seams, not API routes (the key is still required)
TRAINING_TYPES = ("Regular", "Advanced")


def _iteration_param(request: Request) -> str:
    return parse_uuid(request.path_params["iteration_id"], "iterationId")


@api
async def train_project(request: Request) -> Response:
    project_id = project_param(request)
    training_type = choice_param(request, "trainingType", TRAINING_TYPES, "Regular", "BadRequest")
    budget = int_param(request, "reservedBudgetInHours", 0, 0, None)
    force = bool_param(request, "forceTrain")
    body = await json_body(request)
    selected = None
    if body is not None:
        if not isinstance(body, dict):
            raise bad("BadRequest", "The body must be TrainingParameters.")
        raw = str_list(body.get("selectedTags"), "selectedTags")
        selected = [parse_uuid(t, "selectedTags") for t in raw] or None
    iteration = await run(
        store_of(request).train,
        project_id,
        training_type=training_type or "Regular",
        reserved_budget=budget,
        force=force,
        selected_tags=selected,
    )
    return JSONResponse(iteration_json(iteration))


@api
async def get_iterations(request: Request) -> Response:
    iterations = await run(store_of(request).iterations, project_param(request))
    return JSONResponse([iteration_json(i) for i in iterations])


@api
async def get_iteration(request: Request) -> Response:
    project_id, iteration_id = project_param(request), _iteration_param(request)
    return JSONResponse(
        iteration_json(await run(store_of(request).iteration, project_id, iteration_id))
    )


@api
async def delete_iteration(request: Request) -> Response:
    project_id, iteration_id = project_param(request), _iteration_param(request)
    await run(store_of(request).delete_iteration, project_id, iteration_id)
    return Response(status_code=204)


@api
async def get_iteration_performance(request: Request) -> Response:
    project_id, iteration_id = project_param(request), _iteration_param(request)
    threshold = _fraction_param(request, "threshold", 0.5)
    overlap = _fraction_param(request, "overlapThreshold", DEFAULT_OVERLAP_THRESHOLD)
    performance = await run(
        store_of(request).iteration_performance, project_id, iteration_id, threshold, overlap
    )
    return JSONResponse(
        {
            "perTagPerformance": [
                {
                    "id": tag.id,
                    "name": tag.name,
                    "precision": tag.precision,
                    "precisionStdDeviation": 0.0,
                    "recall": tag.recall,
                    "recallStdDeviation": 0.0,
                    "averagePrecision": tag.average_precision,
                }
                for tag in performance.per_tag
            ],
            "precision": performance.precision,
            "precisionStdDeviation": 0.0,
            "recall": performance.recall,
            "recallStdDeviation": 0.0,
            "averagePrecision": performance.average_precision,
        }
    )


def _fraction_param(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    try:
        return default if raw in (None, "") else float(raw)
    except ValueError:
        raise bad("BadRequest", f"{name} must be a number.") from None


@api
async def get_image_performances(request: Request) -> Response:
    project_id, iteration_id = project_param(request), _iteration_param(request)
    tag_ids = id_list(request, "tagIds", MAX_PERFORMANCE_TAGS)
    order = choice_param(request, "orderBy", ("Newest", "Oldest"), "Newest", "BadRequest")
    take = int_param(request, "take", DEFAULT_TAKE, 0, MAX_TAKE)
    skip = int_param(request, "skip", 0, 0, None)
    images = await run(
        store_of(request).image_performances,
        project_id,
        iteration_id,
        tag_ids=tag_ids,
        newest_first=order == "Newest",
        take=take,
        skip=skip,
    )
    base = base_url(request)
    return JSONResponse([performance_json(image, base) for image in images])


@api
async def get_image_performance_count(request: Request) -> Response:
    project_id, iteration_id = project_param(request), _iteration_param(request)
    tag_ids = id_list(request, "tagIds", None)
    count = await run(
        store_of(request).count_image_performances, project_id, iteration_id, tag_ids=tag_ids
    )
    return JSONResponse(count)


@api
async def mark_mispredicted(request: Request) -> Response:
    project_id = project_param(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad("BadRequest", 'The body must be {"imageId": ..., "tagId": ...}.')
    image_id = parse_uuid(body.get("imageId"), "imageId")
    tag_id = parse_uuid(body.get("tagId"), "tagId")
    await run(store_of(request).mark_mispredicted, project_id, image_id, tag_id)
    return Response(status_code=204)


@api
async def mark_missed(request: Request) -> Response:
    project_id = project_param(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad("BadRequest", 'The body must be {"regionId": ...}.')
    region_id = parse_uuid(body.get("regionId"), "regionId")
    await run(store_of(request).mark_missed, project_id, region_id)
    return Response(status_code=204)


def _rate(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise bad("BadRequest", f"{name} must be a number from 0 to 1.")
    return float(value)


@api
async def set_detection_rates(request: Request) -> Response:
    project_id = project_param(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad("BadRequest", 'The body must be {"missRate": ..., "falsePositiveRate": ...}.')
    miss = _rate(body, "missRate", DETECTION_MISS_RATE)
    false_positive = _rate(body, "falsePositiveRate", DETECTION_FALSE_POSITIVE_RATE)
    await run(store_of(request).set_detection_rates, project_id, miss, false_positive)
    return Response(status_code=204)


def iteration_json(iteration: Iteration) -> dict[str, Any]:
    """Shape an Iteration; publishName and originalPublishResourceId are left out (unpublished)."""
    return {
        "id": iteration.id,
        "name": iteration.name,
        "status": iteration.status,
        "created": iteration.created,
        "lastModified": iteration.last_modified,
        "trainedAt": iteration.trained_at,
        "projectId": iteration.project_id,
        "exportable": False,
        "exportableTo": [],
        "domainId": iteration.domain_id,
        "classificationType": iteration.classification_type,
        "trainingType": iteration.training_type,
        "reservedBudgetInHours": iteration.reserved_budget,
        "trainingTimeInMinutes": 0,  # simulated training takes seconds
    }


def _prediction_json(prediction: Prediction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "probability": prediction.probability,
        "tagId": prediction.tag_id,
        "tagName": prediction.tag_name,
        "tagType": prediction.tag_type,
    }
    if prediction.bounding_box is not None:
        left, top, width, height = prediction.bounding_box
        out["boundingBox"] = {"left": left, "top": top, "width": width, "height": height}
    return out


def performance_json(image: ImagePerformance, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": image.id,
        "created": image.created,
        "width": image.width,
        "height": image.height,
        "imageUri": blob_uri(base, image.token, "resized"),
        "thumbnailUri": blob_uri(base, image.token, "thumbnail"),
        "tags": [
            {"tagId": t.tag_id, "tagName": t.tag_name, "created": t.created} for t in image.tags
        ],
        "predictions": [_prediction_json(p) for p in image.predictions],
    }
    if image.regions:
        out["regions"] = [region_json(r) for r in image.regions]
    return out


ITERATION_PATH = PROJECT_PATH + "/iterations/{iteration_id}"
ROUTES = [
    Route(f"{PROJECT_PATH}/train", train_project, methods=["POST"]),
    Route(f"{PROJECT_PATH}/iterations", get_iterations, methods=["GET"]),
    Route(ITERATION_PATH, get_iteration, methods=["GET"]),
    Route(ITERATION_PATH, delete_iteration, methods=["DELETE"]),
    Route(f"{ITERATION_PATH}/performance", get_iteration_performance, methods=["GET"]),
    Route(f"{ITERATION_PATH}/performance/images", get_image_performances, methods=["GET"]),
    Route(
        f"{ITERATION_PATH}/performance/images/count", get_image_performance_count, methods=["GET"]
    ),
]
SEAM_ROUTES = [
    Route(SEAM_PREFIX + "/{project_id}/mispredictions", mark_mispredicted, methods=["POST"]),
    Route(SEAM_PREFIX + "/{project_id}/missed-regions", mark_missed, methods=["POST"]),
    Route(SEAM_PREFIX + "/{project_id}/detection-rates", set_detection_rates, methods=["POST"]),
]
