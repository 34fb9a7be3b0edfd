"""Shaping the query layer's answers for pages: sums, rankings, chart bars and parameters.

Pure functions over :mod:`projections.answers` Structs; the figures themselves always come from
:mod:`projections.queries`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from markupsafe import Markup
from msgspec import to_builtins

from events.reference import load_reference
from projections.answers import ActivityDetail, ActivityItem, AsOf, Cell
from projections.errors import BadParameterError
from replay.history import FieldChange
from services.api.dashboard.charts import Bar
from services.api.dashboard.format import ACTIVITY_COUNT, format_number, metric_label, metric_unit
from services.api.dashboard.history_text import change_rows
from services.api.dashboard.sorting import Sort, sort_cells
from services.api.dashboard.worldmap import Band, MapFigure, on_map, world_map

__all__ = [
    "ActivityChange",
    "FigureChange",
    "MapPanel",
    "activity_change",
    "blank",
    "cell_bars",
    "cell_changes",
    "cell_value",
    "map_panel",
    "metrics_of",
    "parse_sequence",
    "parse_year",
    "pick_metric",
    "same_snapshot",
    "top_cells",
    "total_changes",
]


class _Answer(Protocol):
    @property
    def as_of(self) -> AsOf: ...


Answers = TypeVar("Answers", bound=tuple[_Answer, ...])

_ATTEMPTS = 3


def same_snapshot(read: Callable[[], Answers]) -> Answers:
    """The answers of ``read`` once they all reflect one sequence.

    A page asks several queries, each in its own read transaction; if the projector commits
    between two of them, the page would mix sequences, so it reads again (the last try stands).

    :param read: returns a tuple of answers, each with an ``as_of``.
    """
    answers = read()
    for _ in range(_ATTEMPTS - 1):
        if len({answer.as_of.sequence for answer in answers}) <= 1:
            break
        answers = read()
    return answers


def cell_value(cell: Cell, metric: str) -> float:
    """A cell's figure for ``metric``: its activity count for ``*``, else its total (0 if none)."""
    return float(cell.activities) if metric == ACTIVITY_COUNT else cell.totals.get(metric, 0.0)


def metrics_of(cells: Iterable[Cell]) -> list[str]:
    """Every metric with a figure in any of the cells, sorted by name."""
    return sorted({metric for cell in cells for metric in cell.totals})


def top_cells(cells: list[Cell], count: int, metric: str = ACTIVITY_COUNT) -> list[Cell]:
    """The ``count`` cells with the largest figure for ``metric``, ties by name."""
    ranked = sorted(cells, key=lambda c: (-cell_value(c, metric), c.name or str(_key(c))))
    return [cell for cell in ranked[:count] if cell_value(cell, metric) > 0]


def _key(cell: Cell) -> Any:
    return cell.country or cell.programme or cell.year


def cell_bars(cells: list[Cell], metric: str) -> list[Bar]:
    """One chart bar per cell, labelled by year, or by country or programme name."""
    unit = metric_unit(metric)
    bars = []
    for cell in cells:
        label = str(cell.year) if cell.year is not None and not cell.name else cell.name
        value = cell_value(cell, metric)
        bars.append(Bar(label or str(_key(cell)), value, f"{label}: {format_number(value)} {unit}"))
    return bars


def blank(text: str | None) -> str | None:
    """A form field's text, stripped; ``None`` when left blank (a GET form sends them all)."""
    return text.strip() if text and text.strip() else None


_WHOLE = re.compile(r"-?[0-9]+")


def parse_sequence(text: str | None) -> int | None:
    """A stream sequence from a query string; empty means none.

    :raises BadParameterError: naming ``as_of_sequence`` when it is not a whole number (a
        negative one is left to :func:`projections.temporal.scope_of`, which says why).
    """
    text = blank(text)
    if text is None:
        return None
    if not _WHOLE.fullmatch(text):
        raise BadParameterError(
            "as_of_sequence", f"{text!r} is not a sequence; give a whole number, e.g. 5"
        )
    return int(text)


