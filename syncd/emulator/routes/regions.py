"""Regions (object detection): CreateImageRegions, DeleteImageRegions, and the parsing and shape
of a region that CreateImagesFromFiles and the image listings share.

Public names: `ROUTES`, `parse_region`, `region_json`.

How the emulator reads the spec (store/regions.py has the rest):
- A box is left/top/width/height normalized to the image: each coordinate a finite number,
  left and top at least 0, width and height more than 0, and the box inside the image
  (left + width and top + height at most 1, give or take `REGION_EDGE_TOLERANCE`). Anything else
  is 400 BadRequestImageRegions for the whole batch, before anything is written.
- Coordinates are kept as float32, as the service keeps them (the real service answers
  0.403186262 for 0.4031862745 [R RegionManipulation]), shown with the fewest digits that read
  back as the same float32 (so 0.1 stays 0.1).
- CreateImageRegions takes at most 64 entries (400 BadRequestExceededBatchSize past that) and
  answers 200 when every entry was created, else 207 («Otherwise, 207 (Multi-Status)»), with
  `created`, `duplicated` and `exceeded` always lists ([] when empty, as the service sends them).
- `created` entries carry their `tagName` (the spec makes it non-nullable), where the real service
  sent null [R RegionManipulation]: a client should not need it either way.
- DeleteImageRegions: `regionIds` required, at most 64; unknown ids are ignored; 204.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.limits import MAX_REGION_IDS, MAX_REGIONS_PER_BATCH, REGION_EDGE_TOLERANCE
from syncd.emulator.routes.common import (
    PROJECT_PATH,
    api,
    bad,
    id_list,
    json_body,
    parse_uuid,
    project_param,
    run,
    store_of,
)
from syncd.emulator.store.records import Box, ImageRegion, Region, RegionEntry

_COORDINATES = ("left", "top", "width", "height")


def _to_float32(value: float) -> float:
    rounded: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return rounded


def _float32(value: float) -> float:
    """value as the service keeps it (float32), written with the fewest digits that read back as
    the same float32 (0.1 stays 0.1; 0.4031862745 becomes 0.403186262)."""
    rounded = _to_float32(value)
    for digits in range(6, 9):
        short = float(f"{rounded:.{digits}g}")
        if _to_float32(short) == rounded:
            return short
    return float(f"{rounded:.9g}")  # 9 significant digits always read back as the same float32


def _coordinate(entry: dict[str, Any], name: str) -> float:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad("BadRequestImageRegions", f"Region {name} must be a number.")
    return float(value)


def parse_region(entry: Any) -> Region:
    """Read a Region (or the region part of an ImageRegionCreateEntry); raise 400
    BadRequestImageRegions unless its box is a normalized box inside the image."""
    if not isinstance(entry, dict):
        raise bad("BadRequestImageRegions", "Each region must be an object.")
    tag_id = parse_uuid(entry.get("tagId"), "tagId")
    left, top, width, height = (_coordinate(entry, name) for name in _COORDINATES)
    if left < 0 or top < 0 or width <= 0 or height <= 0:
        raise bad(
            "BadRequestImageRegions",
            "Region left and top must be at least 0, width and height more than 0.",
        )
    if left + width > 1 + REGION_EDGE_TOLERANCE or top + height > 1 + REGION_EDGE_TOLERANCE:
        raise bad(
            "BadRequestImageRegions",
            "Region coordinates are normalized: the box must lie inside the image"
            " (left + width and top + height at most 1).",
        )
    box: Box = (_float32(left), _float32(top), _float32(width), _float32(height))
    return Region(tag_id, box)


def region_json(region: ImageRegion) -> dict[str, Any]:
    """Shape an ImageRegion (the listings' `regions`)."""
    left, top, width, height = region.box
    return {
        "regionId": region.region_id,
        "tagName": region.tag_name,
        "created": region.created,
        "tagId": region.tag_id,
        "left": left,
        "top": top,
        "width": width,
        "height": height,
    }


def _entry_json(entry: RegionEntry) -> dict[str, Any]:
    left, top, width, height = entry.region.box
    return {
        "imageId": entry.image_id,
        "tagId": entry.region.tag_id,
        "left": left,
        "top": top,
        "width": width,
        "height": height,
    }


@api
async def create_image_regions(request: Request) -> Response:
    project_id = project_param(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("regions") or [], list):
        raise bad("BadRequest", "The body must be an ImageRegionCreateBatch.")
    raw = body.get("regions") or []
    if not raw:
        raise bad("BadRequestImageRegions", "The batch has no regions.")
    if len(raw) > MAX_REGIONS_PER_BATCH:
        raise bad(
            "BadRequestExceededBatchSize",
            f"A batch is limited to {MAX_REGIONS_PER_BATCH} regions.",
        )
    entries = []
    for item in raw:
        region = parse_region(item)
        entries.append(RegionEntry(parse_uuid(item.get("imageId"), "imageId"), region))
    result = await run(store_of(request).add_image_regions, project_id, entries)
    created = [{"imageId": image_id, **region_json(r)} for image_id, r in result.created]
    return JSONResponse(
        {
            "created": created,
            "duplicated": [_entry_json(e) for e in result.duplicated],
            "exceeded": [_entry_json(e) for e in result.exceeded],
        },
        status_code=200 if len(created) == len(entries) else 207,
    )


@api
async def delete_image_regions(request: Request) -> Response:
    project_id = project_param(request)
    region_ids = id_list(request, "regionIds", MAX_REGION_IDS, required=True)
    await run(store_of(request).remove_image_regions, project_id, region_ids)
    return Response(status_code=204)


ROUTES = [
    Route(f"{PROJECT_PATH}/images/regions", create_image_regions, methods=["POST"]),
    Route(f"{PROJECT_PATH}/images/regions", delete_image_regions, methods=["DELETE"]),
]
