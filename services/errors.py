"""The ledger's one error table: for every error, how each edge of the services answers it.

Every error the project raises on purpose has a row: its kind (:class:`ErrorKind`), and through
the kind the intake reply code, the code of an HTTP or NATS query refusal, the HTTP status, the
CLI's exit status (:class:`ExitCode`) and the dashboard's page (:class:`Page`). The edges read it
and state no mapping of their own:

- :data:`services.api.app.EXCEPTION_HANDLERS` (HTTP status and body),
- :data:`services.api.dashboard.errors.ERROR_PAGES` (the HTML page),
- ``services.api.nats_queries._error_for`` (a NATS query's refusal),
- :func:`services.cli.main.exit_code_for` (the exit status),
- and, from ``events``, :func:`events.decisions.rejection_for` (intake's reply).

The answers, :data:`ANSWERS`, are one table keyed by kind: errors that mean the same are
answered the same, and a new error needs only its kind. The kinds of the error classes are
given where the dependency rules let them be (services -> replay -> projections -> events, and
the rooms of ``services/``), each in the lowest module that may import the classes:

- :data:`events.error_kinds.KINDS`, for the errors of ``events``: intake's replies are made in
  ``events``, which may import nothing else;
- :data:`KINDS` here, for those of ``projections``, ``replay`` and ``services/infra``. This module
  imports nothing of the rooms of ``services/``, but infra, so that every room may read it: the
  API does. For the same reason the CLI's exit codes are defined here, not in the CLI;
- :data:`services.cli.main.KINDS`, for the errors of the API's and the client's rooms, which
  only the CLI may import together, and which no other edge meets (but
  ``HistoryUnavailableError``, a :class:`~projections.errors.NotYetError` answered as one).

An error without a row of its own is answered by its nearest ancestor's row
(:func:`events.error_kinds.kind_of`); ``tests/unit/test_error_table.py`` makes sure every class
of the project has its own. A row may look odd from one edge (an
:class:`~events.errors.InvalidEventError` is a 500 to a reader, as only a broken stream can show
one to a reader): the comments of :data:`ANSWERS` say why. Errors of Litestar (a bad parameter,
an unknown route) and of msgspec stay with their edge: they are not the ledger's, and only that
edge can meet them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import NamedTuple

from events import error_kinds
from events.commands import ErrorCode as ReplyCode
from events.error_kinds import ErrorKind, kind_of, reply_code
from events.errors import ActivityNotFoundError
from projections.db import ProjectionFileError
from projections.errors import BadParameterError, NotYetError, QueryError, UnknownKeyError
from projections.fold import FoldError
from projections.provenance import UnknownRollupError
from projections.schema import OutdatedSchemaError
from replay.archive_check import ArchiveError, ArchiveRejectedError
from replay.asof import ReplayError
from replay.partition import PartError
from replay.reader import ReaderError
from replay.tree import TreeGapError
from services.infra.credentials import CredentialsError
from services.infra.embedded import EmbeddedNatsError
from services.infra.runtime import AlreadyRunningError
from services.infra.stack import ConnectionFailedError
from services.infra.violations import PermissionDeniedError

__all__ = [
    "ANSWERS",
    "KINDS",
    "Answer",
    "ErrorRow",
    "ExitCode",
    "Page",
    "answer_for",
    "field_of",
    "row_for",
]


class ExitCode(IntEnum):
    """What a ``ledger`` command's exit status means."""

    OK = 0
    FAILED = 1
    """The command ran but something it checked or imported failed (e.g. rejected lines)."""
    USAGE = 2
    """Bad flags or arguments (click's own code)."""
    NOT_RUNNING = 3
    """Another stack holds the data directory, or the stack a command needs is not there."""
    CONFLICT = 4
    """Someone else changed the activity first; reload and retry."""
    NOT_FOUND = 5
    """No such activity, country, programme or file."""
    INVALID = 6
    """The input breaks a rule; the message names the field."""
    UNREACHABLE = 7
    """NATS could not be reached."""
    REFUSED = 8
    """The ledger refused the change: withdrawn activity, wrong office, weak stream settings."""
    INSECURE = 9
    """The command would serve the ledger to other machines unprotected: ``up --public``
    without ``LEDGER_API_TOKEN``. Nothing was started."""


class Page(Enum):
    """The dashboard's page for a refusal, by its title."""

    CANNOT_SHOW = "Cannot show this page"
    """A parameter of the page is wrong; the page says which and why."""
    NOT_FOUND = "Not found"
    """The page names a thing the ledger does not know; the page says which."""
    NOT_READY = "Not ready yet"
    """The projection is not there yet; the page says so and asks to retry."""
    FAILED = "Something went wrong"
    """The server failed: the page says only that, and the server's log has the details."""

    @property
    def title(self) -> str:
        """The page's title."""
        return self.value


