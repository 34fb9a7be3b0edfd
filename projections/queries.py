"""The read-only queries every interface calls: HTTP, the CLI, NATS request-reply, dashboards.

Each function takes a read-only connection (:func:`projections.db.open_reader`), reads inside
one read transaction, so that its figures and its ``as_of`` come from one snapshot even while
the projector commits, and returns a Struct of :mod:`projections.answers`. Nothing here writes.

Countries accept an ISO 3166-1 alpha-3 code or a UN name, programmes a code, name or alias
(:mod:`events.reference`). A wrong parameter raises a :class:`~projections.errors.QueryError`
that names it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from events.activity import STATUSES
from events.metrics import metric_rules, rule_of
from events.reference import FIRST_YEAR, LAST_YEAR, load_reference
from projections.answers import (
    ActivityDetail,
    ActivityItem,
    ActivityPage,
    ActivityRef,
    AsOf,
    Cell,
    CellList,
    Place,
    ProjectionStatus,
    Provenance,
    ProvenanceItem,
    Reported,
    ReportedFigure,
    SourceRef,
    Status,
    Summary,
)
from projections.errors import BadParameterError, UnknownKeyError
from projections.fold import ACTIVITY_COUNT, MICROS, decode_state
from projections.paging import decode_cursor, encode_cursor
from projections.provenance import contributions
from projections.schema import PROJECTION

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MULTI_COUNTRY_LISTED",
    "REPORTED_LISTED",
    "as_of",
    "country_summary",
    "current_sequence",
    "get_activity",
    "global_summary",
    "list_activities",
    "list_countries",
    "list_programmes",
    "list_years",
    "programme_summary",
    "provenance",
    "resolve_country",
    "resolve_programme",
    "status",
    "year_summary",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
"""The largest page of activities or of a figure's provenance; bigger pages would let one
request hold a worker."""
MULTI_COUNTRY_LISTED = 20
"""How many multi-country activities a summary lists by name; the count covers all of them."""
REPORTED_LISTED = 10
"""How many activities' own figures a summary lists for a metric that is not summed."""

_COUNTRY_NOTE = (
    "multi-country activities without shares are listed here but count in no single "
    "country's total; they count in their programme, year and global totals"
)
_OTHER_NOTE = (
    "multi-country activities without shares count in these totals, but in no single "
    "country's total"
)

_places = msgspec.json.Decoder(list[Place])
_metrics = msgspec.json.Decoder(dict[str, float])
_ids = msgspec.json.Decoder(list[str])
_strings = msgspec.json.Decoder(list[str])
_figures = msgspec.json.Decoder(dict[str, int])
_sources = msgspec.json.Decoder(list[SourceRef])


# -- parameters --------------------------------------------------------------------------------


def resolve_country(text: str) -> str:
    """The alpha-3 code of a country given by code or UN name.

    :raises UnknownKeyError: naming ``country`` when it is not in the catalogue.
    """
    code = load_reference().country_code(text)
    if code is None:
        raise UnknownKeyError(
            "country",
            f"unknown country {text!r}; use an ISO 3166-1 alpha-3 code or UN name, "
            "e.g. KAZ or Kazakhstan",
        )
    return code


def resolve_programme(text: str) -> str:
    """The code of a programme given by code, name or alias.

    :raises UnknownKeyError: naming ``programme`` when it is not in the catalogue.
    """
    code = load_reference().programme_code(text)
    if code is None:
        raise UnknownKeyError(
            "programme",
            f"unknown programme {text!r}; use a code from events/reference/programmes.json, "
            "e.g. GLOBAL_CYBER",
        )
    return code


def _check_year(year: int | None) -> int | None:
    if year is not None and not FIRST_YEAR <= year <= LAST_YEAR:
        raise BadParameterError("year", f"{year} is out of range; give {FIRST_YEAR}..{LAST_YEAR}")
    return year


