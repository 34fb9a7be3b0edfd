"""Errors of the read side: a query's parameter is wrong, or the projection is not there yet.

Each names the parameter it is about, so that every edge (HTTP, CLI, NATS) can tell the reader
which value to fix without knowing the query. How each edge answers them (a status, a code, an
exit status) is their row of the one error table, :mod:`services.errors`.
"""

from __future__ import annotations

from events.errors import LedgerError

__all__ = ["BadParameterError", "NotYetError", "QueryError", "UnknownKeyError"]


class QueryError(LedgerError, ValueError):
    """Base class of a query's refusals; ``parameter`` names the offending input."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        self.message = message
        super().__init__(f"{parameter}: {message}")


class BadParameterError(QueryError):
    """Raised when a parameter's value is malformed or out of range (a year, a cursor, a limit)."""


class UnknownKeyError(QueryError, LookupError):
    """Raised when a country, programme, activity or metric is not known to the ledger."""


class NotYetError(LedgerError):
    """Raised when the projection has not reached the sequence a reader asked for, or is missing."""

    def __init__(self, message: str, sequence: int = 0) -> None:
        self.sequence = sequence
        super().__init__(message)
