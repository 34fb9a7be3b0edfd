"""The read-only queries every interface calls: HTTP, the CLI, NATS request-reply, dashboards.

Each function takes a read-only connection (:func:`projections.db.open_reader`), reads inside
one read transaction, so that its figures and its ``as_of`` come from one snapshot even while
the projector commits, and returns a Struct of :mod:`projections.answers`. Nothing here writes.

Countries accept an ISO 3166-1 alpha-3 code or a UN name, programmes a code, name or alias
(:mod:`events.reference`). A wrong parameter raises a :class:`~projections.errors.QueryError`
that names it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from events.activity import STATUSES
from events.metrics import metric_rules, rule_of, unsummed_metrics
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
    Release,
    ReleaseList,
    Reported,
    ReportedFigure,
    SourceRef,
    Status,
    Summary,
    Timeline,
)
from projections.errors import BadParameterError, UnknownKeyError
from projections.fold import ACTIVITY_COUNT, MICROS, add_share, documents_of, is_listed_only
from projections.marks import sums_at
from projections.paging import decode_cursor, encode_cursor
from projections.provenance import Contribution, contributions
from projections.schema import OPEN, PROJECTION
from projections.temporal import (
    Scope,
    View,
    as_of_answer,
    documents_filter,
    instant_of,
    resolve,
    state_at,
    time_of,
    valid,
)

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MULTI_COUNTRY_LISTED",
    "REPORTED_LISTED",
    "as_of",
    "country_summary",
    "current_sequence",
    "get_activity",
    "get_release",
    "global_summary",
    "list_activities",
    "list_countries",
    "list_documents",
    "list_programmes",
    "list_releases",
    "list_years",
    "programme_summary",
    "provenance",
    "resolve_country",
    "resolve_programme",
    "snapshot",
    "status",
    "timeline",
    "view_of",
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

_json = msgspec.json.Encoder()
_places = msgspec.json.Decoder(list[Place])
_metrics = msgspec.json.Decoder(dict[str, float])
_ids = msgspec.json.Decoder(list[str])
_strings = msgspec.json.Decoder(list[str])
_country_figures = msgspec.json.Decoder(dict[str, int])
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
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so that every statement of a query sees the same commit; a query
    inside it (several answers read together) joins it."""
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
    return as_of_answer(conn)


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


def _figures(
    conn: sqlite3.Connection, view: View, where: dict[str, Any], group: str | None
) -> list[Cell]:
    """The cells of ``where`` by ``group`` in the view: from the rollup that holds them when
    there is one for the view, else summed from the footprints valid in it."""
    keys = frozenset(where) | ({group} if group else frozenset())
    if view.rollups:
        table = _TABLES.get(keys)
        if table is not None:
            return _cells(conn, table, where, group)
        if group is not None:
            return _split(conn, where, group)
    elif view.sequence is None and keys <= {"country"}:
        table = "document_country" if keys else "by_document"
        return _cells(conn, table, {"document": view.document} | where, group)
    return _footprint_cells(conn, view, where, group)


def _footprint_clauses(
    view: View, where: dict[str, Any], group: str | None
) -> tuple[list[str], list[Any]]:
    """The conditions on ``footprints`` for the rows of ``where`` valid in the view."""
    if "country" in where:
        clauses, params = ["country = ?"], [where["country"]]
    elif group == "country":
        clauses, params = ["country > ''"], []
    else:
        clauses, params = ["country = ''"], []
    for column in ("programme", "year"):
        if column in where:
            clauses.append(f"{column} = ?")
            params.append(where[column])
    condition, more = valid(view)
    clauses.append(condition)
    params += more
    document, more = documents_filter(view, "activity_id")
    if document:
        clauses.append(document)
        params += more
    return clauses, params


def _footprint_cells(
    conn: sqlite3.Connection, view: View, where: dict[str, Any], group: str | None
) -> list[Cell]:
    """What :func:`_cells` reads from a rollup, summed from the footprints valid in the view:
    the same rules, as the rows are what the fold made of each version."""
    by_place = "country" in where or group == "country"
    rules = metric_rules()
    pivot: dict[Any, dict[str, Any]] = {}
    for (value, metric), (micros, counted, listed) in _footprint_sums(
        conn, view, where, group
    ).items():
        cell = pivot.setdefault(
            value, {"activities": 0, "multi_country": 0, "totals": {}, "reported": {}}
        )
        if metric == ACTIVITY_COUNT:
            cell["activities"] = counted
            # The whole activity's rows flag multi-country ones, which count in full there.
            cell["multi_country"] = listed if by_place else 0
        elif not counted:
            continue
        elif (rule := rules.get(metric)) is not None and rule.aggregate != "sum":
            cell["reported"][metric] = Reported(
                rule=rule.aggregate, unit=rule.unit, activities=counted
            )
        else:
            cell["totals"][metric] = micros / MICROS
    cells = []
    for value, cell in sorted(pivot.items(), key=_by_value):
        if not cell["activities"] and not cell["multi_country"]:
            continue
        keyed = {group: value, "name": _name(group, value)} if group else {}
        cells.append(Cell(**keyed, **cell))
    return cells


