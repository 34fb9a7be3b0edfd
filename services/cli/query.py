"""Commands for readers: ``ledger query country|programme|year``, ``activities``, ``provenance``.

Each opens the live projection of the data directory (or ``--db PATH``) read-only, makes the one
call of :mod:`projections.queries` that the HTTP route makes, and prints rich tables, or with
``--json`` the very JSON the API gives. They need no running stack.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from events.activity import STATUSES
from projections.answers import ActivityItem, Cell, ProvenanceItem
from projections.db import live_path, open_reader
from projections.queries import (
    country_summary,
    get_activity,
    list_activities,
    list_documents,
    programme_summary,
    year_summary,
)
from projections.queries import provenance as provenance_of
from projections.temporal import Scope
from services.api.tables import to_rows
from services.cli.context import scope_options, settings_of

__all__ = ["activities", "provenance", "query"]


def _reader_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The projection and its past (:func:`~services.cli.context.scope_options`) and ``--json``,
    shared by every reader command."""
    json_option = click.option(
        "--json", "as_json", is_flag=True, help="Print the answer as the API's JSON."
    )
    return scope_options(json_option(command))


def _run(ctx: click.Context, db: Path | None, call: Callable[[Any], Any]) -> Any:

    conn = open_reader(db or live_path(settings_of(ctx).data_dir))
    try:
        return call(conn)
    finally:
        conn.close()


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return "" if value is None else str(value)


def _table(
    title: str, items: list[Any], kind: type[msgspec.Struct], skip: tuple[str, ...] = ()
) -> Table:
    header, rows = to_rows(items, kind)
    keep = [
        i
        for i, name in enumerate(header)
        if name not in skip and any(row[i] not in ("", None) for row in rows)
    ]
    table = Table(title=title, title_justify="left")
    for i in keep:
        name = header[i].removeprefix("metric.")
        table.add_column(name, justify="right" if header[i].startswith("metric.") else "left")
    for row in rows:
        table.add_row(*(_figure(row[i]) for i in keep))
    return table


def _print(answer: Any, as_json: bool, render: Callable[[Console, Any], None]) -> None:
    if as_json:
        click.echo(msgspec.json.encode(answer).decode())
        return
    console = Console(width=120)
    render(console, answer)


def _as_of(console: Console, answer: Any) -> None:
    seen = answer.as_of
    when = seen.time.isoformat() if seen.time else "-"
    past = "" if seen.now else "in the past: "
    narrowed = f", document {seen.document}" if seen.document else ""
    if seen.release:
        narrowed = f", release {seen.release}{narrowed}"
    console.print(f"{past}as of sequence {seen.sequence} ({when}){narrowed}")


def _render_summary(console: Console, summary: Any) -> None:

    label = " ".join(
        str(part)
        for part in (summary.country or summary.programme, summary.name, summary.year)
        if part
    )
    console.print(f"[bold]{label}[/bold]: {summary.activities} activities counted")
    totals = Table(title="totals", title_justify="left")
    totals.add_column("metric")
    totals.add_column("total", justify="right")
    totals.add_column("unit")
    totals.add_column("rule")
    for metric, value in sorted(summary.totals.items()):
        totals.add_row(metric, _figure(value), summary.units.get(metric, ""), "sum")
    console.print(totals)
    if summary.reported:
        # Never a total: each activity's own figure, largest first (events/metrics.py).
        reported = Table(title="reported, not added up", title_justify="left")
        for column in ("metric", "rule", "unit", "activities", "figures, largest first"):
            reported.add_column(column)
        for metric, entry in sorted(summary.reported.items()):
            figures = "; ".join(f"{_figure(f.value)} ({f.activity_id})" for f in entry.figures)
            reported.add_row(metric, entry.rule, entry.unit, str(entry.activities), figures)
        console.print(reported)
    if summary.multi_country_count:
        console.print(f"multi-country: {summary.multi_country_count} ({summary.note})")
        for ref in summary.multi_country:
            console.print(f"  {ref.activity_id} ({', '.join(ref.countries)}): {ref.title}")
    for name in ("by_year", "by_programme", "by_country"):
        cells = getattr(summary, name)
        if cells:
            console.print(_table(name.replace("_", " "), cells, Cell))
    _as_of(console, summary)


@click.group()
def query() -> None:
    """Figures of one country, programme or year, from the live projection.

    Example: ledger query country KAZ --year 2020
    """


@query.command("country")
@click.argument("country")
@click.option("--year", type=int, default=None, help="Narrow every figure to this year.")
@_reader_options
@click.pass_context
def country_command(
    ctx: click.Context,
    country: str,
    year: int | None,
    db: Path | None,
    as_json: bool,
    scope: Scope,
) -> None:
    """Totals of one country (ISO3 or UN name), by year and by programme.

    Example: ledger query country Kazakhstan --json
    """

    answer = _run(ctx, db, lambda conn: country_summary(conn, country, year=year, scope=scope))
    _print(answer, as_json, _render_summary)


