"""The client scrubs the key out of everything the service says, before anything else sees it.

A hostile server echoes the key it received (from the Training-Key header) in every form
(tests/support/key_echo.py) inside error codes, error messages, a non-JSON body cut so the cut
lands inside the key, and the names of projects, tags and iterations; nothing the client returns
or raises holds any form of it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from syncd.api.errors import ApiError, ServiceUnavailableError
from tests.api.conftest import make_client
from tests.support import TEST_KEY
from tests.support.hostile import HostileServer, Reply, Request
from tests.support.key_echo import echo_text, leaks

PROJECT = str(uuid.uuid4())


def _echo(request: Request) -> str:
    return echo_text(request.headers.get("training-key", ""))


def _script(request: Request) -> Reply:
    echoed = _echo(request)
    key = request.headers.get("training-key", "")
    path = request.path
    if request.method == "GET" and path.endswith(f"/projects/{PROJECT}/tags"):
        tag = {"id": str(uuid.uuid4()), "name": f"tag {echoed}", "type": "Regular"}
        return Reply(json=[tag, {**tag, "id": str(uuid.uuid4()), "name": key}])
    if path.endswith(f"/projects/{PROJECT}"):
        return Reply(json={"id": PROJECT, "name": echoed, "description": echoed, "settings": {}})
    if path.endswith("/projects"):
        return Reply(json=[{"id": PROJECT, "name": key, "description": None, "settings": {}}])
    if path.endswith(f"/projects/{PROJECT}/iterations"):
        return Reply(json=[{"id": str(uuid.uuid4()), "name": echoed, "status": "Completed"}])
    if "/images/count" in path:  # a non-JSON 500 whose text is cut at 300 characters
        filler = "x" * (300 - len(key) // 2)
        return Reply(500, body=f"{filler}{key} and then {echoed}".encode())
    if "/projects/" in path and "/tags/" in path:  # a JSON error with the key in its code too
        return Reply(404, json={"code": f"NotFoundTag{key}", "message": echoed})
    return Reply(400, json={"error": {"code": echoed, "message": echoed}})


def _assert_clean(what: str, *texts: Any) -> None:
    for text in texts:
        found = leaks(str(text), TEST_KEY)
        assert not found, f"{what}: the key is in {text!r} as {found}"


@pytest.mark.anyio
async def test_names_parsed_from_the_service_hold_no_form_of_the_key() -> None:
    with HostileServer(_script) as bad:
        async with make_client(bad.url, max_attempts=1) as client:
            project = await client.get_project(PROJECT)
            projects = await client.list_projects()
            tags = await client.list_tags(PROJECT)
            iterations = await client.list_iterations(PROJECT)
    assert "***" in project.name
    _assert_clean("project", project.name, project.description, repr(project))
    _assert_clean("projects", [p.name for p in projects])
    _assert_clean("tags", [t.name for t in tags], repr(tags))
    _assert_clean("iterations", [i.name for i in iterations])


@pytest.mark.anyio
async def test_errors_hold_no_form_of_the_key_in_code_message_or_text() -> None:
    with HostileServer(_script) as bad:
        async with make_client(bad.url, max_attempts=1) as client:
            errors: list[ApiError] = []
            for call in (
                lambda: client.delete_tag(PROJECT, uuid.uuid4()),
                lambda: client.count_images(PROJECT),
                lambda: client.create_tag(PROJECT, "x"),
            ):
                with pytest.raises(ApiError) as caught:
                    await call()
                errors.append(caught.value)
    assert isinstance(errors[1], ServiceUnavailableError)
    for error in errors:
        _assert_clean(
            type(error).__name__, error.code, error.service_message, str(error), repr(error)
        )
        assert len(error.service_message) <= 300 and len(error.code or "") <= 100
    assert "***" in errors[0].service_message and errors[0].code == "NotFoundTag***"
