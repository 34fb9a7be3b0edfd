"""The seed report's ledger (``data/activities.jsonl`` and ``data/revisions.jsonl``) as a
projection file, built by the projector's applier without a stream: what the IATI tests export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from events.envelope import Envelope
from events.model import ActivityChanges, ActivityRevised
from projections.apply import Applier
from projections.db import ensure_live, open_writer
from services.cli.demo import read_dataset, read_revisions
from tests.factories import sealed
from tests.query_seed import raw_messages


def seed_report_events() -> list[Envelope[Any]]:
    """Every activity of the seed report, then every revision, as intake would seal them."""
    reported = read_dataset()
    offices = {activity.activity_id: activity.office for activity in reported}
    events = [sealed(activity, office=activity.office) for activity in reported]
    for revision in read_revisions():
        changes = msgspec.convert(revision.changes, ActivityChanges)
        payload = ActivityRevised(
            activity_id=revision.activity_id, changes=changes, reason=revision.reason
        )
        events.append(sealed(payload, office=offices[revision.activity_id]))
    return events


def seed_report_projection(live: Path) -> Path:
    """A live projection link at ``live`` holding the seed report; returns the real file."""
    real = ensure_live(live)
    conn = open_writer(real)
    try:
        Applier(conn).apply(raw_messages(seed_report_events()))
    finally:
        conn.close()
    return real
