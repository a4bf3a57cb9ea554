"""Wire and storage codecs: JSON through orjson, compact storage through msgpack."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson

__all__ = [
    "CodecError",
    "json_dumps",
    "json_loads",
    "pack",
    "unpack",
]


class CodecError(ValueError):
    """Raised when bytes cannot be decoded into a value."""


def json_dumps(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON."""
    return orjson.dumps(value)


def json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON, raising :class:`CodecError` with orjson's reason on bad input."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(str(exc)) from None


def pack(value: Any) -> bytes:
    """Encode ``value`` as msgpack (compact storage and the msgpack wire encoding)."""
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def pack_open_map(fields: dict[str, Any], last_key: str) -> bytes:
    """A msgpack map of ``fields`` plus ``last_key`` whose value is left to be appended
    (by a Lua script that only knows it then, e.g. a new message id)."""
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_map_header(len(fields) + 1)]
    for key, value in fields.items():
        parts.append(packer.pack(key))
        parts.append(packer.pack(value))
    parts.append(packer.pack(last_key))
    return b"".join(parts)


def unpack(data: bytes) -> Any:
    """Decode msgpack, raising :class:`CodecError` on bad input."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CodecError(f"invalid msgpack: {exc}") from None
    except Exception as exc:  # msgpack raises assorted errors on garbage input
        raise CodecError(f"invalid msgpack: {exc}") from None
