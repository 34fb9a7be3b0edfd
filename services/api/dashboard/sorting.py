"""How a table of countries, programmes or years is sorted: by what its columns show.

A table sorts by the ``?sort=`` of its page: ``name`` (a country's or programme's name, a
year's number), ``activities``, ``multi_country`` or one of the metrics it shows; a leading
``-`` sorts from the largest down. Each column header is a link to the page sorted by that
column, so sorting needs no script. Names sort as a person reads them, accents and case aside
(Algeria before Germany, whatever their codes), and ties by name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from projections.answers import Cell
from projections.errors import BadParameterError
from services.api.dashboard.format import ACTIVITY_COUNT

__all__ = ["NAME", "Sort", "parse_sort", "sort_cells"]

NAME = "name"
FIXED = (NAME, "activities", "multi_country")
"""The columns every table of cells has, before its metrics."""


@dataclass(frozen=True)
class Sort:
    """A table's order: the column and its direction."""

    key: str = NAME
    descending: bool = False

    @property
    def param(self) -> str:
        """As the ``sort`` parameter writes it: ``name``, ``-people_trained``."""
        return ("-" if self.descending else "") + self.key

    def toggle(self, key: str) -> str:
        """The ``sort`` parameter of a column's header link: the other way round for the
        column sorted now, else names A to Z and figures largest first."""
        if key == self.key:
            return Sort(key, not self.descending).param
        return Sort(key, key != NAME).param

    def aria(self, key: str) -> str | None:
        """The header's ``aria-sort``: set on the column the table is sorted by only."""
        if key != self.key:
            return None
        return "descending" if self.descending else "ascending"


def parse_sort(text: str | None, metrics: Iterable[str]) -> Sort:
    """The order a ``sort`` parameter asks for; by name when none is given.

    :param metrics: the metric columns of the page's tables.
    :raises BadParameterError: naming ``sort`` and the allowed values when the column is not
        one of the page's.
    """
    text = (text or "").strip()
    if not text:
        return Sort()
    descending = text.startswith("-")
    key = text[1:] if descending else text
    allowed = [*FIXED, *metrics]
    if key not in allowed:
        raise BadParameterError(
            "sort",
            f"this page has no column {key[:60]!r}; sort by one of {', '.join(allowed)}, "
            "with a leading '-' for the largest first",
        )
    return Sort(key, descending)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _name_key(cell: Cell, row: str) -> tuple[str, int]:
    if row == "year":
        return "", cell.year or 0
    return _fold(cell.name or str(getattr(cell, row) or "")), 0


def _figure(cell: Cell, key: str) -> float:
    if key in ("activities", ACTIVITY_COUNT):
        return float(cell.activities)
    if key == "multi_country":
        return float(cell.multi_country)
    return cell.totals.get(key, 0.0)


def sort_cells(cells: list[Cell], order: Sort, row: str) -> list[Cell]:
    """The cells in the order asked, ties by name from A to Z.

    :param row: what a row is: ``country``, ``programme`` or ``year`` (named by its number).
    """
    by_name = sorted(cells, key=lambda cell: _name_key(cell, row))
    if order.key == NAME:
        return list(reversed(by_name)) if order.descending else by_name
    sign = -1.0 if order.descending else 1.0
    # sorted() is stable: equal figures keep the names' order.
    return sorted(by_name, key=lambda cell: sign * _figure(cell, order.key))
