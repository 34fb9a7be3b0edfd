"""The activity page reads its history from a real stream: who, when, what changed and why."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from events.model import CountryShare, Source
from events.store import EventStore
from services.api.app import create_app
from tests.factories import make_reported, make_revised, sealed
from tests.query_seed import seed_projection


async def test_activity_page_shows_each_event_with_its_reason(store: EventStore, tmp_path: Path):
    live = tmp_path / "projections" / "ledger.db"
    seed_projection(live)
    reported = await store.append(sealed(make_reported()), expected_sequence=0)
    await store.append(
        sealed(
            make_revised(
                metrics={"people_trained": 575},
                countries=[CountryShare("KAZ", 60), CountryShare("KGZ", 40)],
                sources=[Source("SG report 2021 (A/76, item 109)", 21)],
                year=2020,  # sent again unchanged: no row
            )
        ),
        expected_sequence=reported.sequence,
    )

    # httpx's ASGI transport runs the app on this loop, where the NATS client lives.
    transport = httpx.ASGITransport(app=create_app(live, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        response = await client.get("/activities/KAZ-TRAINING-1")

    assert response.status_code == 200
    html = response.text
    history = html[html.index('id="history"') :]
    # Check the two events, oldest first, each with its actor and type.
    assert re.findall(r"<strong>(Reported|Revised)</strong>", history) == ["Reported", "Revised"]
    assert history.count("by <strong>test@example.org</strong>") == 2
    # Check the revision says what changed and why.
    assert "corrected against the final attendance list" in history
    # Check the revision shows only what changed, in words, before and after.
    revision = history[history.index("<strong>Revised</strong>") :]
    changed = [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", revision, re.S)[1:]
    ]
    assert changed == [
        ["Countries", "Kazakhstan", "→", "Kazakhstan (60%), Kyrgyzstan (40%)"],
        ["People trained", "571 people", "→", "575 people"],
        [
            "Sources",
            "para. 30 of SG report 2021 (A/76, item 109)",
            "→",
            "para. 21 of SG report 2021 (A/76, item 109)",
        ],
    ]
    assert "{" not in history and "&#39;" not in history
    assert 'data-testid="history-note"' not in html


async def test_activity_page_as_of_a_past_sequence_shows_the_events_up_to_it(
    store: EventStore, tmp_path: Path
):
    live = tmp_path / "projections" / "ledger.db"
    seed_projection(live)
    reported = await store.append(sealed(make_reported()), expected_sequence=0)
    await store.append(
        sealed(make_revised(metrics={"people_trained": 575})), expected_sequence=reported.sequence
    )

    transport = httpx.ASGITransport(app=create_app(live, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        then = await client.get(f"/activities/KAZ-TRAINING-1?as_of_sequence={reported.sequence}")
        now = await client.get("/activities/KAZ-TRAINING-1")

    assert then.status_code == now.status_code == 200
    history = then.text[then.text.index('id="history"') :]
    # Only the report was recorded by then; the revision is in the page of now.
    assert re.findall(r"<strong>(Reported|Revised)</strong>", history) == ["Reported"]
    assert f"The events recorded by sequence {reported.sequence}" in history
    assert "Revised" in now.text[now.text.index('id="history"') :]
