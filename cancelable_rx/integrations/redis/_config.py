"""Where Redis is and what lives in it: endpoints, key and channel names, argument checks,
and the error raised when Redis cannot be reached.

An *endpoint* is what a URL or a client names: a connection class (plain TCP, TLS or a
unix socket) and its settings (host, port, db, username, password, TLS files...).  The
package opens its own connections from it on the loop that uses them (a ``redis.asyncio``
client is bound to the event loop that made it, so it cannot be shared with another loop
or with trio).  One endpoint is one key of the per-process connection table.

Names in Redis, under a namespace ``ns`` (default ``cancelable_rx``)::

    ns:token:NAME     the cancel record of token NAME (JSON, set once, with an expiry)
    ns:cancel:NAME    the channel a cancel of NAME is announced on (pattern ns:cancel:*)
    ns:op:ID          the heartbeat record of a tracked operation (expires unless renewed)
    ns:ops            the ids of tracked operations (a sorted set, by start time)
    ns:history        the records of ended operations, newest first (a bounded list)
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection as aconn
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, ResponseError

from cancelable_rx._checks import check_str, fail_type, fail_value

__all__ = (
    "DEFAULT_NAMESPACE",
    "Endpoint",
    "RedisConnectError",
    "check_name",
    "check_namespace",
    "check_seconds",
    "endpoint_of",
    "history_key",
    "index_key",
    "pattern_of",
    "record_key",
    "token_channel",
    "token_key",
)

DEFAULT_NAMESPACE = "cancelable_rx"
_CLASSES = {
    "Connection": aconn.Connection,
    "SSLConnection": aconn.SSLConnection,
    "UnixDomainSocketConnection": aconn.UnixDomainSocketConnection,
}
# What is taken from a client's connection settings (everything that says where Redis is
# and who we are); the rest (timeouts of the caller's own use, decoding, retries,
# protocol) is the package's own choice for its connections.
_CLIENT_KEYS = frozenset(
    {"host", "port", "path", "db", "username", "password", "credential_provider", "socket_connect_timeout",
     "socket_keepalive", "socket_keepalive_options"}
)


class RedisConnectError(ConnectionError):
    """Redis could not be reached or refused us (wrong password, unknown user, TLS error).

    Raised when a token starts listening or a registry is first used, with the endpoint
    (password masked), what went wrong and how to fix it; chained from redis-py's error.
    """


@dataclass(frozen=True, eq=False)
class Endpoint:
    """Where Redis is: the async connection class, its settings, a display string with the
    password masked, and the key of the per-process connection table."""

    connection_class: type[Any]
    kwargs: dict[str, Any] = field(repr=False)
    display: str
    key: Hashable

    def connect_error(self, err: BaseException) -> RedisConnectError:
        """The clear error for a failure to connect or authenticate (chain it from ``err``)."""
        user = self.kwargs.get("username") or "default"
        if isinstance(err, (AuthenticationError, AuthenticationWrongNumberOfArgsError)) or (
            isinstance(err, ResponseError) and ("NOAUTH" in str(err) or "WRONGPASS" in str(err))
        ):
            text = (
                f"Redis at {self.display} refused the credentials of user {user!r} ({err}); check the "
                "password (and username) in the URL, e.g. redis://USER:PASSWORD@host:6379/0, or on the client"
            )
        else:
            text = (
                f"could not connect to Redis at {self.display}: {type(err).__name__}: {err}; check that "
                "redis-server runs there and that the URL (host, port, TLS) is right"
            )
        return RedisConnectError(text)


_by_url: dict[str, Endpoint] = {}  # endpoints of the URLs seen last (an endpoint is never changed)
_MAX_URLS = 64


def _mask(url: str) -> str:
    """``url`` with its password replaced by ``***`` (works on URLs that do not parse)."""
    return _PASSWORD.sub(r"\1***@", url)


def endpoint_of(value: object, param: str = "redis") -> Endpoint:
    """The endpoint named by a URL (``redis://``, ``rediss://``, ``unix://``) or by a
    redis-py client (``redis.Redis`` or ``redis.asyncio.Redis``), whose connection settings
    are copied.  TypeError/ValueError name ``param``.  An `Endpoint` is returned as it is."""
    if isinstance(value, Endpoint):
        return value
    if isinstance(value, str):
        known = _by_url.get(value)  # (a token made per cancel does not parse its URL again)
        if known is not None:
            return known
        try:
            kwargs: dict[str, Any] = dict(aconn.parse_url(value))
        except ValueError as err:
            fail_value(param, "a redis://, rediss:// or unix:// URL", _mask(value), str(err))
        cls = kwargs.pop("connection_class", aconn.Connection)
        endpoint = Endpoint(cls, kwargs, _mask(value), ("url", value))
        if len(_by_url) >= _MAX_URLS:
            _by_url.clear()
        _by_url[value] = endpoint
        return endpoint
    if isinstance(value, (redis.Redis, redis.asyncio.Redis)):
        pool = value.connection_pool
        cls = _CLASSES.get(pool.connection_class.__name__)
        if cls is None:
            fail_value(param, "a client with a TCP, TLS or unix-socket connection", value,
                       f"{pool.connection_class.__name__} is not supported; pass a redis:// URL")
        source = pool.connection_kwargs
        kwargs = {k: v for k, v in source.items() if k in _CLIENT_KEYS or k.startswith("ssl_")}
        if "path" in kwargs:
            display = f"unix://{kwargs['path']}"
        else:
            scheme = "rediss" if cls is aconn.SSLConnection else "redis"
            display = f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
        key = ("client", cls.__name__, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        return Endpoint(cls, kwargs, display, key)
    fail_type(param, "a Redis URL (str) or a redis-py client", value, 'e.g. "redis://127.0.0.1:6379/0"')


def check_namespace(value: object, param: str = "namespace") -> str:
    """A key prefix: a non-empty str."""
    text = check_str(value, param, 'e.g. namespace="myapp"')
    if not text:
        fail_value(param, "a non-empty str", text, 'e.g. namespace="myapp"')
    return text


def check_name(value: object, param: str = "name") -> str:
    """A token name: a non-empty str of at most 1,000 characters."""
    text = check_str(value, param, 'e.g. "job-42"')
    if not text or len(text) > 1000:
        fail_value(param, "a non-empty str of at most 1000 characters", text, 'e.g. "job-42"')
    return text


def check_seconds(value: object, param: str, example: str) -> float:
    """A finite number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail_type(param, "a number of seconds", value, f"e.g. {param}={example}")
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        fail_value(param, "a finite number of seconds > 0", value, f"e.g. {param}={example}")
    return seconds


def token_key(namespace: str, name: str) -> str:
    return f"{namespace}:token:{name}"


def token_channel(namespace: str, name: str) -> str:
    return f"{namespace}:cancel:{name}"


_PASSWORD = re.compile(r"^([a-z]+://[^:/@]*:)[^@]*@", re.I)
_GLOB = re.compile(r"([*?\[\]\\])")


def pattern_of(namespace: str) -> str:
    """The pattern that matches every cancel channel of ``namespace`` (glob characters escaped)."""
    return _GLOB.sub(r"\\\1", namespace) + ":cancel:*"


def record_key(namespace: str, operation_id: str) -> str:
    return f"{namespace}:op:{operation_id}"


def index_key(namespace: str) -> str:
    return f"{namespace}:ops"


def history_key(namespace: str) -> str:
    return f"{namespace}:history"
