"""Message text and its entities, as Telegram reports them.

Offsets and lengths are in UTF-16 code units, since client libraries slice text
that way to route commands. Three sources of entities:

* :func:`parse_entities` finds what Telegram detects on its own in any text
  (``bot_command``, ``mention``, ``url``, ``email``, ``hashtag``, ``cashtag``);
* :func:`parse_formatted` turns ``parse_mode`` text (``HTML``, ``MarkdownV2``,
  ``Markdown``) into plain text and formatting entities, or raises
  :class:`FormattingError` saying where the markup is wrong;
* :func:`check_entities` validates entities a bot passed explicitly.

:func:`compose_entities` merges formatting with the detected ones.
"""

from __future__ import annotations

import html
import re
from typing import Any

from shared.errors import ApiError

__all__ = [
    "ENTITY_TYPES",
    "FormattingError",
    "check_entities",
    "compose_entities",
    "formatted",
    "parse_entities",
    "parse_formatted",
    "utf16_len",
    "utf16_slice",
]

# Entities that only style text; Telegram detects the others inside them.
_STYLES = (
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "blockquote",
    "expandable_blockquote",
)
ENTITY_TYPES = (
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    *_STYLES,
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
)

# Entities inside which Telegram detects nothing else, and which never overlap.
_EXCLUSIVE = frozenset(ENTITY_TYPES) - frozenset(_STYLES)

# (entity type, a string every match contains, pattern), in order of precedence:
# a pattern runs only on text holding its string, so plain text costs no search
_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("url", "://", re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", re.IGNORECASE)),
    ("email", "@", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    (
        "bot_command",
        "/",
        re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z][A-Za-z0-9_]{2,31})?"),
    ),
    ("mention", "@", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{2,31}\b")),
    ("hashtag", "#", re.compile(r"(?<![\w#])#\w{1,64}")),
    ("cashtag", "$", re.compile(r"(?<![\w$])\$[A-Z]{1,8}\b")),
)


class FormattingError(ValueError):
    """``parse_mode`` text whose markup cannot be parsed; the message says where."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf16_slice(text: str, offset: int, length: int) -> str:
    """The part of ``text`` an entity covers (offset and length in UTF-16 units)."""
    data = text.encode("utf-16-le")
    return data[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="replace")


def _entity(kind: str, offset: int, length: int, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _sorted(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Telegram's order: by offset, the enclosing (longer) entity first
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def parse_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram detects in ``text``, non-overlapping, in order of offset."""
    spans: list[tuple[int, int, str]] = []
    for kind, needle, pattern in _PATTERNS:
        if needle not in text:
            continue
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in spans):
                continue
            spans.append((start, end, kind))
    if not spans:
        return []
    spans.sort()
    if text.isascii():  # one UTF-16 unit per character
        return [
            {"type": kind, "offset": start, "length": end - start} for start, end, kind in spans
        ]
    return [
        _entity(kind, utf16_len(text[:start]), utf16_len(text[start:end]))
        for start, end, kind in spans
    ]


