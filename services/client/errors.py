"""Errors of the office side of intake: what a refused or unanswered command raises.

Each reply code maps to one error, so the CLI turns them into exit codes in one place. The
codes that mean the same as an existing ledger error reuse it (``invalid`` raises
``InvalidEventError``, ``unknown_activity`` raises ``ActivityNotFoundError``, ``withdrawn``
raises ``ActivityWithdrawnError``); the others are here.
"""

from __future__ import annotations

from events.errors import Conflict, LedgerError

__all__ = ["ForbiddenError", "IntakeUnavailableError", "VersionConflict"]


class ForbiddenError(LedgerError, PermissionError):
    """Raised when an office sends a command about another office's activity."""


class IntakeUnavailableError(LedgerError):
    """Raised when no intake service answers, or it could not store the command for now."""


class VersionConflict(Conflict):
    """Raised when the activity changed since the client read it; carries its current version."""

    def __init__(
        self, activity_id: str, message: str, version: int | None, sequence: int | None
    ) -> None:
        super().__init__(activity_id, expected=0, actual=sequence)
        self.version = version
        self.sequence = sequence
        # Conflict words its message in stream sequences; intake's reply speaks in versions,
        # which is what a field office sees and passes back.
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])
