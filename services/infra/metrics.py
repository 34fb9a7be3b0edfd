"""The process's Prometheus instruments, in one registry of their own, and what fills them.

Every instrument of the ledger is declared here, with ``prometheus-client``; the components
update the ones that are theirs (intake counts commands, the projector its progress, the API
its requests), and :func:`refresh` reads, at scrape time, what only exists outside the process:
the stream's state and the nats-server's own monitoring endpoint; the outbox's depth is read
through the function :func:`count_outbox` was given. A process shows what it runs: ``ledger
up`` runs every component in one process, so its ``/metrics`` has them all; a process of the
compose file has only its own (docs/deployment.md, "Operating the ledger").

Labels take bounded values only: an outcome, an intake rejection code (``ErrorCode``, a closed
set, events/commands.py), a route's template (``/v1/countries/{country}``, never the path
asked), an HTTP status. Never an activity id, an office's free text, a token or a key.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from events.commands import Accepted, Rejected, Replies, Reply

if TYPE_CHECKING:
    from events.store import EventStore

__all__ = [
    "API_LATENCY",
    "CONTENT_TYPE",
    "INTAKE_COMMANDS",
    "INTAKE_LATENCY",
    "OUTBOX_DEPTH",
    "PROJECTOR_APPLIED",
    "PROJECTOR_CHECKPOINT",
    "PROJECTOR_LAG",
    "QUARANTINED",
    "REBUILD_PROGRESS",
    "REGISTRY",
    "count_outbox",
    "count_reply",
    "exposition",
    "nats_health",
    "refresh",
]

REGISTRY = CollectorRegistry()
"""The ledger's instruments; not prometheus-client's global registry, so that a scrape shows
only what this module declares (no instrument of a library by accident)."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :func:`exposition`'s text (Prometheus text format 0.0.4)."""

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency buckets in seconds: intake answers in milliseconds (docs/performance.md), a long
import batch or a cold query in seconds."""

INTAKE_COMMANDS = Counter(
    "ledger_intake_commands",
    "Commands intake answered, by outcome (accepted, duplicate, rejected) and rejection code; "
    "each report of a batch counts once.",
    ["outcome", "code"],
    registry=REGISTRY,
)
INTAKE_LATENCY = Histogram(
    "ledger_intake_request_seconds",
    "Seconds from a command message's arrival to its encoded reply (a batch is one request).",
    buckets=_FAST,
    registry=REGISTRY,
)
PROJECTOR_CHECKPOINT = Gauge(
    "ledger_projector_checkpoint_sequence",
    "The last stream sequence the live projection has applied.",
    registry=REGISTRY,
)
PROJECTOR_LAG = Gauge(
    "ledger_projector_lag_events",
    "The stream's last activity sequence minus the live projection's checkpoint.",
    registry=REGISTRY,
)
PROJECTOR_APPLIED = Counter(
    "ledger_projector_events_applied",
    "Events the live projector applied; rate() of it is the apply rate.",
    registry=REGISTRY,
)
QUARANTINED = Gauge(
    "ledger_projector_quarantined_events",
    "Events in the live projection's quarantine (stored but not applicable).",
    registry=REGISTRY,
)
REBUILD_PROGRESS = Gauge(
    "ledger_rebuild_progress_ratio",
    "How far the projector's catch-up from its checkpoint to the stream's end is (a rebuild "
    "after a switch or an empty file): 0 to 1, and 1 when none runs.",
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "ledger_api_request_seconds",
    "Seconds the query API and dashboard took to answer, by route template and status.",
    ["route", "status"],
    buckets=_FAST,
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    "ledger_outbox_commands_waiting",
    "Commands of this data directory's office outbox not yet answered by intake; read at "
    "scrape time through the function the composition root gives (services/bootstrap.py).",
    registry=REGISTRY,
)
STREAM_MESSAGES = Gauge("ledger_stream_messages", "Messages in the stream.", registry=REGISTRY)
STREAM_BYTES = Gauge("ledger_stream_bytes", "Bytes the stream stores.", registry=REGISTRY)
STREAM_LAST_SEQUENCE = Gauge(
    "ledger_stream_last_sequence", "The stream's last sequence.", registry=REGISTRY
)
NATS_HEALTHY = Gauge(
    "ledger_nats_server_healthy",
    "1 when the nats-server's monitoring endpoint answers /healthz with ok, else 0.",
    registry=REGISTRY,
)
NATS_VARZ = {
    field: Gauge(f"ledger_nats_server_{name}", text, registry=REGISTRY)
    for field, name, text in (
        ("connections", "connections", "Client connections the nats-server holds (/varz)."),
        ("mem", "memory_bytes", "The nats-server's resident memory in bytes (/varz)."),
        ("cpu", "cpu_percent", "The nats-server's CPU use in percent (/varz)."),
        ("slow_consumers", "slow_consumers", "Slow consumers the nats-server counted (/varz)."),
        ("in_msgs", "in_messages", "Messages the nats-server received (/varz)."),
        ("out_msgs", "out_messages", "Messages the nats-server sent (/varz)."),
    )
}
"""Figures of the nats-server's ``/varz`` page, by its field name."""

