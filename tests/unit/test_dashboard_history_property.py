"""Property: any activity's history renders in words, never as Python writes its values.

The random ledgers of tests/unit/test_projection_property.py (reports, revisions and
withdrawals over countries with and without shares, venues, metrics, sources and parts) are
split by activity, the events that cannot follow dropped as the projector quarantines them, and
each activity's history is rendered by the page's own template.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from html import unescape
from typing import Any

from hypothesis import HealthCheck, given, settings

from events.activity import ActivityState, apply_event
from events.envelope import Envelope
from events.errors import InvalidEventError
from events.stored import Recorded
from projections.answers import AsOf
from replay.history import history_of
from services.api.dashboard.history_text import tell_history
from services.api.dashboard.render import Page, render
from tests.unit.test_projection_property import ledgers

T0 = dt.datetime(2021, 6, 30, tzinfo=dt.UTC)


def histories(events: list[tuple[int, Envelope[Any]]]) -> dict[str, list[Recorded]]:
    """Each activity's events that follow one another, as the stream hands them over."""
    states: dict[str, ActivityState | None] = defaultdict(lambda: None)
    found: dict[str, list[Recorded]] = defaultdict(list)
    for sequence, envelope in events:
        try:
            states[envelope.activity_id] = apply_event(
                states[envelope.activity_id], envelope, sequence
            )
        except InvalidEventError:
            continue  # quarantined by the projector; the stream's history would hold it
        subject = f"ledger.activity.HQ.{envelope.activity_id}"
        found[envelope.activity_id].append(Recorded(sequence, T0, subject, envelope))
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers())
def test_generated_histories_render_without_a_python_repr(events):
    page = Page("History", AsOf(sequence=len(events), time=T0))

    for records in histories(events).values():
        told = tell_history(history_of(records))
        # Unescaped: the template escapes quotes, and a repr must not hide behind &#39;.
        html = unescape(render("history.html", page, history=told).content)

        assert "{'" not in html and "[{" not in html and "': " not in html
        assert "None" not in html and "UNSET" not in html
        # Every event is there, and every revision that changed a field says what.
        assert html.count('data-testid="history-entry"') == len(records)
