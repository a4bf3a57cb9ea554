"""The two wire dialects of ids (docs/design.md, Identifiers).

Objects are built with integer ids. The native dialect writes every id as a decimal
string (clients treat ids as opaque); the Telegram dialect keeps JSON numbers. An id
is any integer under a key named ``id`` or ending in ``_id``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_id_key", "native_ids"]


# integers named like ids that are not ids (indexes into a list)
_NOT_IDS = frozenset({"correct_option_id"})


def is_id_key(key: str) -> bool:
    return (key == "id" or key.endswith("_id")) and key not in _NOT_IDS


def native_ids(value: Any) -> Any:
    """A copy of ``value`` with integer ids turned into decimal strings."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if type(item) is int and isinstance(key, str) and is_id_key(key):
                out[key] = str(item)
            elif isinstance(item, dict | list):
                out[key] = native_ids(item)
            else:
                out[key] = item
        return out
    if isinstance(value, list):
        return [native_ids(item) for item in value]
    return value
