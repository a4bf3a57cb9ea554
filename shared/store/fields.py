"""Values as Redis gives them back (bytes, or text from a script) in the forms the
records want: bytes, text, a hash of text fields."""

from __future__ import annotations

from typing import Any

__all__ = ["Fields", "as_bytes", "as_text", "text_fields"]

# redis-py's hash mappings are invariant in their key type: build them as this
Fields = dict[Any, Any]


def as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def text_fields(raw: dict[Any, Any]) -> dict[str, str]:
    """A hash reply (HGETALL) with its field names and values as text."""
    return {as_text(k): as_text(v) for k, v in raw.items()}
