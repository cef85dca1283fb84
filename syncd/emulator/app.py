"""The emulator's HTTP API: Custom Vision Training v3.3 routes on a Starlette app.

Public names: `create_app`, `upload_body_limits`, `API_PREFIXES`, `BLOB_PREFIX`.

The same routes answer under `/customvision/v3.3/training` and `/customvision/v3.4-preview/training`
(the path the official SDK 3.1.1 calls). Image URIs point at `/emulator/blobs/<token>/<kind>` on
the base URL of the request that listed them, so they work over HTTP and in-process alike; like
SAS URLs they need no key, the random token is the credential. `resizedImageUri` and
`thumbnailUri` serve the original bytes (no resizing without Pillow; still a real image).

Decisions where the spec is silent (see also `store.py`):
- A create batch answers 200 only when every image is OK; any other status (OKDuplicate included,
  so also a batch made only of duplicates) makes it 207 with isBatchSuccessful false, as the real
  service answers duplicates (cognitive-services-python-sdk-samples issues #56, #98).
- OKDuplicate returns the existing image (unless `Faults.duplicate_without_image`), with the
  batch's tags added to it; batch metadata is not applied to a duplicate.
- `sourceUrl` is the multipart part's raw `filename` parameter, quotes kept [R]; for
  CreateImagesFromFiles it is the entry's name in quotes (the spec's own example); a part without
  a filename, or an octet-stream body, has sourceUrl "".
- Errors: bad ids 400 BadRequestInvalidIds; too many items 400 BadRequestExceededBatchSize (more
  than 64 images: BadRequestImageBatch); other bad parameters 400 BadRequest; unknown project /
  tag / image 404 NotFound*; an unemulated or unknown route 404 NotFound; a wrong method 405
  BadRequestNotSupported; a bad create content type 415 UnsupportedMediaType; a body over its
  route's cap (see MAX_JSON_BODY_BYTES, upload_body_limits) 413, refused unread or as it streams.
- A missing, empty or wrong key is 401 `{"code": "401", "message": "Access denied ..."}`: the
  APIM gateway's code and message, but bare rather than under "error" so the SDK's
  CustomVisionError picks the code up.
- `iterationId` on tag and image routes (iteration-scoped views) is not emulated: any value is
  404 NotFoundIteration.
- Training is simulated (see `store.py`): TrainProject answers at once with a `Training`
  iteration that reads `Completed` after the store's `training_seconds`; GetIterations lists
  oldest first; performance calls on an iteration still training are 400
  BadRequestIterationIsNotTrained. `POST /emulator/projects/{id}/mispredictions` (body
  `{"imageId", "tagId"}`, key required) is an emulator-only test seam, not an API route.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.emulator.faults import NO_FAULTS, FaultMiddleware, Faults
from syncd.emulator.imageinfo import CONTENT_TYPES
from syncd.emulator.limits import (
    DEFAULT_TAKE,
    IMAGE_FRAMING_BYTES,
    MAX_IDS,
    MAX_IMAGES_PER_BATCH,
    MAX_JSON_BODY_BYTES,
    MAX_METADATA_IDS,
    MAX_PERFORMANCE_TAGS,
    MAX_TAG_PAIRS,
    MAX_TAGS_PER_BATCH,
    MAX_TAKE,
    MAX_UNTAG_IMAGES,
    METADATA_MAX_KEY,
    METADATA_MAX_PAIRS,
    METADATA_MAX_VALUE,
    upload_body_limits,
)
from syncd.emulator.store import Store
from syncd.emulator.store.filter import parse_filter
from syncd.emulator.store.records import (
    DOMAINS,
    TAGGING_STATUSES,
    ApiError,
    Image,
    ImagePerformance,
    Iteration,
    Upload,
)

API_PREFIXES = ("/customvision/v3.3/training", "/customvision/v3.4-preview/training")
BLOB_PREFIX = "/emulator/blobs"
SEAM_PREFIX = "/emulator/projects"  # test seams, not API routes (the key is still required)
ResponseObserver = Callable[[str, str, int, dict[str, str], bytes], None]

TAG_TYPES = ("Regular", "Negative", "GeneralProduct")
TRAINING_TYPES = ("Regular", "Advanced")
CLASSIFICATION_TYPES = ("Multiclass", "Multilabel")
EXPORT_PLATFORMS = ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK")
UNAUTHORIZED_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a"
    " valid key for an active subscription and use a correct regional API endpoint for your"
    " resource."
)

T = TypeVar("T")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


# --- parameter parsing --------------------------------------------------------------------------


def _uuid(value: str, what: str) -> str:
    """Return value as a canonical lowercase uuid; raise 400 BadRequestInvalidIds otherwise."""
    try:
        parsed = uuid.UUID(value.strip())
    except (ValueError, AttributeError, TypeError):
        raise _bad("BadRequestInvalidIds", f"{what} is not a valid id.") from None
    return str(parsed)


def _id_list(request: Request, name: str, limit: int | None, required: bool = False) -> list[str]:
    """Parse a csv list of uuids (repeated parameters are joined too); enforce the limit."""
    raw = ",".join(request.query_params.getlist(name))
    items = [item for item in (part.strip() for part in raw.split(",")) if item]
    if required and not items:
        raise _bad("BadRequestRequiredParamIsNull", f"{name} is required.")
    if limit is not None and len(items) > limit:
        raise _bad("BadRequestExceededBatchSize", f"{name} is limited to {limit} items.")
    return [_uuid(item, name) for item in items]


def _int(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad("BadRequest", f"{name} must be an integer.") from None
    if value < low:
        raise _bad("BadRequest", f"{name} must be at least {low}.")
    if high is not None and value > high:
        raise _bad("BadRequestExceededBatchSize", f"{name} is limited to {high}.")
    return value


def _choice(
    request: Request, name: str, values: tuple[str, ...], default: str | None, code: str
) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    for value in values:
        if raw.lower() == value.lower():
            return value
    raise _bad(code, f"{name} must be one of {', '.join(values)}.")


def _bool(request: Request, name: str) -> bool:
    raw = (request.query_params.get(name) or "").lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise _bad("BadRequest", f"{name} must be true or false.")


def _project_id(request: Request) -> str:
    return _uuid(request.path_params["project_id"], "projectId")


def _no_iteration(request: Request) -> None:
    raw = request.query_params.get("iterationId")
    if raw:
        _uuid(raw, "iterationId")
        raise ApiError(
            404, "NotFoundIteration", "Iteration-scoped views are not emulated on this route."
        )


async def _body_chunks(request: Request, cap: int, code: str) -> AsyncIterator[bytes]:
    """Yield the body as it arrives; refuse it (413 `code`) unread if its Content-Length is over
    cap, or as soon as more than cap bytes have arrived (a chunked body has no length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(cap, code)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > cap:
            raise _too_large(cap, code)
        yield chunk


class _BodyRefused(ApiError):
    """A refusal sent before the body was read to its end. Its answer closes the connection, so
    the client stops sending (uvicorn would otherwise read and drop the rest of the body)."""


def _too_large(cap: int, code: str) -> ApiError:
    return _BodyRefused(
        413, code, f"The request body is over {cap} bytes, the most this call takes."
    )


async def _json_body(
    request: Request, cap: int = MAX_JSON_BODY_BYTES, code: str = "BadRequest"
) -> Any:
    raw = bytearray()
    async for chunk in _body_chunks(request, cap, code):
        raw.extend(chunk)
    try:
        return json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad("BadRequest", "The request body is not valid JSON.") from None


# --- JSON shapes ----------------------------------------------------------------------------------


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _image_json(image: Image, base: str) -> dict[str, Any]:
    """Shape an Image as the service does: no `tags` when untagged, no `metadata` when unset [R]."""
    uri = f"{base}{BLOB_PREFIX}/{image.token}"
    out: dict[str, Any] = {
        "id": image.id,
        "created": image.created,
        "width": image.width,
        "height": image.height,
        "resizedImageUri": f"{uri}/resized",
        "thumbnailUri": f"{uri}/thumbnail",
        "originalImageUri": f"{uri}/original",
    }
    if image.tags:
        out["tags"] = [
            {"tagId": t.tag_id, "tagName": t.tag_name, "created": t.created} for t in image.tags
        ]
    if image.metadata:
        out["metadata"] = image.metadata
    return out


def _iteration_json(iteration: Iteration) -> dict[str, Any]:
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


def _performance_json(image: ImagePerformance, base: str) -> dict[str, Any]:
    uri = f"{base}{BLOB_PREFIX}/{image.token}"
    return {
        "id": image.id,
        "created": image.created,
        "width": image.width,
        "height": image.height,
        "imageUri": f"{uri}/resized",
        "thumbnailUri": f"{uri}/thumbnail",
        "tags": [
            {"tagId": t.tag_id, "tagName": t.tag_name, "created": t.created} for t in image.tags
        ],
        "predictions": [
            {
                "probability": p.probability,
                "tagId": p.tag_id,
                "tagName": p.tag_name,
                "tagType": p.tag_type,
            }
            for p in image.predictions
        ],
    }


def _project_json(project: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "domainId": project.domain_id,
        "classificationType": project.classification_type,
        "targetExportPlatforms": list(project.export_platforms),
        "useNegativeSet": True,
        # The spec names no transforms, so none are listed (the service's defaults apply).
        # detectionParameters is left out: «Detection parameters in use, if any», and the
        # emulator has none (it trains no detector).
        "imageProcessingSettings": {"augmentationMethods": {}},
    }
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "settings": settings,
        "created": project.created,
        "lastModified": project.last_modified,
        "thumbnailUri": None,  # the real service sends null for a new project
        "drModeEnabled": False,
        "status": "Succeeded",
    }


