"""The three events of an activity's life, as msgspec Structs (schema version 2), and the
one event that is not an activity's, a release of the figures (events/release.py).

An activity is reported once, revised any number of times, and withdrawn at most once.
Events are facts in the past tense; nothing here is ever edited or deleted.

The Structs carry no size limits of their own. Limits are a rule about what intake accepts
(:mod:`events.limits`, enforced on commands and in :mod:`events.validation`), not about what
may be read back: an event stored before a limit existed must still decode, and replay for
ever.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from msgspec import UNSET, Struct, UnsetType

__all__ = [
    "SCHEMA_VERSION",
    "ActivityChanges",
    "ActivityReported",
    "ActivityRevised",
    "ActivityWithdrawn",
    "CountryShare",
    "Event",
    "FiguresReleased",
    "Role",
    "Source",
    "event_types",
]

SCHEMA_VERSION = 2
"""The version every event type is written at today; older versions are upcast on read
(``events/upcasters.py``). Version 2 gave an activity a list of ``sources`` in place of one
``source``, an optional ``part_of``, and each country a ``role``."""

Figure = int | float


Role = Literal["recipient", "venue"]
"""What a country is to an activity: one that received the assistance (and counts it in its
totals), or only the place where it happened."""


class CountryShare(Struct, frozen=True, forbid_unknown_fields=True):
    """One country of an activity, with its optional share of the activity's figures."""

    country: str
    """ISO 3166-1 alpha-3 code, e.g. ``KAZ``."""
    share: float | None = None
    """Percent of the activity's figures that belong to this country; all or none of the
    recipients have one."""
    role: Role = "recipient"
    """``venue`` for a country that only hosted the activity: it shows on the activity, and
    counts the activity in none of its totals."""


class Source(Struct, frozen=True, forbid_unknown_fields=True):
    """Where a figure was published, so that it can be traced to the text."""

    document: str
    """Document symbol or title, e.g. the report's symbol."""
    paragraph: int | None = None
    """Numbered paragraph of the document that gives the figures."""


class ActivityReported(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A field office reported an activity for the first time."""

    activity_id: str
    """Stable id chosen by the office: letters, digits, ``_`` and ``-``, at most 64 characters."""
    office: str
    """Code of the reporting office, from the office catalogue."""
    programme: str
    """Code of the programme the activity belongs to, from the programme catalogue."""
    kind: str
    """What sort of activity: ``training``, ``operation``, ``conference``, ... (kind catalogue)."""
    title: str
    """Short human title."""
    summary: str = ""
    """One or two sentences on what happened."""
    countries: list[CountryShare] = []
    """Beneficiary countries; empty for a global activity."""
    year: int
    """Calendar year the activity is reported under."""
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    metrics: dict[str, Figure] = {}
    """Figures by metric name (metric catalogue), e.g. ``{"people_trained": 571}``."""
    partners: list[str] = []
    """Partner organisations, as named by the office."""
    sources: list[Source] = []
    """Where the activity is reported: every document and paragraph that cites it."""
    part_of: str | None = None
    """The activity whose figures already include this one's (a programme's cumulative
    figures and one of its initiatives): its figures then count once, in that activity."""
    notes: str = ""
    """Remarks on the record itself, e.g. that the year was inferred from context."""


class ActivityChanges(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fields a revision changes, each with its complete new value; absent fields stay."""

    programme: str | UnsetType = UNSET
    kind: str | UnsetType = UNSET
    title: str | UnsetType = UNSET
    summary: str | UnsetType = UNSET
    countries: list[CountryShare] | UnsetType = UNSET
    year: int | UnsetType = UNSET
    start_date: dt.date | UnsetType | None = UNSET
    end_date: dt.date | UnsetType | None = UNSET
    metrics: dict[str, Figure] | UnsetType = UNSET
    """The whole new metrics mapping, not a delta: a metric left out is dropped."""
    partners: list[str] | UnsetType = UNSET
    sources: list[Source] | UnsetType = UNSET
    part_of: str | UnsetType | None = UNSET
    notes: str | UnsetType = UNSET

    def as_dict(self) -> dict[str, object]:
        """The changed fields only, by name."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not UNSET
        }


class ActivityRevised(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An office corrected some fields of an activity, and said why."""

    activity_id: str
    changes: ActivityChanges
    reason: str
    """Why the figures changed; required, and kept in history for auditors."""


class ActivityWithdrawn(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An office withdrew an activity: it counts nowhere from now on but stays in history."""

    activity_id: str
    reason: str


class FiguresReleased(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Headquarters released the figures as of one sequence under a name."""

    name: str
    """A token: 1-64 letters, digits, ``_`` or ``-``; the last token of the subject."""
    sequence: int
    """The stream sequence whose figures it states."""
    digest: str
    """Hex SHA-256 over every rollup row at ``sequence``, in canonical order."""
    note: str = ""

    @property
    def activity_id(self) -> str:
        """What an envelope's ``activity_id`` reads: the release's own key, never an id an
        activity can have (it holds a colon)."""
        return f"release:{self.name}"


Event = ActivityReported | ActivityRevised | ActivityWithdrawn


def event_types() -> dict[str, type[Event]]:
    """The event classes by their type name, as written in the ``type`` field and header."""
    return {cls.__name__: cls for cls in (ActivityReported, ActivityRevised, ActivityWithdrawn)}
