"""Every ``ledger`` subcommand, in the order ``ledger --help`` lists them."""

from __future__ import annotations

import click

from services.cli import (
    audit,
    cluster,
    deploy,
    office,
    offices,
    projections,
    proof,
    query,
    release,
    stack,
)

__all__ = ["COMMANDS"]

COMMANDS: tuple[click.Command, ...] = (
    # the stack
    stack.up,
    stack.demo,
    projections.status,
    projections.rebuild,
    cluster.cluster,
    deploy.deploy,
    # readers
    query.query,
    query.activities,
    query.provenance,
    # field offices
    office.report,
    office.revise,
    office.withdraw,
    office.import_,
    offices.office,
    # auditors
    audit.history,
    audit.replay,
    audit.diff,
    audit.verify,
    audit.export,
    audit.import_log,
    audit.keys,
    release.release,
    proof.proof,
)