def _check_metric(metric: str) -> str:
    if metric != ACTIVITY_COUNT and metric not in load_reference().metrics:
        raise UnknownKeyError(
            "metric",
            f"unknown metric {metric!r}; use a name from events/reference/metrics.json "
            "(e.g. people_trained), or * for the number of activities",
        )
    return metric


def _check_choice(parameter: str, value: str | None, known: Any) -> str | None:
    if value is not None and value not in known:
        raise UnknownKeyError(parameter, f"unknown {parameter} {value!r}; one of {sorted(known)}")
    return value


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadParameterError(
            "limit", f"{limit} is out of range; give 1..{MAX_LIMIT} and page with the cursor"
        )
    return limit


# -- snapshot and as_of ------------------------------------------------------------------------


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so that every statement of a query sees the same commit."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def as_of(conn: sqlite3.Connection) -> AsOf:
    """The checkpoint of the projection: its last applied sequence and that event's time."""
    row = conn.execute(
        "SELECT sequence, stream_time_ns FROM checkpoint WHERE projection = ?", (PROJECTION,)
    ).fetchone()
    if row is None:
        return AsOf(0, None)
    sequence, time_ns = row
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    time = dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(microseconds=nanos // 1000)
    return AsOf(sequence, time)


# -- rollups -----------------------------------------------------------------------------------


def _name(column: str, code: Any) -> str:
    ref = load_reference()
    if column == "country":
        return ref.country_name(code)
    if column == "programme":
        entry = ref.programmes.get(code)
        return entry.name if entry else code
    return ""


def _cells(
    conn: sqlite3.Connection, table: str, where: dict[str, Any], group: str | None
) -> list[Cell]:
    """The rows of a rollup matching ``where``, one :class:`Cell` per value of ``group``."""
    clauses = " AND ".join(f"{column} = ?" for column in where) or "1"
    key = group or "NULL"
    rows = conn.execute(
        f"SELECT {key}, metric, total, activities, multi_country FROM {table} "
        f"WHERE {clauses} ORDER BY {key}, metric",
        list(where.values()),
    )
    rules = metric_rules()
    pivot: dict[Any, dict[str, Any]] = {}
    for value, metric, total, activities, multi_country in rows:
        cell = pivot.setdefault(
            value, {"activities": 0, "multi_country": 0, "totals": {}, "reported": {}}
        )
        if metric == ACTIVITY_COUNT:
            cell["activities"], cell["multi_country"] = activities, multi_country
        elif not activities:
            continue  # a metric that only listed activities carry is no figure of this row
        elif (rule := rules.get(metric)) is not None and rule.aggregate != "sum":
            cell["reported"][metric] = Reported(
                rule=rule.aggregate, unit=rule.unit, activities=activities
            )
        else:
            cell["totals"][metric] = total
    cells = []
    for value, cell in pivot.items():
        keyed = {group: value, "name": _name(group, value)} if group else {}
        cells.append(Cell(**keyed, **cell))
    return cells


def _one(cells: list[Cell]) -> Cell:
    return cells[0] if cells else Cell()


def _split(conn: sqlite3.Connection, where: dict[str, Any], group: str) -> list[Cell]:
    """A breakdown that no rollup holds, summed from the activities' rows per country.

    Country x programme x year is not a table (it would multiply the rebuild's writes, ~30k
    more rows for every batch at 200k events), so a summary narrowed to a year sums each
    country's part of the figures, which the applier stores with the activity's country row
    in ``activity_countries`` as the rollups count it: one index range, no ``activities``
    probes, and the same figures as the rollups to the millionth.
    """
    clauses = " AND ".join([*(f"{column} = ?" for column in where), "status = 'active'"])
    rows = conn.execute(
        f"SELECT {group}, multi_country, figures FROM activity_countries WHERE {clauses}",
        list(where.values()),
    )
    counts: dict[Any, list[int]] = {}
    sums: dict[Any, dict[str, int]] = {}
    reporting: dict[Any, dict[str, int]] = {}
    unsummed = _unsummed()
    for value, multi_country, figures in rows:
        count = counts.get(value)
        if count is None:
            count = counts[value] = [0, 0]
            sums[value] = {}
        if multi_country:
            # Listed only: it adds to no total of the row, so neither do its metrics.
            count[1] += 1
            continue
        count[0] += 1
        slot = sums[value]
        for metric, micros in _figures.decode(figures).items():
            if metric in unsummed:
                seen = reporting.setdefault(value, {})
                seen[metric] = seen.get(metric, 0) + 1
            else:
                slot[metric] = slot.get(metric, 0) + micros
    rules = metric_rules()
    return [
        Cell(
            **{group: value},
            name=_name(group, value),
            activities=counts[value][0],
            multi_country=counts[value][1],
            totals={metric: micros / MICROS for metric, micros in sorted(sums[value].items())},
            reported={
                metric: Reported(
                    rule=rules[metric].aggregate, unit=rules[metric].unit, activities=n
                )
                for metric, n in sorted(reporting.get(value, {}).items())
            },
        )
        for value in sorted(counts)
    ]


def _unsummed() -> frozenset[str]:
    """The metrics whose figures do not add up (a name the catalogue lacks is summed)."""
    return frozenset(name for name, rule in metric_rules().items() if rule.aggregate != "sum")


def _listed(
    conn: sqlite3.Connection, table: str, where: dict[str, Any], *, count: bool = True
) -> tuple[int, list[ActivityRef]]:
    """The multi-country activities (without shares) listed under a key: how many, and the
    first :data:`MULTI_COUNTRY_LISTED` of them by activity id.

    :param table: ``activity_countries`` for a country (its range of that table, then one
        ``activities`` probe per activity named), else ``activities`` (whose partial indexes
        hold just these activities, by programme and by year).
    """
    clauses = " AND ".join(
        ["k.status = 'active'", "k.multi_country = 1", *(f"k.{c} = ?" for c in where)]
    )
    params = list(where.values())
    total = (
        conn.execute(f"SELECT count(*) FROM {table} k WHERE {clauses}", params).fetchone()[0]
        if count
        else 0
    )
    # CROSS JOIN keeps SQLite from starting at `activities`: the key's range comes first,
    # and only the activities named are probed.
    rows = conn.execute(
        f"SELECT a.activity_id, a.title, a.programme, a.year, a.countries FROM {table} k "
        f"CROSS JOIN activities a ON a.activity_id = k.activity_id "
        f"WHERE {clauses} ORDER BY k.activity_id LIMIT ?",
        [*params, MULTI_COUNTRY_LISTED],
    )
    refs = [
        ActivityRef(
            activity_id=activity_id,
            title=title,
            programme=programme,
            year=year,
            countries=[place.country for place in _places.decode(countries)],
        )
        for activity_id, title, programme, year, countries in rows
    ]
    return total, refs


def _summary(conn: sqlite3.Connection, head: Cell, where: dict[str, Any], **fields: Any) -> Summary:
    """The answer for ``head``'s key ``where``, with the figures of its metrics that are not
    summed listed from the ``reported`` table."""
    reported = {
        metric: _largest(conn, metric, entry, where) for metric, entry in head.reported.items()
    }
    rules = metric_rules()
    metrics = sorted({*head.totals, *reported})
    return Summary(
        activities=head.activities,
        totals=head.totals,
        reported=reported,
        rules={m: reported[m].rule if m in reported else "sum" for m in metrics},
        units={m: rules[m].unit if m in rules else "" for m in metrics},
        **fields,
    )


def _largest(
    conn: sqlite3.Connection, metric: str, entry: Reported, where: dict[str, Any]
) -> Reported:
    """``entry`` with the largest figures of ``metric`` under the key ``where`` (the whole
    activity's figure, or a country's when the key has one), one per activity."""
    keys = {"country": ""} | where
    clauses = " AND ".join(f"{column} = ?" for column in keys)
    rows = conn.execute(
        f"SELECT activity_id, micros FROM reported WHERE metric = ? AND {clauses} "
        "ORDER BY micros DESC, activity_id LIMIT ?",
        [metric, *keys.values(), REPORTED_LISTED],
    ).fetchall()
    figures = [ReportedFigure(activity_id=a, value=micros / MICROS) for a, micros in rows]
    if entry.rule == "max" and figures:
        top = figures[0]
        return msgspec.structs.replace(
            entry, value=top.value, activity_id=top.activity_id, figures=figures
        )
    return msgspec.structs.replace(entry, figures=figures)


def country_summary(conn: sqlite3.Connection, country: str, year: int | None = None) -> Summary:
    """Totals of one country, its multi-country activities, and a breakdown by year and programme.

    :param country: an ISO 3166-1 alpha-3 code or UN name.
    :param year: narrow every figure to this year.
    :raises UnknownKeyError: for an unknown country.
    :raises BadParameterError: for a year out of range.
    """
    code, year = resolve_country(country), _check_year(year)
    with _snapshot(conn):
        if year is None:
            head = _one(_cells(conn, "by_country", {"country": code}, None))
            by_year = _cells(conn, "country_year", {"country": code}, "year")
            by_programme = _cells(conn, "country_programme", {"country": code}, "programme")
        else:
            by_year = _cells(conn, "country_year", {"country": code, "year": year}, "year")
            head = _one(by_year)
            by_programme = _split(conn, {"country": code, "year": year}, "programme")
        where = {"country": code} | ({"year": year} if year is not None else {})
        _, listed = _listed(conn, "activity_countries", where, count=False)
        return _summary(
            conn,
            head,
            where,
            as_of=as_of(conn),
            country=code,
            year=year,
            name=_name("country", code),
            # The country's rollup row already counts them: no scan of its activities.
            multi_country_count=head.multi_country,
            multi_country=listed,
            note=_COUNTRY_NOTE,
            by_year=by_year,
            by_programme=by_programme,
        )


def programme_summary(conn: sqlite3.Connection, programme: str, year: int | None = None) -> Summary:
    """Totals of one programme, its multi-country activities, and a breakdown by year and country.

    :param programme: a programme code, name or alias.
    :param year: narrow every figure to this year.
    :raises UnknownKeyError: for an unknown programme.
    :raises BadParameterError: for a year out of range.
    """
    code, year = resolve_programme(programme), _check_year(year)
    with _snapshot(conn):
        if year is None:
            head = _one(_cells(conn, "by_programme", {"programme": code}, None))
            by_year = _cells(conn, "programme_year", {"programme": code}, "year")
            by_country = _cells(conn, "country_programme", {"programme": code}, "country")
        else:
            by_year = _cells(conn, "programme_year", {"programme": code, "year": year}, "year")
            head = _one(by_year)
            by_country = _split(conn, {"programme": code, "year": year}, "country")
        where = {"programme": code} | ({"year": year} if year is not None else {})
        count, listed = _listed(conn, "activities", where)
        return _summary(
            conn,
            head,
            where,
            as_of=as_of(conn),
            programme=code,
            year=year,
            name=_name("programme", code),
            multi_country_count=count,
            multi_country=listed,
            note=_OTHER_NOTE,
            by_year=by_year,
            by_country=by_country,
        )


def year_summary(conn: sqlite3.Connection, year: int) -> Summary:
    """Totals of one year, its multi-country activities, and a breakdown by country and programme.

    :raises BadParameterError: for a year out of range.
    """
    _check_year(year)
    with _snapshot(conn):
        head = _one(_cells(conn, "by_year", {"year": year}, None))
        count, listed = _listed(conn, "activities", {"year": year})
        return _summary(
            conn,
            head,
            {"year": year},
            as_of=as_of(conn),
            year=year,
            multi_country_count=count,
            multi_country=listed,
            note=_OTHER_NOTE,
            by_country=_cells(conn, "country_year", {"year": year}, "country"),
            by_programme=_cells(conn, "programme_year", {"year": year}, "programme"),
        )


def global_summary(conn: sqlite3.Connection) -> Summary:
    """The totals of the whole ledger, and its multi-country activities."""
    with _snapshot(conn):
        head = _one(_cells(conn, "totals", {}, None))
        count, listed = _listed(conn, "activities", {})
        return _summary(
            conn,
            head,
            {},
            as_of=as_of(conn),
            name="All activities",
            multi_country_count=count,
            multi_country=listed,
            note=_OTHER_NOTE,
        )


def list_countries(conn: sqlite3.Connection, year: int | None = None) -> CellList:
    """Every country with activities, and its figures; ``year`` narrows them."""
    year = _check_year(year)
    with _snapshot(conn):
        if year is None:
            items = _cells(conn, "by_country", {}, "country")
        else:
            items = _cells(conn, "country_year", {"year": year}, "country")
        return CellList(as_of=as_of(conn), year=year, items=items)


def list_programmes(conn: sqlite3.Connection, year: int | None = None) -> CellList:
    """Every programme with activities, and its figures; ``year`` narrows them."""
    year = _check_year(year)
    with _snapshot(conn):
        if year is None:
            items = _cells(conn, "by_programme", {}, "programme")
        else:
            items = _cells(conn, "programme_year", {"year": year}, "programme")
        return CellList(as_of=as_of(conn), year=year, items=items)


def list_years(conn: sqlite3.Connection) -> CellList:
    """Every year with activities, and its figures."""
    with _snapshot(conn):
        return CellList(as_of=as_of(conn), items=_cells(conn, "by_year", {}, "year"))


# -- activities --------------------------------------------------------------------------------


def _match(q: str) -> str:
    """An FTS5 query that finds every word of ``q``, each quoted, so no input is a syntax error."""
    words = q.split()
    if not words:
        raise BadParameterError("q", "is empty; give one or more words to search for")
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def list_activities(
    conn: sqlite3.Connection,
    *,
    country: str | None = None,
    programme: str | None = None,
    year: int | None = None,
    kind: str | None = None,
    office: str | None = None,
    status: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ActivityPage:
    """One page of activities that match every filter given, by activity id.

    :param country: listed under this country (counted or multi-country).
    :param q: words that must all appear in the title or summary (full text, any case).
    :param cursor: ``next_cursor`` of the previous page, with the same filters.
    :param limit: the page size, 1..:data:`MAX_LIMIT`.
    :raises QueryError: naming the parameter that is unknown, malformed or out of range.
    """
    ref = load_reference()
    filters: dict[str, Any] = {
        "country": resolve_country(country) if country is not None else None,
        "programme": resolve_programme(programme) if programme is not None else None,
        "year": _check_year(year),
        "kind": _check_choice("kind", kind, ref.kinds),
        "office": _check_choice("office", office, ref.offices),
        "status": _check_choice("status", status, STATUSES),
        "q": _match(q) if q is not None else None,
    }
    limit = _check_limit(limit)
    after = decode_cursor(cursor, filters) if cursor is not None else None
    # With a country, its range of activity_countries (which carries every filter column but
    # the text) comes first, and `activities` is probed only for the page's rows.
    keyed = filters["country"] is not None
    source = (
        "activity_countries k CROSS JOIN activities a ON a.activity_id = k.activity_id"
        if keyed
        else "activities a"
    )
    table = "k" if keyed else "a"
    clauses, params = [], []
    for column in ("country", "programme", "year", "kind", "office", "status"):
        if filters[column] is not None:
            clauses.append(f"{table}.{column} = ?")
            params.append(filters[column])
    if filters["q"] is not None:
        clauses.append("a.rowid IN (SELECT rowid FROM activities_fts WHERE activities_fts MATCH ?)")
        params.append(filters["q"])
    if after is not None:
        clauses.append(f"{table}.activity_id > ?")
        params.append(after)
    where = " AND ".join(clauses) or "1"
    with _snapshot(conn):
        rows = conn.execute(
            "SELECT a.activity_id, a.office, a.programme, a.kind, a.title, a.year, a.countries, "
            "a.metrics, a.status, a.multi_country, a.version, a.last_sequence "
            f"FROM {source} WHERE {where} ORDER BY {table}.activity_id LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        items = [
            ActivityItem(
                activity_id=row[0],
                office=row[1],
                programme=row[2],
                kind=row[3],
                title=row[4],
                year=row[5],
                countries=_places.decode(row[6]),
                metrics=_metrics.decode(row[7]),
                status=row[8],
                multi_country=bool(row[9]),
                version=row[10],
                last_sequence=row[11],
            )
            for row in rows[:limit]
        ]
        more = len(rows) > limit
        return ActivityPage(
            as_of=as_of(conn),
            items=items,
            limit=limit,
            next_cursor=encode_cursor(items[-1].activity_id, filters) if more else None,
        )


def get_activity(conn: sqlite3.Connection, activity_id: str) -> ActivityDetail:
    """The current state of one activity.

    :raises UnknownKeyError: naming ``activity_id`` when the projection has no such activity.
    """
    with _snapshot(conn):
        row = conn.execute(
            "SELECT activity_id, office, programme, kind, title, summary, year, start_date, "
            "end_date, countries, metrics, multi_country, partners, sources, part_of, notes, "
            "status, version, last_sequence, last_event_id, event_ids, state "
            "FROM activities WHERE activity_id = ?",
            (activity_id,),
        ).fetchone()
        if row is None:
            raise UnknownKeyError(
                "activity_id",
                f"no activity {activity_id!r} in the ledger; list them with /v1/activities "
                "or `ledger activities`",
            )
        return ActivityDetail(
            as_of=as_of(conn),
            activity_id=row[0],
            office=row[1],
            programme=row[2],
            kind=row[3],
            title=row[4],
            summary=row[5],
            year=row[6],
            start_date=dt.date.fromisoformat(row[7]) if row[7] else None,
            end_date=dt.date.fromisoformat(row[8]) if row[8] else None,
            countries=_places.decode(row[9]),
            metrics=_metrics.decode(row[10]),
            multi_country=bool(row[11]),
            partners=_strings.decode(row[12]),
            sources=_sources.decode(row[13]),
            part_of=row[14],
            parts=[
                part
                for (part,) in conn.execute(
                    "SELECT activity_id FROM activities WHERE part_of = ? ORDER BY activity_id",
                    (activity_id,),
                )
            ],
            notes=row[15],
            status=row[16],
            withdraw_reason=decode_state(row[21]).withdraw_reason,
            version=row[17],
            last_sequence=row[18],
            last_event_id=row[19],
            event_ids=_ids.decode(row[20]),
        )


# -- provenance and status ---------------------------------------------------------------------

_TABLES = {
    frozenset(): "totals",
    frozenset({"country"}): "by_country",
    frozenset({"programme"}): "by_programme",
    frozenset({"year"}): "by_year",
    frozenset({"country", "year"}): "country_year",
    frozenset({"programme", "year"}): "programme_year",
    frozenset({"country", "programme"}): "country_programme",
}
_KEY_ORDER = {"country": 0, "programme": 1, "year": 2}


def provenance(
    conn: sqlite3.Connection,
    *,
    country: str | None = None,
    programme: str | None = None,
    year: int | None = None,
    metric: str,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Provenance:
    """The activities and event ids that make up one figure, a page at a time by activity id.

    The values of every page's items sum to ``total``. Give any of country, programme and year
    but not all three (no rollup keeps that figure); none gives the global total.

    :param metric: a catalogue metric, or ``*`` for the number of activities.
    :param cursor: ``next_cursor`` of the previous page, with the same parameters.
    :param limit: the page size, 1..:data:`MAX_LIMIT`.
    :raises QueryError: naming the unknown or malformed parameter.
    """
    key: dict[str, Any] = {}
    if country is not None:
        key["country"] = resolve_country(country)
    if programme is not None:
        key["programme"] = resolve_programme(programme)
    if year is not None:
        key["year"] = _check_year(year)
    metric = _check_metric(metric)
    # A figure in another unit is counted under its metric's name (events/metrics.py).
    rule = rule_of(metric) if metric != ACTIVITY_COUNT else None
    if rule is not None:
        metric = rule.canonical
    table = _TABLES.get(frozenset(key))
    if table is None:
        raise BadParameterError(
            "year", "country, programme and year together are no figure the ledger keeps; drop one"
        )
    limit = _check_limit(limit)
    # The list's name is in the fingerprint, so that no activity list's cursor fits here.
    filters = {"list": "provenance", **key, "metric": metric}
    after = decode_cursor(cursor, filters) if cursor is not None else None
    columns = sorted(key, key=_KEY_ORDER.__getitem__)
    with _snapshot(conn):
        found = contributions(
            conn, table, tuple(key[c] for c in columns), metric, after=after, limit=limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        titles = _titles(conn, [item.activity_id for item in found])
        clauses = " AND ".join([*(f"{c} = ?" for c in columns), "metric = ?"])
        row = conn.execute(
            f"SELECT total, activities FROM {table} WHERE {clauses}",
            [*(key[c] for c in columns), metric],
        ).fetchone()
        total, counted = row if row else (0.0, 0)
        aggregate = rule.aggregate if rule is not None else "sum"
        own: dict[str, float] = {}
        largest: str | None = None
        if aggregate != "sum":
            own = _own_figures(conn, metric, key.get("country", ""), [i.activity_id for i in found])
            head = _largest(conn, metric, Reported(rule=aggregate, unit="", activities=0), key)
            total = head.value
            largest = head.activity_id
        return Provenance(
            as_of=as_of(conn),
            **key,
            metric=metric,
            rule=aggregate,
            total=total,
            largest=largest,
            activities=counted,
            items=[
                ProvenanceItem(
                    activity_id=item.activity_id,
                    title=titles.get(item.activity_id, ""),
                    value=item.value,
                    counted=item.counted,
                    multi_country=item.multi_country,
                    event_ids=item.event_ids,
                    last_event_id=item.last_event_id,
                    figure=own.get(item.activity_id),
                )
                for item in found
            ],
            limit=limit,
            next_cursor=encode_cursor(found[-1].activity_id, filters) if more else None,
        )


def _own_figures(
    conn: sqlite3.Connection, metric: str, country: str, ids: list[str]
) -> dict[str, float]:
    """The activities' own figures of a metric that is not summed, by activity id."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT activity_id, micros FROM reported WHERE metric = ? AND country = ? "
        f"AND activity_id IN ({marks})",
        [metric, country, *ids],
    )
    return {activity_id: micros / MICROS for activity_id, micros in rows}


def _titles(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        titles.update(
            conn.execute(
                f"SELECT activity_id, title FROM activities WHERE activity_id IN ({marks})", chunk
            ).fetchall()
        )
    return titles


def current_sequence(conn: sqlite3.Connection) -> int:
    """The projection's checkpoint alone: what a reader waiting for its own write polls."""
    return as_of(conn).sequence


def status(conn: sqlite3.Connection, stream_last_sequence: int | None = None) -> Status:
    """Each projection's checkpoint, its lag behind the stream, and its quarantine count.

    :param stream_last_sequence: the stream's last sequence, when the caller could ask it.
    """
    with _snapshot(conn):
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        checkpoints = conn.execute(
            "SELECT projection, sequence FROM checkpoint ORDER BY projection"
        ).fetchall() or [(PROJECTION, 0)]
        return Status(
            as_of=as_of(conn),
            stream_last_sequence=stream_last_sequence,
            projections=[
                ProjectionStatus(
                    projection=name,
                    checkpoint=sequence,
                    lag=None
                    if stream_last_sequence is None
                    else max(stream_last_sequence - sequence, 0),
                    quarantined=quarantined,
                )
                for name, sequence in checkpoints
            ],
        )
