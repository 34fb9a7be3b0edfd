"""The shapes of the read side's answers: plain msgspec Structs, each carrying ``as_of``.

HTTP, the CLI's ``--json`` and NATS request-reply all encode these same Structs, so one query
gives one JSON whatever the interface. Fields that do not apply to an answer are ``null``, so
every answer of a kind has the same keys.
"""

from __future__ import annotations

import datetime as dt

from msgspec import Struct

__all__ = [
    "ActivityDetail",
    "ActivityItem",
    "ActivityPage",
    "ActivityRef",
    "AsOf",
    "Cell",
    "CellList",
    "Place",
    "ProjectionStatus",
    "Provenance",
    "ProvenanceItem",
    "Reported",
    "ReportedFigure",
    "SourceRef",
    "Status",
    "Summary",
]


class AsOf(Struct, frozen=True, omit_defaults=True):
    """Which ledger an answer reflects: how far the projection had read the stream, or the
    past sequence asked for, and the document it is narrowed to."""

    sequence: int
    """The last stream sequence applied; 0 for an empty projection."""
    time: dt.datetime | None
    """When that event was stored in the stream (UTC); ``None`` for an empty projection."""
    now: bool = True
    """False for an answer as of a past sequence or instant (``as_of``, ``as_of_sequence``)."""
    document: str | None = None
    """The document the answer is narrowed to, if any (``document``)."""
    asked: dt.datetime | None = None
    """The instant asked for, when ``as_of`` gave one: ``sequence`` is the last recorded by
    then."""
    release: str | None = None
    """The release asked for, when ``release`` gave the sequence."""


class ReportedFigure(Struct, frozen=True, kw_only=True):
    """One activity's own figure of a metric that is not summed."""

    activity_id: str
    value: float


class Reported(Struct, frozen=True, kw_only=True):
    """A metric that is not summed, as a row of an answer shows it: never a total.

    Its rule (events/metrics.py) says why: ``none`` for figures that adding would count twice
    (the countries two activities assisted may be the same), ``max`` for a headline figure
    that several activities report cumulatively, of which the largest stands for all.
    """

    rule: str
    """``max`` or ``none``."""
    unit: str
    activities: int
    """How many activities counted here report it."""
    value: float | None = None
    """For ``max``: the largest figure. Never set for ``none``."""
    activity_id: str | None = None
    """For ``max``: the activity that reported the largest figure."""
    figures: list[ReportedFigure] = []
    """In a summary's head: the largest figures, one per activity, largest first, at most
    ``projections.queries.REPORTED_LISTED`` of them; empty in a breakdown's rows."""


class Cell(Struct, frozen=True, kw_only=True):
    """One row of a rollup seen by a reader: a key, its counts and its totals per metric."""

    country: str | None = None
    programme: str | None = None
    year: int | None = None
    document: str | None = None
    name: str = ""
    """Display name of the country or programme (empty for a year)."""
    activities: int = 0
    """Activities counted in the totals."""
    multi_country: int = 0
    """Multi-country activities without shares listed here but counted in no country's total."""
    totals: dict[str, float] = {}
    """Totals by metric, e.g. ``{"people_trained": 571.0}``: the metrics that are summed."""
    reported: dict[str, Reported] = {}
    """The metrics that are not summed, by metric: how many activities report each."""


class ActivityRef(Struct, frozen=True, kw_only=True):
    """A short mention of an activity, as in a summary's multi-country list."""

    activity_id: str
    title: str
    programme: str
    year: int
    countries: list[str]


class Summary(Struct, frozen=True, kw_only=True):
    """Figures for one country, programme or year, optionally narrowed to a year."""

    as_of: AsOf
    country: str | None = None
    programme: str | None = None
    year: int | None = None
    name: str = ""
    activities: int = 0
    """Activities counted in the totals."""
    totals: dict[str, float] = {}
    """Totals of the metrics that are summed, in each metric's unit."""
    reported: dict[str, Reported] = {}
    """The metrics that are not summed, with the activities' own figures instead of a total."""
    rules: dict[str, str] = {}
    """How each metric of ``totals`` and ``reported`` was made: ``sum``, ``max`` or ``none``."""
    units: dict[str, str] = {}
    """The unit of each metric of ``totals`` and ``reported``."""
    multi_country_count: int = 0
    """How many multi-country activities (without shares) are listed here in all."""
    multi_country: list[ActivityRef] = []
    """Those activities, at most a bounded number of them, by activity id."""
    note: str = ""
    """How to read the multi-country figures."""
    by_year: list[Cell] | None = None
    by_programme: list[Cell] | None = None
    by_country: list[Cell] | None = None


class CellList(Struct, frozen=True, kw_only=True):
    """Every country, programme or year with its figures, optionally narrowed to a year."""

    as_of: AsOf
    year: int | None = None
    items: list[Cell] = []


class Place(Struct, frozen=True):
    """One country of an activity and its share in percent (``None``: listed without share)."""

    country: str
    share: float | None = None
    role: str = "recipient"
    """``recipient``, or ``venue`` for a country that only hosted the activity: it counts
    the activity in none of its figures."""


