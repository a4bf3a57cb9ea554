"""The Koto Bot API v1 document's examples, word for word, and the tools to run
them as its users would: curl in a shell, Node for its JavaScript snippet.

Each method's example is the document's request body and answer, with its
endpoint line; :func:`curl_command` makes the curl command a user writes from
them. Only the base URL, tokens and ids the server made are substituted
(:class:`Substitutions`); answers are compared with :func:`assert_like`, which
checks the document's fields and values except ids, tokens and times (their
types only).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botgw.local_redis import LocalRedis
from shared.settings import Settings
from tests.conftest import make_settings, rest_process, running, wait_s

DOC_BASE = "https://api.koto.run"

# the fields whose values the server makes (ids, tokens, times, URLs)
MADE_BY_SERVER = frozenset(
    {
        "ownerId",
        "createdAt",
        "botToken",
        "messageId",
        "timestamp",
        "callbackId",
        "mediaId",
        "uploadUrl",
        "downloadUrl",
        "updateId",
        "chatId",
        "senderFingerprint",
    }
)


@dataclass(frozen=True)
class Example:
    verb: str
    path: str
    auth: str  # "user", "bot" or "public"
    request: str | None  # the request body, as the document prints it
    response: str


EXAMPLES: dict[str, Example] = {
    "register": Example(
        "POST",
        "/v1/bot/register",
        "user",
        """{
  "displayName": "MyBot",
  "description": "A helpful assistant bot"
}""",
        """{
  "bot": {
    "botId": "mybot_bot",
    "ownerId": "a1b2c3...",
    "displayName": "MyBot",
    "description": "A helpful assistant bot",
    "avatarUrl": "",
    "createdAt": 1707580800000,
    "active": true
  },
  "botToken": "nb_live_..."
}""",
    ),
    "list": Example(
        "GET",
        "/v1/bot/list",
        "user",
        None,
        """{
  "bots": [
    {
      "botId": "mybot_bot",
      "displayName": "MyBot",
      "active": true,
      ...
    }
  ]
}""",
    ),
    "get": Example(
        "GET",
        "/v1/bot/{botId}",
        "user",
        None,
        """{
  "bot": {
    "botId": "mybot_bot",
    "ownerId": "a1b2c3...",
    "displayName": "MyBot",
    "description": "A helpful assistant bot",
    "avatarUrl": "",
    "createdAt": 1707580800000,
    "active": true
  }
}""",
    ),
    "revoke": Example(
        "POST",
        "/v1/bot/revoke",
        "user",
        """{
  "botId": "mybot_bot"
}""",
        """{
  "status": "ok"
}""",
    ),
    "send": Example(
        "POST",
        "/v1/bot/send",
        "bot",
        """{
  "botToken": "nb_live_...",
  "recipientFingerprint": "a1b2c3...",
  "content": "Hello! Choose an option:",
  "contentType": 1
}""",
        """{
  "messageId": "msg_abc123",
  "timestamp": 1707580800000
}""",
    ),
    "conversation/start": Example(
        "POST",
        "/v1/bot/conversation/start",
        "user",
        """{
  "botId": "mybot_bot"
}""",
        """{
  "status": "ok"
}""",
    ),
    "user-message": Example(
        "POST",
        "/v1/bot/user-message",
        "user",
        """{
  "botId": "mybot_bot",
  "content": "/help"
}""",
        """{
  "messageId": "msg_def456",
  "timestamp": 1707580800000,
  "botReply": {
    "content": "Available commands:\\n/start — Begin\\n/help — Show help",
    "inlineButtons": [
      { "text": "Getting Started", "callbackData": "help_start" }
    ]
  }
}""",
    ),
    "callback": Example(
        "POST",
        "/v1/bot/callback",
        "user",
        """{
  "botId": "mybot_bot",
  "messageId": "msg_abc123",
  "callbackData": "help_start"
}""",
        """{
  "callbackId": "cb_xyz789",
  "timestamp": 1707580800000
}""",
    ),
    "sendMedia": Example(
        "POST",
        "/v1/bot/sendMedia",
        "bot",
        """{
  "botToken": "nb_live_...",
  "recipientFingerprint": "a1b2c3...",
  "sizeBytes": 1048576,
  "contentType": "image/png",
  "caption": "Screenshot"
}""",
        """{
  "mediaId": "med_abc123",
  "uploadUrl": "https://minio.nova.internal/..."
}""",
    ),
    "confirmMedia": Example(
        "POST",
        "/v1/bot/confirmMedia",
        "bot",
        """{
  "botToken": "nb_live_...",
  "mediaId": "med_abc123"
}""",
        """{
  "messageId": "msg_med456",
  "timestamp": 1707580800000,
  "downloadUrl": "https://minio.nova.internal/..."
}""",
    ),
    "setMyCommands": Example(
        "POST",
        "/v1/bot/setMyCommands",
        "bot",
        """{
  "botToken": "nb_live_...",
  "commands": [
    { "command": "/start", "description": "Begin interaction" },
    { "command": "/help", "description": "Show available commands" },
    { "command": "/settings", "description": "Bot settings" }
  ]
}""",
        """{
  "status": "ok"
}""",
    ),
    "commands": Example(
        "GET",
        "/v1/bot/{botId}/commands",
        "public",
        None,
        """{
  "commands": [
    { "command": "/start", "description": "Begin interaction" },
    { "command": "/help", "description": "Show available commands" }
  ]
}""",
    ),
    "setWebhook": Example(
        "POST",
        "/v1/bot/setWebhook",
        "bot",
        """{
  "botToken": "nb_live_...",
  "url": "https://example.com/webhook/nova",
  "secret": "my_webhook_secret"
}""",
        """{
  "status": "ok"
}""",
    ),
    "getUpdates": Example(
        "GET",
        "/v1/bot/getUpdates?offset=0&limit=100&timeout=30",
        "bot",
        None,
        """{
  "updates": [
    {
      "updateId": "upd_abc123",
      "chatId": "chat_xyz",
      "senderFingerprint": "a1b2c3...",
      "content": "Hello bot!",
      "contentType": 1,
      "timestamp": 1707580800000
    }
  ]
}""",
    ),
}

# "Delivery format": the body of a webhook delivery
WEBHOOK_PAYLOAD = """{
  "updateId": "upd_abc123",
  "chatId": "chat_xyz",
  "senderFingerprint": "a1b2c3...",
  "content": "/start",
  "contentType": 2,
  "timestamp": 1707580800000
}"""

# "Examples": the cURL block
CURL_EXAMPLES = """# Register a new bot
curl -X POST https://api.koto.run/v1/bot/register \\
  -H "Authorization: Bearer <user_jwt>" \\
  -H "Content-Type: application/json" \\
  -d '{"displayName": "MyBot", "description": "Test bot"}'

