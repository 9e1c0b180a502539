"""SCIM 2.0 (RFC 7644) at ``/scim/v2``: the identity provider's way in, as thin routes.

Mounted as an application of its own so that every answer under ``/scim/v2`` speaks SCIM: the
media type ``application/scim+json``, and every error (401, 403, 404, 405, 409, 413, input
errors, 500) as a SCIM Error body. It is not part of the OpenAPI document (its contract is RFC
7644's, published by its own discovery endpoints); docs/reference.md describes it.

The caller is the bearer token's application account (``jitpam\\Directory Sync``); the
organization is the token's. Each change is a use case of ``services/scim.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from jitpam.api.deps import calls
from jitpam.api.scim_schemas import (
    RESOURCE_TYPES,
    SCHEMAS,
    resource_type_document,
    schema_document,
    service_provider_config,
)
from jitpam.domain.directory import Group, User
from jitpam.domain.errors import (
    AlreadyExists,
    ApproverGroupNotSynced,
    ErrorKind,
    JitpamError,
)
from jitpam.domain.scim import (
    ERROR_SCHEMA,
    GROUP_SCHEMA,
    LIST_SCHEMA,
    USER_SCHEMA,
    Filter,
    ScimInvalid,
    group_from_resource,
    page_bounds,
    parse_filter,
    parse_patch,
    user_from_resource,
)
from jitpam.domain.text import unstorable
from jitpam.domain.timeutil import iso
from jitpam.services import scim
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import Stamped

PREFIX = "/scim/v2"
MEDIA_TYPE = "application/scim+json"
DOCS = "https://github.com/jitpam/jitpam/blob/main/docs/reference.md#scim"
T = TypeVar("T")

_STATUS = {
    ErrorKind.INVALID: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.RATE_LIMITED: 429,
}


class ScimResponse(JSONResponse):
    media_type = MEDIA_TYPE


def error(status: int, detail: str, scim_type: str | None = None) -> Response:
    """A SCIM Error body (RFC 7644 §3.12): the status as a string, ``scimType`` where the RFC
    defines one."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type is not None:
        body["scimType"] = scim_type
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ScimResponse(body, status_code=status, headers=headers)


async def _on_domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, JitpamError)
    status = _STATUS[exc.kind]
    scim_type = None
    if isinstance(exc, ScimInvalid):
        scim_type = exc.scim_type
    elif isinstance(exc, ApproverGroupNotSynced):
        status, scim_type = 400, "mutability"
    elif isinstance(exc, AlreadyExists):
        scim_type = "uniqueness"
    elif status == 400:
        scim_type = "invalidValue"
    return error(status, exc.message, scim_type)


async def _on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {
        404: "no such SCIM endpoint or resource",
        405: "this endpoint does not take that method",
    }.get(exc.status_code, str(exc.detail))
    return error(exc.status_code, detail)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    del exc
    return error(400, "the request is malformed", "invalidSyntax")


async def _on_unexpected_error(_: Request, exc: Exception) -> Response:
    del exc
    return error(500, "the server failed to handle this request")


