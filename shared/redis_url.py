"""Where the store's Redis is: ``BOTGW_REDIS_URL`` read into a :class:`Target`.

Three kinds, one code path above them (docs/operations.md, Redis):

* ``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS) and
  ``unix://[user:password@]/path/to/socket[?db=N]``: one node;
* ``redis+cluster://[user:password@]host:port[,host:port...]``: a Redis Cluster,
  the addresses being seed nodes (any of them is enough to learn the others);
  ``rediss+cluster://`` with TLS;
* ``redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[?db=N]``:
  the sentinels that watch the primary ``<master name>``; ``rediss+sentinel://``
  with TLS to the primary. ``?sentinel_password=`` logs in to the sentinels.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Address", "Target", "parse_redis_url"]

VARIABLE = "BOTGW_REDIS_URL"
_SCHEMES = {
    "redis": ("node", False),
    "rediss": ("node", True),
    "unix": ("node", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_EXAMPLES = (
    "redis://host:6379/0, rediss://host:6380, unix:///path/redis.sock, "
    "redis+cluster://host1:6379,host2:6379, redis+sentinel://host1:26379,host2:26379/mymaster"
)


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP address, or a unix socket when ``path`` is set."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None

    def __str__(self) -> str:
        return self.path if self.path is not None else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed Redis URL (see the module's docstring)."""

    kind: str  # "node", "cluster" or "sentinel"
    addresses: tuple[Address, ...]  # the node; the seed nodes; the sentinels
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = None
    master: str | None = None  # sentinel: the name of the watched primary
    sentinel_password: str | None = None

    def at(self, address: Address) -> Target:
        """The same credentials and options for one node at ``address``."""
        return Target(
            kind="node",
            addresses=(address,),
            tls=self.tls,
            db=self.db,
            username=self.username,
            password=self.password,
        )


def _fail(url: str, why: str, variable: str) -> ValueError:
    shown = url.split("@")[-1] if "@" in url else url  # never echo a password
    return ValueError(f"{variable}={shown!r}: {why}; expected one of {_EXAMPLES}")


def _port(text: str, url: str, variable: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _fail(url, f"{text!r} is not a port", variable)
    return int(text)


def _addresses(netloc: str, url: str, variable: str, default_port: int) -> tuple[Address, ...]:
    found = []
    for part in netloc.split(","):
        if not part:
            raise _fail(url, "an empty address in the list", variable)
        if part.startswith("["):  # [ipv6]:port
            host, _, rest = part[1:].partition("]")
            port = _port(rest[1:], url, variable) if rest.startswith(":") else default_port
        else:
            host, sep, port_text = part.rpartition(":")
            if not sep:
                host, port = part, default_port
            else:
                port = _port(port_text, url, variable)
        if not host:
            raise _fail(url, f"no host in {part!r}", variable)
        found.append(Address(host=host, port=port))
    return tuple(found)


def _db(text: str, url: str, variable: str) -> int:
    if not text.isdigit():
        raise _fail(url, f"the database {text!r} is not a number", variable)
    return int(text)


def parse_redis_url(url: str, variable: str = VARIABLE) -> Target:
    """Read a Redis URL; a ``ValueError`` naming ``variable`` says what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise _fail(url, f"unknown scheme {scheme!r}" if sep else "not a URL", variable)
    kind, tls = _SCHEMES[scheme.lower()]
    split = urlsplit("x://" + rest)
    netloc, query = split.netloc, parse_qs(split.query)
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    username, _, password = userinfo.partition(":")
    if userinfo and ":" not in userinfo:  # redis://secret@host: the password alone
        username, password = "", userinfo
    options = {
        "username": unquote(username) or None,
        "password": unquote(password) or None,
    }
    db_text = (query.get("db") or [""])[0]
    if scheme.lower() == "unix":
        path = unquote(split.path)
        if not path:
            raise _fail(url, "no socket path", variable)
        db = _db(db_text, url, variable) if db_text else 0
        return Target(kind, (Address(path=path),), tls, db, **options)
    if kind == "cluster":
        if split.path.strip("/") or db_text not in ("", "0"):
            raise _fail(url, "a Redis Cluster has only database 0", variable)
        return Target(kind, _addresses(hosts, url, variable, 6379), tls, 0, **options)
    if kind == "sentinel":
        master = unquote(split.path.strip("/"))
        if not master or "/" in master:
            raise _fail(url, "name the primary after the sentinels: .../<master name>", variable)
        db = _db(db_text, url, variable) if db_text else 0
        secrets = query.get("sentinel_password")
        secret = secrets[0] if secrets else None
        addresses = _addresses(hosts, url, variable, 26379)
        return Target(kind, addresses, tls, db, master=master, sentinel_password=secret, **options)
    if "," in hosts:
        raise _fail(url, "several hosts: use redis+cluster:// or redis+sentinel://", variable)
    path_db = split.path.strip("/")
    db = _db(path_db or db_text or "0", url, variable)
    return Target(kind, _addresses(hosts or "localhost", url, variable, 6379), tls, db, **options)
