"""Logging in without a token at hand: the playground's two tokenless calls.

=================  ==========================================================
getLoginOptions    ``{"signup"}``: whether createUser is open
redeemLoginCode    a one-time code (from ``botgw run``'s link) for its token
createUser         a new user and its token, only while sign-up is open
=================  ==========================================================

The last two answer ``{"token", "user"}``. The page keeps the token in its tab's
``sessionStorage`` and sends it as ``Authorization: Bearer`` from then on; it is
never in a URL or a cookie, so no link or cross-site request carries it. The
client API authenticates every call before its method runs, so these are served
apart, under ``/playground/api/<method>`` (:mod:`rest.playground`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from rest.object_schemas import ref
from rest.schema import Method, Param
from rest.services import Services
from shared.errors import ApiError
from shared.models import member_key
from shared.store.logins import LoginCodes

__all__ = ["LOGIN", "LoginCall", "login_codes"]


@dataclass(frozen=True, slots=True)
class LoginCall:
    """A tokenless call: the services only (no caller, so no Idempotency-Key)."""

    services: Services
    idempotency_key: None = None


def login_codes(services: Services) -> LoginCodes:
    """The login codes of the services' store."""
    return LoginCodes(wire=services.store.wire)


async def _answer(services: Services, user_id: int, token: str) -> dict[str, Any]:
    user = await services.messenger.view(None).user(member_key("u", user_id))
    return {"token": token, "user": user}


async def get_login_options(call: LoginCall, p: dict[str, Any]) -> dict[str, Any]:
    return {"signup": await login_codes(call.services).signup_open()}


async def redeem_login_code(call: LoginCall, p: dict[str, Any]) -> dict[str, Any]:
    redeemed = await login_codes(call.services).redeem(p["code"])
    if redeemed is None:
        raise ApiError(
            400,
            "LOGIN_CODE_INVALID",
            "the login code is used, expired or wrong: ask botgw run for a new link",
        )
    return await _answer(call.services, redeemed.user_id, redeemed.token)


async def create_user(call: LoginCall, p: dict[str, Any]) -> dict[str, Any]:
    services = call.services
    if not await login_codes(services).signup_open():
        raise ApiError(
            403,
            "SIGNUP_CLOSED",
            "this server makes no users by themselves: an operator makes one with "
            "'botgw users create'",
        )
    name: str = p["name"]
    for _ in range(5):  # a random name may be taken
        username = f"guest_{secrets.token_hex(4)}"
        try:
            user, token = await services.accounts.create_user(username, name)
        except ApiError as exc:
            if exc.code != "USERNAME_TAKEN":
                raise
            continue
        return await _answer(services, user.id, token)
    raise ApiError(503, "USERNAME_TAKEN", "no free guest name was found: try again")


_LOGIN_RESULT = {
    "type": "object",
    "properties": {"token": {"type": "string"}, "user": ref("User")},
    "required": ["token", "user"],
}

LOGIN: tuple[Method, ...] = (
    Method(
        "getLoginOptions",
        get_login_options,
        summary="How one may log in here: whether createUser makes guests.",
        result={
            "type": "object",
            "properties": {"signup": {"type": "boolean"}},
            "required": ["signup"],
        },
    ),
    Method(
        "redeemLoginCode",
        redeem_login_code,
        summary="Exchange a one-time login code for its user's token.",
        params=(Param("code", "str", required=True, min_length=8, max_length=128),),
        result=_LOGIN_RESULT,
    ),
    Method(
        "createUser",
        create_user,
        summary="Make a guest user (only while the dev stack opens sign-up).",
        params=(Param("name", "str", default="Guest", min_length=1, max_length=64),),
        result=_LOGIN_RESULT,
    ),
)
