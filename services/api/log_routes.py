"""The verifiable log over HTTP: the latest signed checkpoint, and proofs against the tree.

- ``GET /v1/checkpoint``: the newest checkpoint the notary appended to the stream, as the
  ``text/plain`` signed note it is (events/checkpoint.py).
- ``GET /v1/proofs/inclusion?sequence=N&tree_size=M``: that sequence N is in the tree of M
  leaves (all of them by default).
- ``GET /v1/proofs/consistency?first=M1&second=M2``: that the tree of M2 leaves extends M1's.

Proofs are read from the notary's tree file (replay/tree.py), in a worker thread; the note from
the stream. A server without either answers 503 and says which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

import nats.js.errors
from litestar import Request, Response, get
from litestar.params import Parameter

from projections.errors import NotYetError
from replay.proofs import ConsistencyProof, InclusionProof, consistency_of, inclusion_of
from replay.tree import TreeLocation, TreeStore
from services.api.error_body import ERRORS

__all__ = ["LOG_ROUTES", "LogUnavailableError"]

T = TypeVar("T")

Positive = Annotated[int, Parameter(ge=1)]
OptionalPositive = Annotated[int | None, Parameter(ge=1)]


class LogUnavailableError(NotYetError):
    """Raised when this server has no tree file or no checkpoint yet to answer from."""


@get("/v1/checkpoint", opt={"query": frozenset()}, media_type="text/plain", responses=ERRORS)
async def checkpoint(request: Request) -> Response[bytes]:
    """The latest signed checkpoint of the stream's Merkle tree (a C2SP signed note)."""
    store = request.app.state.store
    if store is None:
        raise LogUnavailableError("checkpoint: this server has no NATS connection to read it from")
    try:
        message = await store.js.get_last_msg(store.ns.stream, store.ns.checkpoints)
    except nats.js.errors.NotFoundError:
        raise LogUnavailableError(
            "checkpoint: the notary has signed none yet; it signs within a second of new events"
        ) from None
    return Response(message.data, media_type="text/plain; charset=utf-8")


@get("/v1/proofs/inclusion", opt={"query": frozenset({"sequence", "tree_size"})}, responses=ERRORS)
async def inclusion(
    request: Request, sequence: Positive, tree_size: OptionalPositive = None
) -> InclusionProof:
    """The RFC 6962 audit path of stream sequence ``sequence`` (leaf ``sequence - 1``)."""
    return await _with_tree(request, lambda tree: inclusion_of(tree, sequence, tree_size))


@get("/v1/proofs/consistency", opt={"query": frozenset({"first", "second"})}, responses=ERRORS)
async def consistency(
    request: Request, first: Positive, second: OptionalPositive = None
) -> ConsistencyProof:
    """The RFC 6962 proof that the tree of ``second`` leaves extends that of ``first``."""
    return await _with_tree(request, lambda tree: consistency_of(tree, first, second))


LOG_ROUTES = [checkpoint, inclusion, consistency]


async def _with_tree(request: Request, call: Callable[[TreeStore], T]) -> T:
    where: TreeLocation | None = request.app.state.tree
    if where is None:
        raise LogUnavailableError("proofs: this server keeps no Merkle tree (run `ledger up`)")

    def run() -> T:
        try:
            tree = TreeStore(where.path, where.stream)
        except FileNotFoundError:
            raise LogUnavailableError(
                "proofs: the notary has not made the tree yet; retry shortly"
            ) from None
        try:
            return call(tree)
        finally:
            tree.close()

    return await asyncio.to_thread(run)
