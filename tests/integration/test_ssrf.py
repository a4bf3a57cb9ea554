"""The SSRF guard with real name resolution (local names and numeric forms only)."""

from __future__ import annotations

import pytest

from shared.ssrf import Allowlist, UrlRefused, resolve_target

pytestmark = pytest.mark.asyncio

DEV = Allowlist(["127.0.0.0/8", "::1/128", "localhost"])


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://2130706433/hook",  # 127.0.0.1 written as one decimal number
        "https://0x7f.1/hook",  # and in hex-dotted form
        "https://127.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
    ],
)
async def test_names_are_judged_by_the_addresses_they_resolve_to(url: str) -> None:
    with pytest.raises(UrlRefused) as info:
        await resolve_target(url, Allowlist())
    assert "webhooks may only reach public addresses" in info.value.reason


async def test_a_name_that_does_not_resolve_is_refused_with_its_name() -> None:
    with pytest.raises(UrlRefused) as info:
        await resolve_target("https://no-such-host.invalid/hook", Allowlist())
    assert "'no-such-host.invalid' could not be resolved" in info.value.reason


async def test_public_literal_addresses_pass_and_are_the_ones_used() -> None:
    target = await resolve_target("https://8.8.8.8/hook", Allowlist())
    assert target.addresses == ("8.8.8.8",) and not target.trusted
    assert target.url_for(target.addresses[0]) == "https://8.8.8.8:443/hook"


async def test_allowed_hosts_may_use_http_and_loopback() -> None:
    target = await resolve_target("http://localhost:8080/hook", DEV)
    assert target.trusted and "127.0.0.1" in target.addresses
    literal = await resolve_target("http://127.0.0.1:9/x", DEV)
    assert literal.trusted and literal.addresses == ("127.0.0.1",)
    decimal = await resolve_target("http://2130706433:9/x", DEV)  # resolves into 127/8
    assert decimal.trusted and decimal.addresses == ("127.0.0.1",)


async def test_allowing_loopback_does_not_allow_other_private_ranges() -> None:
    for url in ("http://10.0.0.1/", "https://10.0.0.1/", "https://[::ffff:127.0.0.1]/"):
        with pytest.raises(UrlRefused):
            await resolve_target(url, DEV)


async def test_an_allowed_network_alone_lets_a_name_resolving_into_it_use_http() -> None:
    target = await resolve_target("http://localhost:7/x", Allowlist(["127.0.0.0/8", "::1/128"]))
    assert target.trusted
    with pytest.raises(UrlRefused) as info:
        await resolve_target("http://localhost:7/x", Allowlist(["10.0.0.0/8"]))
    assert "https" in info.value.reason