def _tag_json(tag: Any) -> dict[str, Any]:
    return {
        "id": tag.id,
        "name": tag.name,
        "description": tag.description,
        "type": tag.type,
        "imageCount": tag.image_count,
    }


def _domain_json(domain: Any) -> dict[str, Any]:
    return {
        "id": domain.id,
        "name": domain.name,
        "type": domain.type,
        "exportable": domain.exportable,
        "enabled": True,
    }


# --- multipart ------------------------------------------------------------------------------------

_FILENAME = re.compile(r';\s*filename=("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)


async def _multipart_uploads(
    request: Request, content_type: str, max_bytes: int, cap: int
) -> list[Upload]:
    """Read every part of a multipart body as one image; keep each filename raw (quotes too).

    Each part is kept up to max_bytes + 1 bytes: enough to tell it is too big, without holding
    the rest of an oversized upload in memory. The batch is refused as it streams: at its 65th
    part (400 BadRequestImageBatch), or past `cap` bytes in all (413).
    """
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise _bad("BadRequestImageStream", "multipart/form-data without a boundary.")
    parts: list[tuple[str, bytearray]] = []
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[str, str] = {}

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[header_field.decode("latin-1").lower()] = header_value.decode("utf-8", "replace")
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        if len(parts) == MAX_IMAGES_PER_BATCH:
            raise _BodyRefused(400, "BadRequestImageBatch", _too_many_images().message)
        match = _FILENAME.search(headers.get("content-disposition", ""))
        parts.append((match.group(1).strip() if match else "", bytearray()))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buffer = parts[-1][1]
        room = max_bytes + 1 - len(buffer)
        if room > 0:
            buffer.extend(data[start : min(end, start + room)])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        async for chunk in _body_chunks(request, cap, "BadRequestImageBatch"):
            parser.write(chunk)
        parser.finalize()
    except ApiError:
        raise
    except Exception as exc:  # python-multipart raises its own error types for bad framing
        raise _bad("BadRequestImageStream", f"Malformed multipart body: {exc}") from None
    return [Upload(source, bytes(data)) for source, data in parts]


def _too_many_images() -> ApiError:
    return _bad("BadRequestImageBatch", f"A batch is limited to {MAX_IMAGES_PER_BATCH} images.")


async def _octet_stream_upload(request: Request, max_bytes: int) -> Upload:
    """Read a one-image body, keeping max_bytes + 1 of it (enough to tell it is too big)."""
    data = bytearray()
    async for chunk in _body_chunks(
        request, max_bytes + IMAGE_FRAMING_BYTES, "BadRequestImageSizeBytes"
    ):
        data.extend(chunk[: max(0, max_bytes + 1 - len(data))])
    return Upload("", bytes(data))


# --- the app --------------------------------------------------------------------------------------


def create_app(
    store: Store,
    *,
    training_key: str | None,
    faults: Faults = NO_FAULTS,
    response_observer: ResponseObserver | None = None,
) -> Starlette:
    """Return the emulator as an ASGI app serving store (see the module docstring)."""
    multipart_cap, files_cap = upload_body_limits(store.quotas.max_image_bytes)

    async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # SQLite and blob I/O block: keep them off the event loop (the store has its own lock).
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    def api(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                response = _error(exc.status, exc.code, exc.message)
                if isinstance(exc, _BodyRefused):
                    response.headers["connection"] = "close"
                return response

        return endpoint

    # --- domains and projects ---

    @api
    async def get_domains(request: Request) -> Response:
        return JSONResponse([_domain_json(d) for d in DOMAINS])

    @api
    async def get_domain(request: Request) -> Response:
        domain_id = _uuid(request.path_params["domain_id"], "domainId")
        for domain in DOMAINS:
            if domain.id == domain_id:
                return JSONResponse(_domain_json(domain))
        raise ApiError(404, "NotFoundDomain", "Domain not found.")

    @api
    async def get_projects(request: Request) -> Response:
        return JSONResponse([_project_json(p) for p in await run(store.projects)])

    @api
    async def create_project(request: Request) -> Response:
        q = request.query_params
        name = q.get("name")
        if name is None:
            raise _bad("BadRequestProjectName", "name is required.")
        domain_id = q.get("domainId") or None
        if domain_id is not None:
            domain_id = _uuid(domain_id, "domainId")
        classification = _choice(
            request,
            "classificationType",
            CLASSIFICATION_TYPES,
            None,
            "BadRequestProjectUnknownClassification",
        )
        platforms = [p.strip() for p in q.get("targetExportPlatforms", "").split(",") if p.strip()]
        for platform in platforms:
            if platform not in EXPORT_PLATFORMS:
                raise _bad("BadRequestProjectUnsupportedExportPlatform", "Unknown export platform.")
        project = await run(
            store.create_project, name, q.get("description"), domain_id, classification, platforms
        )
        return JSONResponse(_project_json(project))

    @api
    async def get_project(request: Request) -> Response:
        return JSONResponse(_project_json(await run(store.project, _project_id(request))))

    @api
    async def delete_project(request: Request) -> Response:
        await run(store.delete_project, _project_id(request))
        return Response(status_code=204)

    @api
    async def update_project(request: Request) -> Response:
        project_id = _project_id(request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _bad("BadRequest", "The body must be a Project.")
        name = body.get("name")
        description = body.get("description")
        if not isinstance(name, str | None) or not isinstance(description, str | None):
            raise _bad("BadRequest", "name and description must be strings.")
        project = await run(store.update_project, project_id, name, description)
        return JSONResponse(_project_json(project))

    # --- tags ---

    @api
    async def get_tags(request: Request) -> Response:
        project_id = _project_id(request)
        _no_iteration(request)
        return JSONResponse([_tag_json(t) for t in await run(store.tags, project_id)])

    @api
    async def create_tag(request: Request) -> Response:
        project_id = _project_id(request)
        name = request.query_params.get("name")
        if name is None:
            raise _bad("BadRequestTagName", "name is required.")
        tag_type = _choice(request, "type", TAG_TYPES, "Regular", "BadRequestTagType")
        description = request.query_params.get("description")
        tag = await run(store.create_tag, project_id, name, description, tag_type)
        return JSONResponse(_tag_json(tag))

    def _tag_id(request: Request) -> str:
        return _uuid(request.path_params["tag_id"], "tagId")

    @api
    async def get_tag(request: Request) -> Response:
        project_id, tag_id = _project_id(request), _tag_id(request)
        _no_iteration(request)
        return JSONResponse(_tag_json(await run(store.tag, project_id, tag_id)))

    @api
    async def delete_tag(request: Request) -> Response:
        await run(store.delete_tag, _project_id(request), _tag_id(request))
        return Response(status_code=204)

    @api
    async def update_tag(request: Request) -> Response:
        project_id, tag_id = _project_id(request), _tag_id(request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _bad("BadRequest", "The body must be a Tag.")
        current = await run(store.tag, project_id, tag_id)
        name = body.get("name", current.name)
        description = body.get("description", current.description)
        tag_type = body.get("type", current.type) or current.type
        if not isinstance(name, str):
            raise _bad("BadRequestTagName", "name must be a string.")
        if not isinstance(description, str | None):
            raise _bad("BadRequestTagDescription", "description must be a string.")
        if tag_type not in TAG_TYPES:
            raise _bad("BadRequestTagType", f"type must be one of {', '.join(TAG_TYPES)}.")
        tag = await run(store.update_tag, project_id, tag_id, name, description, tag_type)
        return JSONResponse(_tag_json(tag))

    # --- image reads ---

    def _listing_filters(request: Request, with_tags: bool, status: str | None) -> dict[str, Any]:
        _no_iteration(request)
        filters: dict[str, Any] = {}
        if with_tags:
            filters["tag_ids"] = _id_list(request, "tagIds", MAX_TAGS_PER_BATCH)
        if status is None:
            status = _choice(request, "taggingStatus", TAGGING_STATUSES, "All", "BadRequest")
        filters["tagging_status"] = status
        return filters

    def _metadata_filter(request: Request, filters: dict[str, Any]) -> None:
        text = request.query_params.get("$filter")
        if text:
            filters["metadata_filter"] = parse_filter(text)

    async def _list(request: Request, filters: dict[str, Any]) -> Response:
        project_id = _project_id(request)
        order = _choice(request, "orderBy", ("Newest", "Oldest"), "Newest", "BadRequest")
        take = _int(request, "take", DEFAULT_TAKE, 0, MAX_TAKE)
        skip = _int(request, "skip", 0, 0, None)
        images = await run(
            store.images,
            project_id,
            newest_first=order == "Newest",
            take=take,
            skip=skip,
            **filters,
        )
        base = _base_url(request)
        return JSONResponse([_image_json(image, base) for image in images])

    async def _count(request: Request, filters: dict[str, Any]) -> Response:
        return JSONResponse(await run(store.count_images, _project_id(request), **filters))

    @api
    async def get_images(request: Request) -> Response:
        _project_id(request)
        filters = _listing_filters(request, with_tags=True, status=None)
        _metadata_filter(request, filters)
        return await _list(request, filters)

    @api
    async def get_tagged_images(request: Request) -> Response:
        _project_id(request)
        return await _list(request, _listing_filters(request, with_tags=True, status="Tagged"))

    @api
    async def get_untagged_images(request: Request) -> Response:
        _project_id(request)
        return await _list(request, _listing_filters(request, with_tags=False, status="Untagged"))

    @api
    async def get_image_count(request: Request) -> Response:
        _project_id(request)
        _no_iteration(request)
        status = _choice(request, "taggingStatus", TAGGING_STATUSES, "All", "BadRequest")
        # Count endpoints document no maxItems on tagIds (DIGEST section 9).
        filters = {"tag_ids": _id_list(request, "tagIds", None), "tagging_status": status}
        _metadata_filter(request, filters)
        return await _count(request, filters)

    @api
    async def get_tagged_count(request: Request) -> Response:
        _project_id(request)
        _no_iteration(request)
        filters = {"tag_ids": _id_list(request, "tagIds", None), "tagging_status": "Tagged"}
        return await _count(request, filters)

    @api
    async def get_untagged_count(request: Request) -> Response:
        _project_id(request)
        _no_iteration(request)
        return await _count(request, {"tagging_status": "Untagged"})

    @api
    async def get_images_by_ids(request: Request) -> Response:
        project_id = _project_id(request)
        ids = _id_list(request, "imageIds", MAX_IDS)
        _no_iteration(request)
        images = await run(store.images_by_ids, project_id, ids)
        base = _base_url(request)
        return JSONResponse([_image_json(image, base) for image in images])

    # --- image creation ---

    def _summary(request: Request, results: list[Any]) -> Response:
        base = _base_url(request)
        entries = []
        for result in results:
            entry: dict[str, Any] = {"sourceUrl": result.source, "status": result.status}
            show = result.image is not None and not (
                result.status == "OKDuplicate" and faults.duplicate_without_image
            )
            if show:
                entry["image"] = _image_json(result.image, base)
            entries.append(entry)
        ok = all(result.status == "OK" for result in results)
        return JSONResponse(
            {"isBatchSuccessful": ok, "images": entries}, status_code=200 if ok else 207
        )

    def _check_batch(uploads: list[Upload], tag_ids: list[str]) -> None:
        if not uploads:
            raise _bad("BadRequestImageBatch", "The batch has no images.")
        if len(uploads) > MAX_IMAGES_PER_BATCH:
            raise _too_many_images()
        distinct = {*tag_ids, *(t for u in uploads for t in u.tag_ids)}
        if len(distinct) > MAX_TAGS_PER_BATCH:
            raise _bad(
                "BadRequestExceededBatchSize", f"A batch is limited to {MAX_TAGS_PER_BATCH} tags."
            )

    @api
    async def create_images_from_data(request: Request) -> Response:
        project_id = _project_id(request)
        tag_ids = _id_list(request, "tagIds", MAX_TAGS_PER_BATCH)
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media == "multipart/form-data":
            uploads = await _multipart_uploads(
                request, content_type, store.quotas.max_image_bytes, multipart_cap
            )
        elif media == "application/octet-stream":
            uploads = [await _octet_stream_upload(request, store.quotas.max_image_bytes)]
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "Send images as multipart/form-data or application/octet-stream.",
            )
        _check_batch(uploads, tag_ids)
        results = await run(store.create_images, project_id, uploads, tag_ids, None)
        return _summary(request, results)

    def _metadata_map(value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _bad("BadRequest", "metadata must be an object of strings.")
        for item in value.values():
            if not isinstance(item, str):
                raise _bad("BadRequestImageMetadataValue", "Metadata values must be strings.")
        check_metadata(value)
        return value

    @api
    async def create_images_from_files(request: Request) -> Response:
        project_id = _project_id(request)
        body = await _json_body(request, files_cap, "BadRequestImageBatch")
        if not isinstance(body, dict) or not isinstance(body.get("images"), list):
            raise _bad("BadRequestImageBatch", "The body must be an ImageFileCreateBatch.")
        tag_ids = [_uuid(t, "tagIds") for t in _str_list(body.get("tagIds"), "tagIds")]
        if len(tag_ids) > MAX_TAGS_PER_BATCH:
            raise _bad(
                "BadRequestExceededBatchSize", f"A batch is limited to {MAX_TAGS_PER_BATCH} tags."
            )
        metadata = None
        if body.get("metadata") is not None:
            metadata = _metadata_map(body["metadata"])
            if len(metadata) > METADATA_MAX_PAIRS:
                raise _bad(
                    "BadRequestImageMetadataKey",
                    f"Metadata is limited to {METADATA_MAX_PAIRS} key-value pairs per image.",
                )
        if len(body["images"]) > MAX_IMAGES_PER_BATCH:
            raise _too_many_images()
        uploads = []
        for entry in body["images"]:
            if not isinstance(entry, dict):
                raise _bad("BadRequestImageBatch", "Each image must be an ImageFileCreateEntry.")
            name = entry.get("name") or ""
            try:
                data = base64.b64decode(entry.get("contents") or "", validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise _bad("BadRequestImageBatch", "contents must be base64.") from None
            entry_tags = [_uuid(t, "tagIds") for t in _str_list(entry.get("tagIds"), "tagIds")]
            uploads.append(Upload(f'"{name}"', data, tuple(entry_tags)))
        _check_batch(uploads, tag_ids)
        results = await run(store.create_images, project_id, uploads, tag_ids, metadata)
        return _summary(request, results)

    # --- tags on images, deletion, metadata ---

    @api
    async def create_image_tags(request: Request) -> Response:
        project_id = _project_id(request)
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("tags") or [], list):
            raise _bad("BadRequest", "The body must be an ImageTagCreateBatch.")
        entries = body.get("tags") or []
        if len(entries) > MAX_TAG_PAIRS:
            raise _bad(
                "BadRequestExceededBatchSize", f"A batch is limited to {MAX_TAG_PAIRS} tags."
            )
        pairs = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise _bad("BadRequest", "Each entry must be an ImageTagCreateEntry.")
            image_id = _uuid(entry.get("imageId"), "imageId")
            tag_id = _uuid(entry.get("tagId"), "tagId")
            pairs.append((image_id, tag_id))
        result = await run(store.add_image_tags, project_id, pairs)

        def shape(items: list[tuple[str, str]]) -> list[dict[str, str]]:
            return [{"imageId": image_id, "tagId": tag_id} for image_id, tag_id in items]

        return JSONResponse(
            {
                "created": shape(result.created),
                "duplicated": shape(result.duplicated),
                "exceeded": shape(result.exceeded),
            }
        )

    @api
    async def delete_image_tags(request: Request) -> Response:
        project_id = _project_id(request)
        image_ids = _id_list(request, "imageIds", MAX_UNTAG_IMAGES, required=True)
        tag_ids = _id_list(request, "tagIds", MAX_TAGS_PER_BATCH, required=True)
        await run(store.remove_image_tags, project_id, image_ids, tag_ids)
        return Response(status_code=204)

    @api
    async def delete_images(request: Request) -> Response:
        project_id = _project_id(request)
        image_ids = _id_list(request, "imageIds", MAX_IDS)
        all_images = _bool(request, "allImages")
        all_iterations = _bool(request, "allIterations")
        await run(store.delete_images, project_id, None if all_images else image_ids)
        # «Using this flag will return a 202 response to indicate the images are being deleted.»
        return Response(status_code=202 if all_images or all_iterations else 204)

    @api
    async def update_image_metadata(request: Request) -> Response:
        project_id = _project_id(request)
        image_ids = _id_list(request, "imageIds", MAX_METADATA_IDS, required=True)
        metadata = _metadata_map(await _json_body(request))
        results = await run(store.update_metadata, project_id, image_ids, metadata)
        entries = []
        for result in results:
            entry: dict[str, Any] = {"imageId": result.image_id, "status": result.status}
            if result.metadata is not None:
                entry["metadata"] = result.metadata
            entries.append(entry)
        ok = all(result.status == "OK" for result in results)
        return JSONResponse(
            {"isBatchSuccessful": ok, "images": entries}, status_code=200 if ok else 207
        )

    # --- training and iterations (simulated) ---

    def _iteration_id(request: Request) -> str:
        return _uuid(request.path_params["iteration_id"], "iterationId")

    @api
    async def train_project(request: Request) -> Response:
        project_id = _project_id(request)
        training_type = _choice(request, "trainingType", TRAINING_TYPES, "Regular", "BadRequest")
        budget = _int(request, "reservedBudgetInHours", 0, 0, None)
        force = _bool(request, "forceTrain")
        body = await _json_body(request)
        selected = None
        if body is not None:
            if not isinstance(body, dict):
                raise _bad("BadRequest", "The body must be TrainingParameters.")
            raw = _str_list(body.get("selectedTags"), "selectedTags")
            selected = [_uuid(t, "selectedTags") for t in raw] or None
        iteration = await run(
            store.train,
            project_id,
            training_type=training_type or "Regular",
            reserved_budget=budget,
            force=force,
            selected_tags=selected,
        )
        return JSONResponse(_iteration_json(iteration))

    @api
    async def get_iterations(request: Request) -> Response:
        iterations = await run(store.iterations, _project_id(request))
        return JSONResponse([_iteration_json(i) for i in iterations])

    @api
    async def get_iteration(request: Request) -> Response:
        project_id, iteration_id = _project_id(request), _iteration_id(request)
        return JSONResponse(_iteration_json(await run(store.iteration, project_id, iteration_id)))

    @api
    async def delete_iteration(request: Request) -> Response:
        project_id, iteration_id = _project_id(request), _iteration_id(request)
        await run(store.delete_iteration, project_id, iteration_id)
        return Response(status_code=204)

    @api
    async def get_iteration_performance(request: Request) -> Response:
        project_id, iteration_id = _project_id(request), _iteration_id(request)
        raw = request.query_params.get("threshold")
        try:
            threshold = 0.5 if raw in (None, "") else float(raw)
        except ValueError:
            raise _bad("BadRequest", "threshold must be a number.") from None
        per_tag, precision, recall = await run(
            store.iteration_performance, project_id, iteration_id, threshold
        )
        return JSONResponse(
            {
                "perTagPerformance": [
                    {
                        "id": tag_id,
                        "name": name,
                        "precision": p,
                        "precisionStdDeviation": 0.0,
                        "recall": r,
                        "recallStdDeviation": 0.0,
                        "averagePrecision": None,
                    }
                    for tag_id, name, p, r in per_tag
                ],
                "precision": precision,
                "precisionStdDeviation": 0.0,
                "recall": recall,
                "recallStdDeviation": 0.0,
                "averagePrecision": None,
            }
        )

    @api
    async def get_image_performances(request: Request) -> Response:
        project_id, iteration_id = _project_id(request), _iteration_id(request)
        tag_ids = _id_list(request, "tagIds", MAX_PERFORMANCE_TAGS)
        order = _choice(request, "orderBy", ("Newest", "Oldest"), "Newest", "BadRequest")
        take = _int(request, "take", DEFAULT_TAKE, 0, MAX_TAKE)
        skip = _int(request, "skip", 0, 0, None)
        images = await run(
            store.image_performances,
            project_id,
            iteration_id,
            tag_ids=tag_ids,
            newest_first=order == "Newest",
            take=take,
            skip=skip,
        )
        base = _base_url(request)
        return JSONResponse([_performance_json(image, base) for image in images])

    @api
    async def get_image_performance_count(request: Request) -> Response:
        project_id, iteration_id = _project_id(request), _iteration_id(request)
        tag_ids = _id_list(request, "tagIds", None)
        count = await run(store.count_image_performances, project_id, iteration_id, tag_ids=tag_ids)
        return JSONResponse(count)

    @api
    async def mark_mispredicted(request: Request) -> Response:
        project_id = _project_id(request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _bad("BadRequest", 'The body must be {"imageId": ..., "tagId": ...}.')
        image_id = _uuid(body.get("imageId"), "imageId")
        tag_id = _uuid(body.get("tagId"), "tagId")
        await run(store.mark_mispredicted, project_id, image_id, tag_id)
        return Response(status_code=204)

    # --- image bytes (the SAS-like URIs) ---

    async def get_blob(request: Request) -> Response:
        if request.path_params["kind"] not in ("original", "resized", "thumbnail"):
            return _error(404, "NotFound", "No such blob.")
        found = await run(store.blob, request.path_params["token"])
        if found is None:
            return _error(404, "NotFound", "No such blob.")
        data, fmt = found
        return Response(data, media_type=CONTENT_TYPES[fmt])

    pid = "/projects/{project_id}"
    api_routes = [
        Route("/domains", get_domains, methods=["GET"]),
        Route("/domains/{domain_id}", get_domain, methods=["GET"]),
        Route("/projects", get_projects, methods=["GET"]),
        Route("/projects", create_project, methods=["POST"]),
        Route(pid, get_project, methods=["GET"]),
        Route(pid, delete_project, methods=["DELETE"]),
        Route(pid, update_project, methods=["PATCH"]),
        Route(f"{pid}/tags", get_tags, methods=["GET"]),
        Route(f"{pid}/tags", create_tag, methods=["POST"]),
        Route(pid + "/tags/{tag_id}", get_tag, methods=["GET"]),
        Route(pid + "/tags/{tag_id}", delete_tag, methods=["DELETE"]),
        Route(pid + "/tags/{tag_id}", update_tag, methods=["PATCH"]),
        Route(f"{pid}/images", get_images, methods=["GET"]),
        Route(f"{pid}/images", create_images_from_data, methods=["POST"]),
        Route(f"{pid}/images", delete_images, methods=["DELETE"]),
        Route(f"{pid}/images/count", get_image_count, methods=["GET"]),
        Route(f"{pid}/images/files", create_images_from_files, methods=["POST"]),
        Route(f"{pid}/images/id", get_images_by_ids, methods=["GET"]),
        Route(f"{pid}/images/metadata", update_image_metadata, methods=["POST"]),
        Route(f"{pid}/images/tagged", get_tagged_images, methods=["GET"]),
        Route(f"{pid}/images/tagged/count", get_tagged_count, methods=["GET"]),
        Route(f"{pid}/images/tags", create_image_tags, methods=["POST"]),
        Route(f"{pid}/images/tags", delete_image_tags, methods=["DELETE"]),
        Route(f"{pid}/images/untagged", get_untagged_images, methods=["GET"]),
        Route(f"{pid}/images/untagged/count", get_untagged_count, methods=["GET"]),
        Route(f"{pid}/train", train_project, methods=["POST"]),
        Route(f"{pid}/iterations", get_iterations, methods=["GET"]),
        Route(pid + "/iterations/{iteration_id}", get_iteration, methods=["GET"]),
        Route(pid + "/iterations/{iteration_id}", delete_iteration, methods=["DELETE"]),
        Route(
            pid + "/iterations/{iteration_id}/performance",
            get_iteration_performance,
            methods=["GET"],
        ),
        Route(
            pid + "/iterations/{iteration_id}/performance/images",
            get_image_performances,
            methods=["GET"],
        ),
        Route(
            pid + "/iterations/{iteration_id}/performance/images/count",
            get_image_performance_count,
            methods=["GET"],
        ),
    ]
    routes: list[Any] = [Mount(prefix, routes=api_routes) for prefix in API_PREFIXES]
    routes.append(Route(BLOB_PREFIX + "/{token}/{kind}", get_blob, methods=["GET"]))
    routes.append(
        Route(SEAM_PREFIX + "/{project_id}/mispredictions", mark_mispredicted, methods=["POST"])
    )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return _error(405, "BadRequestNotSupported", "Method not supported on this path.")
        if status == 404:
            return _error(404, "NotFound", "No such operation in the emulator.")
        return _error(status, "ErrorUnknown", "Unexpected error.")

    async def server_error(request: Request, exc: Exception) -> Response:
        return _error(500, "ErrorUnknown", "Unexpected error in the emulator.")

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(_ObserveMiddleware, observer=response_observer),
            Middleware(FaultMiddleware, faults=faults),
            Middleware(_KeyMiddleware, training_key=training_key),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )


def _str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad("BadRequestInvalidIds", f"{name} must be a list of ids.")
    return value


# --- middleware -----------------------------------------------------------------------------------


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _KeyMiddleware:
    """Refuse training API requests without the right Training-Key header (401)."""

    def __init__(self, app: ASGIApp, training_key: str | None) -> None:
        self.app = app
        self._key = training_key.encode() if training_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/customvision/") or path.startswith(SEAM_PREFIX):
            given = b""
            for name, value in scope["headers"]:
                if name.lower() == b"training-key":
                    given = value
            if not given or (self._key is not None and not hmac.compare_digest(given, self._key)):
                await _send_json(send, 401, {"code": "401", "message": UNAUTHORIZED_MESSAGE})
                return
        await self.app(scope, receive, send)


class _ObserveMiddleware:
    """Stamp every response with an apim-request-id and hand it to the observer, if any."""

    def __init__(self, app: ASGIApp, observer: ResponseObserver | None) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"apim-request-id", str(uuid.uuid4()).encode()),
                    ],
                }
                start.update(message)
            elif message["type"] == "http.response.body" and self.observer is not None:
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    headers = {
                        k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]
                    }
                    self.observer(
                        scope["method"], scope["path"], start["status"], headers, bytes(body)
                    )
            await send(message)

        await self.app(scope, receive, observed_send)


def check_metadata(metadata: dict[str, str]) -> None:
    """Raise ApiError 400 unless every key and value is within the spec's lengths."""
    for key, value in metadata.items():
        if not key or len(key) > METADATA_MAX_KEY:
            raise ApiError(
                400,
                "BadRequestImageMetadataKey",
                f"Metadata keys must be 1 to {METADATA_MAX_KEY} characters.",
            )
        if len(value) > METADATA_MAX_VALUE:
            raise ApiError(
                400,
                "BadRequestImageMetadataValue",
                f"Metadata values are limited to {METADATA_MAX_VALUE} characters.",
            )
