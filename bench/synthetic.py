"""Synthetic ledgers for benchmarks and load tests, drawn from the real catalogues.

The mix follows the projections issue: about 190 countries, 20 programmes, 12 years, 10%
revisions, 2% withdrawals and 15% multi-country activities (half of them with shares). The same
seed always gives the same events, ids included, so runs compare like with like.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

from events.activity import revise
from events.envelope import Envelope, new_event_id, seal
from events.model import (
    ActivityChanges,
    ActivityReported,
    ActivityRevised,
    ActivityWithdrawn,
    CountryShare,
    Source,
)
from events.reference import load_reference

__all__ = ["YEARS", "synthetic_activities", "synthetic_epoch", "synthetic_events"]

YEARS = tuple(range(2010, 2022))
_METRICS = ("people_trained", "participants", "countries_assisted", "firearms_seized")
_KINDS = ("training", "operation", "technical_assistance", "conference", "campaign")
_EPOCH = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)


def synthetic_epoch() -> dt.datetime:
    """The instant of the first synthetic event; each next one is recorded a second later."""
    return _EPOCH


def _catalogue() -> tuple[list[str], list[str], list[str]]:
    ref = load_reference()
    countries = sorted(ref.countries)[:190]
    programmes = sorted(ref.programmes)[:20]
    offices = sorted(ref.offices)
    return countries, programmes, offices


def synthetic_activities(n: int, seed: int = 0, prefix: str = "S") -> Iterator[ActivityReported]:
    """``n`` distinct, valid reported activities."""
    rng = random.Random(seed)
    countries, programmes, offices = _catalogue()
    for i in range(n):
        multi = rng.random() < 0.15
        chosen = rng.sample(countries, rng.randint(2, 4) if multi else 1)
        if multi and rng.random() < 0.5:
            base = 100 // len(chosen)
            shares = [float(base)] * (len(chosen) - 1) + [float(100 - base * (len(chosen) - 1))]
            places = [CountryShare(c, s) for c, s in zip(chosen, shares, strict=True)]
        else:
            places = [CountryShare(c) for c in chosen]
        yield ActivityReported(
            activity_id=f"{prefix}{seed}-{i:08d}",
            office=rng.choice(offices),
            programme=rng.choice(programmes),
            kind=rng.choice(_KINDS),
            title=f"Synthetic activity {i}",
            summary="Generated for benchmarks.",
            countries=places,
            year=rng.choice(YEARS),
            metrics={m: rng.randint(1, 500) for m in rng.sample(_METRICS, rng.randint(1, 2))},
            sources=[Source("synthetic", i % 200 + 1)],
        )


def synthetic_events(
    n: int, seed: int = 0, prefix: str = "S"
) -> Iterator[tuple[Envelope[Any], int]]:
    """``n`` sealed events with the expected sequence each would be appended at.

    About 88% are reports, 10% revisions of an earlier activity and 2% withdrawals; nothing is
    revised after its withdrawal. Sequences assume an empty stream and the order given.
    """
    rng = random.Random(seed + 1)
    activities = synthetic_activities(n, seed, prefix)
    # The live activities, with the sequence and hash of their latest event; a list of ids
    # beside the dict lets a random pick and a removal both take constant time.
    state: dict[str, tuple[ActivityReported, int, str]] = {}
    ids: list[str] = []
    for sequence in range(1, n + 1):
        at = _EPOCH + dt.timedelta(seconds=sequence)
        roll = rng.random()
        if ids and roll < 0.12:
            index = rng.randrange(len(ids))
            activity, expected, prev = state[ids[index]]
            if roll < 0.02:
                payload: Any = ActivityWithdrawn(
                    activity_id=activity.activity_id, reason="synthetic withdrawal"
                )
            else:
                metric = next(iter(activity.metrics))
                changes = ActivityChanges(
                    metrics={**activity.metrics, metric: rng.randint(501, 1000)},
                    year=rng.choice(YEARS),
                )
                payload = ActivityRevised(
                    activity_id=activity.activity_id, changes=changes, reason="synthetic revision"
                )
        else:
            activity = next(activities)
            payload, expected, prev = activity, 0, ""
        event = seal(
            payload,
            office=activity.office,
            actor="bench",
            event_id=new_event_id(at, seed=f"{prefix}{seed}:{sequence}"),
            occurred_at=at,
            recorded_at=at,
            prev=prev,
        )
        if isinstance(payload, ActivityWithdrawn):
            del state[activity.activity_id]
            ids[index] = ids[-1]
            ids.pop()
        elif isinstance(payload, ActivityRevised):
            state[activity.activity_id] = (revise(activity, payload.changes), sequence, event.hash)
        else:
            state[activity.activity_id] = (activity, sequence, event.hash)
            ids.append(activity.activity_id)
        yield event, expected