def parse_year(text: str | None) -> int | None:
    """A year from a query string; empty means none (a GET form sends every field).

    :raises BadParameterError: naming ``year`` when it is not a whole number.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadParameterError("year", f"{text!r} is not a year; give e.g. 2020")
    return int(text)


def pick_metric(metric: str | None, available: Iterable[str]) -> str:
    """The metric a chart shows: the one asked for, or the activity count.

    :raises BadParameterError: naming ``metric`` when this page has no figure of it.
    """
    choices = [ACTIVITY_COUNT, *available]
    if metric is None or metric == "":
        return ACTIVITY_COUNT
    if metric not in choices:
        raise BadParameterError(
            "metric", f"this page has no figures of {metric!r}; choose one of {choices}"
        )
    return metric


# -- the world map -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapPanel:
    """A world map of one metric over the countries, with what its template needs around it."""

    metric: str
    svg: Markup
    bands: list[Band]
    off_map: list[Cell]
    """Countries with a figure that a 1:110m map does not draw (small states), by name."""
    apart: int
    """Countries with no figure of their own that multi-country activities without shares
    name."""


def map_panel(cells: list[Cell], metric: str, link: Callable[[str], str]) -> MapPanel:
    """The map of ``metric`` (or of activities counted, ``*``) over the countries' cells.

    :param link: the URL of a country's page, from its code.
    """
    figures = {
        cell.country: MapFigure(cell.name, cell_value(cell, metric), cell.multi_country)
        for cell in cells
        if cell.country is not None
    }
    names = {code: entry.name for code, entry in load_reference().countries.items()}
    unit = metric_unit(metric)
    title = (
        "Activities counted per country"
        if metric == ACTIVITY_COUNT
        else f"{metric_label(metric)} per country, in {unit or 'its unit'}"
    )
    svg, bands = world_map(figures, names=names, link=link, title=title, unit=unit)
    off_map = sorted(
        (c for c in cells if c.country and not on_map(c.country) and cell_value(c, metric) > 0),
        key=lambda c: c.name,
    )
    apart = sum(1 for f in figures.values() if f.value <= 0 and f.multi_country)
    return MapPanel(metric, svg, bands, off_map, apart)


# -- what changed between two moments (the release page) ---------------------------------------


class _Figures(Protocol):
    @property
    def activities(self) -> int: ...
    @property
    def totals(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class FigureChange:
    """One figure that differs between an earlier moment and a later one."""

    key: str | int | None
    """The country, programme or year the figure is of; ``None`` for the ledger's total."""
    name: str
    metric: str
    """A summed metric, or ``*`` for the activities counted."""
    then: float
    now: float

    @property
    def delta(self) -> str:
        """The change, signed: ``+50``, ``-1,000``."""
        change = self.now - self.then
        return ("+" if change > 0 else "-") + format_number(abs(change))


def _differences(then: _Figures | None, now: _Figures | None) -> list[tuple[str, float, float]]:
    """(metric, then, now) for the activity count and every summed total that differs."""
    before = {ACTIVITY_COUNT: float(then.activities), **then.totals} if then else {}
    after = {ACTIVITY_COUNT: float(now.activities), **now.totals} if now else {}
    found = []
    for metric in [ACTIVITY_COUNT, *sorted((set(before) | set(after)) - {ACTIVITY_COUNT})]:
        old, new = before.get(metric, 0.0), after.get(metric, 0.0)
        if old != new:
            found.append((metric, old, new))
    return found


def total_changes(then: _Figures, now: _Figures) -> list[FigureChange]:
    """The ledger's totals that differ between two summaries."""
    return [FigureChange(None, "", m, old, new) for m, old, new in _differences(then, now)]


def cell_changes(then: Iterable[Cell], now: Iterable[Cell], key: str) -> list[FigureChange]:
    """Every figure of a list of cells (by ``key``: country, programme or year) that differs,
    a cell that appeared or went away counting from or to nothing; by name, as shown."""
    before = {getattr(cell, key): cell for cell in then}
    after = {getattr(cell, key): cell for cell in now}
    cells = [after.get(code) or before[code] for code in set(before) | set(after)]
    changes = []
    for cell in sort_cells(cells, Sort(), key):
        code = getattr(cell, key)
        name = cell.name or str(code)
        for metric, old, new in _differences(before.get(code), after.get(code)):
            changes.append(FigureChange(code, name, metric, old, new))
    return changes


@dataclass(frozen=True)
class ActivityChange:
    """An activity changed after a moment: as it is later, as it was then, and what differs."""

    item: ActivityItem
    then: ActivityDetail | None
    """``None``: not yet reported then."""
    changes: list[str]


def activity_change(item: ActivityItem, then: ActivityDetail | None) -> ActivityChange:
    """What differs in an activity between ``then`` and ``item``, in words."""
    if then is None:
        return ActivityChange(item, None, ["reported since"])
    changes = []
    if then.status != item.status:
        changes.append(f"{then.status} → {item.status}")
    if then.title != item.title:
        changes.append("title changed")
    # In the words of the activity's history: metrics by label with units, countries by name.
    for field, old, new in (
        ("metrics", then.metrics, item.metrics),
        ("countries", to_builtins(then.countries), to_builtins(item.countries)),
    ):
        for row in change_rows(FieldChange(field, old, new)):
            changes.append(f"{row.field}: {row.before} → {row.after}")
    if then.programme != item.programme or then.year != item.year:
        changes.append("programme or year changed")
    return ActivityChange(item, then, changes or ["other details changed"])
