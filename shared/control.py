"""Control messages on a bot's wake-up channel, and their one text codec.

A bot's channel carries wake-ups (``"<update stream id> <previous stream id>"``,
published by ``append_update.lua``) and these control messages, which tell the
bot's readers in every process that something changed:

=====================================================  ==============================
``takeover <consumer key> <generation> <connection>``  a newer live reader took a
                                                       consumer (gateway identify)
``credentials rotated`` / ``credentials revoked``      the token changed or the bot
                                                       was revoked (management API)
``poll <consumer> <generation>``                       a newer getUpdates call took a
                                                       consumer (``begin_poll.lua``)
``webhook set <version>`` / ``webhook deleted``        the webhook changed
                                                       (``webhook_config.lua``)
=====================================================  ==============================

Two of them are published by Lua scripts, which write the same text; the tests
hold the codec to those scripts' spelling. A message that parses to nothing
(another version's, or garbage) is ignored by every reader.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Control",
    "CredentialsChanged",
    "PollStarted",
    "Takeover",
    "WebhookChanged",
    "encode",
    "parse",
]


@dataclass(frozen=True, slots=True)
class Takeover:
    """A live reader with a higher ``generation`` took ``consumer_key``."""

    consumer_key: str
    generation: int
    connection_id: str


@dataclass(frozen=True, slots=True)
class CredentialsChanged:
    """The bot's token was rotated, or the bot revoked (``revoked``)."""

    revoked: bool


@dataclass(frozen=True, slots=True)
class PollStarted:
    """A getUpdates call with poll generation ``generation`` took ``consumer``."""

    consumer: str
    generation: int


@dataclass(frozen=True, slots=True)
class WebhookChanged:
    """The webhook was set (``version`` of its configuration) or deleted (None)."""

    version: int | None


Control = Takeover | CredentialsChanged | PollStarted | WebhookChanged


def encode(control: Control) -> str:
    """The text published for ``control``."""
    if isinstance(control, Takeover):
        return f"takeover {control.consumer_key} {control.generation} {control.connection_id}"
    if isinstance(control, CredentialsChanged):
        return "credentials revoked" if control.revoked else "credentials rotated"
    if isinstance(control, PollStarted):
        return f"poll {control.consumer} {control.generation}"
    if control.version is None:
        return "webhook deleted"
    return f"webhook set {control.version}"


def parse(text: str) -> Control | None:
    """The control message ``text`` spells, or None for anything else."""
    parts = text.split(" ")
    kind, count = parts[0], len(parts)
    if kind == "takeover" and count == 4 and parts[2].isdigit():
        return Takeover(parts[1], int(parts[2]), parts[3])
    if kind == "credentials" and count == 2 and parts[1] in ("rotated", "revoked"):
        return CredentialsChanged(revoked=parts[1] == "revoked")
    if kind == "poll" and count == 3 and parts[2].isdigit():
        return PollStarted(parts[1], int(parts[2]))
    if kind == "webhook":
        if count == 2 and parts[1] == "deleted":
            return WebhookChanged(None)
        if count == 3 and parts[1] == "set" and parts[2].isdigit():
            return WebhookChanged(int(parts[2]))
    return None
