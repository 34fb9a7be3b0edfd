"""The ``ledger`` subcommands, one module per user of the ledger."""

from __future__ import annotations

import click

__all__ = ["register"]


def register(group: click.Group) -> None:
    """Add every subcommand to the ``ledger`` group."""
    from services.commands import stack

    for command in (stack.up, stack.demo, stack.status):
        group.add_command(command)
