"""Entities: detection in user text, parse_mode markup, explicit entities."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rest.text import (
    FormattingError,
    check_entities,
    compose_entities,
    formatted,
    parse_entities,
    parse_formatted,
    utf16_len,
    utf16_slice,
)
from shared.errors import ApiError


def kinds(entities: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(e["type"], e["offset"], e["length"]) for e in entities]


def test_detects_commands_mentions_urls_and_tags() -> None:
    text = "/start@demo_bot hi @alice see https://x.org/a?b=1. #tag $USD mail a@b.io"
    found = kinds(parse_entities(text))
    assert found == [
        ("bot_command", 0, 15),
        ("mention", 19, 6),
        ("url", 30, 19),
        ("hashtag", 51, 4),
        ("cashtag", 56, 4),
        ("email", 66, 6),
    ]


def test_offsets_are_utf16_units() -> None:
    text = "😀 /help"
    (command,) = parse_entities(text)
    assert command == {"type": "bot_command", "offset": 3, "length": 5}
    assert utf16_slice(text, command["offset"], command["length"]) == "/help"
    assert utf16_len(text) == 8


def test_html_nested_links_code_and_entities() -> None:
    text, entities = parse_formatted(
        '<b>bold <i>both</i></b> &lt;x&gt; <a href="https://e.org">link</a> '
        '<pre><code class="language-py">a&amp;b</code></pre> <tg-spoiler>s</tg-spoiler>',
        "HTML",
    )
    assert text == "bold both <x> link a&b s"
    assert kinds(entities) == [
        ("bold", 0, 9),
        ("italic", 5, 4),
        ("text_link", 14, 4),
        ("pre", 19, 3),
        ("spoiler", 23, 1),
    ]
    assert entities[2]["url"] == "https://e.org"
    assert entities[3]["language"] == "py"


@pytest.mark.parametrize(
    "markup",
    ["<b>open", "<x>no</x>", "</b>", "<b><i>x</b></i>", '<a href="javascript:x">a</a>', "a < b"],
)
def test_html_errors_say_what_is_wrong(markup: str) -> None:
    with pytest.raises(FormattingError, match="can't parse entities"):
        parse_formatted(markup, "HTML")


def test_markdown_v2() -> None:
    text, entities = parse_formatted(
        r"*bold _it_* __u__ ~s~ ||sp|| [l](https://e.org/\)) `c\`d` 1\.5" + "\n>quote",
        "MarkdownV2",
    )
    assert text == "bold it u s sp l c`d 1.5\nquote"
    assert kinds(entities) == [
        ("bold", 0, 7),
        ("italic", 5, 2),
        ("underline", 8, 1),
        ("strikethrough", 10, 1),
        ("spoiler", 12, 2),
        ("text_link", 15, 1),
        ("code", 17, 3),
        ("blockquote", 25, 5),
    ]
    assert entities[5]["url"] == "https://e.org/)"
    text, entities = parse_formatted("```python\nprint(1)\n```", "MarkdownV2")
    assert text == "print(1)\n" and entities[0]["language"] == "python"


@pytest.mark.parametrize("markup", ["1.5", "*open", "[a](b)", "a\\"])
def test_markdown_v2_errors(markup: str) -> None:
    with pytest.raises(FormattingError):
        parse_formatted(markup, "MarkdownV2")


def test_legacy_markdown() -> None:
    text, entities = parse_formatted("*b* _i_ `c` [l](http://e.org) 1.5!", "Markdown")
    assert text == "b i c l 1.5!"
    assert kinds(entities) == [
        ("bold", 0, 1),
        ("italic", 2, 1),
        ("code", 4, 1),
        ("text_link", 6, 1),
    ]
    with pytest.raises(FormattingError):
        parse_formatted("*never closed", "Markdown")


def test_compose_keeps_detection_out_of_code() -> None:
    text, formatting = parse_formatted("<code>@alice</code> @bob", "HTML")
    assert kinds(compose_entities(text, formatting)) == [("code", 0, 6), ("mention", 7, 4)]


def test_explicit_entities_are_checked() -> None:
    ok = check_entities("entities", [{"type": "bold", "offset": 0, "length": 2}], "hi")
    assert ok == [{"type": "bold", "offset": 0, "length": 2}]
    for bad in (
        [{"type": "nope", "offset": 0, "length": 1}],
        [{"type": "bold", "offset": 1, "length": 5}],
        [{"type": "text_link", "offset": 0, "length": 1}],
        ["bold"],
    ):
        with pytest.raises(ValueError, match=r"entities\[0\]"):
            check_entities("entities", bad, "hi")


def test_formatted_names_the_field_and_counts_after_markup() -> None:
    text, _ = formatted(
        {"text": "<b>" + "x" * 4096 + "</b>", "parse_mode": "HTML"},
        "text",
        "entities",
        limit=4096,
        required=True,
    )
    assert text == "x" * 4096
    for params, code in (
        ({"text": "x" * 4097}, "INVALID_PARAMETER"),
        ({"text": "<b></b>", "parse_mode": "HTML"}, "INVALID_PARAMETER"),
        ({"text": "<b>", "parse_mode": "HTML"}, "CANT_PARSE_ENTITIES"),
    ):
        with pytest.raises(ApiError) as info:
            formatted(params, "text", "entities", limit=4096, required=True)
        assert info.value.code == code and "'text'" in info.value.description


@given(st.text(max_size=200))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    for mode in ("HTML", "MarkdownV2", "Markdown"):
        try:
            plain, entities = parse_formatted(text, mode)
        except FormattingError:
            continue
        size = utf16_len(plain)
        assert all(e["offset"] >= 0 and e["offset"] + e["length"] <= size for e in entities)
    for entity in parse_entities(text):
        assert entity["length"] > 0
