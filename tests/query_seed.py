"""A small ledger with known figures, for the read side's tests at every layer.

The events, in stream order (sequence in brackets):

- [1] ``KAZ-TRAINING-1``: GENERAL, 2020, Kazakhstan alone, 571 people trained.
- [2] ``CYBER-SHARED``: GPCC, 2021, Kazakhstan 60% and Uzbekistan 40%, 100 trained and 50
  participants, so Kazakhstan gets 60 and 30, Uzbekistan 40 and 20.
- [3] ``MULTI-1``: GENERAL, 2020, Kazakhstan, Uzbekistan and Kyrgyzstan without shares, 30
  trained: listed under each, counted in no country, counted in GENERAL, 2020 and the globe.
- [4] ``UZB-OP-1``: GENERAL, 2021, an operation in Uzbekistan by office KAZ, 200 firearms.
- [5] ``WITHDRAWN-1``: GENERAL, 2020, Kazakhstan, 1000 trained; [6] withdrawn: counts nowhere.
- [7] ``UZB-OP-1`` revised: 250 firearms, and a new summary mentioning "Trigger".

Expected figures are written out by hand in the tests, never read from the code under test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from events.codec import encode, headers_for
from events.envelope import Envelope, seal
from events.model import CountryShare, Source
from events.stored import RawMessage
from projections.apply import Applier
from projections.db import ensure_live, open_writer
from tests.factories import make_reported, make_revised, make_withdrawn, sealed

T0 = dt.datetime(2021, 6, 30, 12, 0, tzinfo=dt.UTC)
"""The stream time of sequence 1; each later event is one second later."""


def seed_events() -> list[Envelope[Any]]:
    """The seven events described in the module docstring, in stream order, each recorded
    (``recorded_at``) when the stream stores it: T0, then a second apart."""
    return [
        seal(
            event.payload,
            office=event.office,
            actor=event.actor,
            event_id=event.event_id,
            recorded_at=T0 + dt.timedelta(seconds=index),
        )
        for index, event in enumerate(_seed_payloads())
    ]


def _seed_payloads() -> list[Envelope[Any]]:
    return [
        sealed(
            make_reported(
                summary="Judges and prosecutors trained on asset recovery.",
                partners=["OSCE"],
                start_date=dt.date(2020, 3, 2),
                end_date=dt.date(2020, 3, 6),
                notes="from the report",
            )
        ),
        sealed(
            make_reported(
                activity_id="CYBER-SHARED",
                programme="GPCC",
                title="Cybercrime investigation course",
                summary="Investigators learned to handle digital evidence.",
                countries=[CountryShare("KAZ", 60), CountryShare("UZB", 40)],
                year=2021,
                metrics={"people_trained": 100, "participants": 50},
            )
        ),
        sealed(
            make_reported(
                activity_id="MULTI-1",
                title="Regional workshop on border control",
                countries=[CountryShare("KAZ"), CountryShare("UZB"), CountryShare("KGZ")],
                metrics={"people_trained": 30},
            )
        ),
        sealed(
            make_reported(
                activity_id="UZB-OP-1",
                office="KAZ",
                kind="operation",
                title="Firearms operation",
                countries=[CountryShare("UZB")],
                year=2021,
                metrics={"firearms_seized": 200},
            ),
            office="KAZ",
        ),
        sealed(make_reported(activity_id="WITHDRAWN-1", metrics={"people_trained": 1000})),
        sealed(make_withdrawn("WITHDRAWN-1")),
        sealed(
            make_revised(
                "UZB-OP-1",
                metrics={"firearms_seized": 250},
                summary="Operation Trigger seized illicit firearms at the border.",
            ),
            office="KAZ",
        ),
    ]


def raw_messages(events: list[Envelope[Any]], first: int = 1) -> list[RawMessage]:
    """The events as the stream would hold them, from sequence ``first``, one second apart."""
    start_ns = int(T0.timestamp()) * 1_000_000_000
    return [
        RawMessage(
            sequence,
            f"ledger.activity.{event.office}.{event.activity_id}",
            start_ns + (sequence - 1) * 1_000_000_000,
            headers_for(event),
            encode(event),
        )
        for sequence, event in enumerate(events, start=first)
    ]


def seed_projection(live: Path) -> Path:
    """A live projection link at ``live`` holding the seed events; returns the real file."""
    real = ensure_live(live)
    conn = open_writer(real)
    try:
        Applier(conn).apply(raw_messages(seed_events()))
    finally:
        conn.close()
    return real


DOCUMENT_2021 = "SG report 2021 (A/76, item 109)"
"""The document every seed activity cites."""
DOCUMENT_2022 = "A/77/100"


def seed_two_reports(live: Path) -> Path:
    """The seed, then [8] a 2022 report's own activity (40 trained in Kazakhstan, in 2020)
    and [9] a revision that cites the seed's 2021 training in the 2022 report too; returns
    the real file."""
    real = seed_projection(live)
    more = [
        sealed(
            make_reported(
                activity_id="KAZ-2022-1",
                metrics={"people_trained": 40},
                sources=[Source(DOCUMENT_2022, 5)],
            )
        ),
        sealed(make_revised(sources=[Source(DOCUMENT_2021, 30), Source(DOCUMENT_2022, 12)])),
    ]
    conn = open_writer(real)
    try:
        Applier(conn).apply(raw_messages(more, first=8))
    finally:
        conn.close()
    return real
