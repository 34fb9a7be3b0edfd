"""The counting rules as pure functions: from an activity and an event to rollup row changes.

No SQL, no clock, no NATS: values in, values out, so that every rule can be tested alone.

An activity's *footprint* is what it puts into the figures: one row per place and metric
(:func:`footprint_rows`). The rules are written once, there; everything that counts goes
through it: :func:`add_footprint` spreads the rows over the rollups (keyed by a
:data:`Bucket`), the applier (live projector, rebuild and as-of replay alike) subtracts an
activity's footprint before a batch and adds the one after it and keeps every version's rows
for time travel, provenance adds one activity's footprint into an empty dict, and the rule
tests in ``tests/unit/test_fold.py`` call it as the applier does. :func:`fold_state`
folds an event into the activity's state and rejects what cannot follow. Figures are kept in
integer millionths (``micros``), so that sums are exact and do not depend on the order or
grouping in which events are applied: a rebuild and the live projector then agree to the last
digit.

The rules (docs/design.md, "Counting rules"):

- every active activity counts once in every total of its programme, its year and the globe;
- a single country, or several countries with shares, get their share of each figure;
- several countries without shares are *listed* under each country as multi-country, and count
  in no single country's total;
- a withdrawn activity counts nowhere (it stays in the history);
- a revision replaces the activity's old footprint with its new one;
- only figures of ``sum`` metrics are added up; a ``max`` or ``none`` metric counts the
  activities that report it, and its figures are kept apart (:func:`reported_figures`), one
  per activity, for the answers to take the largest or to list (events/metrics.py);
- a figure reported in another unit of a metric counts under that metric, converted exactly;
- a venue (a country that only hosted the activity) counts in none of its totals;
- an activity that is ``part_of`` another counts as an activity, but its figures count only
  in the other's, which already include them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from events.activity import ActivityState, apply_event
from events.envelope import Envelope
from events.errors import InvalidEventError, LedgerError
from events.metrics import metric_rules, rule_of, unsummed_metrics
from events.model import ActivityReported

__all__ = [
    "ACTIVITY_COUNT",
    "COUNTRY_TABLES",
    "MICROS",
    "ROLLUP_KEYS",
    "Bucket",
    "FoldError",
    "Footprint",
    "Share",
    "add_footprint",
    "add_share",
    "add_shares",
    "allocate",
    "allocations",
    "counted_figures",
    "country_parts",
    "decode_state",
    "documents_of",
    "encode_state",
    "fold_state",
    "footprint_rows",
    "is_listed_only",
    "net_deltas",
    "reported_figures",
    "to_micros",
]

MICROS = 1_000_000
"""Millionths per unit: the fixed-point scale of every stored figure."""

ACTIVITY_COUNT = "*"
"""The pseudo-metric whose total is the number of activities counted in a row (1 each)."""

ROLLUP_KEYS: dict[str, tuple[str, ...]] = {
    "by_country": ("country",),
    "by_programme": ("programme",),
    "by_year": ("year",),
    "country_year": ("country", "year"),
    "programme_year": ("programme", "year"),
    "country_programme": ("country", "programme"),
    "by_document": ("document",),
    "document_country": ("document", "country"),
    "totals": (),
}
"""Every rollup table with the columns that key it (besides ``metric``)."""

COUNTRY_TABLES = frozenset({"by_country", "country_year", "country_programme", "document_country"})
"""The rollups that split an activity by country."""

Bucket = tuple[Any, ...]
"""``(table, *key values, metric)``: one rollup row, e.g. ``("by_country", "KAZ", "*")``."""


Footprint = tuple[str, str, int, int, int]
"""One row of an activity's footprint: ``(place, metric, micros, counted, listed)``
(:func:`footprint_rows`)."""

Share = tuple[int, int, int]
"""What one activity puts into one rollup row, or the signed change to a row:
``(micros, activities, multi_country)``. ``micros`` is the figure in millionths; ``activities``
is 1 when the activity counts in the row's total; ``multi_country`` is 1 when it is only listed
there, as multi-country without shares. Plain tuples keep the rebuild's inner loop cheap."""