_FINE = ("year", "programme")
"""The columns a scan of footprints groups by, so that one scan gives a summary's head and
both its breakdowns."""


def _footprint_sums(
    conn: sqlite3.Connection, view: View, where: dict[str, Any], group: str | None
) -> dict[tuple[Any, str], list[int]]:
    """``[micros, counted, listed]`` by (value of ``group``, metric), for a summary's head
    and both breakdowns at once.

    A place's own summary as of k (a country's, or the whole's) starts from the mark before
    k (projections/marks.py). Any other is summed in SQL at the grain of year and programme
    (and country, when grouped by it) from the footprints valid in the view, then in Python.
    """
    fine = ("country", *_FINE) if group == "country" else _FINE
    key = (group == "country", tuple(sorted(where.items())))
    derived = view.sums.get(key)
    own = view.document is None and group != "country" and where.keys() <= {"country"}
    if derived is None and own and view.sequence is not None:
        derived = view.sums[key] = sums_at(conn, where.get("country", ""), view.sequence)
    if derived is None:
        clauses, params = _footprint_clauses(view, where, group)
        columns = ", ".join(fine)
        rows = conn.execute(
            f"SELECT {columns}, metric, sum(micros), sum(counted), sum(listed) FROM footprints "
            f"WHERE {' AND '.join(clauses)} GROUP BY {columns}, metric",
            params,
        )
        derived = view.sums[key] = {name: {} for name in (None, *fine)}
        width = len(fine)
        for row in rows:
            metric, figures = row[width], row[width + 1 :]
            for index, name in enumerate((None, *fine)):
                add_share(derived[name], (row[index - 1] if index else None, metric), figures)
    return derived[group]  # type: ignore[no-any-return]


def _by_value(item: tuple[Any, Any]) -> Any:
    return (item[0] is None, item[0])


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
    unsummed = unsummed_metrics()
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
        for metric, micros in _country_figures.decode(figures).items():
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