# Send a message
curl -X POST https://api.koto.run/v1/bot/send \\
  -H "Content-Type: application/json" \\
  -d '{
    "botToken": "nb_live_...",
    "recipientFingerprint": "a1b2c3...",
    "content": "Hello from bot!",
    "contentType": 1
  }'

# Get updates (long-polling)
curl "https://api.koto.run/v1/bot/getUpdates?timeout=30" \\
  -H "Authorization: Bearer nb_live_..."
"""

# "Signature verification": Verify Signature (Node.js)
VERIFY_SIGNATURE_JS = """const crypto = require("crypto");

function verifySignature(body, signature, secret) {
  const expected = crypto
    .createHmac("sha256", secret)
    .update(body)
    .digest("hex");
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expected)
  );
}"""


def document_json(text: str) -> Any:
    """An answer as the document prints it; ``...`` (fields left out) dropped."""
    return json.loads(re.sub(r",\s*\.\.\.", "", text))


@dataclass
class Substitutions:
    """What a user puts in place of the document's placeholders."""

    base: str
    user_token: str = ""
    bot_token: str = ""
    fingerprint: str = ""
    values: dict[str, str] = field(default_factory=dict)  # any other: document text -> ours

    def apply(self, text: str) -> str:
        text = text.replace(DOC_BASE, self.base)
        text = text.replace("<user_jwt>", self.user_token).replace("nb_live_...", self.bot_token)
        text = text.replace("a1b2c3...", self.fingerprint)
        for doc, ours in self.values.items():
            text = text.replace(doc, ours)
        return text


