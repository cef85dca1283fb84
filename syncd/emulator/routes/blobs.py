"""Image bytes behind the image URIs: `/emulator/blobs/<token>/<kind>`, no key needed.

Public names: `ROUTES`, `blob_uri`.

Like SAS URLs they need no key: the random token is the credential. URIs are built on the base URL
of the request that listed them, so they work over HTTP and in-process alike. `resized` and
`thumbnail` serve the original bytes (no resizing without Pillow; still a real image).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.emulator.imageinfo import CONTENT_TYPES
from syncd.emulator.routes.common import error, run, store_of

BLOB_PREFIX = "/emulator/blobs"


def blob_uri(base: str, token: str, kind: str) -> str:
    """The URI of an image's bytes (kind: original, resized or thumbnail) on base."""
    return f"{base}{BLOB_PREFIX}/{token}/{kind}"


async def get_blob(request: Request) -> Response:
    if request.path_params["kind"] not in ("original", "resized", "thumbnail"):
        return error(404, "NotFound", "No such blob.")
    found = await run(store_of(request).blob, request.path_params["token"])
    if found is None:
        return error(404, "NotFound", "No such blob.")
    data, fmt = found
    return Response(data, media_type=CONTENT_TYPES[fmt])


ROUTES = [Route(BLOB_PREFIX + "/{token}/{kind}", get_blob, methods=["GET"])]
