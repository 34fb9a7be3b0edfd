"""Commands for the read side: ``ledger rebuild`` and ``ledger status``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import click
import msgspec

from projections.db import live_path, open_reader, resolve
from replay.rebuild import rebuild as rebuild_projections
from services.cli.context import run_async, settings_of
from services.cli.exit_codes import ExitCode
from services.infra.stack import ConnectionFailedError, open_ledger

__all__ = ["projection_status", "rebuild", "status"]


def projection_status(live: Path, last_sequence: int | None) -> list[dict[str, Any]]:
    """Each projection's checkpoint, lag behind ``last_sequence`` and quarantine count.

    :param live: the live projection path; no file there gives an empty list.
    :param last_sequence: the stream's last sequence; ``None`` when it could not be read,
        which leaves the lag ``None``.
    """

    if not resolve(live).exists():
        return []
    conn = open_reader(live)
    try:
        checkpoints = conn.execute("SELECT projection, sequence FROM checkpoint").fetchall()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    except sqlite3.OperationalError:
        checkpoints, quarantined = [], 0  # created but not yet initialised
    finally:
        conn.close()
    if not checkpoints:
        checkpoints = [("ledger", 0)]
    return [
        {
            "projection": name,
            "file": str(resolve(live)),
            "checkpoint": sequence,
            "lag": None if last_sequence is None else max(last_sequence - sequence, 0),
            "quarantined": quarantined,
        }
        for name, sequence in checkpoints
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Print the stream's last sequence and each projection's checkpoint, lag and quarantine.

    Example: ledger status --json
    """

    settings = settings_of(ctx)

    async def _status() -> dict[str, Any]:
        async with open_ledger(settings) as ledger:
            info = await ledger.store.js.stream_info(ledger.store.ns.stream)
            return {
                "nats_url": ledger.url,
                "stream": info.config.name,
                # The last activity event: what a projection can reach (a release after it
                # is none of a projection's events).
                "last_sequence": await ledger.store.last_sequence(),
                "messages": info.state.messages,
                "replicas": info.config.num_replicas,
            }

    try:
        report = run_async(_status())
    except ConnectionFailedError as exc:
        # The projection can still be read: show it, and say why its lag is not known.
        report = {
            "last_sequence": None,
            "lag_note": f"{exc}; `ledger doctor` checks the rest",
        }
    report["projections"] = projection_status(live_path(settings.data_dir), report["last_sequence"])
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
    if "lag_note" in report:
        if not as_json:
            _print_projections(report["projections"])
            click.secho(f"{'lag':>14}: unknown: {report['lag_note']}", fg="red", err=True)
        ctx.exit(ExitCode.UNREACHABLE)
    if as_json:
        return
    for key, value in report.items():
        if key != "projections":
            click.echo(f"{key:>14}: {value}")
    _print_projections(report["projections"])


def _print_projections(found: list[dict[str, Any]]) -> None:
    if not found:
        click.echo(f"{'projections':>14}: none yet (run `ledger up` or `ledger rebuild`)")
    for item in found:
        lag = "unknown" if item["lag"] is None else item["lag"]
        click.echo(
            f"{'projection':>14}: {item['projection']} at {item['checkpoint']} "
            f"(lag {lag}, {item['quarantined']} quarantined) in {item['file']}"
        )


@click.command()
@click.option(
    "--batch-size",
    default=20_000,
    show_default=True,
    help="Activities kept in memory while the rebuild folds; the rest are written out.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: when standard error is a terminal).",
)
@click.pass_context
def rebuild(ctx: click.Context, batch_size: int, progress: bool | None) -> None:
    """Rebuild every projection from sequence 1 into a fresh file, then switch to it.

    Readers keep the old file until they reopen; a running `ledger up` follows the switch
    and catches up by itself.

    Example: ledger rebuild
    """

    settings = settings_of(ctx)

    async def _rebuild() -> Any:
        async with open_ledger(settings) as ledger:
            return await rebuild_projections(
                ledger.source,
                live_path(settings.data_dir),
                batch_size=batch_size,
                progress=progress,
            )

    result = run_async(_rebuild())
    click.echo(
        f"rebuilt {result.events} events to sequence {result.checkpoint} in "
        f"{result.seconds:.1f}s ({result.rate:,.0f} events/s); live: {result.path.name}"
    )
