"""The API error and the response envelope shared by every REST surface.

``ApiError`` is raised anywhere in a handler and turned into the envelope by one
exception handler::

    {"ok": false, "error_code": 403, "code": "CHAT_FORBIDDEN",
     "description": "...", "parameters": {...}}

The HTTP status always equals ``error_code``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "error_envelope", "ok_envelope"]


class ApiError(Exception):
    """An error answered to the caller: HTTP status, UPPER_SNAKE code, what to fix."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        *,
        parameters: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.parameters = parameters
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.status, self.code, self.description, self.parameters)

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.description!r})"


def error_envelope(
    status: int, code: str, description: str, parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": status,
        "code": code,
        "description": description,
    }
    if parameters:
        body["parameters"] = parameters
    return body


def ok_envelope(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}