def _listed(
    conn: sqlite3.Connection, view: View, where: dict[str, Any], *, count: bool = True
) -> tuple[int, list[ActivityRef]]:
    """The multi-country activities (without shares) listed under a key in the view: how
    many, and the first :data:`MULTI_COUNTRY_LISTED` of them by activity id.

    In the present, all documents, a country's come from its range of ``activity_countries``
    (then one ``activities`` probe per activity named), others from ``activities`` (whose
    partial indexes hold just these activities, by programme and by year); otherwise from the
    footprints valid in the view.
    """
    if not view.rollups:
        clauses, params = _footprint_clauses(view, where, None)
        clauses += ["metric = '*'", "listed = 1"]
        condition = " AND ".join(clauses)
        total = (
            conn.execute(f"SELECT count(*) FROM footprints WHERE {condition}", params).fetchone()[0]
            if count
            else 0
        )
        # A place's own list reads its listed rows in id order and stops at the last one
        # shown; left to itself, SQLite would sort the place's every valid row first.
        hint = "INDEXED BY footprints_listed " if where.keys() <= {"country"} else ""
        ids = [
            activity_id
            for (activity_id,) in conn.execute(
                f"SELECT activity_id FROM footprints {hint}WHERE {condition} "
                "ORDER BY activity_id LIMIT ?",
                [*params, MULTI_COUNTRY_LISTED],
            )
        ]
        refs = []
        for activity_id in ids:
            found = state_at(conn, activity_id, view.sequence)
            if found is not None:
                activity = found[0].activity
                refs.append(
                    ActivityRef(
                        activity_id=activity_id,
                        title=activity.title,
                        programme=activity.programme,
                        year=activity.year,
                        countries=[place.country for place in activity.countries],
                    )
                )
        return total, refs
    table = "activity_countries" if "country" in where else "activities"
    keyed = " AND ".join(
        ["k.status = 'active'", "k.multi_country = 1", *(f"k.{c} = ?" for c in where)]
    )
    values = list(where.values())
    total = (
        conn.execute(f"SELECT count(*) FROM {table} k WHERE {keyed}", values).fetchone()[0]
        if count
        else 0
    )
    # CROSS JOIN keeps SQLite from starting at `activities`: the key's range comes first,
    # and only the activities named are probed.
    rows = conn.execute(
        f"SELECT a.activity_id, a.title, a.programme, a.year, a.countries FROM {table} k "
        f"CROSS JOIN activities a ON a.activity_id = k.activity_id "
        f"WHERE {keyed} ORDER BY k.activity_id LIMIT ?",
        [*values, MULTI_COUNTRY_LISTED],
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


def _summary(
    conn: sqlite3.Connection, view: View, head: Cell, where: dict[str, Any], **fields: Any
) -> Summary:
    """The answer for ``head``'s key ``where`` in the view, with the figures of its metrics
    that are not summed listed."""
    reported = {
        metric: _largest(conn, view, metric, entry, where)
        for metric, entry in head.reported.items()
    }
    rules = metric_rules()
    metrics = sorted({*head.totals, *reported})
    return Summary(
        as_of=view.as_of,
        activities=head.activities,
        totals=head.totals,
        reported=reported,
        rules={m: reported[m].rule if m in reported else "sum" for m in metrics},
        units={m: rules[m].unit if m in rules else "" for m in metrics},
        **fields,
    )


def _largest(
    conn: sqlite3.Connection, view: View, metric: str, entry: Reported, where: dict[str, Any]
) -> Reported:
    """``entry`` with the largest figures of ``metric`` under the key ``where`` in the view
    (the whole activity's figure, or a country's when the key has one), one per activity."""
    if view.rollups:
        keys = {"country": ""} | where
        clauses = " AND ".join(f"{column} = ?" for column in keys)
        rows = conn.execute(
            f"SELECT activity_id, micros FROM reported WHERE metric = ? AND {clauses} "
            "ORDER BY micros DESC, activity_id LIMIT ?",
            [metric, *keys.values(), REPORTED_LISTED],
        ).fetchall()
    else:
        conditions, params = _footprint_clauses(view, where, None)
        # A place's own: its figures of the metric, largest first, until enough are valid.
        hint = "INDEXED BY footprints_reported " if where.keys() <= {"country"} else ""
        rows = conn.execute(
            f"SELECT activity_id, micros FROM footprints {hint}WHERE {' AND '.join(conditions)} "
            "AND metric = ? AND summed = 0 AND counted = 1 ORDER BY micros DESC, activity_id "
            "LIMIT ?",
            [*params, metric, REPORTED_LISTED],
        ).fetchall()
    figures = [ReportedFigure(activity_id=a, value=micros / MICROS) for a, micros in rows]
    if entry.rule == "max" and figures:
        top = figures[0]
        return msgspec.structs.replace(
            entry, value=top.value, activity_id=top.activity_id, figures=figures
        )
    return msgspec.structs.replace(entry, figures=figures)


def country_summary(
    conn: sqlite3.Connection, country: str, year: int | None = None, *, scope: Scope | None = None
) -> Summary:
    """Totals of one country, its multi-country activities, and a breakdown by year and programme.

    :param country: an ISO 3166-1 alpha-3 code or UN name.
    :param year: narrow every figure to this year.
    :param scope: as of when, and which document; the present ledger by default.
    :raises UnknownKeyError: for an unknown country or document.
    :raises BadParameterError: for a year out of range, or a scope that cannot be.
    """
    code, year = resolve_country(country), _check_year(year)
    with snapshot(conn):
        view = resolve(conn, scope)
        where = {"country": code} | ({"year": year} if year is not None else {})
        if year is None:
            head = _one(_figures(conn, view, where, None))
        by_year = _figures(conn, view, where, "year")
        if year is not None:
            head = _one(by_year)
        by_programme = _figures(conn, view, where, "programme")
        _, listed = _listed(conn, view, where, count=False)
        return _summary(
            conn,
            view,
            head,
            where,
            country=code,
            year=year,
            name=_name("country", code),
            # The country's figures already count them: no scan of its activities.
            multi_country_count=head.multi_country,
            multi_country=listed,
            note=_COUNTRY_NOTE,
            by_year=by_year,
            by_programme=by_programme,
        )


def programme_summary(
    conn: sqlite3.Connection,
    programme: str,
    year: int | None = None,
    *,
    scope: Scope | None = None,
) -> Summary:
    """Totals of one programme, its multi-country activities, and a breakdown by year and country.

    :param programme: a programme code, name or alias.
    :param year: narrow every figure to this year.
    :param scope: as of when, and which document; the present ledger by default.
    :raises UnknownKeyError: for an unknown programme or document.
    :raises BadParameterError: for a year out of range, or a scope that cannot be.
    """
    code, year = resolve_programme(programme), _check_year(year)
    with snapshot(conn):
        view = resolve(conn, scope)
        where = {"programme": code} | ({"year": year} if year is not None else {})
        by_year = _figures(conn, view, where, "year")
        head = _one(by_year) if year is not None else _one(_figures(conn, view, where, None))
        count, listed = _listed(conn, view, where)
        return _summary(
            conn,
            view,
            head,
            where,
            programme=code,
            year=year,
            name=_name("programme", code),
            multi_country_count=count,
            multi_country=listed,
            note=_OTHER_NOTE,
            by_year=by_year,
            by_country=_figures(conn, view, where, "country"),
        )


def year_summary(conn: sqlite3.Connection, year: int, *, scope: Scope | None = None) -> Summary:
    """Totals of one year, its multi-country activities, and a breakdown by country and programme.

    :raises BadParameterError: for a year out of range, or a scope that cannot be.
    """
    _check_year(year)
    with snapshot(conn):
        view = resolve(conn, scope)
        where = {"year": year}
        head = _one(_figures(conn, view, where, None))
        count, listed = _listed(conn, view, where)
        return _summary(
            conn,
            view,
            head,
            where,
            year=year,
            multi_country_count=count,
            multi_country=listed,
            note=_OTHER_NOTE,
            by_country=_figures(conn, view, where, "country"),
            by_programme=_figures(conn, view, where, "programme"),
        )


def global_summary(conn: sqlite3.Connection, *, scope: Scope | None = None) -> Summary:
    """The totals of the whole ledger, and its multi-country activities."""
    with snapshot(conn):
        view = resolve(conn, scope)
        head = _one(_figures(conn, view, {}, None))
        count, listed = _listed(conn, view, {})
        return _summary(
            conn,
            view,
            head,
            {},
            name=view.document or "All activities",
            multi_country_count=count,
            multi_country=listed,
            note=_OTHER_NOTE,
        )


def list_countries(
    conn: sqlite3.Connection, year: int | None = None, *, scope: Scope | None = None
) -> CellList:
    """Every country with activities, and its figures; ``year`` narrows them."""
    year = _check_year(year)
    with snapshot(conn):
        view = resolve(conn, scope)
        where = {"year": year} if year is not None else {}
        return CellList(as_of=view.as_of, year=year, items=_figures(conn, view, where, "country"))


def list_programmes(
    conn: sqlite3.Connection, year: int | None = None, *, scope: Scope | None = None
) -> CellList:
    """Every programme with activities, and its figures; ``year`` narrows them."""
    year = _check_year(year)
    with snapshot(conn):
        view = resolve(conn, scope)
        where = {"year": year} if year is not None else {}
        items = _figures(conn, view, where, "programme")
        return CellList(as_of=view.as_of, year=year, items=items)


def list_years(conn: sqlite3.Connection, *, scope: Scope | None = None) -> CellList:
    """Every year with activities, and its figures."""
    with snapshot(conn):
        view = resolve(conn, scope)
        return CellList(as_of=view.as_of, items=_figures(conn, view, {}, "year"))


def list_documents(conn: sqlite3.Connection, *, scope: Scope | None = None) -> CellList:
    """Every document that reports activities, with how many it reports and their figures.

    An activity cited by two documents counts in each; narrowing the scope to a document
    gives just that one.
    """
    with snapshot(conn):
        view = resolve(conn, scope)
        if view.sequence is None:
            where = {"document": view.document} if view.document else {}
            cells = _cells(conn, "by_document", where, "document")
        else:
            cells = _footprint_documents(conn, view)
        return CellList(as_of=view.as_of, items=cells)


def _footprint_documents(conn: sqlite3.Connection, view: View) -> list[Cell]:
    """The documents' cells as of a past sequence, each summed from its activities' whole
    footprints then (the activities a set to probe, one document at a time)."""
    condition, params = valid(view)
    documents = (
        [view.document]
        if view.document is not None
        else [
            document
            for (document,) in conn.execute(
                f"SELECT DISTINCT document FROM activity_documents WHERE {condition} "
                "ORDER BY document",
                params,
            )
        ]
    )
    cells = []
    for document in documents:
        narrowed = View(view.sequence, document, view.as_of, {})
        head = _one(_footprint_cells(conn, narrowed, {}, None))
        if head.activities:
            cells.append(msgspec.structs.replace(head, document=document))
    return cells


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
    scope: Scope | None = None,
) -> ActivityPage:
    """One page of activities that match every filter given, by activity id.

    :param country: listed under this country (counted or multi-country).
    :param q: words that must all appear in the title or summary (full text, any case); as
        of a past sequence, in the activity's present title or summary.
    :param cursor: ``next_cursor`` of the previous page, with the same filters.
    :param limit: the page size, 1..:data:`MAX_LIMIT`.
    :param scope: as of when, and which document's activities; the present by default. As of
        a past sequence, each activity is shown as it was then.
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
    # The scope is in the cursor's fingerprint: a page of the present does not continue a
    # past list, nor one document's another's.
    asked = {} if scope is None or scope.is_now else {"scope": msgspec.json.encode(scope).decode()}
    after = decode_cursor(cursor, filters | asked) if cursor is not None else None
    with snapshot(conn):
        view = resolve(conn, scope)
        if view.sequence is None:
            items, more = _present_page(conn, view, filters, after, limit)
        else:
            items, more = _past_page(conn, view, filters, after, limit)
        return ActivityPage(
            as_of=view.as_of,
            items=items,
            limit=limit,
            next_cursor=encode_cursor(items[-1].activity_id, filters | asked) if more else None,
        )


def _conditions(
    table: str, view: View, filters: dict[str, Any], after: str | None
) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of an activity list on the rows of ``table`` (an alias)."""
    clauses, params = [], []
    for column in ("country", "programme", "year", "kind", "office", "status"):
        if filters[column] is not None:
            clauses.append(f"{table}.{column} = ?")
            params.append(filters[column])
    if filters["q"] is not None:
        clauses.append(
            f"{table}.activity_id IN (SELECT activity_id FROM activities WHERE rowid IN "
            "(SELECT rowid FROM activities_fts WHERE activities_fts MATCH ?))"
            if view.sequence is not None
            else "a.rowid IN (SELECT rowid FROM activities_fts WHERE activities_fts MATCH ?)"
        )
        params.append(filters["q"])
    document, more = documents_filter(view, f"{table}.activity_id")
    if document:
        clauses.append(document)
        params += more
    if after is not None:
        clauses.append(f"{table}.activity_id > ?")
        params.append(after)
    return clauses, params


