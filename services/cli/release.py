"""Releases: ``ledger release create|list|verify``, named and signed statements of the figures.

``create`` states the figures as of an instant or a sequence by their digest
(``projections/digest.py``) and sends the release through intake as headquarters, signed with
its key (events/release.py). ``verify`` checks a release against the stream alone: the stored
event's hash and signature, then a replay of the stream up to its sequence, whose figures must
give the digest it states. It exits non-zero, naming what differs, when they do not: the past
was changed (an import of another history) or the release was forged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from events.keys import load_registry
from projections import queries
from projections.db import live_path, open_reader
from projections.digest import digest_at
from projections.temporal import scope_of
from replay.release import ReleaseCheck, verify_release
from services.cli.context import run_async, settings_of
from services.cli.exit_codes import ExitCode
from services.cli.office import office_client, office_options
from services.infra.office_keys import registry_path
from services.infra.stack import open_ledger

__all__ = ["release"]


@click.group()
def release() -> None:
    """Releases: named, signed statements of the figures as of a moment.

    Example: ledger release create SG-2021 --as-of 2021-06-30T00:00:00Z --note "as published"
    """


@release.command("create")
@click.argument("name")
@click.option("--as-of", default=None, metavar="INSTANT", help="The figures as of this instant.")
@click.option(
    "--as-of-sequence", type=int, default=None, metavar="N", help="The figures as of sequence N."
)
@click.option("--note", default="", help='What it is, e.g. "figures of the report of 30 June".')
@office_options(required=False, default="HQ")
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    as_of: str | None,
    as_of_sequence: int | None,
    note: str,
    office: str,
    actor: str | None,
) -> None:
    """Release the figures as of an instant or sequence (now, if neither) under NAME.

    Only headquarters may release; the release is signed with its key when the data directory
    keeps it. A name is used once: a release is never changed.
    """
    settings = settings_of(ctx)
    scope = scope_of(as_of, as_of_sequence)
    conn = open_reader(live_path(settings.data_dir))
    try:
        seen = queries.view_of(conn, scope=scope)
        click.echo(f"computing the digest of the figures as of sequence {seen.sequence} ...")
        digest = digest_at(conn, seen.sequence)
    finally:
        conn.close()

    async def _create() -> Any:
        async with office_client(settings, office, actor) as client:
            return await client.release(name, seen.sequence, digest, note)

    reply = run_async(_create())
    when = seen.time.isoformat() if seen.time else "before the first event"
    done = "already released" if reply.duplicate else "released"
    click.echo(
        f"{name}: {done}: the figures as of sequence {seen.sequence} ({when}), digest "
        f"{digest}; event {reply.event_id} at sequence {reply.sequence}"
    )


@release.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the releases as JSON.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the releases the live projection holds, oldest first."""
    conn = open_reader(live_path(settings_of(ctx).data_dir))
    try:
        found = queries.list_releases(conn)
    finally:
        conn.close()
    if as_json:
        click.echo(msgspec.json.encode(found).decode())
        return
    table = Table(title="Releases", title_justify="left")
    for column in ("name", "as of sequence", "instant", "note", "by", "digest"):
        table.add_column(column, overflow="fold")
    for item in found.items:
        instant = item.time.isoformat() if item.time else "-"
        by = f"{item.office} ({item.actor})"
        table.add_row(item.name, str(item.sequence), instant, item.note, by, item.digest[:16])
    Console().print(table)


@release.command("verify")
@click.argument("name")
@click.option(
    "--registry",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Key registry to check the signature against [default: <data dir>/keys/registry.json].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(ctx: click.Context, name: str, registry: Path | None, as_json: bool) -> None:
    """Check a release against the stream: its hash, its signature by headquarters, and the
    figures a replay up to its sequence gives. Exits 1 naming what differs.
    """
    settings = settings_of(ctx)
    keys = load_registry(registry or registry_path(settings.data_dir))

    async def _verify() -> ReleaseCheck:
        async with open_ledger(settings) as ledger:
            return await verify_release(ledger.source, name, keys)

    check = run_async(_verify())
    if as_json:
        click.echo(msgspec.json.encode(check).decode())
    else:
        for problem in check.problems:
            click.echo(f"release {name}: {problem}")
        click.echo(
            f"release {name}: OK: signed by {check.office} ({check.actor}); the figures as of "
            f"sequence {check.sequence} give its digest {check.digest}"
            if check.ok
            else f"release {name}: FAILED"
        )
    ctx.exit(ExitCode.OK if check.ok else ExitCode.FAILED)
