"""The ``ledger`` subcommands, one module per user of the ledger."""

from __future__ import annotations

import click

__all__ = ["register"]


def register(group: click.Group) -> None:
    """Add every subcommand to the ``ledger`` group."""
    from services.commands import (
        audit,
        cluster,
        deploy,
        office,
        offices,
        projections,
        query,
        stack,
    )

    for command in (stack.up, stack.demo, projections.status, projections.rebuild, cluster.cluster):
        group.add_command(command)
    group.add_command(deploy.deploy)
    for command in (query.query, query.activities, query.provenance):
        group.add_command(command)
    for command in (office.report, office.revise, office.withdraw, office.import_):
        group.add_command(command)
    group.add_command(offices.office)
    for command in (
        audit.history,
        audit.replay,
        audit.diff,
        audit.verify,
        audit.export,
        audit.import_log,
        audit.keys,
    ):
        group.add_command(command)