class FoldError(LedgerError):
    """Raised when an event cannot follow the activity's state (it goes to quarantine)."""


def to_micros(value: float) -> int:
    """A figure in millionths, rounded to the nearest."""
    return round(value * MICROS)


def allocations(activity: ActivityReported) -> list[tuple[str, float | None]]:
    """Each recipient country with the percent of the figures it gets; ``None`` means listed
    only. A venue (a country that only hosted the activity) gets nothing and is not listed.

    :raises FoldError: when shares are given for some recipients but not all, or a country
        appears twice.
    """
    places = activity.countries
    if len(places) == 1 and places[0].role == "recipient":
        # Most activities have one country (85% in bench/synthetic.py): skip the checks,
        # which cost more than the rest of the fold of such an activity.
        share = places[0].share
        return [(places[0].country, 100.0 if share is None else float(share))]
    codes = [place.country for place in places]
    if len(set(codes)) != len(codes):
        raise FoldError(f"activity {activity.activity_id!r} names a country twice")
    recipients = [place for place in places if place.role == "recipient"]
    shares = [place.share for place in recipients if place.share is not None]
    if not shares:
        if len(recipients) == 1:
            return [(recipients[0].country, 100.0)]
        return [(place.country, None) for place in recipients]
    if len(shares) != len(recipients):
        raise FoldError(f"activity {activity.activity_id!r} gives shares for only some countries")
    return [(place.country, float(place.share or 0)) for place in recipients]


def is_listed_only(activity: ActivityReported) -> int:
    """1 when the activity has several recipients and no shares: it is listed under each
    and counts in none of their totals; else 0."""
    recipients = [place for place in activity.countries if place.role == "recipient"]
    return int(len(recipients) > 1 and all(place.share is None for place in recipients))


def allocate(micros: int, percent: float) -> int:
    """A country's part of a figure: ``percent`` of it, rounded to the nearest millionth."""
    return round(micros * percent / 100)


def add_footprint(
    total: dict[Bucket, list[int]],
    state: ActivityState | None,
    sign: int,
    rows: list[Footprint] | None = None,
) -> None:
    """Add ``sign`` times what an activity in this state puts into every rollup row into
    ``total``, in place: its :func:`footprint_rows` spread over the rollups.

    Every active activity counts once (``activities`` 1, its whole figure) in ``totals``,
    ``by_programme``, ``by_year``, ``programme_year`` and the ``by_document`` row of each
    document that reports it (:func:`documents_of`). In the ``country_*`` rollups (and
    ``document_country``) a single country, or each of several countries with shares, gets its
    share of each figure and counts the activity once; several countries without shares each
    only list it (``multi_country`` 1, figure 0). A metric that is not summed counts its
    activities in a row, but its figure stays out (events/metrics.py): the answers list the
    activities' own figures. A withdrawn activity, or none, adds nothing.

    It adds into a shared dict rather than returning one, because that is how it is used on
    the hot path: a batch adds each touched activity's footprint after the batch and subtracts
    the one before it, which telescopes to the sum of its events' changes (integer sums are
    exact), so an activity with several events in a batch is expanded twice, not twice per
    event. (Building a dict per footprint and diffing the two was measured slower, ~35 against
    ~28 µs per event; so was summing at a finer grain first and spreading over the rollups at
    the end: nearly every fine key is distinct within a batch.)

    :param total: rows to add into, ``[micros, activities, multi_country]`` by bucket; rows
        may reach zero; ``write_rollups`` skips them.
    :param state: the activity; ``None`` before its report.
    :param sign: 1 to add the activity's figures, -1 to take them away.
    :param rows: the state's :func:`footprint_rows`, when the caller has them already (the
        appliers write them to the ``footprints`` table too).
    :raises FoldError: as :func:`allocations` (never for a state :func:`fold_state` gave).
    """
    if state is None or state.withdrawn:
        return
    activity = state.activity
    programme, year = activity.programme, activity.year
    documents = documents_of(activity)
    unsummed = unsummed_metrics()
    get = total.get
    bucket: Bucket
    for place, metric, micros, counted, listed in (
        footprint_rows(activity) if rows is None else rows
    ):
        part = 0 if metric in unsummed else sign * micros
        if place:
            counted, listed = sign * counted, sign * listed
            buckets = [
                ("by_country", place, metric),
                ("country_year", place, year, metric),
                ("country_programme", place, programme, metric),
                *(("document_country", document, place, metric) for document in documents),
            ]
        else:
            # The whole activity counts in full, multi-country or not.
            counted, listed = sign, 0
            buckets = [
                ("totals", metric),
                ("by_programme", programme, metric),
                ("by_year", year, metric),
                ("programme_year", programme, year, metric),
                *(("by_document", document, metric) for document in documents),
            ]
        for bucket in buckets:
            row = get(bucket)
            if row is None:
                total[bucket] = [part, counted, listed]
            else:
                row[0] += part
                row[1] += counted
                row[2] += listed


