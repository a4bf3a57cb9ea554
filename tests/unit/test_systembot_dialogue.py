"""The system bot's pure parts: the command lists users type, the keyboards it
sends (within the Bot API's limits) and how it describes a bot."""

from __future__ import annotations

from botgw.systembot.api import Citation
from botgw.systembot.dialogue import _bot_menu, _describe, parse_commands


def test_command_lines_become_bot_commands() -> None:
    assert parse_commands("start - Start it\n\n/help -  Show help \n") == [
        {"command": "start", "description": "Start it"},
        {"command": "help", "description": "Show help"},
    ]
    assert parse_commands("") == []
    for wrong in ("start", "Start - upper case", "- nothing", "a b - spaces", "x - " + "y" * 257):
        assert parse_commands(wrong) is None, wrong


def test_the_bot_menu_fits_callback_data() -> None:
    bot = {"id": 2**52 - 1, "privacy_mode": False, "name": "N", "username": "n_bot"}
    rows = _bot_menu(bot)["inline_keyboard"]
    data = [button["callback_data"] for row in rows for button in row]
    assert len(data) == 6 and len(set(data)) == 6
    assert all(len(d.encode()) <= 64 and d.endswith(f":{2**52 - 1}") for d in data)
    assert "Privacy: off" in [button["text"] for row in rows for button in row]


def test_a_bot_is_described_with_its_state() -> None:
    bot = {"name": "W", "username": "w_bot", "active": False, "privacy_mode": True}
    assert _describe(bot) == "W @w_bot (revoked)\nPrivacy mode: on"
    described = _describe({**bot, "active": True, "description": "Forecasts"})
    assert "(active)" in described and described.endswith("Description: Forecasts")


def test_citations_and_their_keys() -> None:
    assert Citation.message(7, "123", 45).header == "message 123 45"
    cited = Citation.callback(8, "q_1")
    assert cited.header == "callback q_1"
    assert cited.key("rotateToken") == "systembot-8-rotateToken" != cited.key("revokeBot")
