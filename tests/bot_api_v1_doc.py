"""The generic Bot API document's examples, verbatim, and how its users send them.

Each request is the document's method, path and JSON body, character for
character; its answer is the document's. The document gives them as HTTP, so
they are sent as its users would type them with curl: the access key raw in
``Authorization:`` and the JSON body as written. Only the host, the key and the
ids the document made up (``:id``, ``chatId``, ``user_id``) are substituted.

:func:`same_answer` compares an answer with the document's, ids, paths and times
aside: every field the document shows is there, with the document's value
unless it is an id, a time or a size.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EXAMPLES", "Curl", "Example", "same_answer"]


@dataclass(frozen=True)
class Example:
    method: str
    path: str
    body: str | None  # the JSON body, as the document writes it
    answer: str | None  # the document's answer, as it writes it

    @property
    def answer_json(self) -> Any:
        assert self.answer is not None
        return json.loads(self.answer)


EXAMPLES: dict[str, Example] = {
    "get bot": Example(
        "GET",
        "/v1/bot-api/bot",
        None,
        """{
    "id": "01hc76p6ma76qfrs0bfr5x2pry",
    "name": "Test bot",
    "description": "Just testing bot.",
    "avatar": "https://google.com/image.png"
}""",
    ),
    "edit bot": Example(
        "PUT",
        "/v1/bot-api/bot",
        """{
    "name": "New bot name",
    "description": "New description.",
    "avatar": "https://google.com/new-avatar.jpeg"
}""",
        None,
    ),
    "add commands": Example(
        "POST",
        "/v1/bot-api/bot/commands",
        """[
    {
        "alias": "start",
        "description": "Start a new conversation."
    },
    {
        "alias": "help",
        "description": "Show usage guide."
    }
]""",
        None,
    ),
    "get commands": Example(
        "GET",
        "/v1/bot-api/bot/commands",
        None,
        """[
    {
        "id": "01hcjd34adz1va07vk97jfjmgq",
        "alias": "start",
        "description": "Start a new conversation."
    },
    {
        "id": "01hcjd34adz1va07vk99w3hzk3",
        "alias": "help",
        "description": "Show usage guide."
    }
]""",
    ),
    "delete command": Example("DELETE", "/v1/bot-api/bot/command/:id", None, None),
    "add webhook": Example(
        "POST",
        "/v1/bot-api/bot/webhook",
        """{
    "url": "http://localhost:4000/webhook",
    "secret": "SOME_SECRET"
}""",
        None,
    ),
    "get webhook": Example(
        "GET",
        "/v1/bot-api/bot/webhook",
        None,
        """{
    "botId": "01hc76p6ma76qfrs0bfr5x2pry",
    "url": "http://localhost:4000/webhook",
    "secret": "SOME_SECRET"
}""",
    ),
    "delete webhook": Example("DELETE", "/v1/bot-api/bot/webhook", None, None),
    "get chats": Example(
        "GET",
        "/v1/bot-api/chats?user_id=01hc71yz5pny5bmf0b4055zbjw",
        None,
        """[
    {
        "id": "01hc7aa947s4fdwywwjqr14wh7",
        "userId": "01hc71yz5pny5bmf0b4055zbjw",
        "botId": "01hc76p6ma76qfrs0bfr5x2pry"
    }
]""",
    ),
    "send message": Example(
        "POST",
        "/v1/bot-api/chat/message",
        """{
    "chatId": "01hc7aa947s4fdwywwjqr14wh7",
    "body": "Hello World!",
    "attachmentIds": []
}""",
        """{
    "id": "01hc7akt8z3w2a5ayfcrvkfy52",
    "chatId": "01hc7aa947s4fdwywwjqr14wh7",
    "senderId": "01hc76p6ma76qfrs0bfr5x2pry",
    "body": "Hello World!",
    "timestamp": 1696758098208
}""",
    ),
    "get messages": Example(
        "GET",
        "/v1/bot-api/chat/:id/messages",
        None,
        """{
    "chatId": "01hc7aa947s4fdwywwjqr14wh7",
    "total": 1,
    "page": 1,
    "limit": 20,
    "messages": [
        {
            "id": "01hc7akt8z3w2a5ayfcrvkfy52",
            "chatId": "01hc7aa947s4fdwywwjqr14wh7",
            "senderId": "01hc76p6ma76qfrs0bfr5x2pry",
            "body": "Hello World!",
            "timestamp": 1696758098208
        }
    ]
}""",
    ),
    "get message": Example(
        "GET",
        "/v1/bot-api/chat/message/:id",
        None,
        """{
    "id": "01hc7akt8z3w2a5ayfcrvkfy52",
    "chatId": "01hc7aa947s4fdwywwjqr14wh7",
    "senderId": "01hc76p6ma76qfrs0bfr5x2pry",
    "body": "Hello!",
    "timestamp": 1696758098208
}""",
    ),
    "upload files": Example(
        "POST",
        "/v1/bot-api/files",
        None,  # form data: a part named file, filename yourfile.png, type image/png
        """[
    {
        "id": "01hc79xqtqhd4jtzceyxstxgh7",
        "path": "static/images/01hc79xqtqhd4jtzceyvpr7sk0.png",
        "name": "yourfile.png",
        "size": 25908,
        "mimeType": "image/png"
    }
]""",
    ),
}

# made up by the document or by the content sent: compared by presence and type
_ASIDE = frozenset({"id", "chatId", "senderId", "botId", "userId", "timestamp", "path", "size"})


def same_answer(expected: Any, actual: Any) -> bool:
    """Whether ``actual`` is the document's ``expected`` answer, ids, paths,
    sizes and times aside (those only need the same JSON type)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            return False
        for key, value in expected.items():
            if key in _ASIDE:
                if type(actual[key]) is not type(value):
                    return False
            elif not same_answer(value, actual[key]):
                return False
        return True
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same_answer(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual and type(expected) is type(actual))


@dataclass(frozen=True)
class Curl:
    """curl against one host with one access key."""

    host: str
    key: str

    def run(self, *args: str) -> tuple[int, Any]:
        """(HTTP status, JSON answer or None) of ``curl <args>`` (the key and the
        status line added)."""
        done = subprocess.run(
            ["curl", "-sS", "-w", "\n%{http_code}", "-H", f"Authorization: {self.key}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        text, _, status = done.stdout.rpartition("\n")
        return int(status), (json.loads(text) if text.strip() else None)

    def example(self, example: Example, **ids: str) -> tuple[int, Any]:
        """Send ``example`` as its user would, with the document's made-up ids
        replaced by ``ids`` (``{":id": ..., "01hc7aa947s4fdwywwjqr14wh7": ...}``)."""
        path, body = example.path, example.body
        for made_up, real in ids.items():
            path = path.replace(made_up, real)
            body = body.replace(made_up, real) if body is not None else None
        args = ["-X", example.method, self.host + path]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", body]
        return self.run(*args)

    def upload(self, file: Path, name: str, mime: str) -> tuple[int, Any]:
        """The document's upload: a form part named ``file``."""
        return self.run(
            "-F", f"file=@{file};filename={name};type={mime}", self.host + "/v1/bot-api/files"
        )
