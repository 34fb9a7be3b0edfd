"""Permission violations: the server's refusal made into an error instead of a timeout.

A publish that breaks a user's permissions is dropped by nats-server; the requester would only
see a timeout, while "Permissions Violation for Publish to ..." arrives on the connection's
error callback (docs/design.md, "Permissions"). :class:`Violations` is that callback: it records
each violation, and :func:`refused_or` races a request against them, so the caller gets
:class:`PermissionDeniedError` as soon as the server has said no.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NATS

from events.errors import LedgerError

__all__ = ["PermissionDeniedError", "Violations", "refused_or", "violations_of"]

T = TypeVar("T")

_log = logging.getLogger("ledger.nats")
_VIOLATION = re.compile(r'Permissions Violation for (\w+) to "([^"]*)"', re.IGNORECASE)
_AUTH_REFUSED = "authorization violation"
_BY_CONNECTION: weakref.WeakKeyDictionary[NATS, Violations] = weakref.WeakKeyDictionary()


class PermissionDeniedError(LedgerError):
    """Raised when the NATS server refused a publish or subscription for this user."""

    def __init__(self, operation: str, subject: str) -> None:
        """
        :param operation: ``Publish`` or ``Subscription``, as the server says.
        :param subject: the refused subject.
        """
        self.operation = operation
        self.subject = subject
        verb = "subscription" if operation.lower().startswith("sub") else "publish"
        super().__init__(
            f"the server refused {verb} to {subject} for this user; check the credentials "
            "(--creds / LEDGER_CREDS) and the office they belong to"
        )


class Violations:
    """The permission violations one connection was told about, as its ``error_cb``."""

    def __init__(self, inbox_prefix: str = "_INBOX") -> None:
        """
        :param inbox_prefix: the connection's inbox prefix; a refused subscription there means
            that no reply can ever arrive.
        """
        self.inbox_prefix = inbox_prefix
        self.seen: list[PermissionDeniedError] = []
        self.credentials_refused = asyncio.Event()
        """Set when the server refused to let the client in at all."""
        self._waiters: set[asyncio.Future[PermissionDeniedError]] = set()

    async def error_cb(self, exc: Exception) -> None:
        """nats-py's error callback: keep violations, ignore the rest (reconnects report there)."""
        text = str(exc)
        if isinstance(exc, nats.errors.AuthorizationError) or _AUTH_REFUSED in text.lower():
            self.credentials_refused.set()
            return
        found = _VIOLATION.search(text)
        if found is None:
            return
        error = PermissionDeniedError(found.group(1), found.group(2))
        # Not a warning: the caller that made the request raises it (refused_or), and a CLI
        # would otherwise print it twice.
        _log.info("%s", error)
        self.seen.append(error)
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(error)

    def attach(self, nc: NATS) -> None:
        """Make these the violations :func:`violations_of` finds for ``nc``."""
        _BY_CONNECTION[nc] = self

    def _watch(self) -> asyncio.Future[PermissionDeniedError]:
        waiter: asyncio.Future[PermissionDeniedError] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        return waiter

    def concerns(
        self, error: PermissionDeniedError, subjects: Iterable[str]
    ) -> PermissionDeniedError | None:
        """The error to raise if ``error`` stops a request to one of ``subjects`` (to any
        request if none given), else ``None``."""
        # nats-py lowercases the server's error line, so subjects compare without case, and
        # the error names the subject as the caller spelled it.
        refused = error.subject.lower()
        wanted = list(subjects)
        if not wanted or refused.startswith(self.inbox_prefix.lower()):
            return error
        for subject in wanted:
            if subject.lower() == refused:
                return PermissionDeniedError(error.operation, subject)
        return None


def violations_of(nc: NATS) -> Violations | None:
    """The violations recorded for a connection made by ``services.infra.stack.connect``."""
    return _BY_CONNECTION.get(nc)


async def refused_or(nc: NATS, request: Awaitable[T], subjects: Iterable[str] = ()) -> T:
    """The result of ``request``, unless the server refuses it first.

    :param subjects: the subjects the request publishes to; a violation on another subject
        (say, of a concurrent request) does not stop this one. Empty: any violation does.
    :raises PermissionDeniedError: when a relevant violation arrives before the answer.
    """
    violations = violations_of(nc)
    if violations is None:
        return await request
    subjects = list(subjects)
    task = asyncio.ensure_future(request)
    while True:
        waiter = violations._watch()
        waiting: set[asyncio.Future[T] | asyncio.Future[PermissionDeniedError]] = {task, waiter}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            return task.result()
        error = violations.concerns(waiter.result(), subjects)
        if error is not None:
            task.cancel()
            raise error
