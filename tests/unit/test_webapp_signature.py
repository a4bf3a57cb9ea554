"""Web app init data is signed exactly as Telegram signs it (rest.webapps).

The fixed vector was computed with OpenSSL from Telegram's description, apart
from this code base:

    secret=$(printf '%s' "$token" | openssl dgst -sha256 -mac HMAC \\
             -macopt key:WebAppData -binary | xxd -p -c 64)
    printf '%s' "$data_check_string" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$secret
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from aiogram.utils.web_app import check_webapp_signature, safe_parse_webapp_init_data

from rest.webapps import check_init_data, sign_init_data, webapp_key, webapp_secret

TOKEN = "7342037359:AAHI25ES9xCOMPMpYRCHNgHf0BmY_t_uCeM"
FIELDS = {
    "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
    "user": (
        '{"id":279058397,"first_name":"Vladislav","username":"vdkfrost",'
        '"language_code":"en","allows_write_to_pm":true}'
    ),
    "auth_date": "1767225600",
    "chat_instance": "-8417403402519425371",
    "chat_type": "private",
}
SECRET_HEX = "116326e6eb14c806e673be29c4cd1b8c08ce3bef747aca97ea0e65f2e215ffe9"
HASH = "f935c9097a735692eb815011937db01ec5d7daca15d1c998a448651b4861c715"


def telegram_hash(token: str, fields: dict[str, str]) -> str:
    """Telegram's algorithm, written from its description."""
    secret_key = hmac.new(key=b"WebAppData", msg=token.encode(), digestmod=hashlib.sha256)
    lines = sorted(f"{key}={value}" for key, value in fields.items() if key != "hash")
    check = "\n".join(lines).encode()
    return hmac.new(key=secret_key.digest(), msg=check, digestmod=hashlib.sha256).hexdigest()


def test_the_fixed_vector() -> None:
    assert webapp_secret(TOKEN).hex() == SECRET_HEX
    assert telegram_hash(TOKEN, FIELDS) == HASH
    init_data, digest = sign_init_data(webapp_secret(TOKEN), FIELDS)
    assert digest == HASH
    assert dict(parse_qsl(init_data)) == {**FIELDS, "hash": HASH}


def test_the_key_kept_is_the_telegram_form_of_the_token() -> None:
    native = "bot_" + TOKEN
    assert webapp_key(native) == SECRET_HEX
    assert webapp_key(TOKEN) == SECRET_HEX


def test_signed_data_matches_the_independent_hash_and_aiogram() -> None:
    fields = {**FIELDS, "auth_date": "1800000000", "user": '{"id":1,"first_name":"A b&c=d"}'}
    init_data, digest = sign_init_data(webapp_secret(TOKEN), fields)
    assert digest == telegram_hash(TOKEN, fields)
    assert check_webapp_signature(TOKEN, init_data)
    parsed = safe_parse_webapp_init_data(TOKEN, init_data)
    assert parsed.user is not None and parsed.user.first_name == "A b&c=d"
    assert not check_webapp_signature(TOKEN.replace("A", "B"), init_data)


def test_check_refuses_what_is_altered_or_malformed() -> None:
    secret = webapp_secret(TOKEN)
    init_data, _ = sign_init_data(secret, FIELDS)
    assert check_init_data(secret, init_data) == {**FIELDS, "hash": HASH}
    assert check_init_data(secret, init_data.replace("private", "group")) is None
    assert check_init_data(webapp_secret("1:other"), init_data) is None
    for bad in ("", "no-equals", "hash=", "a=1&a=2&hash=" + HASH, "x" * 9000):
        assert check_init_data(secret, bad) is None