@dataclass(frozen=True)
class Answer:
    """How the edges of the services answer one kind of error."""

    code: str
    """The code of an HTTP error body and of a NATS query's refusal."""
    status: int
    """The HTTP status."""
    exit: ExitCode
    """The CLI's exit status."""
    page: Page
    """The dashboard's page."""

    @property
    def internal(self) -> bool:
        """Whether a reader is told only that the server failed, while its log gets the details.

        A reader can do nothing about these errors, and their messages may name files and
        subjects of the server.
        """
        return self.status == 500

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers the answer carries: a 503 says when to ask again."""
        return {"Retry-After": "1"} if self.status == 503 else {}


ANSWERS: dict[ErrorKind, Answer] = {
    # A query never checks an event, so an invalid one on the read side (in an activity's
    # history) is the stream's fault, not the reader's. To the CLI it is the user's input.
    ErrorKind.INVALID: Answer("internal", 500, ExitCode.INVALID, Page.FAILED),
    ErrorKind.BAD_PARAMETER: Answer("invalid", 400, ExitCode.INVALID, Page.CANNOT_SHOW),
    ErrorKind.NOT_FOUND: Answer("unknown", 404, ExitCode.NOT_FOUND, Page.NOT_FOUND),
    # A file a server misses is the server's trouble; one a command misses is the user's.
    ErrorKind.MISSING_FILE: Answer("internal", 500, ExitCode.NOT_FOUND, Page.FAILED),
    ErrorKind.NOT_READY: Answer("unavailable", 503, ExitCode.FAILED, Page.NOT_READY),
    # The kinds below are the write side's and the operator's: no query raises them, so one
    # that reaches a reader is a failure of the server.
    ErrorKind.CONFLICT: Answer("internal", 500, ExitCode.CONFLICT, Page.FAILED),
    ErrorKind.WITHDRAWN: Answer("internal", 500, ExitCode.REFUSED, Page.FAILED),
    ErrorKind.REFUSED: Answer("internal", 500, ExitCode.REFUSED, Page.FAILED),
    ErrorKind.UNAVAILABLE: Answer("internal", 500, ExitCode.NOT_RUNNING, Page.FAILED),
    ErrorKind.CORRUPT: Answer("internal", 500, ExitCode.INVALID, Page.FAILED),
    ErrorKind.UNREACHABLE: Answer("internal", 500, ExitCode.UNREACHABLE, Page.FAILED),
    ErrorKind.INSECURE: Answer("internal", 500, ExitCode.INSECURE, Page.FAILED),
    ErrorKind.USAGE: Answer("internal", 500, ExitCode.USAGE, Page.FAILED),
    ErrorKind.FAILED: Answer("internal", 500, ExitCode.FAILED, Page.FAILED),
}
"""Each kind's answer at every edge of the services."""

KINDS: dict[type[BaseException], ErrorKind] = {
    **error_kinds.KINDS,
    # projections
    QueryError: ErrorKind.BAD_PARAMETER,
    BadParameterError: ErrorKind.BAD_PARAMETER,
    UnknownKeyError: ErrorKind.NOT_FOUND,
    NotYetError: ErrorKind.NOT_READY,
    OutdatedSchemaError: ErrorKind.FAILED,
    ProjectionFileError: ErrorKind.FAILED,
    FoldError: ErrorKind.FAILED,
    UnknownRollupError: ErrorKind.FAILED,
    # replay
    ReplayError: ErrorKind.FAILED,
    PartError: ErrorKind.FAILED,
    ArchiveError: ErrorKind.FAILED,
    ArchiveRejectedError: ErrorKind.INVALID,
    ReaderError: ErrorKind.UNREACHABLE,
    TreeGapError: ErrorKind.FAILED,
    # services/infra
    AlreadyRunningError: ErrorKind.UNAVAILABLE,
    CredentialsError: ErrorKind.INVALID,
    EmbeddedNatsError: ErrorKind.FAILED,
    ConnectionFailedError: ErrorKind.UNREACHABLE,
    PermissionDeniedError: ErrorKind.REFUSED,
    # Not the ledger's own, but the one other error the CLI reports: a file the user named.
    FileNotFoundError: ErrorKind.MISSING_FILE,
}
"""The kind of the errors of ``events``, ``projections``, ``replay`` and ``services/infra``.

The CLI adds those of the API's and the client's rooms (:data:`services.cli.main.KINDS`).
"""


def answer_for(
    error: BaseException, kinds: Mapping[type[BaseException], ErrorKind] = KINDS
) -> Answer:
    """How the edges of the services answer ``error``: its kind's row of :data:`ANSWERS`.

    :param kinds: the kinds to read; the CLI passes its own, which knows every room's errors.
    """
    return ANSWERS[kind_of(error, kinds)]


def field_of(error: BaseException) -> str:
    """The input an error is about, as an HTTP, NATS or dashboard refusal names it."""
    if isinstance(error, QueryError):
        return error.parameter
    if isinstance(error, ActivityNotFoundError):
        return "activity_id"
    return ""


class ErrorRow(NamedTuple):
    """One error's row of the table, as every edge answers it."""

    kind: ErrorKind
    reply: ReplyCode
    """Intake's reply code (:func:`events.error_kinds.reply_code`)."""
    code: str
    status: int
    exit: ExitCode
    page: Page


def row_for(
    error: BaseException | type[BaseException],
    kinds: Mapping[type[BaseException], ErrorKind] = KINDS,
) -> ErrorRow:
    """The row of an error, or of an error class, in every edge's words.

    :param kinds: the kinds to read, as for :func:`answer_for`.
    """
    kind = kind_of(error, kinds)
    answer = ANSWERS[kind]
    return ErrorRow(kind, reply_code(error), answer.code, answer.status, answer.exit, answer.page)
