"""Builders of valid events for tests: ``make_reported(...)`` and friends, with overrides."""

from __future__ import annotations

from typing import Any

from events.envelope import Envelope, seal
from events.model import (
    ActivityChanges,
    ActivityReported,
    ActivityRevised,
    ActivityWithdrawn,
    CountryShare,
    Source,
)


def make_reported(**overrides: Any) -> ActivityReported:
    """A valid report: 571 people trained in Kazakhstan in 2020 (the seed report's figure)."""
    fields: dict[str, Any] = {
        "activity_id": "KAZ-TRAINING-1",
        "office": "HQ",
        "programme": "GENERAL",
        "kind": "training",
        "title": "Training of criminal justice practitioners",
        "countries": [CountryShare("KAZ")],
        "year": 2020,
        "metrics": {"people_trained": 571},
        "sources": [Source("SG report 2021 (A/76, item 109)", 30)],
    }
    fields.update(overrides)
    return ActivityReported(**fields)


def make_revised(activity_id: str = "KAZ-TRAINING-1", **changes: Any) -> ActivityRevised:
    """A revision of the given fields, with a reason."""
    return ActivityRevised(
        activity_id=activity_id,
        changes=ActivityChanges(**changes),
        reason="corrected against the final attendance list",
    )


def make_withdrawn(activity_id: str = "KAZ-TRAINING-1") -> ActivityWithdrawn:
    """A withdrawal, with a reason."""
    return ActivityWithdrawn(activity_id=activity_id, reason="reported twice by mistake")


def sealed(payload: Any, office: str = "HQ", prev: str = "", **kwargs: Any) -> Envelope[Any]:
    """The payload in an envelope, as intake would write it."""
    return seal(payload, office=office, actor="test@example.org", prev=prev, **kwargs)
