"""Who may read the HTTP API, and what every answer tells the browser.

The API is read-only whoever calls it, so the choice is only who may read. ``ledger up`` binds
it to 127.0.0.1 unless ``--public`` is given (:func:`check_bind_host`), and ``--public`` needs
``LEDGER_API_TOKEN``: a server other machines reach always asks for a token. When a token is
set, every request must carry ``Authorization: Bearer <token>`` (:func:`require_token`); one
without it gets 401.

Every answer, the dashboard's pages, CSV, JSON and errors alike, carries
:data:`SECURITY_HEADERS` (:class:`SecureHeaders`): the pages load nothing but their own
stylesheet, run no script, and may not be framed.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from events.errors import LedgerError

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "TOKEN_VARIABLE",
    "PublicBindError",
    "SecureHeaders",
    "TokenRequiredError",
    "check_bind_host",
    "is_loopback",
    "require_token",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


TOKEN_VARIABLE = "LEDGER_API_TOKEN"
"""The environment variable that holds the API's bearer token."""

CONTENT_SECURITY_POLICY = "; ".join(
    [
        # Nothing by default: no script, font, frame, media or fetch from anywhere.
        "default-src 'none'",
        # The dashboard's one stylesheet, /static/dashboard.css; its charts are inline SVG
        # styled by that sheet's classes, with no style attribute nor <style> element.
        "style-src 'self'",
        # The browser's own favicon request; the pages show no image.
        "img-src 'self'",
        # The search and year forms submit (GET) to the dashboard itself.
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
"""What a page of this server may load: its own stylesheet, nothing else."""

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
"""The headers every answer of the API and dashboard carries, as ASGI header pairs."""


class PublicBindError(LedgerError):
    """Raised when the API would listen beyond this machine without ``--public``."""


class TokenRequiredError(LedgerError):
    """Raised when the API is to be public (``--public``) and ``LEDGER_API_TOKEN`` is not set."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, public: bool, token: str | None = None) -> str | None:
    """Check that the API may listen on ``host``; return a notice to print, if any.

    ``public`` always needs a token, even on a loopback address: asking for ``--public`` says
    the server is meant for others, and a proxy or a published port may take it to them.

    :param public: whether the operator asked for an address beyond loopback (``--public``).
    :param token: the API's bearer token, if one is set.
    :raises TokenRequiredError: for ``public`` without a token.
    :raises PublicBindError: for a non-loopback address without ``public``.
    """
    if public and not (token and token.strip()):
        raise TokenRequiredError(
            f"--public needs a bearer token: set {TOKEN_VARIABLE} first, e.g. "
            f'export {TOKEN_VARIABLE}="$(python3 -c '
            "'import secrets; print(secrets.token_urlsafe(32))')\" "
            "and give the token to the API's readers (Authorization: Bearer <token>); "
            "or leave out --public to serve this machine only"
        )
    if is_loopback(host):
        return None
    if not public:
        raise PublicBindError(
            f"the API would listen on {host}, beyond this machine; give --public to mean it "
            f"(with {TOKEN_VARIABLE} set), or keep the default 127.0.0.1"
        )
    return (
        f"notice: the query API listens on {host} and can be reached from other machines; "
        f"every request needs the bearer token of {TOKEN_VARIABLE}"
    )


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
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return guarded


class SecureHeaders:
    """``app`` with :data:`SECURITY_HEADERS` on every HTTP answer, errors and 404s included.

    A header the app set itself is kept: a route may need a policy of its own. The wrapped app
    is :attr:`app`, as with the other wrappers of the API.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the answer's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in SECURITY_HEADERS if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)


def _carries(scope: Scope, expected: bytes) -> bool:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            # Compared in constant time, so the answer's timing tells nothing of the token.
            return hmac.compare_digest(value, expected)
    return False
