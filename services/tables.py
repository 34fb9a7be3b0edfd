"""Flattening answers into CSV: one column per field, one ``metric.NAME`` column per figure.

The column names follow the import's CSV layout (README, "CSV layout"): ``metric.people_trained``
for a figure, ``countries`` as ``KAZ:60;UZB:40``, lists joined by ``;``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import msgspec

__all__ = ["to_csv", "to_rows"]

_FIGURES = ("totals", "metrics")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, dict) and "country" in item:
                share = item.get("share")
                parts.append(item["country"] if share is None else f"{item['country']}:{share:g}")
            else:
                parts.append(str(item))
        return ";".join(parts)
    return value


def to_rows(
    items: Sequence[msgspec.Struct], kind: type[msgspec.Struct] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of a list of Structs, with figures spread into ``metric.*`` columns.

    :param kind: the Struct type, so that an empty list still gets its header.
    """
    plain = [msgspec.to_builtins(item) for item in items]
    columns = [f for f in (kind.__struct_fields__ if kind else ()) if f not in _FIGURES]
    metrics: set[str] = set()
    for row in plain:
        for key, value in row.items():
            if key in _FIGURES:
                metrics.update(value)
            elif key not in columns:
                columns.append(key)
    header = [*columns, *(f"metric.{name}" for name in sorted(metrics))]
    rows = []
    for row in plain:
        figures: dict[str, Any] = {}
        for key in _FIGURES:
            figures.update(row.get(key) or {})
        rows.append(
            [_cell(row.get(c)) for c in columns] + [figures.get(m, "") for m in sorted(metrics)]
        )
    return header, rows


def to_csv(items: Sequence[msgspec.Struct], kind: type[msgspec.Struct] | None = None) -> str:
    """A list of Structs as CSV text with a header line."""
    header, rows = to_rows(items, kind)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
