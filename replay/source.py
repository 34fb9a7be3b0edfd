"""Where replay reads the stream from: its own bulk reader when it can, nats-py when not.

Every replay (rebuild, verify, as-of, the chain check) reads the whole stream once, in order.
:mod:`replay.reader` reads it about three times as fast as nats-py but speaks only plain
``nats://`` with an nkey seed or no authentication. :class:`StreamSource` picks the reader when
it was given the server's URL and the connection is one the reader speaks, and otherwise
reads through ``EventStore.read_raw`` and says so in the log, once. Both deliver the same
batches: every stored sequence in the range, once, in order, undecoded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from events.store import EventStore
from events.stored import RawMessage
from replay.reader import (
    DEFAULT_BATCH,
    CredentialsLike,
    UnsupportedConnectionError,
    check_connection,
    read_stream,
)

__all__ = ["StreamSource", "as_source"]

_log = logging.getLogger("ledger.replay")


@dataclass
class StreamSource:
    """The ledger's stream, as replay reads it.

    :param store: the store on the ledger's stream; its nats-py connection is the fallback.
    :param url: the server the store is connected to (``nats://host:port``, several
        comma-joined for a cluster); ``None`` reads through nats-py only.
    :param creds: the user to read as; ``None`` for a server without authentication.
    """

    store: EventStore
    url: str | None = None
    creds: CredentialsLike | None = None
    fallen_back: bool = False
    """Set once the bulk reader refused this connection; later reads go to nats-py at once."""

    def reads_in_bulk(self) -> bool:
        """Whether reads go through replay's own reader (and a replay may split, which needs
        it in every part: replay/partition.py)."""
        if self.url is None or self.fallen_back:
            return False
        try:
            check_connection(self.url, self.creds)
        except UnsupportedConnectionError as why:
            _log.warning("reading the stream through nats-py: %s", why)
            self.fallen_back = True
            return False
        return True

    async def read(
        self,
        from_seq: int = 1,
        *,
        until_seq: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        subjects: str | None = None,
    ) -> AsyncIterator[list[RawMessage]]:
        """Batches of the stream's activity events (or of the messages of ``subjects``, a
        wildcard: ``ns.everything`` for all) from ``from_seq`` to ``until_seq`` (or to the last
        at the start of the read), in order, undecoded."""
        if self.url is not None and not self.fallen_back:
            ns = self.store.ns
            try:
                # The ledger's roles may not delete consumers (docs/security.md); the server
                # removes an idle one after the reader's inactive threshold instead.
                async for batch in read_stream(
                    self.url,
                    ns.stream,
                    subjects or ns.activities,
                    from_seq=from_seq,
                    until_seq=until_seq,
                    batch_size=batch_size,
                    creds=self.creds,
                    delete_consumer=self.creds is None,
                ):
                    yield batch
                return
            except UnsupportedConnectionError as why:
                # Raised before the first batch, so nothing was yielded twice.
                _log.warning("reading the stream through nats-py: %s", why)
                self.fallen_back = True
        async for batch in self.store.read_raw(
            from_seq, until_seq=until_seq, batch_size=batch_size, subjects=subjects
        ):
            yield batch


def as_source(stream: StreamSource | EventStore) -> StreamSource:
    """A store on its own reads through nats-py: what callers without a URL (tests, tools
    that hold only a connection) pass."""
    return stream if isinstance(stream, StreamSource) else StreamSource(stream)