def documents_of(activity: ActivityReported) -> list[str]:
    """The documents that report the activity, each once, in the order its sources cite them.

    An activity cited by two reports counts in the figures of each, and once in every total
    that is not a document's.
    """
    sources = activity.sources
    if len(sources) == 1:
        return [sources[0].document]
    return list(dict.fromkeys(source.document for source in sources))


def counted_figures(activity: ActivityReported) -> dict[str, tuple[int, bool]]:
    """The activity's figures as the fold counts them: by canonical metric, in millionths of
    its unit, each with whether it is summed (events/metrics.py).

    A figure reported in another unit of a metric (tons for kilograms) is converted exactly:
    its millionths times the integer factor. An activity that is part of another has none:
    the other's figures include its own.
    """
    if activity.part_of is not None:
        # Its figures are already in the activity it is part of: they count there, once.
        return {}
    rules = metric_rules()
    out: dict[str, tuple[int, bool]] = {}
    for metric, value in activity.metrics.items():
        rule = rules.get(metric) or rule_of(metric)
        # to_micros inlined: this runs for every metric of every activity of a rebuild.
        micros = round(value * MICROS) * rule.factor
        prior = out.get(rule.canonical)
        if prior is not None:  # the same quantity reported in two units: both count
            micros += prior[0]
        out[rule.canonical] = (micros, rule.aggregate == "sum")
    return out


def country_parts(
    activity: ActivityReported, rows: list[Footprint] | None = None
) -> list[tuple[str, dict[str, int] | None]]:
    """Each country of the activity with its figures in millionths, as the ``country_*``
    rollups count them: its share of each summed figure, and the whole of each figure that is
    not summed; ``None`` for a country that only lists the activity.

    :param rows: the activity's :func:`footprint_rows`, if the caller has them.
    :raises FoldError: as :func:`allocations`.
    """
    parts: dict[str, dict[str, int] | None] = {}
    for place, metric, micros, _, listed in footprint_rows(activity) if rows is None else rows:
        if not place:
            continue
        if listed:
            parts[place] = None
        elif metric == ACTIVITY_COUNT:
            parts[place] = {}
        else:
            figures = parts[place]
            if figures is not None:
                figures[metric] = micros
    return list(parts.items())


def reported_figures(
    activity: ActivityReported, rows: list[Footprint] | None = None
) -> list[tuple[str, str, int]]:
    """The figures of the activity that are not summed, one row per place they are shown:
    ``(metric, country, micros)``, with ``""`` for the activity as a whole and a row for each
    country it counts in (not one that only lists it). Withdrawn activities have none: the
    caller leaves them out, as the rollups do.

    :param rows: the activity's :func:`footprint_rows`, if the caller has them.
    :raises FoldError: as :func:`allocations`.
    """
    unsummed = unsummed_metrics()
    return [
        (metric, place, micros)
        for place, metric, micros, counted, _ in (
            footprint_rows(activity) if rows is None else rows
        )
        if counted and metric in unsummed
    ]


