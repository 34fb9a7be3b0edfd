"""Commands that run the stack: ``up`` and ``demo`` (``status`` is in ``projections.py``)."""

from __future__ import annotations

import click

from services.cli import run_async, settings_of
from services.components import stack_components
from services.runtime import Runtime
from services.up import run_stack

__all__ = ["demo", "up"]


@click.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Run the stack in the foreground until Ctrl-C.

    Starts the embedded NATS server on 127.0.0.1 (unless --nats-url is given), creates the
    stream, and writes runtime.json so that other `ledger` commands find it.

    Example: ledger --data-dir .ledger up
    """
    settings = settings_of(ctx)

    def ready(runtime: Runtime) -> None:
        where = "embedded" if runtime.embedded else "external"
        click.echo(f"ledger up: NATS {runtime.nats_url} ({where}), data in {settings.data_dir}")
        click.echo("Ctrl-C to stop.")

    run_async(run_stack(settings, stack_components(settings), on_ready=ready))
    click.echo("ledger stopped.")


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Append a few activities from the report and print them back from the stream.

    Example: ledger demo
    """
    from services.demo import run_demo

    run_async(run_demo(settings_of(ctx)))
