"""Domains: GetDomains, GetDomain, over the real domain ids (store.records.DOMAINS).

Public names: `ROUTES`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.routes.common import api, parse_uuid
from syncd.emulator.store import ApiError
from syncd.emulator.store.records import DOMAINS, Domain


@api
async def get_domains(request: Request) -> Response:
    return JSONResponse([domain_json(d) for d in DOMAINS])


@api
async def get_domain(request: Request) -> Response:
    domain_id = parse_uuid(request.path_params["domain_id"], "domainId")
    for domain in DOMAINS:
        if domain.id == domain_id:
            return JSONResponse(domain_json(domain))
    raise ApiError(404, "NotFoundDomain", "Domain not found.")


def domain_json(domain: Domain) -> dict[str, Any]:
    return {
        "id": domain.id,
        "name": domain.name,
        "type": domain.type,
        "exportable": domain.exportable,
        "enabled": True,
    }


ROUTES = [
    Route("/domains", get_domains, methods=["GET"]),
    Route("/domains/{domain_id}", get_domain, methods=["GET"]),
]