def _present_page(
    conn: sqlite3.Connection,
    view: View,
    filters: dict[str, Any],
    after: str | None,
    limit: int,
) -> tuple[list[ActivityItem], bool]:
    # With a country, its range of activity_countries (which carries every filter column but
    # the text) comes first, and `activities` is probed only for the page's rows.
    keyed = filters["country"] is not None
    source = (
        "activity_countries k CROSS JOIN activities a ON a.activity_id = k.activity_id"
        if keyed
        else "activities a"
    )
    table = "k" if keyed else "a"
    clauses, params = _conditions(table, view, filters, after)
    where = " AND ".join(clauses) or "1"
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
    return items, len(rows) > limit


_WHOLE_COLUMNS = "activity_id, office, programme, kind, year, status"


def _past_page(
    conn: sqlite3.Connection,
    view: View,
    filters: dict[str, Any],
    after: str | None,
    limit: int,
) -> tuple[list[ActivityItem], bool]:
    """A page of the activities as they were at the view's sequence: the current versions
    made by then, and the replaced versions that spanned it."""
    k = view.sequence
    if filters["country"] is not None:
        columns = f"country, {_WHOLE_COLUMNS}"
        source = (
            f"(SELECT {columns} FROM activity_countries WHERE country = ? AND since <= ? "
            f"UNION ALL SELECT {columns} FROM activity_countries_past WHERE country = ? "
            "AND since <= ? AND until > ?) v"
        )
        head = [filters["country"], k, filters["country"], k, k]
    else:
        source = (
            f"(SELECT {_WHOLE_COLUMNS} FROM activities WHERE last_sequence <= ? "
            f"UNION ALL SELECT {_WHOLE_COLUMNS} FROM activities_past WHERE since <= ? "
            "AND until > ?) v"
        )
        head = [k, k, k]
    clauses, params = _conditions("v", view, filters, after)
    where = " AND ".join(clauses) or "1"
    ids = [
        activity_id
        for (activity_id,) in conn.execute(
            f"SELECT v.activity_id FROM {source} WHERE {where} ORDER BY v.activity_id LIMIT ?",
            [*head, *params, limit + 1],
        )
    ]
    items = []
    for activity_id in ids[:limit]:
        found = state_at(conn, activity_id, k)
        if found is None:
            continue
        state = found[0]
        activity = state.activity
        items.append(
            ActivityItem(
                activity_id=activity_id,
                office=activity.office,
                programme=activity.programme,
                kind=activity.kind,
                title=activity.title,
                year=activity.year,
                # Through JSON, as the present's columns are stored, so both read alike.
                countries=_places.decode(_json.encode(activity.countries)),
                metrics=_metrics.decode(_json.encode(activity.metrics)),
                status="withdrawn" if state.withdrawn else "active",
                multi_country=bool(is_listed_only(activity)),
                version=state.version,
                last_sequence=state.last_sequence,
            )
        )
    return items, len(ids) > limit