def footprint_rows(activity: ActivityReported) -> list[Footprint]:
    """What the activity puts into the figures, one row per place and metric, as
    :func:`add_footprint` counts it: ``(place, metric, micros, counted, listed)``, with place
    ``""`` for the activity as a whole (``listed`` then says it is multi-country without
    shares), else a recipient country.

    The one difference from the rollups: a metric that is not summed keeps the activity's own
    figure (its rollup rows carry 0), so that an answer can list it or take the largest.
    The caller leaves withdrawn activities out.

    :raises FoldError: as :func:`allocations`.
    """
    figures = [(ACTIVITY_COUNT, MICROS, True)]
    figures += [(m, micros, summed) for m, (micros, summed) in counted_figures(activity).items()]
    # The whole activity's rows say in ``listed`` whether it is multi-country without shares,
    # so that a programme's or a year's list of those needs no other table.
    multi = is_listed_only(activity)
    rows = [("", metric, micros, 1, multi) for metric, micros, _ in figures]
    for country, percent in allocations(activity):
        if percent is None:
            rows += [(country, metric, 0, 0, 1) for metric, _, _ in figures]
        else:
            rows += [
                (
                    country,
                    metric,
                    allocate(micros, percent) if summed and metric != ACTIVITY_COUNT else micros,
                    1,
                    0,
                )
                for metric, micros, summed in figures
            ]
    return rows


def add_shares(total: dict[Bucket, list[int]], more: dict[Bucket, Share]) -> None:
    """Add rollup sums (of other activities, e.g. another part of a split replay) in place."""
    for bucket, share in more.items():
        add_share(total, bucket, share)


def add_share(total: dict[Any, list[int]], key: Any, share: Sequence[int]) -> None:
    """Add one ``(micros, counted, listed)`` to ``total[key]``, in place."""
    row = total.get(key)
    if row is None:
        total[key] = [share[0], share[1], share[2]]
    else:
        row[0] += share[0]
        row[1] += share[1]
        row[2] += share[2]


def net_deltas(total: dict[Bucket, list[int]]) -> dict[Bucket, Share]:
    """The accumulated changes, without the rows that net to nothing."""
    return {bucket: (m, a, c) for bucket, (m, a, c) in total.items() if m or a or c}


def fold_state(
    state: ActivityState | None, envelope: Envelope[Any], sequence: int
) -> ActivityState:
    """Fold one stored event into its activity's state, without the rollup rows.

    A batch folds every event with this and computes the rollup changes once per activity
    (:func:`add_footprint`). A withdrawn activity keeps its state, flagged withdrawn: it stays
    in the history and counts nowhere.

    :param state: the activity as its earlier events left it; ``None`` before its report.
    :param envelope: the decoded event.
    :param sequence: the event's stream sequence.
    :raises FoldError: when the event cannot follow the state: a second report, a revision or
        withdrawal before the report, any event after the withdrawal, or inconsistent shares.
    """
    if state is not None and state.withdrawn:
        raise FoldError(f"{envelope.type} after the activity was withdrawn")
    try:
        after = apply_event(state, envelope, sequence)
    except InvalidEventError as exc:
        raise FoldError(str(exc)) from None
    # Only a report or a revision of the countries can make the shares inconsistent; a
    # revision that leaves them keeps the very same list.
    if state is None or after.activity.countries is not state.activity.countries:
        allocations(after.activity)
    return after


def encode_state(state: ActivityState) -> bytes:
    """The activity state as stored in the ``activities`` table."""
    return msgspec.json.encode(state)


_state_decoder = msgspec.json.Decoder(ActivityState)


def decode_state(data: bytes | str) -> ActivityState:
    """The activity state from its stored form."""
    return _state_decoder.decode(data)
