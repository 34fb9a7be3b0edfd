"""Shaping the query layer's answers for pages: sums, rankings, chart bars and parameters.

Pure functions over :mod:`projections.answers` Structs; the figures themselves always come from
:mod:`projections.queries`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from projections.answers import AsOf, Cell
from projections.errors import BadParameterError
from services.api.dashboard.charts import Bar
from services.api.dashboard.format import ACTIVITY_COUNT, format_number, metric_unit

__all__ = [
    "cell_bars",
    "cell_value",
    "metrics_of",
    "parse_year",
    "pick_metric",
    "same_snapshot",
    "top_cells",
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
