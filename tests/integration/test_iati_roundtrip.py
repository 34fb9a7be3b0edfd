"""Export the seed report as IATI, import the file into a fresh ledger through intake, export
again: every figure per country, programme and year is the same (real nats-server, real SQLite)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

from lxml import etree
from nats.aio.client import Client as NATS

from events.store import EventStore
from projections import queries
from projections.db import live_path, open_reader
from replay.rebuild import rebuild
from services.client.office import OfficeClient
from services.iati.export import iati_activities, write_document
from services.iati.importer import import_iati
from services.iati.source import ExportFilters, read_states
from tests.iati_seed import seed_report_projection

LEDGER = "{urn:x-activity-ledger:iati:1}"


def _export(db: Path, out: Path) -> None:
    conn = open_reader(db)
    try:
        activities = iati_activities(
            read_states(conn, ExportFilters()), reporting_org="XM-DAC-41128", today=dt.date.today()
        )
        write_document(out, activities)
    finally:
        conn.close()


def _figures(path: Path) -> Counter[tuple[str, str, str, str]]:
    """Each overall actual value of the file, summed by (country or '', programme, year,
    metric), read with lxml alone."""
    sums: Counter[tuple[str, str, str, str]] = Counter()
    for activity in etree.parse(str(path)).getroot().iter("iati-activity"):
        countries = [c.get("code", "") for c in activity.iter("recipient-country")] or [""]
        programme = activity.find("sector[@vocabulary='99']").get("code", "")
        for indicator in activity.iter("indicator"):
            metric = indicator.find("reference").get("code", "")
            for period in indicator.iter("period"):
                year = period.find("period-start").get("iso-date", "")[:4]
                for actual in period.iter("actual"):
                    if actual.find("dimension") is None:
                        for country in countries:
                            sums[(country, programme, year, metric)] += Decimal(actual.get("value"))
    return sums


def _cells(conn: sqlite3.Connection) -> dict[str, object]:
    return {
        "countries": [c for c in queries.list_countries(conn).items],
        "programmes": [c for c in queries.list_programmes(conn).items],
        "years": [c for c in queries.list_years(conn).items],
    }


async def test_export_import_export_gives_the_same_figures(
    store: EventStore, nc: NATS, intake: None, tmp_path: Path
) -> None:
    original = seed_report_projection(tmp_path / "seed" / "live")
    first = tmp_path / "first.xml"
    _export(original, first)

    # Check: the file goes into a fresh ledger through intake, every activity accepted.
    client = OfficeClient(nc, "HQ", store.ns, actor="iati@example.org")
    summary = await import_iati(client, first, office="HQ")
    assert (summary.rejected, summary.already_present) == (0, 0), summary.rejections[:3]
    assert summary.accepted == len(etree.parse(str(first)).getroot())

    # Check: a second run stores nothing twice.
    again = await import_iati(client, first, office="HQ")
    assert (again.accepted, again.already_present, again.rejected) == (0, summary.accepted, 0)

    restored = await rebuild(store, live_path(tmp_path / "restored"), progress=False)
    second = tmp_path / "second.xml"
    _export(restored.path, second)

    # Check: the same figures per country, programme, year and metric in both files ...
    assert _figures(second) == _figures(first)
    assert _figures(first)[("KZ", "GENERAL", "2020", "people_trained")] >= 571
    # ... and the ledgers behind them answer the same totals.
    before, after = open_reader(original), open_reader(restored.path)
    try:
        assert _cells(after) == _cells(before)
    finally:
        before.close()
        after.close()
