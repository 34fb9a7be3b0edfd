"""Reference data: the catalogues of countries, programmes, offices, kinds and metrics, and years.

The catalogues are JSON files in ``events/reference/``. Countries are ISO 3166-1 alpha-3 codes and
also accept the names the UN uses ("Viet Nam", "Bolivia (Plurinational State of)") and common
spellings ("Turkey", "Cote d'Ivoire"); programmes accept their code, name or aliases.

The years an activity may have are here too (:data:`FIRST_YEAR`, :func:`latest_year`), with the
widest a query may name (:data:`LAST_YEAR`): like a catalogue, they say which values of a field
the ledger knows, for the checks of an event and of a query alike. They are not in
:mod:`events.limits`, whose bounds keep untrusted input small whatever it means; these are rules
of the domain, and one of them moves with the calendar.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import unicodedata
from dataclasses import dataclass, field
from importlib import resources

__all__ = ["FIRST_YEAR", "LAST_YEAR", "Entry", "Reference", "latest_year", "load_reference"]

FIRST_YEAR = 1990
"""No activity before this year is accepted, nor asked about: the ledger is for current
reporting."""
LAST_YEAR = 2100
"""The latest year a query may name. A fixed bound rather than :func:`latest_year`, so that a
link stays valid whatever the date; a year with no activity yet is simply empty."""


def latest_year(today: dt.date) -> int:
    """The latest year an activity may be reported under: next year, for planned activities.

    :param today: the date of the check (a datetime will do), so that intake can pass the time
        it records the event at.
    """
    return today.year + 1


@dataclass(frozen=True)
class Entry:
    """One catalogue entry: a code, a display name and any other detail the file gives."""

    code: str
    name: str
    aliases: tuple[str, ...] = ()
    detail: dict[str, str] = field(default_factory=dict)


def _fold(text: str) -> str:
    """Case-, accent- and apostrophe-insensitive key, so "Cote d'Ivoire" finds "Côte d’Ivoire"."""
    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'"))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


@dataclass(frozen=True)
class Reference:
    """All catalogues, with lookups by code or by any known name."""

    countries: dict[str, Entry]
    programmes: dict[str, Entry]
    offices: dict[str, Entry]
    kinds: dict[str, Entry]
    metrics: dict[str, Entry]
    _country_names: dict[str, str] = field(default_factory=dict, repr=False)
    _programme_names: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_country_names", _name_index(self.countries))
        object.__setattr__(self, "_programme_names", _name_index(self.programmes))

    def country_code(self, text: str) -> str | None:
        """The alpha-3 code for a code, UN name or alias; ``None`` when unknown."""
        # Most input is already a code: skip the Unicode folding for it.
        if text in self.countries:
            return text
        return self._country_names.get(_fold(text))

    def programme_code(self, text: str) -> str | None:
        """The programme code for a code, name or alias; ``None`` when unknown."""
        if text in self.programmes:
            return text
        return self._programme_names.get(_fold(text))

    def country_name(self, code: str) -> str:
        """Display name of a country code, or the code itself when unknown."""
        entry = self.countries.get(code)
        return entry.name if entry else code


def _name_index(entries: dict[str, Entry]) -> dict[str, str]:
    index: dict[str, str] = {}
    for entry in entries.values():
        for name in (entry.code, entry.name, *entry.aliases):
            index.setdefault(_fold(name), entry.code)
    return index


def _read(name: str, key: str) -> dict[str, Entry]:
    text = resources.files("events").joinpath("reference", f"{name}.json").read_text("utf-8")
    entries: dict[str, Entry] = {}
    for row in json.loads(text):
        code = row[key]
        detail = {k: v for k, v in row.items() if k not in (key, "name", "aliases")}
        entries[code] = Entry(
            code=code,
            name=row.get("name", code),
            aliases=tuple(row.get("aliases", ())),
            detail=detail,
        )
    return entries


@functools.cache
def load_reference() -> Reference:
    """The catalogues shipped with the package, read once per process."""
    return Reference(
        countries=_read("countries", "code"),
        programmes=_read("programmes", "code"),
        offices=_read("offices", "code"),
        kinds=_read("kinds", "code"),
        metrics=_read("metrics", "name"),
    )
