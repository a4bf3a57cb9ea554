"""Webhook signatures against the verification snippets exactly as documented.

The Python and JavaScript snippets are taken out of docs/webhooks.md and run as
they are (the JavaScript one under node): what we document is what we test.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from webhooks.delivery import sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "s3cr3t_token-ABC"
BODY = b'{"update_id":"1809638400000000","message":{"text":"caf\xc3\xa9 \xe2\x98\x95"}}'

Verify = Callable[..., bool]


def snippet(name: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"<!-- snippet: {name} -->\n```\w+\n(.*?)\n```", text, re.S)
    assert match, f"docs/webhooks.md has no snippet {name}"
    return match.group(1)


@pytest.fixture(scope="module")
def verify() -> Verify:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("verify-python"), "docs/webhooks.md", "exec"), namespace)
    function: Verify = namespace["verify"]
    return function


def signed(timestamp: int, body: bytes = BODY, secret: str = SECRET) -> tuple[str, str]:
    stamp = str(timestamp)
    return stamp, "sha256=" + sign(secret, stamp, body)


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # HMAC-SHA256(key="key", message="1700000000.{}"), computed independently
    expected = "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
    assert sign("key", "1700000000", b"{}") == expected


def test_python_snippet_accepts_a_fresh_delivery(verify: Verify) -> None:
    stamp, signature = signed(int(time.time()))
    assert verify(SECRET, stamp, BODY, signature) is True


def test_python_snippet_refuses_a_tampered_body(verify: Verify) -> None:
    stamp, signature = signed(int(time.time()))
    assert verify(SECRET, stamp, BODY.replace(b"caf", b"cab"), signature) is False
    assert verify(SECRET, stamp, BODY + b" ", signature) is False


def test_python_snippet_refuses_a_stale_or_future_timestamp(verify: Verify) -> None:
    old, old_signature = signed(int(time.time()) - 301)
    assert verify(SECRET, old, BODY, old_signature) is False
    future, future_signature = signed(int(time.time()) + 301)
    assert verify(SECRET, future, BODY, future_signature) is False


def test_python_snippet_refuses_a_moved_timestamp_wrong_secret_and_garbage(
    verify: Verify,
) -> None:
    now = int(time.time())
    stamp, signature = signed(now)
    assert verify(SECRET, str(now - 1), BODY, signature) is False  # signed under another time
    assert verify("another-secret", stamp, BODY, signature) is False
    assert verify(SECRET, "soon", BODY, signature) is False
    assert verify(SECRET, stamp, BODY, signature.removeprefix("sha256=")) is False
    assert verify(SECRET, stamp, BODY, "") is False


NODE_HARNESS = """
%s
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((c) =>
    verify(c.secret, c.timestamp, Buffer.from(c.body, "base64"), c.signature));
  process.stdout.write(JSON.stringify(results));
});
"""


def test_javascript_snippet_agrees_on_fresh_tampered_and_stale() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is needed to check the documented JavaScript snippet"
    now = int(time.time())
    stamp, signature = signed(now)
    old, old_signature = signed(now - 400)
    b64 = base64.b64encode
    cases = [
        (SECRET, stamp, BODY, signature, True),
        (SECRET, stamp, BODY.replace(b"caf", b"cab"), signature, False),
        (SECRET, old, BODY, old_signature, False),
        ("another-secret", stamp, BODY, signature, False),
        (SECRET, "12ab", BODY, signature, False),
        (SECRET, stamp, BODY, "sha256=00", False),
    ]
    payload = [
        {"secret": s, "timestamp": t, "body": b64(b).decode(), "signature": sig}
        for s, t, b, sig, _ in cases
    ]
    result = subprocess.run(
        [node, "-e", NODE_HARNESS % snippet("verify-javascript")],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == [expected for *_, expected in cases]
