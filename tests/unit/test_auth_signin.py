"""Ed25519 sign-in's pure parts: the primitive on RFC 8032's vector, the signed
message's exact bytes (the vector docs/api.md gives clients) and the encodings."""

from __future__ import annotations

import base64

import nacl.signing
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rest.methods.auth import _decoded, audience_for, default_username, signed_message
from shared.errors import ApiError
from shared.settings import Settings

# RFC 8032 section 7.1, TEST 1 (the empty message)
RFC_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

# the sign-in vector of docs/api.md: RFC 8032's key, challenge bytes 0..31
VECTOR_PUBLIC_KEY = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
VECTOR_CHALLENGE = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
VECTOR_MESSAGE = (
    b"botgw-auth-v1\nbotgw.example.com\n"
    b"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\n"
    b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
)
VECTOR_SIGNATURE = (
    "ZqdKlXMemozZ9qfjkRblWygVxhN7OSjCecCRKBB7L69gaHzdOl23IU1ec-k7LTV8B0D46AWKZbA8CW1MhQpYCA"
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_rfc8032_test_1_in_both_implementations() -> None:
    signer = nacl.signing.SigningKey(RFC_SECRET)
    assert bytes(signer.verify_key) == RFC_PUBLIC
    assert signer.sign(b"").signature == RFC_SIGNATURE
    # what the server runs accepts it, and refuses it for another message
    Ed25519PublicKey.from_public_bytes(RFC_PUBLIC).verify(RFC_SIGNATURE, b"")
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(RFC_PUBLIC).verify(RFC_SIGNATURE, b"x")


def test_the_signed_message_vector() -> None:
    assert b64(RFC_PUBLIC) == VECTOR_PUBLIC_KEY and b64(bytes(range(32))) == VECTOR_CHALLENGE
    message = signed_message("botgw.example.com", VECTOR_PUBLIC_KEY, VECTOR_CHALLENGE)
    assert message == VECTOR_MESSAGE
    signature = nacl.signing.SigningKey(RFC_SECRET).sign(message).signature
    assert b64(signature) == VECTOR_SIGNATURE
    Ed25519PublicKey.from_public_bytes(RFC_PUBLIC).verify(signature, message)


@pytest.mark.parametrize(
    "text",
    [
        "",
        VECTOR_PUBLIC_KEY[:-1],  # too short
        VECTOR_PUBLIC_KEY + "A",  # too long
        VECTOR_PUBLIC_KEY + "=",  # padded
        VECTOR_PUBLIC_KEY[:-1] + "p",  # the same bytes, with padding bits set: not canonical
        "+" + VECTOR_PUBLIC_KEY[1:],  # standard base64, not base64url
        VECTOR_PUBLIC_KEY.encode().hex()[:43],
    ],
)
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        _decoded(text, 32, "public_key")
    assert (caught.value.status, caught.value.code) == (400, "INVALID_PUBLIC_KEY")
    assert "base64url" in caught.value.description


def test_well_formed_values_decode() -> None:
    assert _decoded(VECTOR_PUBLIC_KEY, 32, "public_key") == RFC_PUBLIC
    assert b64(_decoded(VECTOR_SIGNATURE, 64, "signature")) == VECTOR_SIGNATURE


def test_the_audience() -> None:
    assert audience_for(Settings(auth_audience="chat.example"), "x") == "chat.example"
    public = Settings(public_rest_url="https://API.example.com:8443/base")
    assert audience_for(public, "elsewhere") == "api.example.com:8443"
    assert audience_for(Settings(), "Host.Example:8080") == "host.example:8080"
    assert audience_for(Settings(), "[::1]:80") == "[::1]:80"
    for bad in ("", "a b", "x\ny", "evil.example/path"):
        with pytest.raises(ApiError) as caught:
            audience_for(Settings(), bad)
        assert caught.value.code == "INVALID_HOST"


def test_default_usernames_are_user_names() -> None:
    name = default_username(RFC_PUBLIC)
    assert name.startswith("key_") and len(name) == 20
    assert name != default_username(bytes(32))
