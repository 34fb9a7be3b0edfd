"""The ``ledger`` command's exit codes, one per kind of outcome, documented in the README."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


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
