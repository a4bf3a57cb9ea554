"""The SSRF guard without I/O: URL rules, address classes, the allow list."""

from __future__ import annotations

import ipaddress

import pytest

from shared.ssrf import Allowlist, UrlRefused, address_problem, check_url

NONE = Allowlist()
LOOPBACK = Allowlist(["127.0.0.0/8", "localhost"])


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoints
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique local"),
        ("fc00::1", "unique local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("2002:7f00:1::1", "6to4 address wrapping 127.0.0.1"),
        ("2002:a00:1::1", "6to4 address wrapping 10.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "NAT64 address wrapping 169.254.169.254"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("192.0.2.10", "private"),  # documentation range, not routable
        ("198.18.0.1", "private"),  # benchmarking range
    ],
)
def test_non_public_addresses_are_refused_with_a_reason(address: str, words: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and words in problem


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("example.com/hook", "https"),
        ("https:///hook", "no host"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://trusted.example@evil.example/", "credentials"),
        ("https://example.com:99999/", "cannot be parsed"),
        ("https://example.com:0/", "port 0"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\r\nX-Injected: 1", "whitespace"),
        ("https://example.com/" + "a" * 2100, "longer than 2048"),
        ("http://10.0.0.1/", "https"),
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url: str, words: str) -> None:
    with pytest.raises(UrlRefused) as info:
        check_url(url, NONE)
    assert words in info.value.reason


def test_https_url_parts_are_kept_for_the_request() -> None:
    target = check_url("https://Bots.Example.COM./in/hook?x=1&y=2", NONE)
    assert (target.scheme, target.host, target.port) == ("https", "bots.example.com", 443)
    assert target.target == "/in/hook?x=1&y=2"
    assert target.host_header == "bots.example.com"
    assert target.url_for("93.184.216.34") == "https://93.184.216.34:443/in/hook?x=1&y=2"
    assert not target.trusted


def test_ipv6_literal_and_port_in_host_header_and_url() -> None:
    target = check_url("https://[2606:4700::1111]:8443", NONE)
    assert target.host == "2606:4700::1111" and target.port == 8443 and target.target == "/"
    assert target.host_header == "[2606:4700::1111]:8443"
    assert target.url_for("2606:4700::1111") == "https://[2606:4700::1111]:8443/"


def test_internationalised_host_names_are_idna_encoded() -> None:
    assert check_url("https://bücher.example/", NONE).host == "xn--bcher-kva.example"


def test_allowed_names_and_networks_may_use_http() -> None:
    by_name = check_url("http://localhost:8080/hook", LOOPBACK)
    assert by_name.trusted and by_name.host_header == "localhost:8080"
    by_network = check_url("http://127.0.0.5:9000/", LOOPBACK)
    assert by_network.trusted
    with pytest.raises(UrlRefused):
        check_url("http://10.0.0.1/", LOOPBACK)  # not in the allowed networks


def test_a_name_that_may_resolve_into_an_allowed_network_is_decided_after_lookup() -> None:
    # with networks allowed, http to a name passes the syntax check: the addresses decide
    target = check_url("http://receiver.internal/", Allowlist(["10.0.0.0/8"]))
    assert not target.trusted and target.scheme == "http"


def test_allowlist_parses_names_addresses_and_networks() -> None:
    allow = Allowlist(["LocalHost.", "10.0.0.0/8", "::1", " ", "hooks.internal"])
    assert allow.allows_name("localhost") and allow.allows_name("hooks.internal")
    assert allow.allows_address(ipaddress.ip_address("10.9.8.7"))
    assert allow.allows_address(ipaddress.ip_address("::1"))
    assert not allow.allows_address(ipaddress.ip_address("11.0.0.1"))
    assert not allow.allows_address(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert not Allowlist([]) and allow
