"""The ``ledger`` command's exit codes, one per kind of outcome, documented in the README.

They are defined with the one error table, :mod:`services.errors`, whose exit column they are:
that table stands below every room of ``services/`` so that the API can read it too, and the CLI
may be imported by no room. The CLI's modules import them from here.
"""

from __future__ import annotations

from services.errors import ExitCode

__all__ = ["ExitCode"]
