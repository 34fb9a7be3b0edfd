"""Every ``ledger`` subcommand, in the order ``ledger --help`` lists them."""

from __future__ import annotations

import click

from services.cli import (
    audit,
    cluster,
    deploy,
    doctor,
    draft,
    iati,
    office,
    offices,
    outbox,
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
    doctor.doctor,
    cluster.cluster,
    deploy.deploy,
    # readers
    query.query,
    query.activities,
    query.provenance,
    draft.draft,
    iati.iati,
    # field offices
    office.report,
    office.revise,
    office.withdraw,
    office.import_,
    outbox.outbox,
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