REBUILD_PROGRESS.set(1)

_MONITOR_TIMEOUT = 2.0


def count_outbox(depth: Callable[[], int]) -> None:
    """Read the outbox's depth through ``depth`` at every scrape.

    The outbox is the office client's (services/client/outbox.py), which this room may not
    import: the composition root hands its reader over. A read that fails (a damaged file)
    shows as NaN rather than failing the scrape.
    """

    def read() -> float:
        try:
            return float(depth())
        except Exception:  # the scrape must answer with what it has
            return math.nan

    OUTBOX_DEPTH.set_function(read)


def count_reply(reply: Reply) -> None:
    """Count intake's answer: each reply of a batch once, a description (no write) not at all."""
    replies: Iterable[Reply] = reply.replies if isinstance(reply, Replies) else (reply,)
    for one in replies:
        if isinstance(one, Accepted):
            INTAKE_COMMANDS.labels("duplicate" if one.duplicate else "accepted", "").inc()
        elif isinstance(one, Rejected):
            INTAKE_COMMANDS.labels("rejected", one.code).inc()


def exposition() -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(REGISTRY)


def _get_json(url: str) -> Any:
    # Our own URL (runtime.json), on 127.0.0.1: never one a request chose.
    with urllib.request.urlopen(url, timeout=_MONITOR_TIMEOUT) as answer:
        return json.loads(answer.read(1 << 20))


def nats_health(monitor_url: str) -> tuple[bool, dict[str, Any]]:
    """Whether the nats-server at ``monitor_url`` says it is healthy, and its ``/varz``.

    Blocking: call it in a thread. An unreachable endpoint is unhealthy with an empty varz.
    """
    base = monitor_url.rstrip("/")
    try:
        healthy = _get_json(f"{base}/healthz").get("status") == "ok"
        varz = _get_json(f"{base}/varz")
    except (OSError, ValueError, AttributeError):
        return False, {}
    return healthy, varz if isinstance(varz, dict) else {}


async def refresh(
    store: EventStore | None,
    *,
    checkpoint: int | None = None,
    monitor_url: str = "",
) -> None:
    """Read what lives outside the process into the gauges, for a scrape.

    Each part is best effort: what cannot be read keeps its last value, and the scrape still
    answers.

    :param store: the stream, for its state and the lag; ``None`` leaves them out.
    :param checkpoint: the checkpoint of the projection this process reads, for the lag.
    :param monitor_url: the nats-server's monitoring endpoint on 127.0.0.1, if one is known.
    """
    if store is not None:
        try:
            info = await asyncio.wait_for(store.js.stream_info(store.ns.stream), 3.0)
            STREAM_MESSAGES.set(info.state.messages)
            STREAM_BYTES.set(info.state.bytes)
            STREAM_LAST_SEQUENCE.set(info.state.last_seq)
            if checkpoint is not None:
                last = await asyncio.wait_for(store.last_sequence(), 3.0)
                PROJECTOR_CHECKPOINT.set(checkpoint)
                PROJECTOR_LAG.set(max(last - checkpoint, 0))
        except Exception:
            pass
    if monitor_url:
        healthy, varz = await asyncio.to_thread(nats_health, monitor_url)
        NATS_HEALTHY.set(1 if healthy else 0)
        for field, gauge in NATS_VARZ.items():
            value = varz.get(field)
            if isinstance(value, int | float):
                gauge.set(value)
