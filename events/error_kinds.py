"""What kind of failure each of the domain's errors is, and what intake replies for each kind.

The ledger answers one error on five edges: intake's replies, the HTTP API, the dashboard, the
NATS queries and the CLI's exit status. They all read one table, split in two halves along the
dependency rule (services -> replay -> projections -> events):

- here, in ``events``, every error class of ``events`` gets its :class:`ErrorKind`, and each kind
  its intake reply code (:data:`REPLY_CODES`). Intake's refusals are built in ``events``
  (:func:`events.decisions.rejection_for`), which may import nothing else of the project, so
  this half must live here;
- :mod:`services.errors` gives each kind its HTTP status, wire code, exit code and dashboard
  page, and, with the CLI, the kind of every error defined above ``events``: only ``services``
  may import every layer's errors, and only it knows HTTP and exit codes.

Rows are keyed by the exact class, and a lookup walks the error's MRO to the nearest class with
a row, so an error subclassed in a test still finds its parent's row; the test
``tests/unit/test_error_table.py`` makes sure every class of the project has a row of its own.

A kind, not a code: ``events.commands.ErrorCode`` already names intake's reply codes, and one
kind is said differently on different wires (an unknown activity is ``unknown_activity`` to an
office but ``unknown`` to a reader). The kinds are the domain's words for what went wrong; the
edges translate them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from events.checkpoint import CheckpointError
from events.commands import ErrorCode as ReplyCode
from events.errors import (
    ActivityNotFoundError,
    ActivityWithdrawnError,
    Conflict,
    EventDecodeError,
    InvalidEventError,
    LedgerError,
    ReleaseExistsError,
    ReleaseNotFoundError,
    StreamConfigError,
    TooManyReadersError,
    UnknownProgrammeError,
)
from events.tlog_verify import ProofError

__all__ = ["KINDS", "REPLY_CODES", "ErrorKind", "kind_of", "reply_code"]


class ErrorKind(StrEnum):
    """What went wrong, whichever layer raised it: the key of every edge's answer."""

    INVALID = "invalid"
    """An input breaks a rule: an event or command, a credentials file, an archive."""
    BAD_PARAMETER = "bad_parameter"
    """A query's parameter is malformed or out of range."""
    NOT_FOUND = "not_found"
    """No such activity, country, programme, metric or list."""
    MISSING_FILE = "missing_file"
    """A file a command names is not there."""
    CONFLICT = "conflict"
    """Someone else changed the activity first."""
    WITHDRAWN = "withdrawn"
    """The activity was withdrawn and can no longer change."""
    REFUSED = "refused"
    """The ledger will not do it: another office's activity, a permission NATS denies, a stream
    weaker than the ledger requires."""
    NOT_READY = "not_ready"
    """The projection is not there yet, or not at the sequence asked for."""
    UNAVAILABLE = "unavailable"
    """The part of the ledger a command needs cannot serve it now: intake does not answer, the
    stream has no room for another reader, another stack holds the data directory."""
    CORRUPT = "corrupt"
    """Stored bytes are not an event of any known type and version."""
    UNREACHABLE = "unreachable"
    """NATS cannot be reached."""
    INSECURE = "insecure"
    """The ledger would be served to other machines unprotected."""
    USAGE = "usage"
    """A command's options do not go together."""
    FAILED = "failed"
    """Anything else the ledger raises on purpose; also the kind of every other exception."""


KINDS: dict[type[BaseException], ErrorKind] = {
    LedgerError: ErrorKind.FAILED,
    InvalidEventError: ErrorKind.INVALID,
    UnknownProgrammeError: ErrorKind.INVALID,
    Conflict: ErrorKind.CONFLICT,
    ActivityNotFoundError: ErrorKind.NOT_FOUND,
    EventDecodeError: ErrorKind.CORRUPT,
    StreamConfigError: ErrorKind.REFUSED,
    ReleaseExistsError: ErrorKind.REFUSED,
    ReleaseNotFoundError: ErrorKind.NOT_FOUND,
    TooManyReadersError: ErrorKind.UNAVAILABLE,
    ActivityWithdrawnError: ErrorKind.WITHDRAWN,
    # A note or a proof handed to the ledger (or to an auditor) that does not hold is bad input,
    # whether it was garbled on the way or forged.
    CheckpointError: ErrorKind.INVALID,
    ProofError: ErrorKind.FAILED,
}
"""The kind of every error class of ``events``: those of :mod:`events.errors` and the rest."""

REPLY_CODES: dict[ErrorKind, ReplyCode] = {
    ErrorKind.INVALID: "invalid",
    # The domain's one lookup is of an activity.
    ErrorKind.NOT_FOUND: "unknown_activity",
    ErrorKind.WITHDRAWN: "withdrawn",
}
"""The intake reply code of the kinds an office can act on; every other kind is ``unavailable``.

These three are what the checks of :func:`events.decisions.decide` raise. An office's conflicts
and wrong-office commands are not raised but replied by ``decide`` itself, with the version to
retry from; a :class:`Conflict` raised by the store is a stale append, which intake decides
again on its own. Any other error that reaches intake is intake's trouble, not the office's:
the command was not stored, and sending it again is safe.
"""


def kind_of(
    error: BaseException | type[BaseException],
    kinds: Mapping[type[BaseException], ErrorKind] = KINDS,
) -> ErrorKind:
    """The kind of an error: the row of the nearest class in its MRO that has one.

    :param error: an exception or an exception class.
    :param kinds: the table to read; :data:`KINDS` by default, which knows ``events`` alone.
    :returns: the row's kind, or :attr:`ErrorKind.FAILED` when no class of the MRO has a row.
    """
    cls = error if isinstance(error, type) else type(error)
    for base in cls.__mro__:
        if base in kinds:
            return kinds[base]
    return ErrorKind.FAILED


def reply_code(error: BaseException | type[BaseException]) -> ReplyCode:
    """The code of intake's reply to an error, by its kind (:data:`REPLY_CODES`).

    An error of a layer above ``events`` is a plain :class:`LedgerError` here, so ``unavailable``.
    """
    return REPLY_CODES.get(kind_of(error), "unavailable")
