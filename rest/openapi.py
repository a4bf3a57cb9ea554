"""``/openapi.json``, generated from the same Method/Param definitions that validate.

Every method becomes ``POST /<api>/<method>`` (JSON; methods with uploads also
multipart) and, for getters, ``GET`` with query parameters. Request schemas come
from the :class:`~rest.schema.Param` lists, result schemas from ``Method.result``
and the objects in :mod:`rest.object_schemas`; the service routes (health,
metrics, file downloads) are described in :data:`SERVICE_PATHS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rest.object_schemas import SCHEMAS
from rest.schema import Method

__all__ = ["SERVICE_PATHS", "openapi_document", "success_response"]

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


def success_response(result: Mapping[str, Any]) -> dict[str, Any]:
    """The 200 response of a call: ``{ok: true, result}``, ``result`` as described."""
    return {
        "description": "Success.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["ok", "result"],
                    "properties": {
                        "ok": {"type": "boolean", "enum": [True]},
                        "result": dict(result),
                    },
                }
            }
        },
    }


Security = Sequence[Sequence[str]]


def _operation(prefix: str, method: Method, security: Security, verb: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{prefix}.{method.name}.{verb}",
        "summary": method.summary or method.name,
        "security": [{scheme: [] for scheme in schemes} for schemes in security],
        "responses": {
            "200": success_response(method.result),
            **_error_responses(*ERROR_STATUSES),
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
        if method.multipart:
            content["multipart/form-data"] = {"schema": _multipart_schema(method)}
        op["requestBody"] = {"required": any(p.required for p in method.params), "content": content}
    return op


def _multipart_schema(method: Method) -> dict[str, Any]:
    """Form fields are text (ids, numbers, JSON objects); files are binary."""
    properties: dict[str, Any] = {}
    for p in method.params:
        if p.type == "file":
            properties[p.name] = {"type": "string", "format": "binary"}
        else:
            properties[p.name] = _query_schema(p.json_schema())
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [p.name for p in method.params if p.required]
    if required:
        schema["required"] = required
    return schema


def _query_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if "oneOf" in schema:
        return {"type": "string", "pattern": "^-?[0-9]{1,16}$"}
    if "$ref" in schema or schema.get("type") in ("object", "array"):
        return {"type": "string", "description": "JSON-encoded"}
    return schema


def _error_responses(*statuses: str) -> dict[str, Any]:
    return {
        status: {
            "description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _service(summary: str, ok: dict[str, Any], *errors: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": ok, **_error_responses(*errors)}}}


_STATUS_OK = success_response({"type": "object", "properties": {"status": {"type": "string"}}})


def _download(api: str, security: str, *errors: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": "Download a file by the file_path from getFile.",
            "operationId": f"{api}.file.get",
            "security": [{security: []}],
            "parameters": [
                {
                    "name": "file_path",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "file_path from getFile, e.g. photos/<file_id>.jpg",
                }
            ],
            "responses": {
                "200": {
                    "description": "The file's bytes.",
                    "content": {"application/octet-stream": {}},
                },
                **_error_responses("401", "404", *errors, "503"),
            },
        }
    }


SERVICE_PATHS: dict[str, Any] = {
    "/healthz": _service("The process is alive.", _STATUS_OK),
    "/readyz": _service("Redis is reachable and the process is not draining.", _STATUS_OK, "503"),
    "/metrics": _service(
        "Prometheus metrics.",
        {"description": "Metrics in the Prometheus text format.", "content": {"text/plain": {}}},
    ),
    "/openapi.json": _service(
        "This document.",
        {"description": "The OpenAPI document.", "content": {"application/json": {}}},
    ),
    "/bot/file/{file_path}": _download("bot", "botToken", "412"),
    "/client/file/{file_path}": _download("client", "userToken"),
}


def openapi_document(
    apis: Mapping[str, tuple[Mapping[str, Method], Security]], *, extra_paths: Mapping[str, Any]
) -> dict[str, Any]:
    """``apis``: path prefix -> (methods, security): the security is the ways to
    authenticate, each a list of schemes sent together (none: no token)."""
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
                "systemBotCitation": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Botgw-On-Behalf-Of",
                    "description": "with the system bot's token: 'message <chat_id> "
                    "<message_id>' or 'callback <callback_query_id>' of the user it acts for",
                },
            },
        },
    }