@query.command("programme")
@click.argument("programme")
@click.option("--year", type=int, default=None, help="Narrow every figure to this year.")
@_reader_options
@click.pass_context
def programme_command(
    ctx: click.Context,
    programme: str,
    year: int | None,
    db: Path | None,
    as_json: bool,
    scope: Scope,
) -> None:
    """Totals of one programme, by year and by country.

    Example: ledger query programme GPCC
    """

    answer = _run(ctx, db, lambda conn: programme_summary(conn, programme, year=year, scope=scope))
    _print(answer, as_json, _render_summary)


@query.command("year")
@click.argument("year", type=int)
@_reader_options
@click.pass_context
def year_command(
    ctx: click.Context, year: int, db: Path | None, as_json: bool, scope: Scope
) -> None:
    """Totals of one year, by country and by programme.

    Example: ledger query year 2020
    """

    answer = _run(ctx, db, lambda conn: year_summary(conn, year, scope=scope))
    _print(answer, as_json, _render_summary)


@query.command("documents")
@_reader_options
@click.pass_context
def documents_command(ctx: click.Context, db: Path | None, as_json: bool, scope: Scope) -> None:
    """Every document that reports activities: how many, and their figures.

    Example: ledger query documents
    """

    answer = _run(ctx, db, lambda conn: list_documents(conn, scope=scope))

    def render(console: Console, found: Any) -> None:
        table = Table(title="documents", title_justify="left")
        for column in ("document", "activities", "largest figures (summed)"):
            table.add_column(column, justify="right" if column == "activities" else "left")
        for cell in found.items:
            top = sorted(cell.totals.items(), key=lambda item: -item[1])[:3]
            figures = ", ".join(f"{_figure(value)} {metric}" for metric, value in top)
            table.add_row(cell.document, str(cell.activities), figures)
        console.print(table)
        _as_of(console, found)

    _print(answer, as_json, render)


@query.command("activity")
@click.argument("activity_id")
@_reader_options
@click.pass_context
def activity_command(
    ctx: click.Context, activity_id: str, db: Path | None, as_json: bool, scope: Scope
) -> None:
    """One activity, as it is now or as it was (--as-of).

    Example: ledger query activity P030-KAZ-TRAINING --as-of 2021-06-30T00:00:00Z
    """

    answer = _run(ctx, db, lambda conn: get_activity(conn, activity_id, scope=scope))

    def render(console: Console, found: Any) -> None:
        console.print(f"[bold]{found.activity_id}[/bold] ({found.status}): {found.title}")
        console.print(f"{found.programme}, {found.year}, office {found.office}")
        places = ", ".join(
            place.country
            + (f" {place.share:g}%" if place.share is not None else "")
            + (" (venue)" if place.role == "venue" else "")
            for place in found.countries
        )
        console.print(f"countries: {places}")
        for metric, value in sorted(found.metrics.items()):
            console.print(f"  {metric}: {_figure(value)}")
        console.print(f"version {found.version}, events: {', '.join(found.event_ids)}")
        _as_of(console, found)

    _print(answer, as_json, render)


@click.command()
@click.option("--country", default=None, help="Listed under this country (ISO3 or UN name).")
@click.option("--programme", default=None)
@click.option("--year", type=int, default=None)
@click.option("--kind", default=None)
@click.option("--office", default=None)
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--q", "q", default=None, help="Words to find in the title or summary.")
@click.option("--cursor", default=None, help="next_cursor of the previous page.")
@click.option("--limit", type=int, default=50, show_default=True, help="Page size, 1..500.")
@_reader_options
@click.pass_context
def activities(ctx: click.Context, db: Path | None, as_json: bool, **filters: Any) -> None:
    """List activities matching every filter, a page at a time.

    Example: ledger activities --country KAZ --q training --limit 20
    """
    # ``filters`` holds the scope too: list_activities takes it as ``scope``.
    answer = _run(ctx, db, lambda conn: list_activities(conn, **filters))

    def render(console: Console, page: Any) -> None:
        skip = ("office", "kind", "multi_country", "version", "last_sequence")
        console.print(_table("activities", page.items, ActivityItem, skip))
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}")
        _as_of(console, page)

    _print(answer, as_json, render)


@click.command()
@click.option("--country", default=None)
@click.option("--programme", default=None)
@click.option("--year", type=int, default=None)
@click.option("--metric", required=True, help="A metric name, or * for the activity count.")
@click.option("--cursor", default=None, help="next_cursor of the previous page.")
@click.option("--limit", type=int, default=50, show_default=True, help="Page size, 1..500.")
@_reader_options
@click.pass_context
def provenance(ctx: click.Context, db: Path | None, as_json: bool, **key: Any) -> None:
    """List the activities and events that make up one figure, a page at a time; they sum to it.

    Example: ledger provenance --country KAZ --metric people_trained
    """

    answer = _run(ctx, db, lambda conn: provenance_of(conn, **key))

    def render(console: Console, found: Any) -> None:
        if found.rule == "none":
            title = f"{found.metric}: not summed (each activity's own figure)"
        elif found.rule == "max":
            title = f"{found.metric}: largest {_figure(found.total)}, by {found.largest}"
        else:
            title = f"{found.metric}: {_figure(found.total)}"
        console.print(_table(title, found.items, ProvenanceItem, ("event_ids", "multi_country")))
        if found.next_cursor:
            console.print(f"more: --cursor {found.next_cursor}")
        _as_of(console, found)

    _print(answer, as_json, render)
