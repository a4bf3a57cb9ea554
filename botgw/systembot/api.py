"""The system bot's REST calls: the Bot API with its own token, and the management
API on behalf of the user a message or button press of theirs names.

A call refused for the bot's send limits (429) is sent again once its
``retry_after`` passed. Writes carry an ``Idempotency-Key`` made from the update
they answer, so an update handled twice (the process stopped after the call and
before its ack) makes each call once: the second gets the first's answer, the
same token included.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Citation", "Refused", "SystemBotApi"]

# a call refused for its rate is sent again after the wait it is told, this often
_RETRIES = 10
_LONGEST_WAIT = 30


class Refused(Exception):
    """A call answered with the error envelope."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class Citation:
    """What the system bot cites to act for a user: their message or button press
    (``Botgw-On-Behalf-Of``, see rest/methods/manage.py), and the update it came in."""

    header: str
    update_id: int

    @classmethod
    def message(cls, update_id: int, chat_id: int | str, message_id: int | str) -> Citation:
        return cls(f"message {chat_id} {message_id}", update_id)

    @classmethod
    def callback(cls, update_id: int, query_id: str) -> Citation:
        return cls(f"callback {query_id}", update_id)

    def key(self, what: str) -> str:
        """The Idempotency-Key of the call ``what`` made for this update."""
        return f"systembot-{self.update_id}-{what}"


class SystemBotApi:
    """REST calls of the system bot, over one HTTP client."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token

    async def _post(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
        """The call's result; a 429 is waited out (``retry_after``) and sent again."""
        for _ in range(_RETRIES):
            response = await self.http.post(
                path, json=params, headers={"Authorization": f"Bot {self.token}", **headers}
            )
            try:
                body = response.json()
            except ValueError:
                raise Refused(response.status_code, "NOT_JSON", response.text[:200]) from None
            if not isinstance(body, dict):
                raise Refused(response.status_code, "NOT_AN_ENVELOPE", response.text[:200])
            if body.get("ok") is True:
                return body["result"]
            wait = (body.get("parameters") or {}).get("retry_after")
            if response.status_code != 429 or not isinstance(wait, int):
                break
            await asyncio.sleep(min(wait, _LONGEST_WAIT))
        raise Refused(
            int(body.get("error_code", response.status_code)),
            str(body.get("code", "ERROR")),
            str(body.get("description", "")),
        )

    async def bot(self, method: str, key: str | None = None, **params: Any) -> Any:
        """A Bot API call (``key``: its Idempotency-Key)."""
        headers = {"Idempotency-Key": key} if key else {}
        return await self._post(f"/bot/{method}", params, headers)

    async def manage(self, method: str, citation: Citation, *, write: bool, **params: Any) -> Any:
        """A management API call as the user ``citation`` names."""
        headers = {"Botgw-On-Behalf-Of": citation.header}
        if write:
            headers["Idempotency-Key"] = citation.key(method)
        return await self._post(f"/manage/{method}", params, headers)
