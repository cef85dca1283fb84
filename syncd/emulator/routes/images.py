"""Images: listings and counts, lookups by id, uploads (CreateImagesFromData as multipart or
octet-stream, CreateImagesFromFiles), tagging and untagging, deletion, metadata updates.

Public names: `ROUTES`, `image_json`.

Decisions where the spec is silent:
- A create batch answers 200 only when every image is OK; any other status (OKDuplicate included,
  so also a batch made only of duplicates) makes it 207 with isBatchSuccessful false, as the real
  service answers duplicates (cognitive-services-python-sdk-samples issues #56, #98).
- OKDuplicate returns the existing image (unless `Faults.duplicate_without_image`), with the
  batch's tags added to it; batch metadata is not applied to a duplicate.
- `sourceUrl` is the multipart part's raw `filename` parameter, quotes kept [R]; for
  CreateImagesFromFiles it is the entry's name in quotes (the spec's own example); a part without
  a filename, or an octet-stream body, has sourceUrl "".
- More than 64 images in a batch is 400 BadRequestImageBatch, refused at the 65th multipart part
  as the body streams; a bad create content type is 415 UnsupportedMediaType.
- Images are shaped as the service does: no `tags` when untagged, no `metadata` when unset [R],
  and no `regions` when they have none.
- Regions at create: only CreateImagesFromFiles takes them (ImageFileCreateEntry.regions); the
  spec gives CreateImagesFromData (multipart or octet-stream) no way to send any. They are
  checked as routes/regions.py says, and do not count towards the batch's 20 tags (the limit
  names tagIds).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.limits import (
    DEFAULT_TAKE,
    IMAGE_FRAMING_BYTES,
    MAX_IDS,
    MAX_IMAGES_PER_BATCH,
    MAX_METADATA_IDS,
    MAX_TAG_PAIRS,
    MAX_TAGS_PER_BATCH,
    MAX_TAKE,
    MAX_UNTAG_IMAGES,
    METADATA_MAX_KEY,
    METADATA_MAX_PAIRS,
    METADATA_MAX_VALUE,
)
from syncd.emulator.routes.blobs import blob_uri
from syncd.emulator.routes.common import (
    PROJECT_PATH,
    BodyRefused,
    api,
    bad,
    base_url,
    body_chunks,
    bool_param,
    choice_param,
    emulator,
    id_list,
    int_param,
    json_body,
    no_iteration,
    parse_uuid,
    project_param,
    run,
    store_of,
    str_list,
)
from syncd.emulator.routes.regions import parse_region, region_json
from syncd.emulator.store import ApiError
from syncd.emulator.store.filter import parse_filter
from syncd.emulator.store.records import TAGGING_STATUSES, CreateResult, Image, Upload

# --- image reads ----------------------------------------------------------------------------------


def _listing_filters(request: Request, with_tags: bool, status: str | None) -> dict[str, Any]:
    no_iteration(request)
    filters: dict[str, Any] = {}
    if with_tags:
        filters["tag_ids"] = id_list(request, "tagIds", MAX_TAGS_PER_BATCH)
    if status is None:
        status = choice_param(request, "taggingStatus", TAGGING_STATUSES, "All", "BadRequest")
    filters["tagging_status"] = status
    return filters


def _metadata_filter(request: Request, filters: dict[str, Any]) -> None:
    text = request.query_params.get("$filter")
    if text:
        filters["metadata_filter"] = parse_filter(text)


async def _list(request: Request, filters: dict[str, Any]) -> Response:
    project_id = project_param(request)
    order = choice_param(request, "orderBy", ("Newest", "Oldest"), "Newest", "BadRequest")
    take = int_param(request, "take", DEFAULT_TAKE, 0, MAX_TAKE)
    skip = int_param(request, "skip", 0, 0, None)
    images = await run(
        store_of(request).images,
        project_id,
        newest_first=order == "Newest",
        take=take,
        skip=skip,
        **filters,
    )
    base = base_url(request)
    return JSONResponse([image_json(image, base) for image in images])


async def _count(request: Request, filters: dict[str, Any]) -> Response:
    return JSONResponse(
        await run(store_of(request).count_images, project_param(request), **filters)
    )


@api
async def get_images(request: Request) -> Response:
    project_param(request)
    filters = _listing_filters(request, with_tags=True, status=None)
    _metadata_filter(request, filters)
    return await _list(request, filters)


@api
async def get_tagged_images(request: Request) -> Response:
    project_param(request)
    return await _list(request, _listing_filters(request, with_tags=True, status="Tagged"))


@api
async def get_untagged_images(request: Request) -> Response:
    project_param(request)
    return await _list(request, _listing_filters(request, with_tags=False, status="Untagged"))


@api
async def get_image_count(request: Request) -> Response:
    project_param(request)
    no_iteration(request)
    status = choice_param(request, "taggingStatus", TAGGING_STATUSES, "All", "BadRequest")
    # Count endpoints document no maxItems on tagIds (docs/spec/DIGEST.md §9).
    filters = {"tag_ids": id_list(request, "tagIds", None), "tagging_status": status}
    _metadata_filter(request, filters)
    return await _count(request, filters)


@api
async def get_tagged_count(request: Request) -> Response:
    project_param(request)
    no_iteration(request)
    filters = {"tag_ids": id_list(request, "tagIds", None), "tagging_status": "Tagged"}
    return await _count(request, filters)


@api
async def get_untagged_count(request: Request) -> Response:
    project_param(request)
    no_iteration(request)
    return await _count(request, {"tagging_status": "Untagged"})


@api
async def get_images_by_ids(request: Request) -> Response:
    project_id = project_param(request)
    ids = id_list(request, "imageIds", MAX_IDS)
    no_iteration(request)
    images = await run(store_of(request).images_by_ids, project_id, ids)
    base = base_url(request)
    return JSONResponse([image_json(image, base) for image in images])


# --- image creation -------------------------------------------------------------------------------


def _summary(request: Request, results: list[CreateResult]) -> Response:
    base = base_url(request)
    faults = emulator(request).faults
    entries = []
    for result in results:
        entry: dict[str, Any] = {"sourceUrl": result.source, "status": result.status}
        hidden = result.status == "OKDuplicate" and faults.duplicate_without_image
        if result.image is not None and not hidden:
            entry["image"] = image_json(result.image, base)
        entries.append(entry)
    ok = all(result.status == "OK" for result in results)
    return JSONResponse(
        {"isBatchSuccessful": ok, "images": entries}, status_code=200 if ok else 207
    )


def _check_batch(uploads: list[Upload], tag_ids: list[str]) -> None:
    if not uploads:
        raise bad("BadRequestImageBatch", "The batch has no images.")
    if len(uploads) > MAX_IMAGES_PER_BATCH:
        raise _too_many_images()
    distinct = {*tag_ids, *(t for u in uploads for t in u.tag_ids)}
    if len(distinct) > MAX_TAGS_PER_BATCH:
        raise bad(
            "BadRequestExceededBatchSize", f"A batch is limited to {MAX_TAGS_PER_BATCH} tags."
        )


@api
async def create_images_from_data(request: Request) -> Response:
    project_id = project_param(request)
    tag_ids = id_list(request, "tagIds", MAX_TAGS_PER_BATCH)
    state = emulator(request)
    max_bytes = state.store.quotas.max_image_bytes
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        uploads = await _multipart_uploads(request, content_type, max_bytes, state.multipart_cap)
    elif media == "application/octet-stream":
        uploads = [await _octet_stream_upload(request, max_bytes)]
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "Send images as multipart/form-data or application/octet-stream.",
        )
    _check_batch(uploads, tag_ids)
    results = await run(state.store.create_images, project_id, uploads, tag_ids, None)
    return _summary(request, results)


def _metadata_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise bad("BadRequest", "metadata must be an object of strings.")
    for item in value.values():
        if not isinstance(item, str):
            raise bad("BadRequestImageMetadataValue", "Metadata values must be strings.")
    check_metadata(value)
    return value


@api
async def create_images_from_files(request: Request) -> Response:
    project_id = project_param(request)
    body = await json_body(request, emulator(request).files_cap, "BadRequestImageBatch")
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise bad("BadRequestImageBatch", "The body must be an ImageFileCreateBatch.")
    tag_ids = [parse_uuid(t, "tagIds") for t in str_list(body.get("tagIds"), "tagIds")]
    if len(tag_ids) > MAX_TAGS_PER_BATCH:
        raise bad(
            "BadRequestExceededBatchSize", f"A batch is limited to {MAX_TAGS_PER_BATCH} tags."
        )
    metadata = None
    if body.get("metadata") is not None:
        metadata = _metadata_map(body["metadata"])
        if len(metadata) > METADATA_MAX_PAIRS:
            raise bad(
                "BadRequestImageMetadataKey",
                f"Metadata is limited to {METADATA_MAX_PAIRS} key-value pairs per image.",
            )
    if len(body["images"]) > MAX_IMAGES_PER_BATCH:
        raise _too_many_images()
    uploads = []
    for entry in body["images"]:
        if not isinstance(entry, dict):
            raise bad("BadRequestImageBatch", "Each image must be an ImageFileCreateEntry.")
        name = entry.get("name") or ""
        try:
            data = base64.b64decode(entry.get("contents") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise bad("BadRequestImageBatch", "contents must be base64.") from None
        entry_tags = [parse_uuid(t, "tagIds") for t in str_list(entry.get("tagIds"), "tagIds")]
        raw_regions = entry.get("regions") or []
        if not isinstance(raw_regions, list):
            raise bad("BadRequestImageRegions", "regions must be a list of Region.")
        regions = tuple(parse_region(region) for region in raw_regions)
        uploads.append(Upload(f'"{name}"', data, tuple(entry_tags), regions))
    _check_batch(uploads, tag_ids)
    results = await run(store_of(request).create_images, project_id, uploads, tag_ids, metadata)
    return _summary(request, results)


# --- tags on images, deletion, metadata -----------------------------------------------------------


@api
async def create_image_tags(request: Request) -> Response:
    project_id = project_param(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("tags") or [], list):
        raise bad("BadRequest", "The body must be an ImageTagCreateBatch.")
    entries = body.get("tags") or []
    if len(entries) > MAX_TAG_PAIRS:
        raise bad("BadRequestExceededBatchSize", f"A batch is limited to {MAX_TAG_PAIRS} tags.")
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad("BadRequest", "Each entry must be an ImageTagCreateEntry.")
        image_id = parse_uuid(entry.get("imageId"), "imageId")
        tag_id = parse_uuid(entry.get("tagId"), "tagId")
        pairs.append((image_id, tag_id))
    result = await run(store_of(request).add_image_tags, project_id, pairs)

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
    project_id = project_param(request)
    image_ids = id_list(request, "imageIds", MAX_UNTAG_IMAGES, required=True)
    tag_ids = id_list(request, "tagIds", MAX_TAGS_PER_BATCH, required=True)
    await run(store_of(request).remove_image_tags, project_id, image_ids, tag_ids)
    return Response(status_code=204)


@api
async def delete_images(request: Request) -> Response:
    project_id = project_param(request)
    image_ids = id_list(request, "imageIds", MAX_IDS)
    all_images = bool_param(request, "allImages")
    all_iterations = bool_param(request, "allIterations")
    await run(store_of(request).delete_images, project_id, None if all_images else image_ids)
    # «Using this flag will return a 202 response to indicate the images are being deleted.»
    return Response(status_code=202 if all_images or all_iterations else 204)


@api
async def update_image_metadata(request: Request) -> Response:
    project_id = project_param(request)
    image_ids = id_list(request, "imageIds", MAX_METADATA_IDS, required=True)
    metadata = _metadata_map(await json_body(request))
    results = await run(store_of(request).update_metadata, project_id, image_ids, metadata)
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


def image_json(image: Image, base: str) -> dict[str, Any]:
    """Shape an Image as the service does: no `tags` when untagged, no `metadata` when unset [R]."""
    out: dict[str, Any] = {
        "id": image.id,
        "created": image.created,
        "width": image.width,
        "height": image.height,
        "resizedImageUri": blob_uri(base, image.token, "resized"),
        "thumbnailUri": blob_uri(base, image.token, "thumbnail"),
        "originalImageUri": blob_uri(base, image.token, "original"),
    }
    if image.tags:
        out["tags"] = [
            {"tagId": t.tag_id, "tagName": t.tag_name, "created": t.created} for t in image.tags
        ]
    if image.regions:
        out["regions"] = [region_json(r) for r in image.regions]
    if image.metadata:
        out["metadata"] = image.metadata
    return out


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
        raise bad("BadRequestImageStream", "multipart/form-data without a boundary.")
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
            raise BodyRefused(400, "BadRequestImageBatch", _too_many_images().message)
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
        async for chunk in body_chunks(request, cap, "BadRequestImageBatch"):
            parser.write(chunk)
        parser.finalize()
    except ApiError:
        raise
    except Exception as exc:  # python-multipart raises its own error types for bad framing
        raise bad("BadRequestImageStream", f"Malformed multipart body: {exc}") from None
    return [Upload(source, bytes(data)) for source, data in parts]


def _too_many_images() -> ApiError:
    return bad("BadRequestImageBatch", f"A batch is limited to {MAX_IMAGES_PER_BATCH} images.")


async def _octet_stream_upload(request: Request, max_bytes: int) -> Upload:
    """Read a one-image body, keeping max_bytes + 1 of it (enough to tell it is too big)."""
    data = bytearray()
    async for chunk in body_chunks(
        request, max_bytes + IMAGE_FRAMING_BYTES, "BadRequestImageSizeBytes"
    ):
        data.extend(chunk[: max(0, max_bytes + 1 - len(data))])
    return Upload("", bytes(data))


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


ROUTES = [
    Route(f"{PROJECT_PATH}/images", get_images, methods=["GET"]),
    Route(f"{PROJECT_PATH}/images", create_images_from_data, methods=["POST"]),
    Route(f"{PROJECT_PATH}/images", delete_images, methods=["DELETE"]),
    Route(f"{PROJECT_PATH}/images/count", get_image_count, methods=["GET"]),
    Route(f"{PROJECT_PATH}/images/files", create_images_from_files, methods=["POST"]),
    Route(f"{PROJECT_PATH}/images/id", get_images_by_ids, methods=["GET"]),
    Route(f"{PROJECT_PATH}/images/metadata", update_image_metadata, methods=["POST"]),
    Route(f"{PROJECT_PATH}/images/tagged", get_tagged_images, methods=["GET"]),
    Route(f"{PROJECT_PATH}/images/tagged/count", get_tagged_count, methods=["GET"]),
    Route(f"{PROJECT_PATH}/images/tags", create_image_tags, methods=["POST"]),
    Route(f"{PROJECT_PATH}/images/tags", delete_image_tags, methods=["DELETE"]),
    Route(f"{PROJECT_PATH}/images/untagged", get_untagged_images, methods=["GET"]),
    Route(f"{PROJECT_PATH}/images/untagged/count", get_untagged_count, methods=["GET"]),
]
