"""The stream's last sequence as the API sees it, or why it cannot: what a lag is measured by.

``/v1/status``, the dashboard's badge and the metrics all ask here, so they agree: a number
when the stream answers, and otherwise a sentence that says what went wrong and what to do,
never a bare "unknown".
"""

from __future__ import annotations

import asyncio
from typing import Any

from events.store import EventStore

__all__ = ["STREAM_TIMEOUT", "stream_last"]

STREAM_TIMEOUT = 3.0
"""Seconds the API waits for the stream's last sequence before it says why it has none."""


async def stream_last(state: Any) -> tuple[int | None, str | None]:
    """The stream's last activity sequence, or ``None`` and the reason with its fix.

    :param state: the app's state: ``store`` (``None`` for a file served alone) and
        ``follows_stream``. A server that follows no stream is not asked: it has no lag.
    """
    store: EventStore | None = state.store
    if store is None or not getattr(state, "follows_stream", True):
        return None, None
    nc = store.nc
    if not nc.is_connected:
        # nats-py reconnects for ever (services/infra/stack.py); say so, not "unknown".
        return None, (
            "the API has lost its NATS connection and keeps reconnecting: check that the "
            "nats-server runs (`ledger doctor`)"
        )
    try:
        return await asyncio.wait_for(store.last_sequence(), STREAM_TIMEOUT), None
    except TimeoutError:
        return None, (
            f"NATS did not answer within {STREAM_TIMEOUT:g} s: the server may be overloaded, "
            "or the API's credentials may not read the stream; run `ledger doctor`"
        )
    except Exception as exc:
        return None, (
            f"the stream could not be read ({type(exc).__name__}: {str(exc)[:120]}); "
            "run `ledger doctor`"
        )
