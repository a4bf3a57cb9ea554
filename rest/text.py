"""Message entities computed for user text, as Telegram reports them.

Offsets and lengths are in UTF-16 code units, since client libraries slice text
that way to route commands.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_entities", "utf16_len"]

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("url", re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", re.IGNORECASE)),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    ("bot_command", re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z][A-Za-z0-9_]{2,31})?")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{2,31}\b")),
    ("hashtag", re.compile(r"(?<![\w#])#\w{1,64}")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{1,8}\b")),
)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_entities(text: str) -> list[dict[str, Any]]:
    """Entities in ``text``, non-overlapping, in order of offset."""
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in spans):
                continue
            spans.append((start, end, kind))
    spans.sort()
    entities = []
    for start, end, kind in spans:
        entities.append(
            {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}
        )
    return entities
