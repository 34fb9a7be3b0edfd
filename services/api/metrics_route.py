"""``GET /metrics``: the process's Prometheus instruments, and the API's own request timing.

The route answers whoever may read the API: on loopback anyone on this machine, beyond it only
a request with the bearer token (services/api/auth.py), as every other read route. What it
shows is counts, durations and sequences, labelled by bounded values only
(services/infra/metrics.py). Before it answers it reads what lives outside the process into
the gauges: the stream's state, the lag of the projection this server reads, and the
nats-server's monitoring endpoint when the server knows one.

:func:`timed` wraps the Litestar app, so every request is timed by its route's template
(``/v1/countries/{country}``), never by the path asked, which any client could vary
without end.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from litestar import Request, Response, get

from projections.errors import NotYetError
from projections.queries import current_sequence
from services.infra import metrics

__all__ = ["metrics_page", "timed"]

_UNMATCHED = "unmatched"
"""The route label of a request no route took (a 404): one value, whatever the path."""


@get(
    "/metrics",
    opt={"query": frozenset()},
    include_in_schema=False,
)
async def metrics_page(request: Request) -> Response[bytes]:
    """The instruments in Prometheus text format."""
    state = request.app.state
    follows = getattr(state, "follows_stream", True)
    checkpoint: int | None = None
    if follows:
        try:
            checkpoint = current_sequence(state.read_model.connection())
        except NotYetError:
            checkpoint = None
    await metrics.refresh(
        state.store if follows else None,
        checkpoint=checkpoint,
        monitor_url=getattr(state, "monitor_url", ""),
    )
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


class _Timed:
    """``app`` with each HTTP request's duration observed by route template and status; the
    wrapped app is :attr:`app`, as with the API's other wrappers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, and time it."""
        app = self.app
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an app that fails before it answers

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, watch)
        finally:
            # Litestar writes the matched route's template into the scope it was given.
            route = scope.get("path_template") or _UNMATCHED
            metrics.API_LATENCY.labels(route, str(status)).observe(time.perf_counter() - started)


def timed(app: Any) -> Any:
    """``app`` with each HTTP request's duration observed by route template and status."""
    return _Timed(app)