class SourceRef(Struct, frozen=True):
    """A document, and the paragraph of it, that reports the activity."""

    document: str
    paragraph: int | None = None


class ActivityItem(Struct, frozen=True, kw_only=True):
    """An activity as a list shows it."""

    activity_id: str
    office: str
    programme: str
    kind: str
    title: str
    year: int
    countries: list[Place]
    metrics: dict[str, float]
    status: str
    """``active`` or ``withdrawn``."""
    multi_country: bool
    version: int
    last_sequence: int


class ActivityPage(Struct, frozen=True, kw_only=True):
    """One page of activities; pass ``next_cursor`` back as ``cursor`` for the next one."""

    as_of: AsOf
    items: list[ActivityItem]
    limit: int
    next_cursor: str | None = None
    """``None`` on the last page."""


class ActivityDetail(Struct, frozen=True, kw_only=True):
    """The current state of one activity, with every field and its events."""

    as_of: AsOf
    activity_id: str
    office: str
    programme: str
    kind: str
    title: str
    summary: str
    year: int
    start_date: dt.date | None
    end_date: dt.date | None
    countries: list[Place]
    metrics: dict[str, float]
    multi_country: bool
    partners: list[str]
    sources: list[SourceRef]
    """Every document and paragraph that reports the activity."""
    part_of: str | None
    """The activity whose figures include this one's: its own count only there."""
    parts: list[str]
    """The activities that are part of this one: their figures are in this one's."""
    notes: str
    status: str
    withdraw_reason: str
    version: int
    last_sequence: int
    last_event_id: str
    event_ids: list[str]
    """Every event of the activity, oldest first."""


class ProvenanceItem(Struct, frozen=True, kw_only=True):
    """One activity's part in a figure."""

    activity_id: str
    title: str
    value: float
    """What it adds to the figure (its share, for a shared activity)."""
    counted: bool
    multi_country: bool
    """Listed only: multi-country without shares, so it adds nothing to a country's figure."""
    event_ids: list[str]
    last_event_id: str
    figure: float | None = None
    """For a metric that is not summed: the activity's own figure (``value`` is then 0: it
    adds nothing)."""


class Provenance(Struct, frozen=True, kw_only=True):
    """The activities and events behind one figure, a page at a time by activity id.

    For a summed metric, ``total`` is the sum of the values of every page's items; pass
    ``next_cursor`` back as ``cursor`` for the next page.
    """

    as_of: AsOf
    country: str | None = None
    programme: str | None = None
    year: int | None = None
    metric: str
    rule: str = "sum"
    """How the figure is made (events/metrics.py): ``sum`` of the values; ``max``, the
    largest of the activities' own figures; ``none``, no figure, only the activities' own."""
    total: float | None = 0.0
    """The sum, or for ``max`` the largest figure; ``None`` for ``none``."""
    largest: str | None = None
    """For ``max``: the activity whose figure stands for all."""
    activities: int = 0
    """Activities counted in the figure, on every page."""
    items: list[ProvenanceItem] = []
    limit: int
    next_cursor: str | None = None
    """``None`` on the last page."""


class ProjectionStatus(Struct, frozen=True, kw_only=True):
    """One projection's progress."""

    projection: str
    checkpoint: int
    lag: int | None = None
    """How many stream sequences it is behind; ``None`` when the stream was not asked."""
    quarantined: int = 0


class Status(Struct, frozen=True, kw_only=True):
    """The stream's last sequence and each projection's checkpoint, lag and quarantine."""

    as_of: AsOf
    stream_last_sequence: int | None = None
    projections: list[ProjectionStatus] = []
    follows_stream: bool = True
    """Whether the server follows the stream; ``False`` for a projection file served alone
    (``ledger up --read-only``), which reflects ``as_of`` and nothing later."""
    lag_note: str | None = None
    """When no lag is given: why, and what to do (the stream could not be read), or what a
    file served alone reflects."""


class Release(Struct, frozen=True, kw_only=True):
    """A named, signed statement of the figures as of one sequence."""

    name: str
    sequence: int
    """The sequence whose figures it states: ``?release=NAME`` means ``as_of_sequence``."""
    time: dt.datetime | None
    """When that sequence's event was recorded."""
    digest: str
    """SHA-256 over every rollup row at that sequence, in canonical order (hex)."""
    note: str
    office: str
    actor: str
    event_id: str
    recorded_sequence: int
    """The release event's own sequence in the stream."""
    recorded_at: dt.datetime
    """When the release was made."""


class ReleaseList(Struct, frozen=True, kw_only=True):
    """Every release, oldest first."""

    as_of: AsOf
    items: list[Release] = []


class Timeline(Struct, frozen=True, kw_only=True):
    """The ledger's history for a time control: where it starts and ends, points between
    for labels, and the releases to mark."""

    as_of: AsOf
    first: AsOf | None = None
    """The first event applied; ``None`` for an empty ledger."""
    last: AsOf | None = None
    """The last event applied (the present)."""
    points: list[AsOf] = []
    """Up to a hundred events spread evenly over the history, first and last included."""
    releases: list[Release] = []
