"""``ledger demo``: the seed report goes into the ledger through intake, and its story comes out.

It starts the stack (or uses the one ``ledger up`` runs on the same data directory), gives the
report's offices signing keys, imports ``data/activities.jsonl`` through intake, sends the
revisions of ``data/revisions.jsonl`` after it, waits until the projection has caught up, and
prints a short report: the countries with most activities, the programmes with their main
figures, the totals per year, and one figure traced back to the paragraphs it comes from. It
then keeps serving the API and the dashboard until Ctrl-C, unless told not to. Running it
again stores nothing new: the import and the revisions are idempotent.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from events.errors import LedgerError
from events.model import ActivityReported
from events.reference import load_reference
from events.store import EventStore
from events.validation import check_reported
from projections import queries
from projections.answers import Cell
from projections.db import live_path, open_reader, resolve
from services.api.server import ApiServer
from services.bootstrap import run_stack, stack_components
from services.client.errors import IntakeUnavailableError
from services.client.importer import (
    DEFAULT_MAX_LINE_BYTES,
    ImportSummary,
    import_file,
    read_records,
)
from services.client.office import OfficeClient
from services.infra.access import credentials_for
from services.infra.config import Settings
from services.infra.office_keys import create_office_key, office_seeds
from services.infra.runtime import Runtime, read_runtime
from services.infra.stack import connect

__all__ = ["DATASET", "REVISIONS", "SeedRevision", "read_dataset", "read_revisions", "run_demo"]

DATASET = Path(__file__).resolve().parents[2] / "data" / "activities.jsonl"
"""The report's activities, one JSON object a line, in the import format."""

_HEADLINE_METRICS = ("people_trained", "participants", "firearms_seized", "seizures")
"""Summed metrics the story shows first; a distinct count such as countries assisted is never
summed (events/metrics.py), so it has no total to show."""
_CATCH_UP_SECONDS = 30.0


REVISIONS = DATASET.with_name("revisions.jsonl")
"""Revisions of the seed's activities, one JSON object a line (``activity_id``, ``changes``,
``reason``): what schema version 2 lets the ledger say that version 1 could not (venues,
several sources, one activity part of another). The dataset is imported as it was first
transcribed, and these follow through intake, each with its reason, as an office would send
them: history is never rewritten."""


class SeedRevision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line of :data:`REVISIONS`."""

    activity_id: str
    changes: dict[str, Any]
    reason: str


def read_dataset(path: Path = DATASET) -> list[ActivityReported]:
    """The activities of the dataset file, read as `ledger import` reads them, and checked
    against the reference data.

    :raises ValueError: naming the line, when one cannot be read.
    """
    ref = load_reference()
    with path.open("rb") as stream:
        found = list(
            read_records(stream, path, csv_format=False, max_line_bytes=DEFAULT_MAX_LINE_BYTES)
        )
    for number, record in found:
        if not isinstance(record, ActivityReported):
            raise ValueError(f"{path}:{number}: {record.message}")
    return [
        check_reported(record, ref) for _, record in found if isinstance(record, ActivityReported)
    ]


def read_revisions(path: Path = REVISIONS) -> list[SeedRevision]:
    """The seed's revisions, in order."""
    decoder = msgspec.json.Decoder(SeedRevision)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


async def _revise(nc: Any, settings: Settings, offices: dict[str, str], console: Console) -> int:
    """Send the seed's revisions, each as the office that reported the activity; each one's
    command id comes from its line, so a second run of the demo finds them applied and
    changes nothing. Returns how many were new.

    :param offices: the office of each activity of the dataset, by id.
    """
    seeds = office_seeds(settings.data_dir)
    applied = 0
    for revision in read_revisions():
        office = offices.get(revision.activity_id, "HQ")
        client = OfficeClient(nc, office, settings.namespace, actor="demo", seeds=seeds)
        line = msgspec.json.encode(revision, order="sorted")
        command_id = "seed-revision-" + hashlib.sha256(line).hexdigest()[:40]
        try:
            accepted = await client.revise(
                revision.activity_id, revision.changes, revision.reason, command_id=command_id
            )
            applied += not accepted.duplicate
        except LedgerError as exc:
            console.print(f"  revision of {revision.activity_id}: {exc}")
    return applied


