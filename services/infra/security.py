"""Who may do what: the ledger's roles as NATS users, and the server configuration that says so.

Every user lives in one account, ``LEDGER``, with JetStream enabled, and gets only the subjects
its role needs (docs/security.md). The server enforces them: a publish or subscription outside
a user's permissions is dropped, and the client is told on its error callback.

Each user other than the admin receives replies only on an inbox of its own,
``_INBOX_<public key>``, so no office can read another office's replies. The prefix follows from
the credentials alone (:func:`inbox_prefix_for`), so a client needs nothing else to find it.

No user has ``allow_responses``. With it, nats-server lets a user publish once to the reply
subject of any message it received, whatever its allow list says, so a service that could
write the stream would write wherever a sender pointed its reply (docs/design.md, "Reply subjects
are input"). The services that answer requests therefore answer from users of their own
(``intake-reply``, ``query``) that may publish to nothing but the inboxes of the users they
answer, listed one by one, and the service checks each reply subject as well
(``services/infra/replies.py``).

The JetStream API subjects below were found by reading ``events/store.py``, nats-py and
FastStream, then checked against nats-server 2.15 (``tests/integration/test_permissions.py``):
a subject missing here shows up there as a "Permissions Violation".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from events.subjects import Namespace

__all__ = [
    "ACCOUNT",
    "MAX_CONSUMERS",
    "ROLES",
    "SERVICE_ROLES",
    "User",
    "accounts_config",
    "inbox_prefix_for",
    "may_answer",
    "permissions_for",
    "reply_inboxes",
]

ACCOUNT = "LEDGER"
"""The one account every ledger user belongs to."""

SERVICE_ROLES = ("admin", "intake", "intake-reply", "projector", "query", "auditor", "notary")
"""The roles with one user each; offices have one user per office.

``intake`` appends to the stream; ``intake-reply`` receives the offices' commands and answers
them, and may publish nowhere but the offices' inboxes; ``notary`` reads the whole stream and
appends only its checkpoints."""

ROLES = (*SERVICE_ROLES, "office")
"""Every role a user can have."""

MAX_CONSUMERS = 128
"""Consumers the stream may have at once. Enough for the projectors (one durable per API
replica) and the replays of the last minute, since an ordered consumer lingers 60 s after its
read (``events/store.py``); it bounds what a reader can pile up on the servers."""


@dataclass(frozen=True)
class User:
    """One NATS user of the ledger: a role, an office for office users, and its public nkey."""

    role: str
    public_key: str
    office: str | None = None

    @property
    def name(self) -> str:
        """The user's name in the registry and in file names: ``intake``, ``office-KAZ``."""
        return f"office-{self.office}" if self.role == "office" else self.role


def inbox_prefix_for(public_key: str) -> str:
    """The inbox prefix of the user with ``public_key``: its replies arrive only there."""
    return f"_INBOX_{public_key}"


def _replayer(ns: Namespace) -> list[str]:
    # What EventStore.read_raw takes: stream info (the last sequence) and an ordered consumer,
    # which is ephemeral and answers flow control on $JS.FC. The create subject without a
    # consumer name refuses a durable name, so a reader cannot leave consumers behind. The
    # bulk reader (replay/reader.py) pulls from its ephemeral consumer: consumer names cannot
    # be scoped, so a reader could also pull from a durable one, but it cannot acknowledge,
    # and what it took is redelivered after the ack wait: a delay, never lost or changed data.
    stream = ns.stream
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _reader(ns: Namespace) -> list[str]:
    # Replay, plus single messages by subject (EventStore.load, an activity's history) and
    # Direct Get.
    stream = ns.stream
    return [
        *_replayer(ns),
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
    ]


