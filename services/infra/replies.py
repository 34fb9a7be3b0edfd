"""Which reply subjects a service may answer: the requester's own inbox, and nothing else.

A reply subject is chosen by whoever sent the request. ``msg.respond()`` publishes to it
whatever it is, so a service that can write the stream would write wherever a sender pointed
it: an office once stored intake's answer on another office's activity subject that way
(docs/design.md, "Reply subjects are input"). Every service that answers requests asks
:class:`ReplyGuard` first and drops a request whose reply subject is not an inbox of a user it
serves. The server holds the same line a second time: the users that answer may publish to
those inboxes only (``services/infra/security.py``).

Each ledger user receives replies under ``_INBOX_<its public nkey>`` (the prefix nats-py puts
before its request tokens). On a server without authentication every client uses nats-py's
default ``_INBOX``, and that is the one prefix allowed.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from services.infra.credentials import load_users_file
from services.infra.security import User, reply_inboxes
from services.infra.watched_file import WatchedFile

__all__ = ["DEFAULT_INBOX", "MAX_REPLY_SUBJECT", "ReplyGuard", "is_reply_under"]

DEFAULT_INBOX = "_INBOX"
"""nats-py's inbox prefix for a client that sets none."""

MAX_REPLY_SUBJECT = 256
"""Longer than any inbox nats-py makes (prefix, a 22-character id and a request token)."""

# After the prefix: one to four tokens of the characters nats-py's inboxes use. No wildcard,
# no white space, no empty token can pass.
_INBOX_TAIL = re.compile(r"[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9_-]{1,64}){0,3}")


def is_reply_under(reply: str, prefixes: Collection[str]) -> bool:
    """Whether ``reply`` is a well-formed inbox subject under one of ``prefixes``."""
    if len(reply) > MAX_REPLY_SUBJECT:
        return False
    head, dot, tail = reply.partition(".")
    return bool(dot) and head in prefixes and _INBOX_TAIL.fullmatch(tail) is not None


class ReplyGuard:
    """Decides, for each request a service receives, whether its reply subject may be answered.

    With a registry of users (``<data dir>/creds/users.json``), the inboxes are those
    :func:`services.infra.security.may_answer` names for the service's role: a command of office X
    is answered on X's inbox or the admin's, a query on the inbox of any user but the query
    service's own. Without one, the server is taken to have no authentication and only
    nats-py's default prefix is answered.
    """

    def __init__(self, responder: str, users: Path | None = None) -> None:
        """
        :param responder: the role the service answers as: ``intake-reply`` or ``query``.
        :param users: the registry of users, read again whenever it changes (``ledger office
            add`` adds an office while intake runs); ``None`` for a server without users.
        """
        self.responder = responder
        self._users: WatchedFile[list[User]] | None = (
            WatchedFile(users, load_users_file, []) if users is not None else None
        )
        self._seen: list[User] | None = None
        self._by_office: dict[str | None, frozenset[str]] = {}

    def allows(self, reply: str | None, office: str | None = None) -> bool:
        """Whether a request may be answered on ``reply``.

        :param office: the office a command came from (its intake subject says so); ``None``
            for a query.
        """
        return reply is not None and is_reply_under(reply, self.inboxes(office))

    def inboxes(self, office: str | None = None) -> frozenset[str]:
        """The inbox prefixes that may be answered for ``office`` (see :meth:`allows`)."""
        if self._users is None:
            return frozenset({DEFAULT_INBOX})
        users = self._users.current()
        if users is not self._seen:
            self._seen, self._by_office = users, {}
        found = self._by_office.get(office)
        if found is None:
            found = frozenset(reply_inboxes(self.responder, users, office))
            self._by_office[office] = found
        return found
