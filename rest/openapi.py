"""``/openapi.json``, generated from the same Method/Param definitions that validate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest.objects import SCHEMAS
from rest.schema import Method

__all__ = ["openapi_document"]

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "error_code", "code", "description"],
    "properties": {
        "ok": {"type": "boolean", "enum": [False]},
        "error_code": {"type": "integer"},
        "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
        "description": {"type": "string"},
        "parameters": {"type": "object"},
    },
}

ERROR_STATUSES = {
    "400": "The request is wrong; the description says what to fix.",
    "401": "Missing or invalid token.",
    "403": "Not allowed.",
    "404": "No such object.",
    "405": "Wrong HTTP method.",
    "409": "Conflict.",
    "412": "The bot is inactive.",
    "413": "Too large.",
    "429": "Rate limited; retry after parameters.retry_after seconds.",
    "503": "The backend is unavailable.",
}


def _request_schema(method: Method) -> dict[str, Any]:
    required = [p.name for p in method.params if p.required]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {p.name: p.json_schema() for p in method.params},
    }
    if required:
        schema["required"] = required
    return schema


def _operation(prefix: str, method: Method, security: str, verb: str) -> dict[str, Any]:
    errors = {
        status: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, text in ERROR_STATUSES.items()
    }
    op: dict[str, Any] = {
        "operationId": f"{prefix}.{method.name}.{verb}",
        "summary": method.summary or method.name,
        "security": [{security: []}],
        "responses": {
            "200": {
                "description": "Success.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["ok", "result"],
                            "properties": {
                                "ok": {"type": "boolean", "enum": [True]},
                                "result": dict(method.result) or {},
                            },
                        }
                    }
                },
            },
            **errors,
        },
    }
    if verb == "get":
        op["parameters"] = [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "schema": _query_schema(p.json_schema()),
            }
            for p in method.params
        ]
    else:
        content: dict[str, Any] = {"application/json": {"schema": _request_schema(method)}}
        op["requestBody"] = {"required": any(p.required for p in method.params), "content": content}
    return op


def _query_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if "oneOf" in schema:
        return {"type": "string", "pattern": "^-?[0-9]{1,16}$"}
    if schema.get("type") in ("object", "array"):
        return {"type": "string", "description": "JSON-encoded"}
    return schema


def openapi_document(
    apis: Mapping[str, tuple[Mapping[str, Method], str]], *, extra_paths: Mapping[str, Any]
) -> dict[str, Any]:
    """``apis``: path prefix -> (methods, security scheme name)."""
    paths: dict[str, Any] = {}
    for prefix, (methods, security) in apis.items():
        for method in methods.values():
            item: dict[str, Any] = {"post": _operation(prefix, method, security, "post")}
            if method.getter:
                item["get"] = _operation(prefix, method, security, "get")
            paths[f"/{prefix}/{method.name}"] = item
    paths.update(extra_paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "botgw",
            "version": "1",
            "description": "Bot API (native dialect), client API and management API.",
        },
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, "Error": ERROR},
            "securitySchemes": {
                "botToken": {"type": "http", "scheme": "bearer", "description": "bot token"},
                "userToken": {"type": "http", "scheme": "bearer", "description": "user token"},
            },
        },
    }
