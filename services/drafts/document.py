"""The shapes of a draft: what :mod:`.gather` reads, and what :mod:`.compose` makes of it.

Facts are plain values read from one snapshot of a projection; a :class:`Draft` is sections
of sentences whose figures each point at a numbered note. The writers (:mod:`.markdown`,
:mod:`.docx`) know only the draft.
"""

from __future__ import annotations

from msgspec import Struct

from projections.answers import AsOf, Release, SourceRef

__all__ = [
    "Cited",
    "Draft",
    "DraftFacts",
    "FigureFacts",
    "Mark",
    "Note",
    "Part",
    "Section",
    "SectionFacts",
    "Sentence",
]


class Cited(Struct, frozen=True, kw_only=True):
    """An activity as a note cites it, as it stood in the draft's ledger."""

    activity_id: str
    title: str
    kind: str
    year: int
    places: list[str]
    """The names of its recipient countries (venues left out), in its order."""
    sources: list[SourceRef]
    event_ids: list[str]
    """Its events up to the draft's ledger, oldest first."""
    last_event_id: str
    """The event that gave it the figures the draft uses."""
    sequence: int
    """That event's stream sequence."""


class Part(Struct, frozen=True, kw_only=True):
    """One activity's part in one figure of a section."""

    activity_id: str
    value: float
    """What it gives the figure: the whole figure, or the country's share of it."""
    share: float | None = None
    """The country's share in percent, when ``value`` is one."""


class FigureFacts(Struct, frozen=True, kw_only=True):
    """One metric of a section: how it adds up, and every activity's part in it."""

    metric: str
    rule: str
    """``sum``: the parts add up to ``total``; ``max`` or ``none``: never added up."""
    unit: str
    total: float | None
    parts: list[Part]


class SectionFacts(Struct, frozen=True, kw_only=True):
    """Everything one section says: a programme's or a country's figures and activities."""

    scope: str
    """``programme`` or ``country``."""
    code: str
    name: str
    year: int | None = None
    figures: list[FigureFacts]
    activities: list[Cited]
    """Every activity listed under the section, by year and id."""
    listed_only: list[str]
    """The ids of the multi-country activities without shares of a country: named, never
    given a figure there."""


class DraftFacts(Struct, frozen=True, kw_only=True):
    """The sections asked for, from one snapshot, and the ledger they reflect."""

    as_of: AsOf
    release: Release | None = None
    """The release asked for, if any."""
    sections: list[SectionFacts]


class Note(Struct, frozen=True, kw_only=True):
    """A numbered note: what a figure is made of, or where an activity comes from."""

    number: int
    text: str


class Mark(Struct, frozen=True, kw_only=True):
    """A run of a sentence that carries a note: a figure, or an activity's title."""

    text: str
    note: int
    figure: bool = True
    """True for a figure (written bold), False for a title."""


class Sentence(Struct, frozen=True):
    """Text and marked runs, in order."""

    runs: list[str | Mark]


class Section(Struct, frozen=True, kw_only=True):
    """A heading, its sentences, and the notes they point at."""

    heading: str
    sentences: list[Sentence]
    notes: list[Note]


class Draft(Struct, frozen=True, kw_only=True):
    """A whole draft: its sections and the footer naming the ledger it reflects."""

    title: str
    sections: list[Section]
    footer: str
