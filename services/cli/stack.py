"""Commands that run the stack: ``up`` and ``demo`` (``status`` is in ``projections.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from projections.db import live_path
from services.api.auth import (
    TOKEN_VARIABLE,
    PublicBindError,
    TokenRequiredError,
    check_bind_host,
)
from services.api.server import ApiServer, serve_file
from services.bootstrap import run_stack, stack_components
from services.cli.context import run_async, settings_of
from services.cli.demo import run_demo
from services.cli.exit_codes import ExitCode
from services.cli.outbox import send_after_up
from services.infra.access import credentials_for
from services.infra.runtime import Runtime

__all__ = ["demo", "up"]


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="LEDGER_API_HOST",
    help="Address the query API listens on [env LEDGER_API_HOST].",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    envvar="LEDGER_API_PORT",
    help="Port of the query API; 0 picks a free one [env LEDGER_API_PORT].",
)
@click.option(
    "--public",
    is_flag=True,
    help="Allow --host to be an address other machines reach. Needs LEDGER_API_TOKEN: every "
    "request must then carry 'Authorization: Bearer <token>'; without it `up` refuses to "
    "start (exit code 9).",
)
@click.option(
    "--db",
    "db",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --read-only: the projection file to serve (e.g. an as-of replay's output).",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Serve only the query API over a projection file: no NATS server, projector or intake.",
)
@click.option(
    "--projector-process",
    is_flag=True,
    envvar="LEDGER_PROJECTOR_PROCESS",
    help="Run the projector in a process of its own, on another core, as the compose file "
    "does: under load readers see a report sooner (docs/deployment.md). /metrics then has its "
    "checkpoint and lag, not its counters [env LEDGER_PROJECTOR_PROCESS].",
)
@click.pass_context
def up(
    ctx: click.Context,
    host: str,
    port: int,
    public: bool,
    db: Path | None,
    read_only: bool,
    projector_process: bool,
) -> None:
    """Run the stack in the foreground until Ctrl-C.

    Starts the embedded NATS server on 127.0.0.1 (unless --nats-url is given), creates the
    stream, runs intake, the projector and the query API (http://127.0.0.1:8000 by default,
    OpenAPI at /schema), and writes runtime.json so that other `ledger` commands find it.
    With --read-only it serves the API over one projection file alone; history then needs
    --nats-url.

    Example: ledger --data-dir .ledger up --port 8080
    """

    settings = settings_of(ctx)
    token = (os.environ.get(TOKEN_VARIABLE) or "").strip() or None
    # Checked before anything starts: a refused `up` leaves no server, file or process behind.
    try:
        notice = check_bind_host(host, public, token)
    except PublicBindError as exc:
        raise click.UsageError(str(exc)) from None
    except TokenRequiredError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        ctx.exit(ExitCode.INSECURE)
    if notice:
        click.secho(notice, fg="yellow", err=True)
    api = ApiServer(host, port, token=token, public=public)
    if read_only and projector_process:
        raise click.UsageError("--read-only runs no projector; leave out --projector-process")
    if db is not None and not read_only:
        raise click.UsageError("--db serves a file as is; give --read-only with it")
    if read_only:
        target = db or live_path(settings.data_dir)
        api.bind()
        click.echo(f"ledger up: read-only API {api.url} over {target} (OpenAPI at /schema)")
        click.echo(f"dashboard: {api.url}/")
        click.echo("Ctrl-C to stop.")
        creds = credentials_for(settings, "query")
        run_async(serve_file(target, api, settings.nats_url, creds))
        click.echo("ledger stopped.")
        return

    def ready(runtime: Runtime) -> None:
        where = "embedded" if runtime.embedded else "external"
        click.echo(f"ledger up: NATS {runtime.nats_url} ({where}), data in {settings.data_dir}")
        click.echo(f"query API: {runtime.api_url} (OpenAPI at {runtime.api_url}/schema)")
        click.echo(f"dashboard: {runtime.api_url}/")
        click.echo("Ctrl-C to stop.")
        send_after_up(settings)  # what the offices' outbox kept while the ledger was down

    components = stack_components(settings, projector_process=projector_process)
    run_async(run_stack(settings, components, on_ready=ready, api=api))
    click.echo("ledger stopped.")


@click.command()
@click.option(
    "--no-serve",
    is_flag=True,
    help="Print the report and exit, for scripts; binds no port (--host and --port are unused).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the API.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port of the API and dashboard; 0 picks a free one.",
)
@click.pass_context
def demo(ctx: click.Context, no_serve: bool, host: str, port: int) -> None:
    """Import the seed report through intake, print its story, and serve it until Ctrl-C.

    Uses the stack of a running `ledger up` on the same data directory, or starts one.
    Running it again stores nothing new.

    Example: ledger demo --no-serve
    """

    # The demo serves without a token, so this machine only; `ledger up --public` serves others.
    try:
        check_bind_host(host, public=False)
    except PublicBindError:
        raise click.UsageError(
            f"the demo serves on this machine only, not on {host}; keep --host 127.0.0.1, "
            "and use `ledger up --public` with LEDGER_API_TOKEN set to serve others"
        ) from None

    run_async(run_demo(settings_of(ctx), serve=not no_serve, host=host, port=port))
