"""The ledger's errors: one base class, one leaf per thing that can go wrong.

Every layer raises these, never a library's own error, so that each edge (CLI, HTTP,
intake replies) maps errors to exit codes or status codes in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ActivityNotFoundError",
    "ActivityWithdrawnError",
    "Conflict",
    "EventDecodeError",
    "FieldIssue",
    "InvalidEventError",
    "LedgerError",
    "StreamConfigError",
    "UnknownProgrammeError",
]


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one field of an input: where it is and what to do about it."""

    field: str
    """Dotted path of the field, e.g. ``countries.1.share`` or ``metrics.people_trained``."""
    message: str
    """What is wrong and how to fix it, in words a field officer can act on."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidEventError(LedgerError, ValueError):
    """Raised when an event or command breaks the schema or a rule of the reference data."""

    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))

    @property
    def field(self) -> str:
        """The path of the first offending field."""
        return self.issues[0].field if self.issues else ""


class UnknownProgrammeError(InvalidEventError):
    """Raised when a programme code is not in the programme catalogue."""

    def __init__(self, code: str, field: str = "programme") -> None:
        self.code = code
        super().__init__(
            [
                FieldIssue(
                    field,
                    f"unknown programme {code!r}; use a code from events/reference/programmes.json",
                )
            ]
        )


class Conflict(LedgerError):
    """Raised when an append's expected sequence is stale: someone else wrote the activity first."""

    def __init__(self, activity_id: str, expected: int, actual: int | None) -> None:
        self.activity_id = activity_id
        self.expected = expected
        self.actual = actual
        seen = "unknown" if actual is None else str(actual)
        super().__init__(
            f"activity {activity_id!r} was expected at sequence {expected} but is at {seen}; "
            "reload it and try again"
        )


class ActivityNotFoundError(LedgerError, LookupError):
    """Raised when an activity has no event in the stream."""

    def __init__(self, activity_id: str) -> None:
        self.activity_id = activity_id
        super().__init__(f"no activity {activity_id!r} in the ledger")


class EventDecodeError(LedgerError, ValueError):
    """Raised when stored bytes are not a valid event of any known type and version."""

    def __init__(self, reason: str, sequence: int | None = None) -> None:
        self.reason = reason
        self.sequence = sequence
        where = f"at sequence {sequence}: " if sequence is not None else ""
        super().__init__(f"{where}{reason}")


class StreamConfigError(LedgerError):
    """Raised when the existing stream is weaker than the ledger requires (e.g. deletes allowed)."""


class ActivityWithdrawnError(LedgerError):
    """Raised when a command would change an activity that has been withdrawn."""

    def __init__(self, activity_id: str) -> None:
        self.activity_id = activity_id
        super().__init__(f"activity {activity_id!r} was withdrawn and can no longer change")
