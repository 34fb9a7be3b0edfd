"""The checks an archive's lines must pass before anything is imported: pure, no I/O.

An archive is input from outside the ledger, so an import trusts nothing in it. Each line
must follow the one before it in sequence, carry a ledger event (or, when the rules allow, a
message that is not one) on the subject of its own office and activity id under the archive's
prefix, name a catalogued office and an id that is a subject token, and pass the hash,
``prev`` and signature checks of :class:`~replay.chain.ChainChecker` against the importing
ledger's key registry. ``replay/archive.py`` reads the file and feeds the lines in.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import msgspec

from events.codec import DEFAULT_CODEC
from events.envelope import Envelope
from events.errors import EventDecodeError, LedgerError
from events.keys import KeyRegistry
from events.reference import load_reference
from events.release import decode_release
from events.subjects import Namespace, is_token
from replay.chain import ChainChecker, Failure

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MAX_LINE",
    "ArchiveChecker",
    "ArchiveError",
    "ArchiveRejectedError",
    "ArchivedMessage",
    "CheckedLine",
    "ImportRules",
]

MAX_LINE = 1 << 20
"""The longest line an import reads, newline left out: 1 MiB, what one NATS message holds."""
DEFAULT_MAX_SIZE = 4 << 30
"""The most an archive may decompress to, unless the importer allows more: 4 GiB."""


class ArchiveError(LedgerError):
    """Raised when an archive cannot be read, fails its checks, or cannot be imported."""


class ArchiveRejectedError(ArchiveError):
    """Raised when the archive or its manifest breaks a rule: bad input, nothing written.

    The message names the file, the line (when there is one), the field and what to do.
    """

    def __init__(self, where: str, line: int | None, field: str, message: str) -> None:
        """
        :param where: the file that broke the rule.
        :param line: its line number, counted from 1; ``None`` for the file as a whole.
        :param field: what on that line is wrong, e.g. ``event.signature``.
        :param message: what is wrong and what to do about it.
        """
        self.where = where
        self.line = line
        self.field = field
        self.reason = message
        location = f"{where}:{line}" if line is not None else where
        super().__init__(f"{location}: {field}: {message}")


class ArchivedMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One stream message in an archive."""

    sequence: int
    time_ns: int
    subject: str
    event: msgspec.Raw = msgspec.Raw()
    """The stored body, when it is JSON; empty otherwise."""
    raw: str = ""
    """Base64 of a stored body that is not JSON."""


@dataclass(frozen=True)
class ImportRules:
    """What an import accepts.

    :param registry: the importing ledger's key registry: an office with a key in it must have
        signed every event, with one of its keys.
    :param allow_non_events: carry over lines that are not ledger events (as old archives of
        streams with such messages have), instead of refusing the archive.
    :param max_line: the longest line, newline left out, in bytes.
    :param max_size: the most the archive may hold once decompressed, in bytes.
    :param offices: the office codes an event may name; the catalogue's by default.
    """

    registry: KeyRegistry
    allow_non_events: bool = False
    max_line: int = MAX_LINE
    max_size: int = DEFAULT_MAX_SIZE
    offices: frozenset[str] = field(
        default_factory=lambda: frozenset(load_reference().offices), repr=False
    )


class CheckedLine(msgspec.Struct, frozen=True):
    """One line that passed every check, ready to write."""

    number: int
    sequence: int
    office: str
    activity_id: str
    envelope: Envelope[Any] | None
    """The activity event; ``None`` for a release, a checkpoint, or a message carried over
    that is not an event."""
    body: bytes = b""
    """The stored bytes, written back as they are: an event of an older schema version stays
    that version, and its hash and the log's Merkle tree stay true."""
    subject: str = ""
    """Where it was stored."""
    kind: str = "activity"
    """``activity``, ``release``, ``checkpoint``, or ``other`` (carried over)."""