def get_activity(
    conn: sqlite3.Connection, activity_id: str, *, scope: Scope | None = None
) -> ActivityDetail:
    """One activity: as it is now, or as it was as of the scope's past sequence.

    :raises UnknownKeyError: naming ``activity_id`` when the projection has no such activity
        (or had none yet at that sequence).
    """
    with snapshot(conn):
        view = resolve(conn, scope)
        row = conn.execute(
            "SELECT activity_id, last_event_id, event_ids, state FROM activities "
            "WHERE activity_id = ?",
            (activity_id,),
        ).fetchone()
        found = state_at(conn, activity_id, view.sequence) if row is not None else None
        if row is None or found is None:
            when = "" if view.sequence is None else f" as of sequence {view.sequence}"
            raise UnknownKeyError(
                "activity_id",
                f"no activity {activity_id!r} in the ledger{when}; list them with "
                "/v1/activities or `ledger activities`",
            )
        state, events = found
        activity = state.activity
        if view.document is not None and view.document not in documents_of(activity):
            raise UnknownKeyError(
                "activity_id",
                f"the document {view.document!r} does not cite activity {activity_id!r}"
                + ("" if view.sequence is None else f" as of sequence {view.sequence}"),
            )
        event_ids = _ids.decode(row[2])[:events]
        k = view.sequence
        if k is None:
            found_parts = conn.execute(
                "SELECT activity_id FROM activities WHERE part_of = ? ORDER BY activity_id",
                (activity_id,),
            )
        else:
            # The activities whose version then said they were part of this one.
            found_parts = conn.execute(
                "SELECT activity_id FROM activities WHERE part_of = ? AND last_sequence <= ? "
                "UNION SELECT activity_id FROM activities_past WHERE part_of = ? AND since <= ? "
                "AND until > ? ORDER BY activity_id",
                (activity_id, k, activity_id, k, k),
            )
        parts = [part for (part,) in found_parts]
        return ActivityDetail(
            as_of=view.as_of,
            activity_id=activity_id,
            office=activity.office,
            programme=activity.programme,
            kind=activity.kind,
            title=activity.title,
            summary=activity.summary,
            year=activity.year,
            start_date=activity.start_date,
            end_date=activity.end_date,
            countries=_places.decode(_json.encode(activity.countries)),
            metrics=_metrics.decode(_json.encode(activity.metrics)),
            multi_country=bool(is_listed_only(activity)),
            partners=list(activity.partners),
            sources=_sources.decode(_json.encode(activity.sources)),
            part_of=activity.part_of,
            parts=parts,
            notes=activity.notes,
            status="withdrawn" if state.withdrawn else "active",
            withdraw_reason=state.withdraw_reason,
            version=state.version,
            last_sequence=state.last_sequence,
            last_event_id=event_ids[-1],
            event_ids=event_ids,
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
    scope: Scope | None = None,
) -> Provenance:
    """The activities and event ids that make up one figure, a page at a time by activity id.

    The values of every page's items sum to ``total``. Give any of country, programme and year
    but not all three (no rollup keeps that figure); none gives the global total.

    :param metric: a catalogue metric, or ``*`` for the number of activities.
    :param cursor: ``next_cursor`` of the previous page, with the same parameters.
    :param limit: the page size, 1..:data:`MAX_LIMIT`.
    :param scope: as of when, and which document's figure; the present by default.
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
    if scope is not None and not scope.is_now:
        filters["scope"] = msgspec.json.encode(scope).decode()
    after = decode_cursor(cursor, filters) if cursor is not None else None
    columns = sorted(key, key=_KEY_ORDER.__getitem__)
    aggregate = rule.aggregate if rule is not None else "sum"
    with snapshot(conn):
        view = resolve(conn, scope)
        own: dict[str, float] = {}
        if view.rollups:
            found = contributions(
                conn, table, tuple(key[c] for c in columns), metric, after=after, limit=limit + 1
            )
            more = len(found) > limit
            found = found[:limit]
            titles = _titles(conn, [item.activity_id for item in found])
            keyed = " AND ".join([*(f"{c} = ?" for c in columns), "metric = ?"])
            row = conn.execute(
                f"SELECT total, activities FROM {table} WHERE {keyed}",
                [*(key[c] for c in columns), metric],
            ).fetchone()
            total, counted = row if row else (0.0, 0)
            if aggregate != "sum":
                ids = [i.activity_id for i in found]
                own = _own_figures(conn, metric, key.get("country", ""), ids)
        else:
            found, own, titles = _footprint_contributions(
                conn, view, key, metric, aggregate == "sum", after, limit + 1
            )
            more = len(found) > limit
            found = found[:limit]
            clauses, params = _footprint_clauses(view, key, None)
            micros, counted = conn.execute(
                "SELECT coalesce(sum(micros), 0), coalesce(sum(counted), 0) FROM footprints "
                f"WHERE {' AND '.join(clauses)} AND metric = ?",
                [*params, metric],
            ).fetchone()
            total = micros / MICROS
        largest: str | None = None
        if aggregate != "sum":
            empty = Reported(rule=aggregate, unit="", activities=0)
            top = _largest(conn, view, metric, empty, key)
            total = top.value
            largest = top.activity_id
        return Provenance(
            as_of=view.as_of,
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


def _footprint_contributions(
    conn: sqlite3.Connection,
    view: View,
    key: dict[str, Any],
    metric: str,
    summed: bool,
    after: str | None,
    limit: int,
) -> tuple[list[Contribution], dict[str, float], dict[str, str]]:
    """The activities behind a figure in the view, from their footprints valid in it, with
    their own figures of a metric that is not summed, and their titles then."""
    clauses, params = _footprint_clauses(view, key, None)
    clauses.append("metric = ?")
    params.append(metric)
    if after is not None:
        clauses.append("activity_id > ?")
        params.append(after)
    rows = conn.execute(
        f"SELECT activity_id, micros, counted, listed FROM footprints "
        f"WHERE {' AND '.join(clauses)} ORDER BY activity_id LIMIT ?",
        [*params, limit],
    ).fetchall()
    by_place = "country" in key
    found: list[Contribution] = []
    own: dict[str, float] = {}
    titles: dict[str, str] = {}
    for activity_id, micros, counted, listed in rows:
        state = state_at(conn, activity_id, view.sequence)
        events = _ids.decode(
            conn.execute(
                "SELECT event_ids FROM activities WHERE activity_id = ?", (activity_id,)
            ).fetchone()[0]
        )[: state[1] if state else None]
        if state is not None:
            titles[activity_id] = state[0].activity.title
        share = micros if summed or metric == ACTIVITY_COUNT else 0
        if not summed and counted:
            own[activity_id] = micros / MICROS
        found.append(
            Contribution(
                activity_id=activity_id,
                value=share / MICROS,
                micros=share,
                counted=bool(counted),
                multi_country=bool(listed) and by_place,
                event_ids=events,
                last_event_id=events[-1],
            )
        )
    return found, own, titles


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


_RELEASE_COLUMNS = (
    "name, sequence, digest, note, office, actor, event_id, recorded_sequence, recorded_ns"
)
TIMELINE_POINTS = 100
"""How many events a timeline spreads over the history, for a time control's labels."""


def _release(conn: sqlite3.Connection, row: tuple[Any, ...]) -> Release:
    name, sequence, digest, note, office, actor, event_id, recorded, recorded_ns = row
    found = conn.execute(
        "SELECT time_ns FROM timeline WHERE sequence <= ? ORDER BY sequence DESC LIMIT 1",
        (sequence,),
    ).fetchone()
    return Release(
        name=name,
        sequence=sequence,
        time=time_of(found[0]) if found else None,
        digest=digest,
        note=note,
        office=office,
        actor=actor,
        event_id=event_id,
        recorded_sequence=recorded,
        recorded_at=instant_of(recorded_ns),
    )


def list_releases(conn: sqlite3.Connection, *, scope: Scope | None = None) -> ReleaseList:
    """Every release made by the view's sequence, in the order they were made."""
    with snapshot(conn):
        view = resolve(conn, scope)
        # The present has every release, even one made after the last activity event.
        k = view.sequence if view.sequence is not None else OPEN
        rows = conn.execute(
            f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE recorded_sequence <= ? "
            "ORDER BY recorded_sequence",
            (k,),
        ).fetchall()
        return ReleaseList(as_of=view.as_of, items=[_release(conn, row) for row in rows])


def get_release(conn: sqlite3.Connection, name: str) -> Release:
    """One release by name.

    :raises UnknownKeyError: naming ``release`` when there is none of that name.
    """
    with snapshot(conn):
        row = conn.execute(
            f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise UnknownKeyError(
                "release",
                f"no release {name!r}; list them with /v1/releases or `ledger release list`",
            )
        return _release(conn, row)


def timeline(conn: sqlite3.Connection, *, scope: Scope | None = None) -> Timeline:
    """The ledger's history for a time control: first and last event, up to
    :data:`TIMELINE_POINTS` events spread between them, and the releases."""
    with snapshot(conn):
        view = resolve(conn, scope)
        last = as_of_answer(conn)
        bounds = conn.execute("SELECT min(sequence), max(sequence) FROM timeline").fetchone()
        if bounds[0] is None:
            return Timeline(as_of=view.as_of)
        low, high = bounds
        step = max((high - low) / (TIMELINE_POINTS - 1), 1.0)
        # One index lookup a point, not a scan of the table (~110 ms at 1M events).
        targets = sorted({min(round(low + i * step), high) for i in range(TIMELINE_POINTS)})
        points: list[AsOf] = []
        for target in targets:
            sequence, ns = conn.execute(
                "SELECT sequence, time_ns FROM timeline WHERE sequence >= ? ORDER BY sequence "
                "LIMIT 1",
                (target,),
            ).fetchone()
            if not points or points[-1].sequence != sequence:
                points.append(AsOf(sequence, time_of(ns)))
        releases = conn.execute(
            f"SELECT {_RELEASE_COLUMNS} FROM releases ORDER BY recorded_sequence"
        ).fetchall()
        return Timeline(
            as_of=view.as_of,
            first=points[0],
            last=AsOf(last.sequence, last.time),
            points=points,
            releases=[_release(conn, row) for row in releases],
        )


def view_of(conn: sqlite3.Connection, *, scope: Scope | None = None) -> AsOf:
    """What a scope resolves to now: the sequence and instant an answer in it reflects."""
    with snapshot(conn):
        return resolve(conn, scope).as_of


def current_sequence(conn: sqlite3.Connection) -> int:
    """The projection's checkpoint alone: what a reader waiting for its own write polls."""
    return as_of(conn).sequence


def status(
    conn: sqlite3.Connection,
    stream_last_sequence: int | None = None,
    *,
    scope: Scope | None = None,
    follows_stream: bool = True,
    lag_note: str | None = None,
) -> Status:
    """Each projection's checkpoint, its lag behind the stream, and its quarantine count; as
    of a past sequence, the checkpoint is that sequence and the quarantine what was by then.

    :param stream_last_sequence: the stream's last sequence, when the caller could ask it.
    :param follows_stream: whether the caller's projection follows the stream; a file served
        alone does not, and its status then says which sequence and instant it reflects.
    :param lag_note: why the caller could not ask the stream, and what to do about it.
    """
    with snapshot(conn):
        view = resolve(conn, scope)
        k = view.sequence
        if k is None:
            quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        else:
            quarantined = conn.execute(
                "SELECT count(*) FROM quarantine WHERE sequence <= ?", (k,)
            ).fetchone()[0]
        checkpoints = conn.execute(
            "SELECT projection, sequence FROM checkpoint ORDER BY projection"
        ).fetchall() or [(PROJECTION, 0)]
        if k is not None:
            checkpoints = [(name, k) for name, _ in checkpoints]
        if not follows_stream:
            when = view.as_of.time.isoformat() if view.as_of.time else "before any event"
            lag_note = (
                f"a projection file served alone: it reflects sequence {view.as_of.sequence} "
                f"({when}) and follows no stream; `ledger up` serves live figures"
            )
        return Status(
            as_of=view.as_of,
            follows_stream=follows_stream,
            lag_note=lag_note,
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
