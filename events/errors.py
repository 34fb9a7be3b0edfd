"""The ledger's errors: one base class, one leaf per thing that can go wrong.

Every layer raises these, never a library's own error, so that each edge (CLI, HTTP,
dashboard, NATS queries, intake replies) answers them by one table: the kind of each error
below is in :mod:`events.error_kinds`, and each kind's answer at every edge in
:mod:`services.errors`, which says where the other layers' errors get theirs. A new error needs
a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.limits import MAX_FIELD_PATH, MAX_ISSUES, MAX_MESSAGE

__all__ = [
    "ActivityNotFoundError",
    "ActivityWithdrawnError",
    "Conflict",
    "EventDecodeError",
    "FieldIssue",
    "InvalidEventError",
    "LedgerError",
    "ReleaseExistsError",
    "ReleaseNotFoundError",
    "StreamConfigError",
    "TooManyReadersError",
    "UnknownProgrammeError",
    "clip",
    "summarise_issues",
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

    def __post_init__(self) -> None:
        # Both parts may echo hostile input (a metric name, a revised field's path), and each
        # ends up in a reply: bound them here, once, whoever builds the issue. The path is also
        # made ASCII so that no byte of it needs more than a short escape in JSON.
        field = self.field.encode("ascii", "backslashreplace").decode("ascii")
        object.__setattr__(self, "field", clip(field, MAX_FIELD_PATH))
        object.__setattr__(self, "message", clip(self.message, MAX_MESSAGE))

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "\u2026"


def summarise_issues(issues: list[FieldIssue], shown: int = MAX_ISSUES) -> str:
    """The first ``shown`` issues joined by ``; ``, and how many more there are.

    A thousand duplicate countries make a thousand issues; listing each would make an error
    message (and a reply) as large as the input, so only a few are spelled out.
    """
    text = "; ".join(str(issue) for issue in issues[:shown])
    if len(issues) > shown:
        text += f"; and {len(issues) - shown} more"
    return text


class InvalidEventError(LedgerError, ValueError):
    """Raised when an event or command breaks the schema or a rule of the reference data.

    ``issues`` keeps every problem found; the message spells out the first
    :data:`~events.limits.MAX_ISSUES` of them and counts the rest.
    """

    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = list(issues)
        super().__init__(summarise_issues(self.issues))

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


class TooManyReadersError(LedgerError):
    """Raised when the stream already has as many consumers as the server allows it."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        super().__init__(
            f"stream {stream} has as many readers as the server allows; a finished replay "
            "frees its place within a minute, so try again then (operators: see "
            "MAX_CONSUMERS in services/infra/security.py)"
        )


class ReleaseExistsError(LedgerError):
    """Raised when a release is made under a name another release already has."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"a release named {name!r} exists, and a release is never changed; choose another "
            "name (e.g. with a date or a version)"
        )


class ReleaseNotFoundError(LedgerError, LookupError):
    """Raised when the stream holds no release of the name asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"no release named {name!r} in the ledger; list them with `ledger release list`"
        )


class ActivityWithdrawnError(LedgerError):
    """Raised when a command would change an activity that has been withdrawn."""

    def __init__(self, activity_id: str) -> None:
        self.activity_id = activity_id
        super().__init__(f"activity {activity_id!r} was withdrawn and can no longer change")