_CHAIN_ADVICE = {
    "hash": "the event was changed after it was sealed; import the original archive",
    "prev": "an event of the activity is missing, moved or inserted; import the complete "
    "original archive",
    "signature": "the event is not its office's; do not import the archive, or import with "
    "the key registry that holds the office's key (--registry)",
    "subject": "the event was stored under another activity's subject",
}

_FIELD_OF_CHECK = {
    "hash": "event.hash",
    "prev": "event.prev",
    "signature": "event.signature",
    "subject": "subject",
}


class ArchiveChecker:
    """Checks an archive's lines in order; nothing but the lines goes in, no I/O.

    Each line must follow the one before it in sequence, carry a ledger event (or, when the
    rules allow, a message that is not one) on the subject of its own office and activity id
    under the archive's prefix, name a catalogued office and an id that is a subject token,
    and pass the hash, ``prev`` and signature checks of :class:`~replay.chain.ChainChecker`.
    """

    def __init__(
        self, rules: ImportRules, where: str, prefix: str | None = None, *, chain: bool = True
    ) -> None:
        """
        :param rules: what the import accepts.
        :param where: the archive's name, for errors.
        :param prefix: the subject prefix every line must use (the manifest's); by default
            the first line's.
        :param chain: run the hash, ``prev`` and signature checks; only a reader that proves
            its lines identical to lines already checked may leave them out.
        """
        self.rules = rules
        self.where = where
        self.prefix = prefix
        self.chain = ChainChecker(rules.registry)
        self.run_chain = chain
        self.count = 0
        self.first = 0
        self.last = 0
        self.non_events = 0

    def refuse(self, number: int, field: str, message: str) -> ArchiveRejectedError:
        """The error for one line: the caller raises it."""
        return ArchiveRejectedError(self.where, number, field, message)

    def check(self, number: int, message: ArchivedMessage) -> CheckedLine:
        """Check one decoded line in the context of the lines before it.

        :param number: the line's number in the file, from 1.
        :raises ArchiveRejectedError: at the first rule the line breaks.
        """
        self._check_sequence(number, message.sequence)
        body = self._body_of(number, message)
        namespace = self._namespace(number, message.subject)
        if message.subject == namespace.checkpoints:
            # Its signature and root are checked against the archive's own tree once it is
            # read in full (replay/archive.py): a checkpoint may sign a tree far behind it.
            checked = CheckedLine(
                number, message.sequence, "", "", None, body, message.subject, "checkpoint"
            )
        elif message.subject.startswith(namespace.release("")):
            self._check_release(number, namespace, message.subject, body)
            checked = CheckedLine(
                number, message.sequence, "", "", None, body, message.subject, "release"
            )
        elif (envelope := self._event_of(number, message)) is None:
            office, activity_id = self._check_carried_subject(number, namespace, message.subject)
            self.non_events += 1
            checked = CheckedLine(
                number, message.sequence, office, activity_id, None, body, message.subject, "other"
            )
        else:
            self._check_event(number, namespace, message, envelope)
            checked = CheckedLine(
                number,
                message.sequence,
                envelope.office,
                envelope.activity_id,
                envelope,
                body,
                message.subject,
            )
        self.count += 1
        self.first = self.first or message.sequence
        self.last = message.sequence
        return checked

    def _check_sequence(self, number: int, sequence: int) -> None:
        if sequence < 1:
            raise self.refuse(
                number, "sequence", f"{sequence} is not a stream sequence (1 or more)"
            )
        if self.last and sequence != self.last + 1:
            raise self.refuse(
                number,
                "sequence",
                f"{sequence} follows {self.last}; the archive is incomplete or out of order: "
                "import the complete original archive",
            )

    def _namespace(self, number: int, subject: str) -> Namespace:
        prefix = ""
        for marker in (".activity.", ".release."):
            head, separator, _ = subject.partition(marker)
            if separator:
                prefix = head
                break
        else:
            if subject.endswith(".checkpoint"):
                prefix = subject.removesuffix(".checkpoint")
        if not prefix:
            raise self.refuse(
                number,
                "subject",
                f"{subject!r} is not a subject of a ledger's stream: <prefix>.activity...., "
                "<prefix>.release.<name> or <prefix>.checkpoint",
            )
        if self.prefix is None:
            self.prefix = prefix
        elif prefix != self.prefix:
            raise self.refuse(
                number,
                "subject",
                f"{subject!r} is not under the archive's prefix {self.prefix!r}; an export "
                "holds one ledger's subjects only",
            )
        return Namespace(prefix=prefix)

    def _event_of(self, number: int, message: ArchivedMessage) -> Envelope[Any] | None:
        """The line's event; ``None`` for a message that is not one and may be carried over."""
        if message.event and message.raw:
            raise self.refuse(number, "raw", "a line holds either an event or raw bytes, not both")
        reason = "the message is not JSON (stored as raw base64)"
        if message.event:
            try:
                return DEFAULT_CODEC.decode(bytes(message.event))
            except EventDecodeError as exc:
                reason = f"not a ledger event: {exc.reason}"
        if not self.rules.allow_non_events:
            raise self.refuse(
                number,
                "event",
                f"{reason}. A ledger only stores events, so this line was not written by "
                "one; for an old archive of a stream that held such messages, import with "
                "--allow-non-events to carry them over unchanged",
            )
        return None

    def _check_release(self, number: int, namespace: Namespace, subject: str, body: bytes) -> None:
        try:
            release = decode_release(body)
        except msgspec.DecodeError as exc:
            raise self.refuse(number, "event", f"not a release: {exc}") from None
        if subject != namespace.release(release.payload.name):
            raise self.refuse(
                number,
                "subject",
                f"{subject!r}, but the release is named {release.payload.name!r}: do not "
                "import the archive",
            )

    def _body_of(self, number: int, message: ArchivedMessage) -> bytes:
        if message.event:
            return bytes(message.event)
        try:
            return base64.b64decode(message.raw, validate=True)
        except ValueError:
            raise self.refuse(number, "raw", "not base64; export the log again") from None

    def _check_identity(
        self, number: int, office: str, activity_id: str, fields: tuple[str, str]
    ) -> None:
        """The office is catalogued and the id a subject token; ``fields`` name where each is."""
        if office not in self.rules.offices:
            raise self.refuse(
                number,
                fields[0],
                f"unknown office {office[:80]!r}; only the offices of "
                "events/reference/offices.json have events: do not import the archive",
            )
        if not is_token(activity_id):
            raise self.refuse(
                number,
                fields[1],
                f"{activity_id[:80]!r} is not a valid activity id (1-64 letters, digits, _ "
                "or -), so no ledger stored it: do not import the archive",
            )

    def _check_carried_subject(
        self, number: int, namespace: Namespace, subject: str
    ) -> tuple[str, str]:
        office, _, activity_id = subject.removeprefix(f"{namespace.prefix}.activity.").partition(
            "."
        )
        self._check_identity(number, office, activity_id, ("subject", "subject"))
        return office, activity_id

    def _check_event(
        self, number: int, namespace: Namespace, message: ArchivedMessage, event: Envelope[Any]
    ) -> None:
        self._check_identity(
            number, event.office, event.activity_id, ("event.office", "event.payload.activity_id")
        )
        expected = namespace.activity(event.office, event.activity_id)
        if message.subject != expected:
            raise self.refuse(
                number,
                "subject",
                f"{message.subject!r}, but the event is {event.office}/{event.activity_id} and "
                f"belongs on {expected!r}: do not import the archive",
            )
        if not self.run_chain:
            return
        failures = self.chain.check(message.sequence, message.subject, event, bytes(message.event))
        if failures:
            raise self._chain_refusal(number, failures[0])

    def _chain_refusal(self, number: int, failure: Failure) -> ArchiveRejectedError:
        advice = _CHAIN_ADVICE.get(failure.check, "do not import the archive")
        return self.refuse(
            number,
            _FIELD_OF_CHECK.get(failure.check, failure.check),
            f"sequence {failure.sequence}, activity {failure.activity_id}: {failure.message}; "
            f"{advice}",
        )
