"""The counting rules as pure functions: from an activity and an event to rollup row changes.

No SQL, no clock, no NATS: values in, values out, so that every rule can be tested alone.

An activity's *footprint* is what it adds to each rollup row, keyed by a :data:`Bucket`. Folding
an event computes the activity's footprint before and after the event; the difference is the
change to apply to the rollup rows. Figures are kept in integer millionths (``micros``), so that
sums are exact and do not depend on the order or grouping in which events are applied: a rebuild
and the live projector then agree to the last digit.

The rules (DESIGN.md, Counting rules):

- every active activity counts once in every total of its programme, its year and the globe;
- a single country, or several countries with shares, get their share of each figure;
- several countries without shares are *listed* under each country as multi-country, and count
  in no single country's total;
- a withdrawn activity counts nowhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from events.activity import ActivityState, apply_event
from events.envelope import Envelope
from events.errors import InvalidEventError, LedgerError
from events.model import ActivityReported

__all__ = [
    "ACTIVITY_COUNT",
    "COUNTRY_TABLES",
    "MICROS",
    "ROLLUP_KEYS",
    "Bucket",
    "FoldError",
    "Share",
    "Step",
    "add_deltas",
    "add_footprint",
    "allocate",
    "allocations",
    "country_parts",
    "decode_state",
    "diff_footprints",
    "encode_state",
    "fold_event",
    "fold_state",
    "footprint",
    "net_deltas",
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
    "totals": (),
}
"""Every rollup table with the columns that key it (besides ``metric``)."""

COUNTRY_TABLES = frozenset({"by_country", "country_year", "country_programme"})
"""The rollups that split an activity by country."""

Bucket = tuple[Any, ...]
"""``(table, *key values, metric)``: one rollup row, e.g. ``("by_country", "KAZ", "*")``."""


Share = tuple[int, int, int]
"""What one activity puts into one rollup row, or the signed change to a row:
``(micros, activities, multi_country)``. ``micros`` is the figure in millionths; ``activities``
is 1 when the activity counts in the row's total; ``multi_country`` is 1 when it is only listed
there, as multi-country without shares. Plain tuples keep the rebuild's inner loop cheap."""


_LISTED: Share = (0, 0, 1)


class FoldError(LedgerError):
    """Raised when an event cannot follow the activity's state (it goes to quarantine)."""


class Step(NamedTuple):
    """The outcome of folding one event."""

    before: ActivityState | None
    after: ActivityState
    deltas: dict[Bucket, Share]
    """Signed changes to rollup rows; rows that do not change are absent."""


def to_micros(value: float) -> int:
    """A figure in millionths, rounded to the nearest."""
    return round(value * MICROS)


def allocations(activity: ActivityReported) -> list[tuple[str, float | None]]:
    """Each country with the percent of the figures it gets; ``None`` means listed only.

    :raises FoldError: when shares are given for some countries but not all, or a country
        appears twice.
    """
    places = activity.countries
    if len(places) == 1:
        # Most activities have one country (85% in bench/synthetic.py): skip the checks,
        # which cost more than the rest of the fold of such an activity.
        share = places[0].share
        return [(places[0].country, 100.0 if share is None else float(share))]
    codes = [place.country for place in places]
    if len(set(codes)) != len(codes):
        raise FoldError(f"activity {activity.activity_id!r} names a country twice")
    shares = [place.share for place in places]
    if all(share is None for share in shares):
        if len(places) == 1:
            return [(codes[0], 100.0)]
        return [(code, None) for code in codes]
    if any(share is None for share in shares):
        raise FoldError(f"activity {activity.activity_id!r} gives shares for only some countries")
    return [(code, float(share)) for code, share in zip(codes, shares, strict=True)]


def allocate(micros: int, percent: float) -> int:
    """A country's part of a figure: ``percent`` of it, rounded to the nearest millionth."""
    return round(micros * percent / 100)


def footprint(state: ActivityState | None) -> dict[Bucket, Share]:
    """What an activity in this state puts into every rollup row; nothing when withdrawn."""
    if state is None or state.withdrawn:
        return {}
    activity = state.activity
    programme, year = activity.programme, activity.year
    figures = [(ACTIVITY_COUNT, None)] + [
        (metric, to_micros(value)) for metric, value in activity.metrics.items()
    ]
    places = allocations(activity)
    result: dict[Bucket, Share] = {}
    for metric, micros in figures:
        # The activity count is not a figure: it is 1 in every row the activity counts in.
        whole = (MICROS if micros is None else micros, 1, 0)
        result["totals", metric] = whole
        result["by_programme", programme, metric] = whole
        result["by_year", year, metric] = whole
        result["programme_year", programme, year, metric] = whole
        for country, percent in places:
            if percent is None:
                share = _LISTED
            elif micros is None:
                share = whole
            else:
                share = (allocate(micros, percent), 1, 0)
            result["by_country", country, metric] = share
            result["country_year", country, year, metric] = share
            result["country_programme", country, programme, metric] = share
    return result


