"""The control messages' codec: every message round-trips, anything else is None."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.control import (
    Control,
    CredentialsChanged,
    PollStarted,
    Takeover,
    WebhookChanged,
    encode,
    parse,
)

WORD = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1)
CONTROLS = st.one_of(
    st.builds(Takeover, WORD, st.integers(0, 2**53), WORD),
    st.builds(CredentialsChanged, st.booleans()),
    st.builds(PollStarted, WORD, st.integers(0, 2**53)),
    st.builds(WebhookChanged, st.none() | st.integers(0, 2**53)),
)


@given(CONTROLS)
def test_every_control_round_trips(control: Control) -> None:
    assert parse(encode(control)) == control


@pytest.mark.parametrize(
    ("text", "control"),
    [
        ("takeover default/2 7 c-1", Takeover("default/2", 7, "c-1")),
        ("credentials rotated", CredentialsChanged(revoked=False)),
        ("credentials revoked", CredentialsChanged(revoked=True)),
        ("poll default 12", PollStarted("default", 12)),  # begin_poll.lua
        ("webhook set 3", WebhookChanged(3)),  # webhook_config.lua
        ("webhook deleted", WebhookChanged(None)),
    ],
)
def test_the_spellings_published(text: str, control: Control) -> None:
    assert parse(text) == control and encode(control) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "takeover",
        "takeover c 3",
        "takeover c x y",
        "takeover c 3 x extra",
        "credentials",
        "credentials lost",
        "poll default",
        "poll default -1",
        "webhook",
        "webhook set",
        "webhook set v2",
        "webhook gone",
        "something new 1 2",
    ],
)
def test_anything_else_is_not_a_control(text: str) -> None:
    assert parse(text) is None
