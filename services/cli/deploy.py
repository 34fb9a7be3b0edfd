"""``ledger deploy init``: what ``compose.yaml`` mounts, generated into one folder."""

from __future__ import annotations

from pathlib import Path

import click

from services.cli.context import settings_of
from services.infra.deploy import init_deployment

__all__ = ["deploy"]


@click.group()
def deploy() -> None:
    """Prepare a deployment whose NATS cluster checks every client and route."""


@deploy.command()
@click.option(
    "--out",
    default="deploy",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to write; compose.yaml mounts ./deploy.",
)
@click.pass_context
def init(ctx: click.Context, out: Path) -> None:
    """Write the NATS nodes' configurations and one credentials file per service.

    \b
    OUT/nats-1.conf .. nats-3.conf   accounts, users, authenticated routes (mode 0600)
    OUT/creds/<role>.nk              one nkey seed per service role and per office (0600)
    OUT/creds/users.json             every user's role and public key, no seed
    OUT/creds/route.secret           the routes' password (0600)
    OUT/keys/registry.json           the offices' signing keys, which intake checks

    Seeds, the route password and the key registry that exist are kept; the configurations
    are written again, in place. After `ledger --data-dir OUT office add CODE`, run it again,
    reload the nodes (`docker compose kill -s HUP nats-1 nats-2 nats-3`) and restart intake
    and the API, whose mounts still show the users.json of their start.

    Example: ledger deploy init --out deploy/
    """
    done = init_deployment(out, namespace=settings_of(ctx).namespace)
    click.echo(f"ledger deploy: wrote {out}/ for compose.yaml")
    for path in done.configs:
        click.echo(f"  {path}")
    offices = sum(1 for user in done.users if user.role == "office")
    services = len(done.service_creds)
    click.echo(f"  {done.users_file.parent}/  {services} services, {offices} offices")
    click.echo(f"  {done.key_registry}")
    click.echo("Then:")
    click.echo("  export LEDGER_API_TOKEN=...   # the query API refuses requests without it")
    click.echo("  export LEDGER_UID=$(id -u)    # the services run as you, to read their files")
    click.echo("  docker compose up -d --build")
