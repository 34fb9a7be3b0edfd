"""An activity's history in words: each changed field as a person would write it.

:func:`replay.history.history_of` gives every event's changes as plain values (lists of
dicts, a dict of metrics, ISO dates). Here they become text: countries by name with their
shares, metrics by label with their units, a source as "para. 21 of <document>", a programme
by its name. A revision shows only what it changed, as before and after: of the countries,
metrics and sources, only those that differ; a field sent again unchanged not at all. No value
is ever shown as Python writes it: whatever a field holds, it is spelt out here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from events.reference import load_reference
from replay.history import FieldChange, HistoryEntry
from services.api.dashboard.format import format_number, kind_label, metric_label, metric_unit

__all__ = ["ChangeRow", "Told", "change_rows", "tell_history"]

NONE = "none"
"""What an empty or absent value reads as."""
_SKIPPED = frozenset({"activity_id"})
"""The page is the activity's own: its id needs no row."""


@dataclass(frozen=True)
class ChangeRow:
    """One line of what an event changed: what, and its value before and after, in words."""

    field: str
    before: str
    """Empty on the activity's first report."""
    after: str


@dataclass(frozen=True)
class Told:
    """One event of the history, with its changes in words."""

    entry: HistoryEntry
    rows: list[ChangeRow]


def tell_history(entries: Iterable[HistoryEntry]) -> list[Told]:
    """Every entry with its changes in words, in the order given."""
    return [
        Told(
            entry,
            [
                row
                for change in entry.changes
                for row in change_rows(change, first=entry.type == "ActivityReported")
            ],
        )
        for entry in entries
    ]


def plain(value: Any) -> str:
    """Any value as text, never as Python's repr: lists joined, mappings as ``key: value``."""
    if value is None or value == "" or value == [] or value == {}:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(plain(item) for item in value)
    return str(value)


def _label(field: str) -> str:
    text = field.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _country(place: Any) -> tuple[str, str]:
    """(code, words) of one place of an activity, e.g. ``("KAZ", "Kazakhstan (60%)")``."""
    if not isinstance(place, dict):
        return str(place), plain(place)
    code = str(place.get("country", ""))
    words = load_reference().country_name(code)
    share = place.get("share")
    if isinstance(share, int | float) and not isinstance(share, bool):
        words += f" ({format_number(share)}%)"
    if place.get("role") == "venue":
        words += " (venue only)"
    return code, words


def _source(source: Any) -> tuple[str, str]:
    """(key, words) of one source: "para. 21 of <document>", or the document alone."""
    if not isinstance(source, dict):
        return plain(source), plain(source)
    document, paragraph = plain(source.get("document")), source.get("paragraph")
    words = document if paragraph is None else f"para. {plain(paragraph)} of {document}"
    return words, words


def _items(value: Any, item: Callable[[Any], tuple[str, str]]) -> dict[str, str]:
    """A list of places or sources as {key: words}, in the list's order."""
    if not isinstance(value, list):
        return {} if value is None else {plain(value): plain(value)}
    return dict(item(element) for element in value)


def _differing(
    label: str, old: dict[str, str], new: dict[str, str], first: bool
) -> list[ChangeRow]:
    """One row with only the entries that differ: gone or changed before, new or changed
    after. On a first report that is all of them, with nothing before."""
    if old == new:
        return []
    keys = [*old, *(key for key in new if key not in old)]
    changed = [key for key in keys if old.get(key) != new.get(key)]
    before = ", ".join(old[key] for key in changed if key in old)
    after = ", ".join(new[key] for key in changed if key in new)
    return [ChangeRow(label, "" if first else before or NONE, after or NONE)]


def _figure(metric: str, value: Any) -> str:
    if value is None:
        return ""
    unit = metric_unit(metric)
    return f"{plain(value)} {unit}".rstrip() if isinstance(value, int | float) else plain(value)


def _metrics(old: Any, new: Any, first: bool) -> list[ChangeRow]:
    """A row per metric whose figure differs, by its label, with its unit."""
    before = old if isinstance(old, dict) else {}
    after = new if isinstance(new, dict) else {}
    rows = []
    for metric in [*before, *(m for m in after if m not in before)]:
        if before.get(metric) != after.get(metric):
            rows.append(
                ChangeRow(
                    metric_label(str(metric)),
                    _figure(str(metric), before.get(metric)) or ("" if first else NONE),
                    _figure(str(metric), after.get(metric)) or "removed",
                )
            )
    return rows


def _programme(code: Any) -> str:
    entry = load_reference().programmes.get(str(code))
    return f"{entry.name} ({entry.code})" if entry else plain(code)


def _office(code: Any) -> str:
    entry = load_reference().offices.get(str(code))
    return entry.name if entry else plain(code)


_WORDS: dict[str, Callable[[Any], str]] = {
    "programme": _programme,
    "office": _office,
    "kind": lambda kind: kind_label(str(kind)) if kind else NONE,
    "status": lambda status: plain(status).capitalize(),
    "year": lambda year: NONE if year is None else str(year),
}
"""Fields that read better in their own words than as their stored value."""


def change_rows(change: FieldChange, *, first: bool = False) -> list[ChangeRow]:
    """The rows one field's change reads as: none when it did not change.

    :param first: the change is of the activity's first report, which has no before.
    """
    field, old, new = change.field, change.old, change.new
    if field in _SKIPPED or old == new:
        return []
    if field == "metrics":
        return _metrics(old, new, first)
    if field == "countries":
        return _differing("Countries", _items(old, _country), _items(new, _country), first)
    if field == "sources":
        return _differing("Sources", _items(old, _source), _items(new, _source), first)
    words = _WORDS.get(field, plain)
    return [ChangeRow(_label(field), "" if first else words(old), words(new))]
