"""Projects: GetProjects, CreateProject, GetProject, DeleteProject, UpdateProject.

Public names: `ROUTES`, `project_json`.

Project settings carry the spec's full shape. Where the spec is silent: `imageProcessingSettings`
is `{"augmentationMethods": {}}` (the spec names no transforms, so none are listed), and
`detectionParameters` («if any») is left out; an object detection project has no
`classificationType`; UpdateProject changes the name and the description
only (the settings are kept).
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
    parse_uuid,
    project_param,
    run,
    store_of,
)
from syncd.emulator.store.records import Project

CLASSIFICATION_TYPES = ("Multiclass", "Multilabel")
EXPORT_PLATFORMS = ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK")


@api
async def get_projects(request: Request) -> Response:
    return JSONResponse([project_json(p) for p in await run(store_of(request).projects)])


@api
async def create_project(request: Request) -> Response:
    q = request.query_params
    name = q.get("name")
    if name is None:
        raise bad("BadRequestProjectName", "name is required.")
    domain_id = q.get("domainId") or None
    if domain_id is not None:
        domain_id = parse_uuid(domain_id, "domainId")
    classification = choice_param(
        request,
        "classificationType",
        CLASSIFICATION_TYPES,
        None,
        "BadRequestProjectUnknownClassification",
    )
    platforms = [p.strip() for p in q.get("targetExportPlatforms", "").split(",") if p.strip()]
    for platform in platforms:
        if platform not in EXPORT_PLATFORMS:
            raise bad("BadRequestProjectUnsupportedExportPlatform", "Unknown export platform.")
    project = await run(
        store_of(request).create_project,
        name,
        q.get("description"),
        domain_id,
        classification,
        platforms,
    )
    return JSONResponse(project_json(project))


@api
async def get_project(request: Request) -> Response:
    return JSONResponse(project_json(await run(store_of(request).project, project_param(request))))


@api
async def delete_project(request: Request) -> Response:
    await run(store_of(request).delete_project, project_param(request))
    return Response(status_code=204)


@api
async def update_project(request: Request) -> Response:
    project_id = project_param(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad("BadRequest", "The body must be a Project.")
    name = body.get("name")
    description = body.get("description")
    if not isinstance(name, str | None) or not isinstance(description, str | None):
        raise bad("BadRequest", "name and description must be strings.")
    project = await run(store_of(request).update_project, project_id, name, description)
    return JSONResponse(project_json(project))


def project_json(project: Project) -> dict[str, Any]:
    settings: dict[str, Any] = {"domainId": project.domain_id}
    if project.classification_type is not None:  # absent for object detection projects
        settings["classificationType"] = project.classification_type
    settings |= {
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


ROUTES = [
    Route("/projects", get_projects, methods=["GET"]),
    Route("/projects", create_project, methods=["POST"]),
    Route(PROJECT_PATH, get_project, methods=["GET"]),
    Route(PROJECT_PATH, delete_project, methods=["DELETE"]),
    Route(PROJECT_PATH, update_project, methods=["PATCH"]),
]
