"""``ledger office add``: give an office its NATS credentials and its signing key."""

from __future__ import annotations

import click

from services.cli.context import settings_of
from services.infra.access import add_office

__all__ = ["office"]


@click.group()
def office() -> None:
    """Manage the field offices that may report."""


@office.command("add")
@click.argument("code")
@click.pass_context
def add(ctx: click.Context, code: str) -> None:
    """Create the NATS credentials and the signing key of office CODE.

    CODE must be in the office catalogue (events/reference/offices.json). The credentials go
    to <data dir>/creds/office-CODE.nk (mode 0600); the office then runs `ledger report`
    with --creds pointing at a copy of that file. A running `ledger up` with the embedded
    server reloads its configuration, so the office can connect at once. Running it again
    keeps the existing keys.

    Example: ledger office add KAZ
    """
    added = add_office(settings_of(ctx), code)
    click.echo(f"office {added.office}: NATS credentials in {added.creds}")
    click.echo(f"  NATS user (public nkey): {added.nats_public_key}")
    click.echo(f"  signing key (public):    {added.signing_public_key}")
    if added.reloaded_pid:
        click.echo(f"  the running server (pid {added.reloaded_pid}) reloaded its users")
    else:
        click.echo("  no embedded server runs here; `ledger up` will know the office")
