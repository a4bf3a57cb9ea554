"""Polls: sendPoll, votes (poll_answer and poll updates), stopPoll."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import types as tg

from shared.settings import Settings
from tests.api import Scene, error, scene_at
from tests.conftest import Stack

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def voters(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    async with scene_at(stack.rest_url, settings, "p", users=2, group="Votes") as scene:
        yield scene


async def test_votes_reach_the_bot_as_poll_answer_and_poll(voters: Scene) -> None:
    sent = await voters.as_bot(
        "sendPoll",
        chat_id=voters.group,
        question="Lunch?",
        options=["Pizza", {"text": "Sushi"}, "Salad"],
        is_anonymous=False,
        allows_multiple_answers=True,
    )
    message = tg.Message.model_validate(sent)
    assert message.poll is not None and message.poll.question == "Lunch?"
    poll = sent["poll"]
    assert [o["text"] for o in poll["options"]] == ["Pizza", "Sushi", "Salad"]
    assert poll["total_voter_count"] == 0 and poll["is_closed"] is False
    assert poll["is_anonymous"] is False and poll["allows_multiple_answers"] is True

    seen = await voters.as_user(
        "answerPoll", chat_id=voters.group, message_id=sent["message_id"], option_ids=[0, 2]
    )
    assert [o["voter_count"] for o in seen["options"]] == [1, 0, 1]
    await voters.as_other(
        "answerPoll", chat_id=voters.group, message_id=sent["message_id"], option_ids=[0]
    )
    updates = await voters.updates()
    assert [next(k for k in u if k != "update_id") for u in updates] == [
        "poll_answer",
        "poll",
        "poll_answer",
        "poll",
    ]
    for update in updates:
        tg.Update.model_validate(update)
    answer = updates[0]["poll_answer"]
    assert answer["poll_id"] == poll["id"] and answer["option_ids"] == [0, 2]
    assert answer["user"]["username"] == voters.user.username
    final = updates[3]["poll"]
    assert [o["voter_count"] for o in final["options"]] == [2, 0, 1]
    assert final["total_voter_count"] == 2

    # a vote taken back: option_ids empty
    await voters.as_other(
        "answerPoll", chat_id=voters.group, message_id=sent["message_id"], option_ids=[]
    )
    retracted = await voters.updates()
    assert retracted[0]["poll_answer"]["option_ids"] == []
    assert retracted[1]["poll"]["total_voter_count"] == 1

    stopped = await voters.as_bot("stopPoll", chat_id=voters.group, message_id=sent["message_id"])
    tg.Poll.model_validate(stopped)
    assert stopped["is_closed"] is True and [o["voter_count"] for o in stopped["options"]] == [
        1,
        0,
        1,
    ]
    (closing,) = await voters.updates()
    assert closing["poll"]["is_closed"] is True and closing["poll"]["id"] == poll["id"]
    assert await error(
        voters.as_other,
        "answerPoll",
        chat_id=voters.group,
        message_id=sent["message_id"],
        option_ids=[1],
    ) == (400, "POLL_CLOSED")
    assert await error(
        voters.as_bot, "stopPoll", chat_id=voters.group, message_id=sent["message_id"]
    ) == (
        400,
        "POLL_ALREADY_CLOSED",
    )
    history = await voters.as_user("getChatHistory", chat_id=voters.group)
    assert history[-1]["poll"]["is_closed"] is True
    assert [o["voter_count"] for o in history[-1]["poll"]["options"]] == [1, 0, 1]


async def test_anonymous_quiz(voters: Scene) -> None:
    sent = await voters.as_bot(
        "sendPoll",
        chat_id=voters.group,
        question="2+2?",
        options=["3", "4"],
        type="quiz",
        correct_option_id=1,
        explanation="basic arithmetic",
    )
    assert int(sent["poll"]["correct_option_id"]) == 1  # shown to the bot that sent it
    users_view = await voters.as_user(
        "answerPoll", chat_id=voters.group, message_id=sent["message_id"], option_ids=[0]
    )
    assert "correct_option_id" not in users_view  # revealed once the quiz is closed
    assert await error(
        voters.as_user,
        "answerPoll",
        chat_id=voters.group,
        message_id=sent["message_id"],
        option_ids=[1],
    ) == (400, "POLL_ANSWER_FINAL")
    (update,) = await voters.updates()  # anonymous: no poll_answer, only the new state
    assert update["poll"]["total_voter_count"] == 1 and update["poll"]["type"] == "quiz"


async def test_poll_validation(voters: Scene) -> None:
    cases: list[dict[str, Any]] = [
        {"question": "Q", "options": ["only one"]},
        {"question": "", "options": ["a", "b"]},
        {"question": "Q", "options": ["a", ""]},
        {"question": "Q", "options": [f"o{i}" for i in range(13)]},
        {"question": "Q", "options": ["a", "b"], "type": "quiz"},
        {"question": "Q", "options": ["a", "b"], "type": "quiz", "correct_option_id": 5},
        {"question": "Q", "options": ["a", "b"], "correct_option_id": 0},
        {"question": "Q", "options": ["a", "b"], "type": "survey"},
        {"question": "Q", "options": ["a", "b"], "close_date": 1000},
    ]
    for params in cases:
        assert await error(voters.as_bot, "sendPoll", chat_id=voters.group, **params) == (
            400,
            "INVALID_PARAMETER",
        ), params
    single = await voters.as_bot(
        "sendPoll", chat_id=voters.group, question="One?", options=["a", "b"]
    )
    for option_ids in ([0, 1], [2], [0, 0]):
        assert await error(
            voters.as_other,
            "answerPoll",
            chat_id=voters.group,
            message_id=single["message_id"],
            option_ids=option_ids,
        ) == (400, "INVALID_PARAMETER")
    text = await voters.as_bot("sendMessage", chat_id=voters.group, text="not a poll")
    assert await error(
        voters.as_bot, "stopPoll", chat_id=voters.group, message_id=text["message_id"]
    ) == (
        400,
        "MESSAGE_HAS_NO_POLL",
    )
    closed = await voters.as_bot(
        "sendPoll", chat_id=voters.group, question="Closed?", options=["a", "b"], is_closed=True
    )
    assert closed["poll"]["is_closed"] is True
    assert await voters.updates() == []
