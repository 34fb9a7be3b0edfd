"""Who may read the HTTP API: loopback by default, and an optional bearer token.

The API is read-only whoever calls it, so the choice is only who may read. ``ledger up`` binds
it to 127.0.0.1 unless ``--public`` is given (:func:`check_bind_host`), and when
``LEDGER_API_TOKEN`` is set every request must carry ``Authorization: Bearer <token>``
(:func:`require_token`); one without it gets 401.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from events.errors import LedgerError

__all__ = ["PublicBindError", "check_bind_host", "is_loopback", "require_token"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PublicBindError(LedgerError):
    """Raised when the API would listen beyond this machine without ``--public``."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, public: bool, token: str | None = None) -> str | None:
    """Check that the API may listen on ``host``; return a warning to print, if any.

    :param public: whether the operator asked for an address beyond loopback (``--public``).
    :param token: the API's bearer token, if one is set.
    :raises PublicBindError: for a non-loopback address without ``public``.
    """
    if is_loopback(host):
        return None
    if not public:
        raise PublicBindError(
            f"the API would listen on {host}, beyond this machine; give --public to mean it "
            "(and set LEDGER_API_TOKEN), or keep the default 127.0.0.1"
        )
    warning = f"warning: the query API listens on {host} and can be reached from other machines"
    if not token:
        warning += "; set LEDGER_API_TOKEN to require a bearer token"
    return warning


def require_token(app: ASGIApp, token: str | None) -> ASGIApp:
    """``app`` behind a bearer token; ``app`` itself when no token is set.

    Works on any ASGI app, so the Litestar app needs no change to be protected. WebSocket and
    lifespan messages pass through: the API serves neither.
    """
    if not token:
        return app
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _carries(scope, expected):
            await app(scope, receive, send)
            return
        body = json.dumps(
            {"code": "unauthorized", "message": "this API needs Authorization: Bearer <token>"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="ledger"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return guarded


def _carries(scope: Scope, expected: bytes) -> bool:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            # Compared in constant time, so the answer's timing tells nothing of the token.
            return hmac.compare_digest(value, expected)
    return False
