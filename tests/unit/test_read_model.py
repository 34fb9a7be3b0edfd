"""The read side's handle: kept answers never outlive a change, queries run in worker threads,
and a snapshot reads one state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import queries
from projections.apply import Applier
from projections.db import new_database_path, open_writer, resolve, switch_live
from services.api.read_model import ReadModel
from tests.factories import make_reported, sealed
from tests.query_seed import raw_messages, seed_events, seed_projection

# Kazakhstan in the seed ledger (tests/query_seed.py): 571 trained alone, 60% of 100 shared.
KAZ_TRAINED = 571 + 60
NEW_KAZ = make_reported(activity_id="KAZ-NEW", metrics={"people_trained": 12})


@pytest.fixture
def live(tmp_path: Path) -> Path:
    """The live link of a projection holding the seed ledger."""
    path = tmp_path / "ledger.db"
    seed_projection(path)
    return path


@pytest.fixture
def model(live: Path) -> Iterator[ReadModel]:
    """The read model over ``live``, answers kept."""
    read_model = ReadModel(live)
    yield read_model
    read_model.close()


def _apply(path: Path, messages: list) -> None:
    conn = open_writer(path)
    try:
        Applier(conn).apply(messages)
    finally:
        conn.close()


async def test_an_answer_is_given_again_until_the_projector_commits(
    live: Path, model: ReadModel
) -> None:
    first = await model.query(None, queries.country_summary, "KAZ")
    again = await model.query(None, queries.country_summary, "KAZ")
    assert first.totals["people_trained"] == again.totals["people_trained"] == KAZ_TRAINED
    # Another connection commits, as the projector does: the next answer must include it.
    _apply(resolve(live), raw_messages([sealed(NEW_KAZ)], first=len(seed_events()) + 1))
    after = await model.query(None, queries.country_summary, "KAZ")
    assert after.totals["people_trained"] == KAZ_TRAINED + 12
    assert after.as_of.sequence == len(seed_events()) + 1


async def test_different_arguments_get_their_own_answers(model: ReadModel) -> None:
    kaz = await model.query(None, queries.country_summary, "KAZ")
    uzb = await model.query(None, queries.country_summary, "UZB")
    kaz_2021 = await model.query(None, queries.country_summary, "KAZ", 2021)
    page = await model.query(None, queries.list_activities, country="UZB", limit=1)
    # Uzbekistan: 40% of CYBER-SHARED's 100 trained; Kazakhstan in 2021: 60% of it.
    assert (kaz.country, uzb.country) == ("KAZ", "UZB")
    assert uzb.totals["people_trained"] == 40
    assert kaz_2021.totals == {"people_trained": 60, "participants": 30}
    assert len(page.items) == 1 and page.next_cursor


async def test_a_switch_to_a_rebuilt_file_is_seen_at_once(
    live: Path, model: ReadModel, tmp_path: Path
) -> None:
    before = await model.query(None, queries.country_summary, "KAZ")
    # A rebuild writes a new file holding one event, then repoints the link.
    rebuilt = new_database_path(tmp_path)
    _apply(rebuilt, raw_messages([sealed(NEW_KAZ)]))
    switch_live(live, rebuilt)
    after = await model.query(None, queries.country_summary, "KAZ")
    assert before.totals["people_trained"] == KAZ_TRAINED
    assert after.totals == {"people_trained": 12}
    assert after.as_of.sequence == 1


def _thread_name(conn: object) -> str:
    return threading.current_thread().name


async def test_queries_run_in_worker_threads_not_on_the_loop(model: ReadModel) -> None:
    loop_thread = threading.current_thread().name
    ran_in = await model.query(None, _thread_name)
    also = await model.run(_thread_name)

    assert ran_in.startswith("ledger-read") and also.startswith("ledger-read")
    assert loop_thread not in (ran_in, also)
    # Each thread reads through a connection of its own: SQLite's are bound to their thread.
    conns = {id(await model.run(lambda conn: conn)) for _ in range(8)}
    assert id(model.connection()) not in conns


async def test_a_snapshot_reads_one_state_while_the_projector_commits(
    live: Path, model: ReadModel
) -> None:
    snapshot = await model.snapshot()
    try:
        before = await snapshot.run(queries.current_sequence)
        _apply(resolve(live), raw_messages([sealed(NEW_KAZ)], first=len(seed_events()) + 1))
        during = await snapshot.run(lambda conn: queries.country_summary(conn, "KAZ"))
    finally:
        snapshot.close()
    now = await model.run(queries.current_sequence)

    assert before == during.as_of.sequence == len(seed_events())
    assert during.totals["people_trained"] == KAZ_TRAINED
    assert now == len(seed_events()) + 1
    with pytest.raises(RuntimeError, match="closed"):
        await snapshot.run(queries.current_sequence)
