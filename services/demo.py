"""``ledger demo``: the report's first activities go into the stream and come back out.

Re-running it stores nothing new: event ids derive from the activity and the step, so the stream
recognises every repeat.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

from events.activity import fold_activity
from events.envelope import seal
from events.model import ActivityChanges, ActivityReported, ActivityRevised
from events.reference import load_reference
from events.validation import check_reported
from services.config import Settings
from services.stack import open_ledger

__all__ = ["DATASET", "read_dataset", "run_demo"]

DATASET = Path(__file__).resolve().parent.parent / "data" / "activities.jsonl"
"""The report's activities, one JSON object a line, in the import format."""

_REPORT_DATE = dt.datetime(2021, 6, 30, tzinfo=dt.UTC)


def read_dataset(path: Path = DATASET, limit: int | None = None) -> list[ActivityReported]:
    """The activities of the dataset file, checked against the reference data."""
    ref = load_reference()
    decoder = msgspec.json.Decoder(ActivityReported)
    lines = path.read_bytes().splitlines()[:limit]
    return [check_reported(decoder.decode(line), ref) for line in lines if line.strip()]


async def run_demo(settings: Settings, console: Console | None = None) -> None:
    """Report three activities, revise one, and print what the stream holds for them."""
    console = console or Console()
    activities = read_dataset(limit=3)
    async with open_ledger(settings) as ledger:
        store = ledger.store
        console.print(f"NATS at {ledger.url}, stream {store.ns.stream}")
        for activity in activities:
            event = seal(
                activity,
                office=activity.office,
                actor="demo",
                event_id=_demo_id(activity.activity_id, "reported"),
                occurred_at=_REPORT_DATE,
            )
            result = await store.append(event, expected_sequence=0)
            note = "already stored" if result.duplicate else "stored"
            console.print(f"  {activity.activity_id}: {note} at sequence {result.sequence}")

        first = await store.load(activities[0].activity_id)
        state = fold_activity([(r.sequence, r.event) for r in first.events])
        assert state is not None  # it was appended just above
        revision = ActivityRevised(
            activity_id=state.activity.activity_id,
            changes=ActivityChanges(notes="checked against the report by the demo"),
            reason="demo: a correction is a new event, never an edit",
        )
        event = seal(
            revision,
            office=state.activity.office,
            actor="demo",
            event_id=_demo_id(state.activity.activity_id, "revised"),
            prev=state.last_hash,
        )
        result = await store.append(event, expected_sequence=first.events[0].sequence)
        note = "already stored" if result.duplicate else "stored"
        console.print(f"  revision of {revision.activity_id}: {note} at sequence {result.sequence}")

        table = Table(title="What the stream holds for them")
        for column in ("seq", "event", "activity", "office", "figures or change"):
            table.add_column(column, overflow="fold")
        wanted = {a.activity_id for a in activities}
        async for record in store.read():
            event = record.event
            if event.activity_id not in wanted:
                continue
            payload = event.payload
            if isinstance(payload, ActivityReported):
                detail = ", ".join(f"{k}={v:,}" for k, v in payload.metrics.items()) or "-"
            elif isinstance(payload, ActivityRevised):
                detail = f"{', '.join(payload.changes.as_dict())}: {payload.reason}"
            else:
                detail = payload.reason
            table.add_row(
                str(record.sequence),
                event.type.removeprefix("Activity").lower(),
                event.activity_id,
                event.office,
                detail,
            )
        console.print(table)


def _demo_id(activity_id: str, step: str) -> str:
    from events.envelope import new_event_id

    return new_event_id(_REPORT_DATE, seed=f"demo:{activity_id}:{step}")
