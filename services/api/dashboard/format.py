"""How the dashboard writes numbers, metric names and instants for people to read."""

from __future__ import annotations

import datetime as dt

from events.reference import load_reference

__all__ = [
    "format_exact",
    "format_instant",
    "format_number",
    "kind_label",
    "metric_label",
    "metric_unit",
]

ACTIVITY_COUNT = "*"
"""The pseudo-metric of the query layer that counts activities."""


def format_number(value: float | int | None) -> str:
    """A figure with thousands separators: ``2440.0`` -> ``2,440``, ``12.5`` -> ``12.5``.

    Shares can leave fractions (40% of 25 trained is 10, of 33 it is 13.2), so up to two
    decimals are kept, and none when the figure is whole.
    """
    if value is None:
        return ""
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def metric_label(metric: str) -> str:
    """A metric's name as a heading: ``people_trained`` -> ``People trained``."""
    if metric == ACTIVITY_COUNT:
        return "Activities"
    text = metric.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def metric_unit(metric: str) -> str:
    """The unit the metric catalogue gives, e.g. ``kg``; empty when it gives none."""
    if metric == ACTIVITY_COUNT:
        return "activities"
    entry = load_reference().metrics.get(metric)
    return entry.detail.get("unit", "") if entry else ""


def kind_label(kind: str) -> str:
    """An activity kind as a label: ``technical_assistance`` -> ``Technical assistance``."""
    return metric_label(kind)


def format_instant(value: dt.datetime | dt.date | None) -> str:
    """An instant in UTC to the second, or a date as ISO; empty for ``None``."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.isoformat()


def format_exact(value: dt.datetime | None) -> str:
    """An instant in UTC with its fraction of a second, if any: what a reader typed back."""
    if value is None:
        return ""
    utc = value.astimezone(dt.UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return utc.strftime("%Y-%m-%d %H:%M:%S") + fraction + " UTC"
