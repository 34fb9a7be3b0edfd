"""What every ``ledger`` subcommand shares: the settings the group's options gave, and a runner.

The subcommands import this module, never :mod:`services.cli.main`, which imports them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from services.infra.config import Settings

__all__ = ["run_async", "settings_of"]

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a Ctrl-C ends it quietly with the shell's code 130."""
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def settings_of(ctx: click.Context) -> Settings:
    """The settings the group's options gave."""
    return ctx.find_root().obj