def compose_entities(text: str, formatting: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Formatting entities plus the detected ones that do not collide with them."""
    formatting = list(formatting or ())
    blocked = [
        (e["offset"], e["offset"] + e["length"]) for e in formatting if e["type"] in _EXCLUSIVE
    ]
    detected = [
        e
        for e in parse_entities(text)
        if not any(
            e["offset"] < end and start < e["offset"] + e["length"] for start, end in blocked
        )
    ]
    return _sorted(formatting + detected)


def check_entities(name: str, entities: list[Any], text: str) -> list[dict[str, Any]]:
    """Validate explicit entities against ``text``; ValueError naming the bad one."""
    size = utf16_len(text)
    out = []
    for i, entity in enumerate(entities):
        where = f"{name}[{i}]"
        if not isinstance(entity, dict):
            raise ValueError(f"{where} must be a MessageEntity object")
        kind = entity.get("type")
        offset, length = entity.get("offset"), entity.get("length")
        if kind not in ENTITY_TYPES:
            raise ValueError(f"{where}.type must be one of " + ", ".join(ENTITY_TYPES))
        if type(offset) is not int or type(length) is not int or offset < 0 or length < 1:
            raise ValueError(f"{where} needs integer offset >= 0 and length >= 1")
        if offset + length > size:
            raise ValueError(f"{where} reaches past the end of the text ({size} UTF-16 units)")
        clean = _entity(str(kind), offset, length)
        if kind == "text_link":
            url = entity.get("url")
            if not isinstance(url, str) or not _URL_RE.match(url):
                raise ValueError(f"{where}.url must be an http(s) or tg:// URL")
            clean["url"] = url
        if kind == "pre" and isinstance(entity.get("language"), str):
            clean["language"] = entity["language"][:64]
        if kind == "custom_emoji" and isinstance(entity.get("custom_emoji_id"), str):
            clean["custom_emoji_id"] = entity["custom_emoji_id"][:64]
        out.append(clean)
    return _sorted(out)


_URL_RE = re.compile(r"^(https?|tg)://\S+$", re.IGNORECASE)


def parse_formatted(text: str, mode: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and formatting entities of ``text`` in ``mode``."""
    if mode == "HTML":
        return _Html(text).parse()
    if mode == "MarkdownV2":
        return _MarkdownV2(text).parse()
    if mode == "Markdown":
        return _Markdown(text).parse()
    raise FormattingError(f"unsupported parse_mode {mode!r}")


class _Builder:
    """Output text and entities, with UTF-16 offsets tracked as text is added."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0  # UTF-16 offset of the end of the output
        self.entities: list[dict[str, Any]] = []

    def add(self, piece: str) -> None:
        if piece:
            self.parts.append(piece)
            self.pos += utf16_len(piece)

    def close(self, kind: str, start: int, **extra: Any) -> None:
        if self.pos > start:  # Telegram drops empty entities
            self.entities.append(_entity(kind, start, self.pos - start, **extra))

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        return "".join(self.parts), _sorted(self.entities)


# -- HTML -----------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)\s*(/?)>")
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]{1,7};|#x[0-9a-fA-F]{1,6};|[a-zA-Z]{2,8};)")


class _Html:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Builder()
        self.stack: list[tuple[str, int, dict[str, str]]] = []

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        text, i = self.text, 0
        while i < len(text):
            ch = text[i]
            if ch == "<":
                match = _TAG_RE.match(text, i)
                if match is None:
                    raise FormattingError(f"can't parse entities: unclosed '<' at offset {i}")
                self._tag(match, i)
                i = match.end()
            elif ch == "&":
                match = _HTML_ENTITY_RE.match(text, i)
                if match is not None and html.unescape(match.group(0)) != match.group(0):
                    self.out.add(html.unescape(match.group(0)))
                    i = match.end()
                else:
                    self.out.add("&")  # a lone ampersand is kept, as Telegram does
                    i += 1
            else:
                j = i
                while j < len(text) and text[j] not in "<&":
                    j += 1
                self.out.add(text[i:j])
                i = j
        if self.stack:
            raise FormattingError(f"can't parse entities: <{self.stack[-1][0]}> is never closed")
        return self.out.result()

    def _tag(self, match: re.Match[str], at: int) -> None:
        closing, name = match.group(1) == "/", match.group(2).lower()
        if name == "br" and not closing:
            self.out.add("\n")
            return
        if name not in _HTML_TAGS:
            raise FormattingError(f"can't parse entities: unsupported tag <{name}> at offset {at}")
        if closing:
            if not self.stack or self.stack[-1][0] != name:
                raise FormattingError(
                    f"can't parse entities: </{name}> at offset {at} closes no open <{name}>"
                )
            _, start, attrs = self.stack.pop()
            self._emit(name, start, attrs)
            return
        attrs = {
            m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or ""
            for m in _ATTR_RE.finditer(match.group(3) or "")
        }
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise FormattingError('can\'t parse entities: <span> needs class="tg-spoiler"')
        if name == "a" and not _URL_RE.match(html.unescape(attrs.get("href", ""))):
            raise FormattingError("can't parse entities: <a> needs an http(s) or tg:// href")
        if self.stack and self.stack[-1][0] in ("code", "pre") and name != "code":
            raise FormattingError("can't parse entities: no tags are allowed inside code or pre")
        if match.group(4):  # a self-closed tag holds no text
            return
        self.stack.append((name, self.out.pos, attrs))

    def _emit(self, name: str, start: int, attrs: dict[str, str]) -> None:
        kind = _HTML_TAGS[name]
        if name == "a":
            self.out.close(kind, start, url=html.unescape(attrs["href"]))
        elif name == "code" and self.stack and self.stack[-1][0] == "pre":
            language = attrs.get("class", "").removeprefix("language-")
            if language:
                self.stack[-1][2]["language"] = language
        elif name == "pre":
            self.out.close(kind, start, language=attrs.get("language"))
        elif name == "blockquote":
            kind = "expandable_blockquote" if "expandable" in attrs else "blockquote"
            self.out.close(kind, start)
        elif name == "tg-emoji":
            self.out.close(kind, start, custom_emoji_id=attrs.get("emoji-id") or None)
        else:
            self.out.close(kind, start)


# -- MarkdownV2 -----------------------------------------------------------------

_RESERVED_V2 = set("_*[]()~`>#+-=|{}.!")


class _MarkdownV2:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Builder()
        self.open: dict[str, int] = {}  # marker -> start offset
        self.link_start: int | None = None

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        text, i, n = self.text, 0, len(self.text)
        at_line_start = True
        quote_start: int | None = None
        while i < n:
            ch = text[i]
            if at_line_start:
                at_line_start = False
                if ch == ">":
                    if quote_start is None:
                        quote_start = self.out.pos
                    i += 1
                    continue
                if quote_start is not None:
                    self.out.close("blockquote", quote_start)
                    quote_start = None
            if ch == "\\":
                if i + 1 >= n or not 1 <= ord(text[i + 1]) <= 126:
                    raise FormattingError(f"can't parse entities: stray '\\' at offset {i}")
                self.out.add(text[i + 1])
                i += 2
            elif ch == "`":
                i = self._code(i)
            elif text.startswith("||", i):
                self._toggle("||", "spoiler")
                i += 2
            elif text.startswith("__", i):
                self._toggle("__", "underline")
                i += 2
            elif ch in "*_~":
                self._toggle(ch, {"*": "bold", "_": "italic", "~": "strikethrough"}[ch])
                i += 1
            elif ch == "[":
                if self.link_start is not None:
                    raise FormattingError(f"can't parse entities: nested '[' at offset {i}")
                self.link_start = self.out.pos
                i += 1
            elif ch == "]" and self.link_start is not None:
                i = self._link_target(i + 1)
            elif ch in _RESERVED_V2:
                raise FormattingError(
                    f"can't parse entities: character '{ch}' is reserved and must be "
                    f"escaped with the preceding '\\' (offset {i})"
                )
            else:
                if ch == "\n":
                    at_line_start = True
                self.out.add(ch)
                i += 1
        if quote_start is not None:
            self.out.close("blockquote", quote_start)
        if self.open:
            marker = next(iter(self.open))
            raise FormattingError(f"can't parse entities: '{marker}' is never closed")
        if self.link_start is not None:
            raise FormattingError("can't parse entities: '[' is never closed")
        return self.out.result()

    def _toggle(self, marker: str, kind: str) -> None:
        start = self.open.pop(marker, None)
        if start is None:
            self.open[marker] = self.out.pos
        else:
            self.out.close(kind, start)

    def _code(self, i: int) -> int:
        text = self.text
        if text.startswith("```", i):
            end = _find_unescaped(text, "```", i + 3)
            if end < 0:
                raise FormattingError(f"can't parse entities: '```' at offset {i} is never closed")
            body = text[i + 3 : end]
            language = None
            first, newline, rest = body.partition("\n")
            if newline and re.fullmatch(r"[A-Za-z0-9_+#.-]{1,32}", first):
                language, body = first, rest
            start = self.out.pos
            self.out.add(_unescape_code(body))
            self.out.close("pre", start, language=language)
            return end + 3
        end = _find_unescaped(text, "`", i + 1)
        if end < 0:
            raise FormattingError(f"can't parse entities: '`' at offset {i} is never closed")
        start = self.out.pos
        self.out.add(_unescape_code(text[i + 1 : end]))
        self.out.close("code", start)
        return end + 1

    def _link_target(self, i: int) -> int:
        text = self.text
        assert self.link_start is not None
        if i >= len(text) or text[i] != "(":
            raise FormattingError(f"can't parse entities: ']' at offset {i - 1} needs a (url)")
        end = _find_unescaped(text, ")", i + 1)
        if end < 0:
            raise FormattingError(f"can't parse entities: '(' at offset {i} is never closed")
        url = re.sub(r"\\(.)", r"\1", text[i + 1 : end])
        if url.startswith("tg://emoji?id="):
            self.out.close("custom_emoji", self.link_start, custom_emoji_id=url[14:])
        elif _URL_RE.match(url):
            self.out.close("text_link", self.link_start, url=url)
        else:
            raise FormattingError(f"can't parse entities: {url!r} is not an http(s) URL")
        self.link_start = None
        return end + 1


def _find_unescaped(text: str, marker: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(marker, i):
            return i
        i += 1
    return -1


def _unescape_code(body: str) -> str:
    return re.sub(r"\\([`\\])", r"\1", body)


# -- legacy Markdown ------------------------------------------------------------


class _Markdown:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Builder()

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        text, i, n = self.text, 0, len(self.text)
        while i < n:
            ch = text[i]
            if ch == "\\" and i + 1 < n and text[i + 1] in "_*`[":
                self.out.add(text[i + 1])
                i += 2
            elif ch in "*_":
                end = text.find(ch, i + 1)
                if end < 0:
                    raise FormattingError(
                        f"can't parse entities: '{ch}' at offset {i} is not closed"
                    )
                start = self.out.pos
                self.out.add(text[i + 1 : end])
                self.out.close("bold" if ch == "*" else "italic", start)
                i = end + 1
            elif ch == "`":
                fence = "```" if text.startswith("```", i) else "`"
                end = text.find(fence, i + len(fence))
                if end < 0:
                    raise FormattingError(f"can't parse entities: '{fence}' at {i} is not closed")
                body = text[i + len(fence) : end]
                language = None
                if fence == "```":
                    first, newline, rest = body.partition("\n")
                    if newline and re.fullmatch(r"[A-Za-z0-9_+#.-]{1,32}", first):
                        language, body = first, rest
                start = self.out.pos
                self.out.add(body)
                self.out.close("pre" if fence == "```" else "code", start, language=language)
                i = end + len(fence)
            elif ch == "[":
                match = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)").match(text, i)
                if match is None or not _URL_RE.match(match.group(2)):
                    raise FormattingError(f"can't parse entities: bad link at offset {i}")
                start = self.out.pos
                self.out.add(match.group(1))
                self.out.close("text_link", start, url=match.group(2))
                i = match.end()
            else:
                j = i + 1
                while j < n and text[j] not in "\\*_`[":
                    j += 1
                self.out.add(text[i:j])
                i = j
        return self.out.result()


def formatted(
    p: dict[str, Any], name: str, entities_name: str, *, limit: int, required: bool
) -> tuple[str | None, list[dict[str, Any]]]:
    """The text (or caption) of a send or edit call and its entities, or a 400.

    Explicit entities win over ``parse_mode`` (as in Telegram); the length limit
    counts the text after the markup is taken out.
    """
    raw = p.get(name)
    if raw is None:
        if required:
            raise ApiError(400, "MISSING_PARAMETER", f"parameter '{name}' is required")
        return None, []
    explicit = p.get(entities_name)
    try:
        if explicit is not None:
            text, formatting = raw, check_entities(entities_name, explicit, raw)
        elif p.get("parse_mode"):
            text, formatting = parse_formatted(raw, p["parse_mode"])
        else:
            text, formatting = raw, []
    except FormattingError as exc:
        raise ApiError(400, "CANT_PARSE_ENTITIES", f"parameter '{name}': {exc}") from None
    except ValueError as exc:
        raise ApiError(400, "INVALID_PARAMETER", f"parameter {exc}") from None
    if not text.strip():
        if not required and not text:
            return None, []
        raise ApiError(400, "INVALID_PARAMETER", f"parameter '{name}' must not be empty")
    if len(text) > limit:
        raise ApiError(
            400,
            "INVALID_PARAMETER",
            f"parameter '{name}' must be at most {limit} characters long (after formatting)",
        )
    return text, compose_entities(text, formatting)
