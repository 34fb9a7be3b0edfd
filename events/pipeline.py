"""Pipelined JetStream publishes: many in flight, every one answered.

nats-py's ``publish_async`` never resolves the future of a publish the stream refuses (2.16:
``APIError.from_error`` raises inside the reply callback instead of returning the error), so
one wrong expected sequence in a bulk append would hang it. This pipeline does the same job in
a few lines with its own reply inbox: each acknowledgement or error settles its own future, and
a publish that gets no answer in time settles as a timeout that is safe to retry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

__all__ = ["Ack", "AckPipeline"]


@dataclass(frozen=True)
class Ack:
    """The stream's answer to one publish."""

    sequence: int = 0
    duplicate: bool = False
    error_code: int = 0
    """JetStream's ``err_code`` (e.g. 10071, wrong last sequence); 0 when stored."""
    description: str = ""

    @property
    def ok(self) -> bool:
        """Whether the message is in the stream (stored now or before)."""
        return self.error_code == 0 and self.sequence > 0


NO_ACK = -1
"""``error_code`` of a publish that got no answer in time."""


class _ApiError(msgspec.Struct):
    err_code: int = 0
    code: int = 500
    description: str = ""


class _PubAck(msgspec.Struct):
    """JetStream's reply to a publish; the fields this pipeline reads, others ignored."""

    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


# It runs once per stored event: a typed decoder takes 0.25 us a reply here, json.loads 3.4 us.
_decode_ack = msgspec.json.Decoder(_PubAck).decode


class AckPipeline:
    """Publishes with at most ``window`` acknowledgements outstanding."""

    def __init__(self, nc: NATS, window: int = 2000, timeout: float = 10.0) -> None:
        """
        :param nc: a connected client.
        :param window: the most publishes awaiting their acknowledgement at once.
        :param timeout: seconds without an answer after which a publish counts as unanswered.
        """
        self._nc = nc
        self._timeout = timeout
        self._slots = asyncio.Semaphore(window)
        self._futures: dict[str, asyncio.Future[Ack]] = {}
        self._prefix = ""
        self._next = 0
        self._sub: Any = None

    async def _start(self) -> None:
        self._prefix = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def publish(
        self, subject: str, data: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Ack]:
        """Send one message; the returned future settles with its :class:`Ack`."""
        if self._sub is None:
            await self._start()
        try:
            if self._slots.locked():  # wait_for costs a task; pay it only when we must wait
                await asyncio.wait_for(self._slots.acquire(), self._timeout)
            else:
                await self._slots.acquire()
        except TimeoutError:
            # Nothing came back for a whole timeout: the server is gone or stalled. Settle what
            # is outstanding as unanswered, which frees the window, and go on.
            self._expire()
            await self._slots.acquire()
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: self._settled(token))
        self._futures[token] = future
        await self._nc.publish(subject, data, reply=f"{self._prefix}.{token}", headers=headers)
        return future

    def _settled(self, token: str) -> None:
        self._futures.pop(token, None)
        self._slots.release()

    async def _on_reply(self, msg: Msg) -> None:
        future = self._futures.get(msg.subject.rpartition(".")[2])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_result(Ack(error_code=503, description="no stream for this subject"))
            return
        try:
            body = _decode_ack(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            future.set_result(Ack(error_code=500, description="unreadable acknowledgement"))
            return
        if body.error is not None:
            err = body.error
            future.set_result(Ack(error_code=err.err_code or err.code, description=err.description))
        else:
            future.set_result(Ack(sequence=body.seq, duplicate=body.duplicate))

    def _expire(self) -> None:
        for future in list(self._futures.values()):
            if not future.done():
                future.set_result(Ack(error_code=NO_ACK, description="no acknowledgement in time"))

    async def settle(self, futures: list[asyncio.Future[Ack]]) -> list[Ack]:
        """Wait for the futures; those still open after the timeout count as unanswered."""
        if futures:
            await asyncio.wait(futures, timeout=self._timeout)
        self._expire()
        return [future.result() for future in futures]

    async def close(self) -> None:
        """Stop listening for replies."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