def permissions_for(
    role: str,
    ns: Namespace,
    public_key: str,
    office: str | None = None,
    *,
    answers: Iterable[str] = (),
) -> dict:
    """The nats-server ``permissions`` block of one user, as a dict.

    :param role: one of :data:`ROLES`.
    :param ns: the ledger's stream and subjects.
    :param public_key: the user's public nkey, which names its inbox.
    :param office: the office, for the office role.
    :param answers: for the roles that answer requests (``intake-reply``, ``query``), the
        inbox prefixes they may reply to; :func:`reply_inboxes` gives them.
    :raises ValueError: for an unknown role, or an office user without an office.
    """
    inbox = f"{inbox_prefix_for(public_key)}.>"
    stream = ns.stream
    replies = [f"{prefix}.>" for prefix in answers]
    match role:
        case "admin":
            return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
        case "office":
            if not office:
                raise ValueError("an office user needs its office")
            publish = [ns.intake(office)]
            subscribe = [inbox]
        case "intake":
            # Appends only; the commands arrive on the intake-reply user's connection.
            publish = [
                ns.activities,
                ns.releases,
                f"$JS.API.STREAM.INFO.{stream}",
                f"$JS.API.STREAM.MSG.GET.{stream}",
            ]
            subscribe = [inbox]
        case "intake-reply":
            publish = replies
            subscribe = [ns.intake("*")]
        case "projector":
            # nats-py's pull_subscribe looks the durable up, creates it by name if missing
            # (with its filter as a last token), then fetches and acknowledges. Any durable
            # name: each API replica projects through one of its own ("reader-<host>"), and
            # MAX_CONSUMERS bounds how many there can be. None can be deleted.
            durable = "*"
            publish = [
                # A reader's rights: the newest activity event by subject, the releases.
                *_reader(ns),
                f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
                f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
                f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.ACK.{stream}.{durable}.>",
            ]
            subscribe = [inbox]
        case "query":
            publish = [*_reader(ns), *replies]
            subscribe = [ns.query(">"), inbox]
        case "auditor":
            publish = _reader(ns)
            subscribe = [inbox]
        case "notary":
            publish = [*_replayer(ns), ns.checkpoints, f"$JS.API.STREAM.MSG.GET.{stream}"]
            subscribe = [inbox]
        case _:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    # nats-server reads an empty allow list as no restriction at all, so "nothing" is a deny.
    allowed = {"allow": publish} if publish else {"deny": [">"]}
    return {"publish": allowed, "subscribe": {"allow": subscribe}}


def may_answer(responder: str, user: User, office: str | None = None) -> bool:
    """Whether a user of role ``responder`` may reply to ``user``'s inbox.

    Intake (``intake-reply``) answers the offices, each only on its own commands when
    ``office`` is given, and the admin, who may send for any office (as an import of several
    offices does). The query service answers every user but itself. No other role answers.
    """
    match responder:
        case "intake-reply":
            own = user.role == "office" and office in (None, user.office)
            return own or user.role == "admin"
        case "query":
            return user.role != "query"
        case _:
            return False


def reply_inboxes(responder: str, users: Iterable[User], office: str | None = None) -> list[str]:
    """The inbox prefixes a user of role ``responder`` may answer (see :func:`may_answer`)."""
    return [
        inbox_prefix_for(user.public_key) for user in users if may_answer(responder, user, office)
    ]


def accounts_config(users: Iterable[User], ns: Namespace) -> str:
    """The nats-server ``accounts`` section for these users, as configuration text.

    No ``no_auth_user`` is set, so a client without valid credentials cannot connect.
    """
    users = list(users)
    entries = []
    for user in users:
        permissions = permissions_for(
            user.role,
            ns,
            user.public_key,
            user.office,
            answers=reply_inboxes(user.role, users),
        )
        entry = {"nkey": user.public_key, "permissions": permissions}
        # JSON is valid nats-server configuration, and quotes subjects such as "$JS.API.>"
        # that would otherwise read as variable references.
        entries.append(f"      # {user.name}\n      {json.dumps(entry)}")
    users_text = ",\n".join(entries)
    return (
        "accounts {\n"
        f"  {ACCOUNT} {{\n"
        f"    jetstream {{ max_consumers: {MAX_CONSUMERS} }}\n"
        "    users: [\n"
        f"{users_text}\n"
        "    ]\n"
        "  }\n"
        "}\n"
    )
