"""The notary: keeps the stream's Merkle tree and signs checkpoints of it.

It reads every message of the stream in order from where its tree (replay/tree.py) ends and
appends each as a leaf. While messages other than its own checkpoints arrive, it signs the
tree's size and root with the ledger key, at most once a second, as a C2SP signed note
(events/checkpoint.py), and appends the note to the stream on ``ledger.checkpoint``. The
checkpoints are on the stream, not in a KV bucket, so that they are leaves of the log they
certify: they travel with an export, the stream's ``deny_delete`` keeps them like the events,
and each is certified in turn by the next.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import nats.errors

from events.checkpoint import KEY_NAME, Checkpoint, origin_of, sign
from events.errors import LedgerError
from events.signing import public_key_of
from events.store import EventStore
from events.subjects import Namespace
from events.tlog_verify import leaf_hash
from replay.source import StreamSource
from replay.tree import TreeGapError, TreeStore, tree_path
from services.infra.credentials import load_credentials
from services.infra.logs import setup_logging
from services.infra.office_keys import ledger_seed
from services.infra.stack import Ledger, connect

__all__ = [
    "Notary",
    "notary_component",
]

_log = logging.getLogger("ledger.notary")

SIGN_EVERY = 1.0
"""Seconds between two checkpoints, at least, while the stream grows."""

_RETRY = 1.0
"""Seconds before the notary reads again after NATS failed it."""


@dataclass
class Notary:
    """Appends the stream to the tree and signs checkpoints; :meth:`run` until stopped."""

    store: EventStore
    source: StreamSource
    tree: TreeStore
    seed: str
    sign_every: float = SIGN_EVERY

    def __post_init__(self) -> None:
        self.origin = origin_of(self.store.ns, public_key_of(self.seed))
        self._signed_at = 0.0
        self._unsigned = False
        """Whether the tree has leaves that no checkpoint covers, other than checkpoints."""

    async def step(self) -> int:
        """Append what the stream holds beyond the tree; how many leaves were added."""
        last = await self.store.stored_sequence()
        size = self.tree.size()
        if last <= size:
            return 0
        added = 0
        async for batch in self.source.read(
            size + 1, until_seq=last, subjects=self.store.ns.everything
        ):
            self.tree.append(batch)
            added += len(batch)
            if any(message.subject != self.store.ns.checkpoints for message in batch):
                self._unsigned = True
        return added

    async def sign(self) -> Checkpoint | None:
        """Sign and append a checkpoint of the tree as it is, if anything but checkpoints
        arrived since the last one and a second has passed; the checkpoint, or ``None``."""
        if not self._unsigned or time.monotonic() - self._signed_at < self.sign_every:
            return None
        size = self.tree.size()
        checkpoint = Checkpoint(origin=self.origin, size=size, root=self.tree.root(size))
        await self.store.append_checkpoint(sign(checkpoint, KEY_NAME, self.seed).encode())
        self._signed_at = time.monotonic()
        self._unsigned = False
        _log.info("checkpoint: %d leaves", size)
        return checkpoint

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the tree and sign until ``stop`` is set: catch up with the bulk reader, then
        follow the stream with one consumer (a consumer per look cost intake a quarter of
        its rate in bench.import)."""
        await self.reconcile()
        # Messages after the newest checkpoint (a stop before it signed) want one too.
        ns = self.store.ns
        self._unsigned = await self.store.stored_sequence() > await self.store.last_sequence(
            ns.checkpoints
        )
        while not stop.is_set():
            try:
                await self.step()
                await self.sign()
                await self._follow(stop)
            except TreeGapError as why:
                # A lost message: no checkpoint may cover it. The rest of the ledger goes on;
                # `ledger verify` names the gap.
                _log.error("the notary stops: %s", why)
                await stop.wait()
                return
            except (LedgerError, nats.errors.Error, OSError) as why:
                _log.warning("the notary will try again: %s", why)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY)

    async def _follow(self, stop: asyncio.Event) -> None:
        """Append what arrives until ``stop``; sign at most once a second meanwhile."""
        ns = self.store.ns
        batches = self.store.follow(self.tree.size() + 1, ns.everything)
        stopping = asyncio.ensure_future(stop.wait())
        arriving = asyncio.ensure_future(anext(batches))
        try:
            while not stop.is_set():
                wait = max(self.sign_every - (time.monotonic() - self._signed_at), 0.0)
                done, _ = await asyncio.wait(
                    {arriving, stopping},
                    timeout=wait if self._unsigned else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if arriving in done:
                    batch = arriving.result()
                    self.tree.append(batch)
                    if any(message.subject != ns.checkpoints for message in batch):
                        self._unsigned = True
                    arriving = asyncio.ensure_future(anext(batches))
                await self.sign()
        finally:
            for task in (arriving, stopping):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await arriving
            await batches.aclose()

    async def reconcile(self) -> None:
        """Start the tree afresh if it is not of this stream's history: a stream made anew
        under the same name (an import into a new data directory's stream, say). The old
        file is kept beside, as ``.stale``; the tree is derived data, read again from the
        stream."""
        size = self.tree.size()
        if not size:
            return
        stored = await self.store.stored_sequence()
        same = False
        if stored >= size:
            message = await self.store.js.get_msg(self.store.ns.stream, size)
            same = leaf_hash(message.data or b"") == self.tree.leaf(size)
        if not same:
            _log.warning(
                "the tree at %s is not of this stream's history; it is kept as .stale and "
                "made again from the stream",
                self.tree.path,
            )
            self.tree = self.tree.renew()


async def notary_component(ledger: Ledger, stop: asyncio.Event) -> None:
    """The notary as a ``ledger up`` component, on ``<data dir>/tree/<STREAM>.db``, signing
    with the ledger key (``<data dir>/keys/ledger.nk``, made on first need)."""
    data_dir = ledger.settings.data_dir
    creds = ledger.credentials_for("notary")
    if creds is not None and creds is ledger.creds:
        # Credentials, but none of the notary's own (an API replica of compose.yaml): another
        # user may not publish checkpoints, and one notary signs for a ledger, not each reader.
        _log.info(
            "no notary credentials in %s/creds: this ledger up signs no checkpoints", data_dir
        )
        await stop.wait()
        return
    seed = ledger_seed(data_dir)
    path = tree_path(data_dir, ledger.settings.namespace.stream)
    async with ledger.connect_as("notary") as store:
        source = StreamSource(store, ledger.url, creds)
        notary = Notary(store, source, TreeStore(path, store.ns.stream, writer=True), seed)
        try:
            await notary.run(stop)
        finally:
            notary.tree.close()


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    creds = load_credentials(args.creds) if args.creds else None
    nc = await connect(args.nats_url, "ledger-notary", creds=creds)
    store = EventStore(nc, Namespace(prefix=args.prefix, stream=args.stream))
    seed = Path(args.seed).read_text().strip()
    tree = TreeStore(Path(args.tree), args.stream, writer=True)
    notary = Notary(store, StreamSource(store, args.nats_url, creds), tree, seed)
    try:
        print(f"notary ready on {args.nats_url}", flush=True)
        await notary.run(stop)
    finally:
        notary.tree.close()
        await nc.drain()


def main(argv: list[str] | None = None) -> None:
    """Run one notary in the foreground until SIGINT or SIGTERM, as compose.yaml's ``notary``
    service does (``ledger up`` runs it as a component instead)."""
    parser = argparse.ArgumentParser(prog="python -m services.notary", description=__doc__)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--prefix", default="ledger", help="subject prefix (default: ledger)")
    parser.add_argument("--stream", default="LEDGER", help="stream name (default: LEDGER)")
    parser.add_argument("--tree", required=True, help="the tree's file")
    parser.add_argument("--seed", required=True, help="the file of the ledger key's seed")
    parser.add_argument(
        "--creds",
        default=os.environ.get("LEDGER_CREDS"),
        help="the notary role's NATS credentials [env LEDGER_CREDS]",
    )
    args = parser.parse_args(argv)
    setup_logging()  # text, or JSON lines with LEDGER_LOG_FORMAT=json
    asyncio.run(_serve(args))