def add_footprint(total: dict[Bucket, list[int]], state: ActivityState | None, sign: int) -> None:
    """Add ``sign`` times the activity's :func:`footprint` into ``total``, in place.

    The same sums as ``add_deltas(total, footprint(state))``, without building the footprint
    dict. A batch adds each touched activity's footprint after the batch and subtracts the one
    before it, which telescopes to the sum of its events' deltas (integer sums are exact), so
    an activity with several events in a batch is expanded twice, not twice per event. The
    rebuild's profile had put ~47 µs of ~80 µs per event into building and diffing
    footprints. (Summing at a finer grain first and spreading over the rollups at the end was
    measured slower: nearly every fine key is distinct within a batch.)

    :param sign: 1 to add the activity's figures, -1 to take them away.
    """
    if state is None or state.withdrawn:
        return
    activity = state.activity
    programme, year = activity.programme, activity.year
    places = allocations(activity)
    figures: list[tuple[str, int | None]] = [(ACTIVITY_COUNT, None)]
    figures += [(metric, round(value * MICROS)) for metric, value in activity.metrics.items()]
    get = total.get
    for metric, micros in figures:
        whole = sign * (MICROS if micros is None else micros)
        for bucket in (
            ("totals", metric),
            ("by_programme", programme, metric),
            ("by_year", year, metric),
            ("programme_year", programme, year, metric),
        ):
            row = get(bucket)
            if row is None:
                total[bucket] = [whole, sign, 0]
            else:
                row[0] += whole
                row[1] += sign
        for country, percent in places:
            if percent is None:
                part, counted, listed = 0, 0, sign
            elif micros is None:
                part, counted, listed = whole, sign, 0
            else:
                part, counted, listed = sign * allocate(micros, percent), sign, 0
            for bucket in (
                ("by_country", country, metric),
                ("country_year", country, year, metric),
                ("country_programme", country, programme, metric),
            ):
                row = get(bucket)
                if row is None:
                    total[bucket] = [part, counted, listed]
                else:
                    row[0] += part
                    row[1] += counted
                    row[2] += listed


def country_parts(activity: ActivityReported) -> list[tuple[str, dict[str, int] | None]]:
    """Each country of the activity with its part of every figure in millionths, as the
    ``country_*`` rollups count it; ``None`` for a country that only lists the activity.

    :raises FoldError: as :func:`allocations`.
    """
    figures = [(metric, to_micros(value)) for metric, value in activity.metrics.items()]
    return [
        (
            country,
            None
            if percent is None
            else {metric: allocate(micros, percent) for metric, micros in figures},
        )
        for country, percent in allocations(activity)
    ]


def diff_footprints(before: dict[Bucket, Share], after: dict[Bucket, Share]) -> dict[Bucket, Share]:
    """The signed changes that turn rows holding ``before`` into rows holding ``after``."""
    if not before:
        return dict(after)
    deltas: dict[Bucket, Share] = {}
    for bucket, share in after.items():
        old = before.get(bucket)
        if old is None:
            deltas[bucket] = share
        elif old != share:
            deltas[bucket] = (share[0] - old[0], share[1] - old[1], share[2] - old[2])
    for bucket, old in before.items():
        if bucket not in after:
            deltas[bucket] = (-old[0], -old[1], -old[2])
    return deltas


def add_deltas(total: dict[Bucket, list[int]], deltas: dict[Bucket, Share]) -> None:
    """Accumulate ``deltas`` into ``total`` in place; see :func:`net_deltas` for the result."""
    for bucket, share in deltas.items():
        row = total.get(bucket)
        if row is None:
            total[bucket] = list(share)
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

    The checks are those of :func:`fold_event`; a batch folds every event with this and
    computes the rollup changes once per activity (:func:`add_footprint`).

    :raises FoldError: as :func:`fold_event`.
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


def fold_event(state: ActivityState | None, envelope: Envelope[Any], sequence: int) -> Step:
    """Fold one stored event into its activity's state and the rollup rows.

    :param state: the activity as its earlier events left it; ``None`` before its report.
    :param envelope: the decoded event.
    :param sequence: the event's stream sequence.
    :raises FoldError: when the event cannot follow the state: a second report, a revision or
        withdrawal before the report, any event after the withdrawal, or inconsistent shares.
    """
    after = fold_state(state, envelope, sequence)
    deltas = diff_footprints(footprint(state), footprint(after))
    return Step(before=state, after=after, deltas=deltas)


def encode_state(state: ActivityState) -> bytes:
    """The activity state as stored in the ``activities`` table."""
    return msgspec.json.encode(state)


_state_decoder = msgspec.json.Decoder(ActivityState)


def decode_state(data: bytes | str) -> ActivityState:
    """The activity state from its stored form."""
    return _state_decoder.decode(data)
