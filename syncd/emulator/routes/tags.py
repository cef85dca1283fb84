"""Tags: GetTags, CreateTag, GetTag, DeleteTag, UpdateTag.

Public names: `ROUTES`, `TAG_TYPES`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.routes.common import (
    PROJECT_PATH,
    api,
    bad,
    choice_param,
    json_body,
    no_iteration,
    parse_uuid,
    project_param,
    run,
    store_of,
)
from syncd.emulator.store.records import Tag

TAG_TYPES = ("Regular", "Negative", "GeneralProduct")


@api
async def get_tags(request: Request) -> Response:
    project_id = project_param(request)
    no_iteration(request)
    return JSONResponse([tag_json(t) for t in await run(store_of(request).tags, project_id)])


@api
async def create_tag(request: Request) -> Response:
    project_id = project_param(request)
    name = request.query_params.get("name")
    if name is None:
        raise bad("BadRequestTagName", "name is required.")
    tag_type = choice_param(request, "type", TAG_TYPES, "Regular", "BadRequestTagType")
    description = request.query_params.get("description")
    tag = await run(store_of(request).create_tag, project_id, name, description, tag_type)
    return JSONResponse(tag_json(tag))


def _tag_param(request: Request) -> str:
    return parse_uuid(request.path_params["tag_id"], "tagId")


@api
async def get_tag(request: Request) -> Response:
    project_id, tag_id = project_param(request), _tag_param(request)
    no_iteration(request)
    return JSONResponse(tag_json(await run(store_of(request).tag, project_id, tag_id)))


@api
async def delete_tag(request: Request) -> Response:
    await run(store_of(request).delete_tag, project_param(request), _tag_param(request))
    return Response(status_code=204)


@api
async def update_tag(request: Request) -> Response:
    project_id, tag_id = project_param(request), _tag_param(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad("BadRequest", "The body must be a Tag.")
    current = await run(store_of(request).tag, project_id, tag_id)
    name = body.get("name", current.name)
    description = body.get("description", current.description)
    tag_type = body.get("type", current.type) or current.type
    if not isinstance(name, str):
        raise bad("BadRequestTagName", "name must be a string.")
    if not isinstance(description, str | None):
        raise bad("BadRequestTagDescription", "description must be a string.")
    if tag_type not in TAG_TYPES:
        raise bad("BadRequestTagType", f"type must be one of {', '.join(TAG_TYPES)}.")
    tag = await run(store_of(request).update_tag, project_id, tag_id, name, description, tag_type)
    return JSONResponse(tag_json(tag))


def tag_json(tag: Tag) -> dict[str, Any]:
    return {
        "id": tag.id,
        "name": tag.name,
        "description": tag.description,
        "type": tag.type,
        "imageCount": tag.image_count,
    }


ROUTES = [
    Route(f"{PROJECT_PATH}/tags", get_tags, methods=["GET"]),
    Route(f"{PROJECT_PATH}/tags", create_tag, methods=["POST"]),
    Route(PROJECT_PATH + "/tags/{tag_id}", get_tag, methods=["GET"]),
    Route(PROJECT_PATH + "/tags/{tag_id}", delete_tag, methods=["DELETE"]),
    Route(PROJECT_PATH + "/tags/{tag_id}", update_tag, methods=["PATCH"]),
]
