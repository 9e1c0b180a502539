"""SCIM's discovery documents (RFC 7643 §5-7): what jitpam's SCIM service provider supports.

Only the attributes jitpam keeps are published: a client builds its models from these.
"""

from __future__ import annotations

from typing import Any

from jitpam.domain.scim import GROUP_SCHEMA, MAX_RESULTS, USER_SCHEMA

SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def _attr(
    name: str,
    type_: str = "string",
    *,
    description: str = "",
    multi: bool = False,
    required: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    case_exact: bool = False,
    sub: list[dict[str, Any]] | None = None,
    canonical: list[str] | None = None,
    references: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "type": type_,
        "multiValued": multi,
        "description": description or name,
        "required": required,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": returned,
        "uniqueness": uniqueness,
    }
    if sub is not None:
        out["subAttributes"] = sub
    if canonical is not None:
        out["canonicalValues"] = canonical
    if references is not None:
        out["referenceTypes"] = references
    return out


def _ro(name: str, type_: str = "string", **kw: Any) -> dict[str, Any]:
    return _attr(name, type_, mutability="readOnly", **kw)


USER = {
    "id": USER_SCHEMA,
    "name": "User",
    "description": "A person of the organization (jitpam keeps these attributes only)",
    "attributes": [
        _attr(
            "userName",
            description="The UPN: email-style, in a domain the organization owns",
            required=True,
            uniqueness="server",
        ),
        _attr("displayName", description="The name shown for the user", required=True),
        _attr(
            "emails",
            "complex",
            description="The user's email: jitpam keeps one, the primary one sent (or the first), "
            "and returns it as the work email",
            multi=True,
            required=True,
            sub=[
                _attr("value", description="The email address", required=True),
                _attr("type", description="Always work", canonical=["work"]),
            ],
        ),
        _attr(
            "active",
            "boolean",
            description="False disables the user: their grants are revoked",
            required=True,
        ),
    ],
}

GROUP = {
    "id": GROUP_SCHEMA,
    "name": "Group",
    "description": "A group of users (an approver group only when the organization opted in)",
    "attributes": [
        _attr(
            "displayName",
            description="The group's name, unique in the organization",
            required=True,
            uniqueness="server",
        ),
        _attr(
            "members",
            "complex",
            description="The group's users (jitpam has no nested groups)",
            multi=True,
            sub=[
                _attr(
                    "value",
                    description="The member's id",
                    mutability="immutable",
                    case_exact=True,
                ),
                _attr(
                    "$ref",
                    "reference",
                    description="The member's URI",
                    mutability="immutable",
                    references=["User"],
                ),
                _attr(
                    "type",
                    description="Always User",
                    mutability="immutable",
                    canonical=["User"],
                ),
            ],
        ),
    ],
}

_SUB_ATTRIBUTES = [
    _ro("name", case_exact=True),
    _ro(
        "type",
        canonical=["string", "boolean", "decimal", "integer", "dateTime", "reference", "complex"],
    ),
    _ro("multiValued", "boolean"),
    _ro("description"),
    _ro("required", "boolean"),
    _ro("canonicalValues", multi=True),
    _ro("caseExact", "boolean"),
    _ro("mutability", canonical=["readOnly", "readWrite", "immutable", "writeOnly"]),
    _ro("returned", canonical=["always", "never", "default", "request"]),
    _ro("uniqueness", canonical=["none", "server", "global"]),
    _ro("referenceTypes", multi=True),
]

SCHEMA = {
    "id": SCHEMA_SCHEMA,
    "name": "Schema",
    "description": "Specifies the schema attribute",
    "attributes": [
        _ro("id", required=True, case_exact=True),
        _ro("name"),
        _ro("description"),
        _ro(
            "attributes",
            "complex",
            multi=True,
            required=True,
            sub=[
                *_SUB_ATTRIBUTES,
                _ro("subAttributes", "complex", multi=True, sub=_SUB_ATTRIBUTES),
            ],
        ),
    ],
}

RESOURCE_TYPE = {
    "id": RESOURCE_TYPE_SCHEMA,
    "name": "ResourceType",
    "description": "Specifies the schema that describes a SCIM resource type",
    "attributes": [
        _ro("id", case_exact=True),
        _ro("name", required=True),
        _ro("description"),
        _ro("endpoint", "reference", required=True, references=["uri"]),
        _ro("schema", "reference", required=True, case_exact=True, references=["uri"]),
        _ro(
            "schemaExtensions",
            "complex",
            multi=True,
            sub=[
                _ro("schema", "reference", required=True, case_exact=True, references=["uri"]),
                _ro("required", "boolean", required=True),
            ],
        ),
    ],
}


def _supported(name: str, *more: dict[str, Any]) -> dict[str, Any]:
    return _ro(
        name, "complex", required=True, sub=[_ro("supported", "boolean", required=True), *more]
    )


SERVICE_PROVIDER_CONFIG = {
    "id": SPC_SCHEMA,
    "name": "Service Provider Configuration",
    "description": "Schema for representing the service provider's configuration",
    "attributes": [
        _ro("documentationUri", "reference", references=["external"]),
        _supported("patch"),
        _supported(
            "bulk",
            _ro("maxOperations", "integer", required=True),
            _ro("maxPayloadSize", "integer", required=True),
        ),
        _supported("filter", _ro("maxResults", "integer", required=True)),
        _supported("changePassword"),
        _supported("sort"),
        _supported("etag"),
        _ro(
            "authenticationSchemes",
            "complex",
            multi=True,
            required=True,
            sub=[
                _ro("type", required=True),
                _ro("name", required=True),
                _ro("description", required=True),
                _ro("specUri", "reference", references=["external"]),
                _ro("documentationUri", "reference", references=["external"]),
                _ro("primary", "boolean"),
            ],
        ),
    ],
}

SCHEMAS = [USER, GROUP, SCHEMA, RESOURCE_TYPE, SERVICE_PROVIDER_CONFIG]
RESOURCE_TYPES = [
    {
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "schema": USER_SCHEMA,
        "description": "People of the organization",
    },
    {
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "schema": GROUP_SCHEMA,
        "description": "Groups of users",
    },
]


def schema_document(schema: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA_SCHEMA],
        **schema,
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{schema['id']}"},
    }


def resource_type_document(rt: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        **rt,
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{rt['id']}"},
    }


def service_provider_config(base: str, docs: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": docs,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A jitpam API token of an application account holding "
                "jitpam\\Directory Sync",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }
