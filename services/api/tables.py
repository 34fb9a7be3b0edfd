"""Flattening answers into CSV: one column per field, one ``metric.NAME`` column per figure.

The column names follow the import's CSV layout (docs/offices.md, "CSV layout"):
``metric.people_trained`` for a figure, ``countries`` as ``KAZ:60;UZB:40``, lists joined by ``;``.

Every CSV the ledger writes goes through :func:`csv_lines`, which neutralises text that a
spreadsheet would run as a formula (:func:`neutralise`). Long lists are written by
:func:`stream_csv` a page at a time, so that a download of every activity holds one page in
memory, not the list.
"""

from __future__ import annotations

import csv
import functools
import io
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from projections.answers import AsOf

__all__ = [
    "FORMULA_STARTS",
    "CsvLayout",
    "Snapshot",
    "csv_lines",
    "neutralise",
    "stream_csv",
    "to_csv",
    "to_rows",
]

_FIGURES = ("totals", "metrics")
_REPORTED = "reported"

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a cell as a formula (OWASP, CSV Injection)."""

T = TypeVar("T")


def neutralise(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet runs: text starting a formula gets a ``'``.

    Only text is neutralised, as OWASP advises: a title ``=HYPERLINK(...)`` becomes
    ``'=HYPERLINK(...)``, and so does a title ``-5``, which is text someone typed. A number is
    data the ledger computed or validated, never a formula: the figure ``-5.0`` stays ``-5.0``
    so that it still sums in a spreadsheet. The quote is what spreadsheets show as "this cell
    is text"; the rest of the text is kept as it was.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, dict) and "country" in item:
                share = item.get("share")
                if item.get("role") == "venue":
                    parts.append(f"{item['country']}:venue")
                else:
                    parts.append(
                        item["country"] if share is None else f"{item['country']}:{share:g}"
                    )
            elif isinstance(item, dict) and "document" in item:
                paragraph = item.get("paragraph")
                parts.append(item["document"] + ("" if paragraph is None else f" para {paragraph}"))
            else:
                parts.append(str(item))
        return ";".join(parts)
    return value


class CsvLayout:
    """The columns of a list of Structs: its fields, then one ``metric.NAME`` per figure seen,
    then one ``reported.NAME`` per metric that is not summed (events/metrics.py), which says
    its rule and never holds a sum."""

    def __init__(self, kind: type[msgspec.Struct] | None = None) -> None:
        """
        :param kind: the Struct type, so that an empty list still gets its header.
        """
        self.columns = [
            f for f in (kind.__struct_fields__ if kind else ()) if f not in (*_FIGURES, _REPORTED)
        ]
        self.metrics: set[str] = set()
        self.reported: set[str] = set()

    def widen(self, plain: Iterable[dict[str, Any]]) -> None:
        """Add the fields and figures of these items (as builtins) to the columns."""
        for row in plain:
            for key, value in row.items():
                if key in _FIGURES:
                    self.metrics.update(value or ())
                elif key == _REPORTED:
                    self.reported.update(value or ())
                elif key not in self.columns:
                    self.columns.append(key)

    def header(self) -> list[str]:
        """The header line's cells."""
        return [
            *self.columns,
            *(f"metric.{name}" for name in sorted(self.metrics)),
            *(f"reported.{name}" for name in sorted(self.reported)),
        ]

    def row(self, plain: dict[str, Any]) -> list[Any]:
        """One item (as builtins) as a row under :meth:`header`; a figure not there is left out."""
        figures: dict[str, Any] = {}
        for key in _FIGURES:
            figures.update(plain.get(key) or {})
        reported = plain.get(_REPORTED) or {}
        return [
            *(_cell(plain.get(c)) for c in self.columns),
            *(figures.get(m, "") for m in sorted(self.metrics)),
            *(_reported_cell(reported.get(m)) for m in sorted(self.reported)),
        ]


def _reported_cell(entry: dict[str, Any] | None) -> str:
    """A metric that is not summed, in one cell: its rule, and the largest figure for ``max``."""
    if not entry:
        return ""
    count = f"{entry['activities']} {'activity' if entry['activities'] == 1 else 'activities'}"
    if entry["rule"] == "max" and entry.get("value") is not None:
        return f"max {entry['value']:g} ({entry['activity_id']}), of {count}"
    return f"{entry['rule']}: reported by {count}, not summed"


def to_rows(
    items: Sequence[msgspec.Struct], kind: type[msgspec.Struct] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of a list of Structs, with figures spread into ``metric.*`` columns.

    The cells are as the answer has them, for tables on a terminal; CSV goes through
    :func:`csv_lines`, which neutralises them.

    :param kind: the Struct type, so that an empty list still gets its header.
    """
    plain = [msgspec.to_builtins(item) for item in items]
    layout = CsvLayout(kind)
    layout.widen(plain)
    return layout.header(), [layout.row(row) for row in plain]


def csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV text, every cell neutralised (:func:`neutralise`): the one CSV writer.

    Lines end in CRLF, as RFC 4180 has them: Python's writer quotes a cell holding any
    character of the line ending, so a carriage return in a title is quoted too, rather than
    read by a spreadsheet as the end of the row.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([neutralise(cell) for cell in row] for row in rows)
    return out.getvalue()


def to_csv(items: Sequence[msgspec.Struct], kind: type[msgspec.Struct] | None = None) -> str:
    """A list of Structs as CSV text with a header line."""
    header, rows = to_rows(items, kind)
    return csv_lines([header, *rows])


# -- streaming long lists ----------------------------------------------------------------------


class Snapshot(Protocol):
    """One read transaction of the projection that calls run in, off the event loop.

    :class:`services.api.read_model.Snapshot` is one; the protocol keeps this module free of it.
    """

    async def run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """``call(conn)`` on the snapshot's connection, in a worker thread."""
        ...

    def close(self) -> None:
        """End the read transaction and close the connection."""
        ...


class _Page(Protocol):
    """An answer that is one page of a list: an ActivityPage, a Provenance."""

    # Read-only, as in the frozen Structs that are pages, so that a page's
    # ``items: list[ActivityItem]`` is a ``Sequence[msgspec.Struct]``.
    @property
    def as_of(self) -> AsOf: ...
    @property
    def items(self) -> Sequence[msgspec.Struct]: ...
    @property
    def next_cursor(self) -> str | None: ...


Fetch = Callable[[sqlite3.Connection, str | None], _Page]
"""The query for one page of a list: ``fetch(conn, cursor)``, ``None`` for the first page."""


async def stream_csv(
    snapshot: Snapshot,
    fetch: Fetch,
    kind: type[msgspec.Struct],
    *,
    keep: Callable[[Any], bool] | None = None,
    every_page: bool = True,
) -> tuple[AsOf, str | None, AsyncIterator[str]]:
    """A list as CSV, written a page at a time from one snapshot, and its ``as_of``.

    A CSV's header comes first, but which ``metric.*`` columns it needs is known only from the
    rows: so for a list of items with figures, a first pass pages through the list keeping
    nothing but the metric names, and the second writes the rows. Both read the same snapshot,
    so they see the same rows, and the memory held is a page whatever the length of the list.

    The first page is read before this returns, so that a bad parameter is still an error
    status; the snapshot is closed when the text has been read to the end, or dropped.

    :param fetch: the query for one page; its pages are followed by their ``next_cursor``.
    :param keep: which items of a page go into the CSV; all without it.
    :param every_page: ``False`` writes only the first page (the API's CSV of one page).
    :returns: the snapshot's ``as_of``, the ``next_cursor`` after the last page written
        (always ``None`` with ``every_page``), and the CSV text in chunks.
    """
    two_passes = every_page and any(f in _FIGURES for f in kind.__struct_fields__)

    def rows(page: _Page) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(i) for i in page.items if keep is None or keep(i)]

    def start(conn: sqlite3.Connection) -> tuple[_Page, CsvLayout, str]:
        first = fetch(conn, None)
        layout = CsvLayout(kind)
        layout.widen(rows(first))
        # With one pass the first page's rows are written now; with two, from the start again.
        written = "" if two_passes else csv_lines(layout.row(row) for row in rows(first))
        return first, layout, written

    def widen(conn: sqlite3.Connection, cursor: str, layout: CsvLayout) -> str | None:
        page = fetch(conn, cursor)
        layout.widen(rows(page))
        return page.next_cursor

    def write(
        conn: sqlite3.Connection, cursor: str | None, layout: CsvLayout
    ) -> tuple[str, str | None]:
        page = fetch(conn, cursor)
        return csv_lines(layout.row(row) for row in rows(page)), page.next_cursor

    try:
        first, layout, written = await snapshot.run(start)
        # A page per call, so that a long list takes turns with other requests' queries.
        after = first.next_cursor
        while two_passes and after is not None:
            after = await snapshot.run(functools.partial(widen, cursor=after, layout=layout))
    except BaseException:
        snapshot.close()
        raise
    more = every_page and (two_passes or first.next_cursor is not None)

    async def chunks() -> AsyncIterator[str]:
        try:
            yield csv_lines([layout.header()])
            if written:
                yield written
            cursor = None if two_passes else first.next_cursor
            while more:
                text, cursor = await snapshot.run(
                    functools.partial(write, cursor=cursor, layout=layout)
                )
                if text:
                    yield text
                if cursor is None:
                    return
        finally:
            snapshot.close()

    return first.as_of, None if every_page else first.next_cursor, chunks()