async def run_demo(
    settings: Settings,
    *,
    serve: bool = True,
    host: str = "127.0.0.1",
    port: int = 8000,
    console: Console | None = None,
) -> None:
    """Import the seed report, print its story, and (with ``serve``) keep serving until Ctrl-C.

    Without ``serve`` the stack runs without its API, so no port is bound.

    :raises AlreadyRunningError: never: a running ``ledger up`` is used instead.
    """
    # A report read in a log or a README should not wrap at 80 columns.
    console = console or Console(width=None if Console().is_terminal else 110)
    running = read_runtime(settings.data_dir)
    if running is not None:
        console.print(
            f"Using the ledger already running on {settings.data_dir} (pid {running.pid})."
        )
        await _import_and_report(settings, running.nats_url, console)
        _print_urls(running.api_url, console)
        return

    stop, ready = asyncio.Event(), asyncio.Event()
    started: list[Runtime] = []

    def on_ready(runtime: Runtime) -> None:
        started.append(runtime)
        ready.set()

    # Without serving, no port is bound: the demo then succeeds whatever holds the API's port.
    api = ApiServer(host, port) if serve else None
    stack = asyncio.create_task(
        run_stack(settings, stack_components(settings), on_ready=on_ready, stop=stop, api=api)
    )
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([stack, waiting], return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiting.cancel()
        await stack  # it failed to start: let its error speak
        return
    try:
        await _import_and_report(settings, started[0].nats_url, console)
        if serve:
            _print_urls(started[0].api_url, console)
            console.print("Ctrl-C to stop.")
        else:
            stop.set()
        await stack
    finally:
        stop.set()
        if not stack.done():
            await stack


def _print_urls(api_url: str, console: Console) -> None:
    if api_url:
        console.print(
            f"\nDashboard: {api_url}/   API: {api_url}/v1/countries   OpenAPI: {api_url}/schema"
        )


async def _import_and_report(settings: Settings, nats_url: str, console: Console) -> None:
    office_of = {activity.activity_id: activity.office for activity in read_dataset()}
    offices = sorted(set(office_of.values()))
    for office in offices:
        create_office_key(settings.data_dir, office)  # keeps a key that exists
    nc = await connect(nats_url, "ledger-demo", creds=credentials_for(settings, "admin"))
    try:
        client = OfficeClient(
            nc, None, settings.namespace, actor="demo", seeds=office_seeds(settings.data_dir)
        )
        summary = await _import(client, console)
        revised = await _revise(nc, settings, office_of, console)
        last = await EventStore(nc, settings.namespace).last_sequence()
    finally:
        await nc.close()
    console.print(
        f"Imported {DATASET.name} through intake, signed by {', '.join(offices)}: "
        f"{summary.accepted} new, {summary.already_present} already present, "
        f"{summary.rejected} rejected; {revised} new revisions from {REVISIONS.name}."
    )
    live = live_path(settings.data_dir)
    await _wait_for_projection(live, last)
    conn = open_reader(live)
    try:
        _print_report(conn, console)
    finally:
        conn.close()


async def _import(client: OfficeClient, console: Console) -> ImportSummary:
    try:
        summary = await import_file(client, DATASET)
    except IntakeUnavailableError:
        # Intake subscribes a moment after the stack says it is up; one more try is safe.
        await asyncio.sleep(1.0)
        summary = await import_file(client, DATASET)
    for rejection in summary.rejections:
        console.print(f"  line {rejection.line}: {rejection.code}: {rejection.message}")
    return summary


async def _wait_for_projection(live: Path, sequence: int) -> None:
    deadline = asyncio.get_running_loop().time() + _CATCH_UP_SECONDS
    while True:
        if resolve(live).exists():
            conn = open_reader(live)
            try:
                if queries.current_sequence(conn) >= sequence:
                    return
            except sqlite3.OperationalError:
                pass  # created, not yet initialised
            finally:
                conn.close()
        if asyncio.get_running_loop().time() > deadline:
            raise IntakeUnavailableError(
                f"the projection did not reach sequence {sequence} within "
                f"{_CATCH_UP_SECONDS:g}s; see `ledger status`"
            )
        await asyncio.sleep(0.1)


def _figures(cell: Cell, count: int = 2) -> str:
    shown = [m for m in _HEADLINE_METRICS if cell.totals.get(m)]
    shown += sorted((m for m in cell.totals if m not in shown), key=lambda m: -cell.totals[m])
    return ", ".join(f"{cell.totals[m]:,.0f} {m.replace('_', ' ')}" for m in shown[:count]) or "-"


def _print_report(conn: sqlite3.Connection, console: Console) -> None:
    status = queries.status(conn)
    console.print(
        f"\n[bold]The report as data[/bold] (projection at sequence {status.as_of.sequence})"
    )

    countries = sorted(
        queries.list_countries(conn).items,
        key=lambda c: (-(c.activities + c.multi_country), c.name),
    )
    table = Table(title="Countries with most activities")
    for column in ("country", "own activities", "listed in multi-country", "figures"):
        table.add_column(column, justify="left" if column in ("country", "figures") else "right")
    for cell in countries[:8]:
        table.add_row(cell.name, str(cell.activities), str(cell.multi_country), _figures(cell))
    console.print(table)

    programmes = sorted(
        queries.list_programmes(conn).items, key=lambda c: (-len(c.totals), -c.activities)
    )
    table = Table(title=f"Programmes and their main figures (10 of {len(programmes)})")
    for column in ("code", "programme", "activities", "main figures"):
        table.add_column(column, justify="right" if column == "activities" else "left")
    for cell in programmes[:10]:
        table.add_row(cell.programme, cell.name, str(cell.activities), _figures(cell, 3))
    console.print(table)

    table = Table(title="Totals per year")
    for column in ("year", "activities", "people trained", "participants", "firearms seized"):
        table.add_column(column, justify="right")
    for cell in queries.list_years(conn).items:
        table.add_row(
            str(cell.year),
            str(cell.activities),
            *(f"{cell.totals.get(m, 0):,.0f}" for m in _HEADLINE_METRICS[:3]),
        )
    console.print(table)
    _print_provenance(conn, programmes, console)


def _print_provenance(conn: sqlite3.Connection, programmes: list[Cell], console: Console) -> None:
    """Trace the figure of people trained, in a named programme, that most activities add up to."""
    best = None
    for cell in programmes:
        if cell.totals.get("people_trained") and cell.programme not in (None, "GENERAL"):
            found = queries.provenance(conn, programme=cell.programme, metric="people_trained")
            if best is None or found.activities > best.activities:
                best = found
    if best is None:
        return
    name = next(c.name for c in programmes if c.programme == best.programme)
    console.print(
        f"\n[bold]Where a figure comes from[/bold]: {best.total:,.0f} people trained under "
        f"{name}, from {best.activities} activities:"
    )
    for item in best.items:
        detail = queries.get_activity(conn, item.activity_id)
        where = "; ".join(f"{s.document}, para. {s.paragraph}" for s in detail.sources) or "-"
        console.print(
            f"  {item.value:>8,.0f}  {item.activity_id}: {item.title}  [{where}; "
            f"event …{item.last_event_id[-12:]}]"
        )