def curl_command(example: Example, subs: Substitutions, bot_id: str = "mybot_bot") -> str:
    """The curl command a user types for ``example``: its endpoint, its token in
    ``Authorization: Bearer`` (user, and bot getters, whose body cannot carry it)
    and its body word for word."""
    path = example.path.replace("{botId}", bot_id)
    parts = ["curl", "-sS"]
    if example.verb != "GET":
        parts += ["-X", example.verb]
    parts.append(shlex.quote(DOC_BASE + path))
    if example.auth == "user":
        parts += ["-H", shlex.quote("Authorization: Bearer <user_jwt>")]
    elif example.auth == "bot" and example.request is None:
        parts += ["-H", shlex.quote("Authorization: Bearer nb_live_...")]
    if example.request is not None:
        parts += ["-H", shlex.quote("Content-Type: application/json")]
        parts += ["-d", shlex.quote(example.request)]
    return subs.apply(" ".join(parts))


@dataclass(frozen=True)
class CurlAnswer:
    status: int
    headers: dict[str, str]
    body: Any


async def run_curl(command: str) -> CurlAnswer:
    """Run one curl command in bash; its status, headers and JSON body."""
    assert shutil.which("curl"), "curl is needed for the Koto examples"
    marker = "\n__status__:"
    script = command.replace("curl ", "curl -sS -D /dev/stderr -w '" + marker + "%{http_code}' ", 1)
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), wait_s(90))
    assert process.returncode == 0, err.decode()
    text, _, status = out.decode().rpartition(marker)
    headers = {}
    for line in err.decode().splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return CurlAnswer(int(status), headers, json.loads(text))


def assert_like(expected: Any, actual: Any, where: str = "answer") -> None:
    """``actual`` has every field of ``expected`` with its value, except the
    values the server makes (:data:`MADE_BY_SERVER`), which need the same type."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in expected.items():
            assert key in actual, f"{where}: no '{key}' in {actual!r}"
            if key in MADE_BY_SERVER:
                assert type(actual[key]) is type(value), f"{where}.{key}: {actual[key]!r}"
                assert actual[key] != "", f"{where}.{key} is empty"
            else:
                assert_like(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: {actual!r} is not like {expected!r}"
        )
        for index, (one, other) in enumerate(zip(expected, actual, strict=True)):
            assert_like(one, other, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


async def verify_signature_js(body: bytes, signature: str, secret: str, tmp: Path) -> bool:
    """The document's verifySignature, run by Node on a delivery's raw body."""
    node = shutil.which("node")
    assert node, "node is needed to run the document's JavaScript"
    (tmp / "body.bin").write_bytes(body)
    script = tmp / "verify.js"
    script.write_text(
        VERIFY_SIGNATURE_JS
        + "\n\nconst fs = require('fs');\n"
        + "const body = fs.readFileSync(process.argv[2]);\n"
        + "try {\n"
        + "  const valid = verifySignature(body, process.argv[3], process.argv[4]);\n"
        + "  console.log(valid ? 'valid' : 'invalid');\n"
        + "} catch (e) {\n"
        + "  console.log('invalid');  // timingSafeEqual throws on a length mismatch\n"
        + "}\n"
    )
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        str(tmp / "body.bin"),
        signature,
        secret,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), wait_s(60))
    assert process.returncode == 0, err.decode()
    return out.decode().strip() == "valid"


@dataclass(frozen=True)
class KotoServer:
    """A REST process on a Redis of its own (the document's examples name the
    same bot, ``mybot_bot``, so each set of them needs a fresh store)."""

    url: str
    settings: Settings


@contextmanager
def koto_server(tmp: Path, **env: str) -> Iterator[KotoServer]:
    redis = LocalRedis(directory=tmp / "redis", appendonly=False).start()
    process = rest_process(redis.url, tmp, "rest", **env)
    # presigned media URLs point at this process
    process.env.setdefault("BOTGW_PUBLIC_REST_URL", process.url)
    try:
        with running(process) as rest:
            yield KotoServer(rest.url, make_settings(redis.url))
    finally:
        redis.stop()