def base_url(request: Request) -> str:
    """The absolute URL of ``/scim/v2`` as the client reached it."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        doc = json.loads(raw)
        _refuse_unstorable(doc)
    except (ValueError, UnicodeDecodeError):
        raise ScimInvalid("the body is not valid JSON", "invalidSyntax") from None
    except RecursionError:
        raise ScimInvalid("the body is nested too deeply", "invalidSyntax") from None
    return doc


def _refuse_unstorable(doc: Any) -> None:
    if isinstance(doc, str):
        problem = unstorable(doc)
        if problem is not None:
            raise ScimInvalid(f"the request contains {problem}, which jitpam does not accept")
    elif isinstance(doc, Mapping):
        for key, value in doc.items():
            _refuse_unstorable(key)
            _refuse_unstorable(value)
    elif isinstance(doc, list):
        for value in doc:
            _refuse_unstorable(value)


async def _run(request: Request, work: Callable[[ServiceContext, Caller], T], *, writes: bool) -> T:
    return await (await calls(request)).run(work, writes=writes)


def _meta(request: Request, kind: str, ident: str, stamped: Stamped[Any]) -> dict[str, Any]:
    created: datetime = stamped.created
    return {
        "resourceType": kind,
        "created": iso(created),
        "lastModified": iso(stamped.modified or created),
        "location": f"{base_url(request)}/{kind}s/{ident}",
    }


def user_resource(request: Request, stamped: Stamped[User]) -> dict[str, Any]:
    u = stamped.item
    doc: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": str(u.id)}
    if u.external_id is not None:
        doc["externalId"] = u.external_id
    doc |= {
        "userName": u.upn,
        "displayName": u.display_name,
        "emails": [{"value": u.email, "type": "work"}],
        "active": u.enabled,
        "meta": _meta(request, "User", str(u.id), stamped),
    }
    return doc


def group_resource(request: Request, stamped: Stamped[Group]) -> dict[str, Any]:
    g = stamped.item
    base = base_url(request)
    doc: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": str(g.id)}
    if g.external_id is not None:
        doc["externalId"] = g.external_id
    doc |= {
        "displayName": g.name,
        "members": [
            {"value": str(m), "$ref": f"{base}/Users/{m}", "type": "User"}
            for m in sorted(g.member_ids, key=str)
        ],
        "meta": _meta(request, "Group", str(g.id), stamped),
    }
    return doc


_ALWAYS = {"id", "schemas"}


def _names(text: str | None, schema: str) -> set[str]:
    """The top-level attribute names of an ``attributes``/``excludedAttributes`` parameter."""
    out = set()
    for part in (text or "").split(","):
        name = part.strip()
        if name.lower().startswith(schema.lower() + ":"):
            name = name[len(schema) + 1 :]
        if name:
            out.add(name.split(".")[0].lower())
    return out


def shaped(doc: dict[str, Any], request: Request, schema: str) -> dict[str, Any]:
    """``doc`` with the attributes the query asks for (RFC 7644 §3.9): ``attributes`` keeps
    those (and id), ``excludedAttributes`` leaves those out (never id)."""
    wanted = _names(request.query_params.get("attributes"), schema)
    excluded = _names(request.query_params.get("excludedAttributes"), schema)
    if wanted:
        return {k: v for k, v in doc.items() if k.lower() in wanted | _ALWAYS}
    if excluded:
        return {k: v for k, v in doc.items() if k.lower() not in excluded - _ALWAYS}
    return doc


def _int(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ScimInvalid(f"{name} must be an integer") from None


def _listing(total: int, resources: list[dict[str, Any]], start: int) -> ScimResponse:
    return ScimResponse(
        {
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


def _query(request: Request, resource: str) -> tuple[Filter | None, int, int]:
    for value in request.query_params.values():
        _refuse_unstorable(value)
    text = request.query_params.get("filter")
    where = parse_filter(text, resource=resource) if text else None
    offset, limit = page_bounds(_int(request, "startIndex"), _int(request, "count"))
    return where, offset, limit


def create_scim_app() -> FastAPI:
    """The SCIM application, mounted at ``/scim/v2`` by ``create_app`` (which gives it the
    runtime)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(JitpamError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected_error)

    # ------------------------------------------------------------------ discovery
    @app.get("/ServiceProviderConfig")
    async def service_provider(request: Request) -> Response:
        await calls(request)  # a bearer token is needed, as everywhere under /scim/v2
        return ScimResponse(service_provider_config(base_url(request), DOCS))

    @app.get("/ResourceTypes")
    async def resource_types(request: Request) -> Response:
        await calls(request)
        docs = [resource_type_document(rt, base_url(request)) for rt in RESOURCE_TYPES]
        return _listing(len(docs), docs, 1)

    @app.get("/ResourceTypes/{name}")
    async def resource_type(name: str, request: Request) -> Response:
        await calls(request)
        for rt in RESOURCE_TYPES:
            if rt["id"] == name:
                return ScimResponse(resource_type_document(rt, base_url(request)))
        return error(404, f"no resource type {name!r}")

    @app.get("/Schemas")
    async def schemas(request: Request) -> Response:
        await calls(request)
        docs = [schema_document(s, base_url(request)) for s in SCHEMAS]
        return _listing(len(docs), docs, 1)

    @app.get("/Schemas/{urn}")
    async def schema(urn: str, request: Request) -> Response:
        await calls(request)
        for s in SCHEMAS:
            if s["id"] == urn:
                return ScimResponse(schema_document(s, base_url(request)))
        return error(404, f"no schema {urn!r}")

    @app.post("/.search")
    @app.post("/Users/.search")
    @app.post("/Groups/.search")
    async def search(request: Request) -> Response:
        await calls(request)
        return error(501, "searching with POST is not supported: use GET with a filter")

    # ------------------------------------------------------------------ users
    @app.get("/Users")
    async def list_users(request: Request) -> Response:
        where, offset, limit = _query(request, "users")
        total, found = await _run(
            request,
            lambda ctx, caller: scim.list_users(
                ctx, caller=caller, where=where, offset=offset, limit=limit
            ),
            writes=False,
        )
        docs = [shaped(user_resource(request, u), request, USER_SCHEMA) for u in found]
        return _listing(total, docs, offset + 1)

    @app.post("/Users")
    async def create_user(request: Request) -> Response:
        fields = user_from_resource(await _body(request))
        made = await _run(
            request, lambda ctx, c: scim.create_user(ctx, caller=c, fields=fields), writes=True
        )
        doc = shaped(user_resource(request, made), request, USER_SCHEMA)
        return ScimResponse(
            doc, status_code=201, headers={"Location": doc_location(made, request, "User")}
        )

    @app.get("/Users/{user_id}")
    async def get_user(user_id: str, request: Request) -> Response:
        _query(request, "users")
        found = await _run(
            request, lambda ctx, c: scim.get_user(ctx, caller=c, user_id=user_id), writes=False
        )
        return ScimResponse(shaped(user_resource(request, found), request, USER_SCHEMA))

    @app.put("/Users/{user_id}")
    async def replace_user(user_id: str, request: Request) -> Response:
        fields = user_from_resource(await _body(request))
        done = await _run(
            request,
            lambda ctx, c: scim.replace_user(ctx, caller=c, user_id=user_id, fields=fields),
            writes=True,
        )
        return ScimResponse(shaped(user_resource(request, done), request, USER_SCHEMA))

    @app.patch("/Users/{user_id}")
    async def modify_user(user_id: str, request: Request) -> Response:
        ops = parse_patch(await _body(request), schema=USER_SCHEMA)
        done = await _run(
            request,
            lambda ctx, c: scim.modify_user(ctx, caller=c, user_id=user_id, operations=ops),
            writes=True,
        )
        return ScimResponse(shaped(user_resource(request, done), request, USER_SCHEMA))

    @app.delete("/Users/{user_id}", status_code=204)
    async def delete_user(user_id: str, request: Request) -> Response:
        await _run(
            request, lambda ctx, c: scim.delete_user(ctx, caller=c, user_id=user_id), writes=True
        )
        return Response(status_code=204)

    # ------------------------------------------------------------------ groups
    @app.get("/Groups")
    async def list_groups(request: Request) -> Response:
        where, offset, limit = _query(request, "groups")
        total, found = await _run(
            request,
            lambda ctx, caller: scim.list_groups(
                ctx, caller=caller, where=where, offset=offset, limit=limit
            ),
            writes=False,
        )
        docs = [shaped(group_resource(request, g), request, GROUP_SCHEMA) for g in found]
        return _listing(total, docs, offset + 1)

    @app.post("/Groups")
    async def create_group(request: Request) -> Response:
        fields = group_from_resource(await _body(request))
        made = await _run(
            request, lambda ctx, c: scim.create_group(ctx, caller=c, fields=fields), writes=True
        )
        doc = shaped(group_resource(request, made), request, GROUP_SCHEMA)
        return ScimResponse(
            doc, status_code=201, headers={"Location": doc_location(made, request, "Group")}
        )

    @app.get("/Groups/{group_id}")
    async def get_group(group_id: str, request: Request) -> Response:
        _query(request, "groups")
        found = await _run(
            request, lambda ctx, c: scim.get_group(ctx, caller=c, group_id=group_id), writes=False
        )
        return ScimResponse(shaped(group_resource(request, found), request, GROUP_SCHEMA))

    @app.put("/Groups/{group_id}")
    async def replace_group(group_id: str, request: Request) -> Response:
        fields = group_from_resource(await _body(request))
        done = await _run(
            request,
            lambda ctx, c: scim.replace_group(ctx, caller=c, group_id=group_id, fields=fields),
            writes=True,
        )
        return ScimResponse(shaped(group_resource(request, done), request, GROUP_SCHEMA))

    @app.patch("/Groups/{group_id}")
    async def modify_group(group_id: str, request: Request) -> Response:
        ops = parse_patch(await _body(request), schema=GROUP_SCHEMA)
        done = await _run(
            request,
            lambda ctx, c: scim.modify_group(ctx, caller=c, group_id=group_id, operations=ops),
            writes=True,
        )
        return ScimResponse(shaped(group_resource(request, done), request, GROUP_SCHEMA))

    @app.delete("/Groups/{group_id}", status_code=204)
    async def delete_group(group_id: str, request: Request) -> Response:
        await _run(
            request, lambda ctx, c: scim.delete_group(ctx, caller=c, group_id=group_id), writes=True
        )
        return Response(status_code=204)

    return app


def doc_location(stamped: Stamped[Any], request: Request, kind: str) -> str:
    return f"{base_url(request)}/{kind}s/{stamped.item.id}"
