"""What the ``ledger`` subcommands share: the settings the group's options gave, a runner, the
options that choose a projection and a past, and the progress bar of a file's lines.

The subcommands import this module, never :mod:`services.cli.main`, which imports them.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from projections.temporal import scope_of
from services.infra.config import Settings

__all__ = ["file_progress", "run_async", "scope_options", "settings_of"]

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


def scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--as-of``, ``--as-of-sequence``, ``--document`` and ``--release``, given to the command
    as one ``scope`` (:func:`projections.temporal.scope_of` checks them), and ``--db``: what
    every command that reads a projection takes."""

    @click.option(
        "--as-of",
        default=None,
        metavar="INSTANT",
        help="As the ledger stood at this RFC 3339 instant, e.g. 2021-06-30T00:00:00Z.",
    )
    @click.option(
        "--as-of-sequence",
        type=int,
        default=None,
        metavar="N",
        help="As the ledger stood at this stream sequence.",
    )
    @click.option("--document", default=None, help="Only this document's figures and activities.")
    @click.option("--release", default=None, help="As of the sequence this release states.")
    @click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="A projection file (default: the data directory's live projection).",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        as_of: str | None,
        as_of_sequence: int | None,
        document: str | None,
        release: str | None,
        **kwargs: Any,
    ) -> Any:
        scope = scope_of(as_of, as_of_sequence, document, release)
        return command(*args, scope=scope, **kwargs)

    return wrapper


def file_progress(console: Console) -> Progress:
    """The bar of a file read line by line (bytes done, time left); gone when it ends, and not
    drawn at all when the output is not a terminal."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not console.is_terminal,
        console=console,
    )
