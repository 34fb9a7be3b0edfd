"""A replay split by activity between processes, against a real nats-server: the same rows as
one process, row for row, and nothing left behind when it fails or is killed."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.synthetic import synthetic_epoch, synthetic_events
from events.keys import KeyRegistry
from events.store import EventStore
from events.stored import RawMessage
from projections import marks
from projections.db import live_path, open_reader, resolve
from replay import progress
from replay.asof import replay_as_of
from replay.partition import PartError, part_of
from replay.rebuild import build_projection, rebuild
from replay.source import StreamSource
from replay.verify import verify
from services.infra.embedded import EmbeddedNats
from tests.integration.test_bulk_rebuild import fill_with_poison, live_rows, rows_of, rows_of_file


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".building" in p.name)


@pytest.fixture
def marks_every_37(monkeypatch: pytest.MonkeyPatch) -> int:
    """Marks every 37 sequences (50,000 in use), so that a short history has many; the parts'
    processes take the spacing from the replay's plan."""
    monkeypatch.setattr(marks, "MARK_EVERY", 37)
    return 37


@pytest.mark.parametrize("parts", [2, 3])
async def test_a_split_rebuild_equals_the_live_projection_row_for_row(
    nats_server: EmbeddedNats,
    store: EventStore,
    tmp_path: Path,
    parts: int,
    marks_every_37: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(progress, "EVERY", 0.0)  # name every step, however short the work
    last = await fill_with_poison(store)
    expected = await live_rows(store, tmp_path / "live.db")
    source = StreamSource(store, nats_server.url)
    # A cache of 30 activities in all: parts write most out and read many back.
    result = await build_projection(
        source, tmp_path / "split.db", parts=parts, batch_size=30, progress=False
    )
    assert result.parts == parts
    assert result.checkpoint == last
    assert rows_of_file(tmp_path / "split.db") == expected
    assert len(expected["marks"]) == last // marks_every_37
    assert leftovers(tmp_path) == []
    # After the last event is read, each step that counts none is named: not a silent wait.
    steps = [
        line.removeprefix("rebuild: ")
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("rebuild: ") and " events, " not in line
    ]
    assert steps == [
        "summing the marks",
        f"taking in the other parts ({parts - 1}) as they end",
        "writing the rollups and the checkpoint",
        "creating the indexes and the full-text index",
    ]


async def test_every_part_gets_whole_activities(store: EventStore):
    await fill_with_poison(store)
    seen: dict[str, set[int]] = {}
    async for batch in store.read_raw():
        for raw in batch:
            activity = raw.subject.rsplit(".", 1)[-1]
            seen.setdefault(activity, set()).add(part_of(raw, 3))
    assert all(len(parts) == 1 for parts in seen.values())
    # Three parts of ~600 activities: each gets some (a split that sent all to one would
    # still pass the row-for-row test, and gain nothing).
    assert {next(iter(parts)) for parts in seen.values()} == {0, 1, 2}


async def test_a_split_as_of_replay_equals_one_in_a_single_process(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: Path, marks_every_37: int
):
    await fill_with_poison(store)
    # The synthetic history records one event a second from its epoch.
    instant = synthetic_epoch() + dt.timedelta(seconds=450)
    single = await replay_as_of(store, tmp_path / "single.db", until_time=instant)
    split = await replay_as_of(
        StreamSource(store, nats_server.url), tmp_path / "split.db", until_time=instant, parts=2
    )
    assert (single.parts, split.parts) == (1, 2)
    assert 0 < split.checkpoint < await store.last_sequence()
    assert split.checkpoint == single.checkpoint
    assert rows_of_file(tmp_path / "split.db") == rows_of_file(tmp_path / "single.db")
    # The parts marked up to the end of the stream, past the last event recorded by then; a
    # file's marks stop at its checkpoint, since events folded after it would change them.
    assert sorted(m for (m,) in rows_of_file(tmp_path / "split.db")["marks"]) == list(
        range(marks_every_37, split.checkpoint + 1, marks_every_37)
    )


async def test_a_split_verify_finds_what_one_process_finds(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: Path
):
    await fill_with_poison(store)
    live = tmp_path / "live.db"
    await live_rows(store, live)
    registry = KeyRegistry()
    single = await verify(store, registry, live)
    split = await verify(StreamSource(store, nats_server.url), registry, live, parts=2)
    # Two undecodable messages, and two events whose prev links are broken.
    assert len(single.failures) >= 2
    assert split.failures == single.failures
    assert (split.events, split.activities) == (single.events, single.activities)
    assert split.events == await store.last_sequence()
    assert split.differences == single.differences == []


class BreaksInAPart:
    """A filter that fails in any process but the one that made it."""

    def __init__(self) -> None:
        self.parent = os.getpid()

    def __call__(self, raw: RawMessage) -> bool:
        if os.getpid() != self.parent:
            raise RuntimeError(f"a part broke at sequence {raw.sequence}")
        return True


async def test_a_failed_part_fails_the_replay_and_leaves_nothing(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: Path
):
    items = list(synthetic_events(3000, seed=4))
    assert {o.status for o in await store.append_many(items)} == {"stored"}
    source = StreamSource(store, nats_server.url)
    with pytest.raises(PartError, match="part 1 of the replay failed: a part broke at sequence"):
        await build_projection(source, tmp_path / "x.db", parts=2, keep=BreaksInAPart())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


_KILLED_REBUILD = """
import asyncio, sys
import nats
from events.store import EventStore
from events.subjects import Namespace
from replay.rebuild import rebuild
from replay.source import StreamSource
from pathlib import Path

async def main(url, prefix, stream, live):
    nc = await nats.connect(url)
    store = EventStore(nc, Namespace(prefix=prefix, stream=stream))
    await rebuild(StreamSource(store, url), Path(live), parts=2, progress=False)

asyncio.run(main(*sys.argv[1:]))
"""


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _start_and_kill(
    script: Path, url: str, store: EventStore, live: Path, pause: float
) -> tuple[subprocess.Popen[bytes], set[int]]:
    """Start a split rebuild in a process, kill it ``pause`` seconds after its file appears;
    the process and the parts it had started by then."""
    ns = store.ns
    process = subprocess.Popen(
        [sys.executable, str(script), url, ns.prefix, ns.stream, str(live)],
        cwd=Path(__file__).parents[2],
    )
    parts: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not leftovers(live.parent):
            assert process.poll() is None, "the rebuild ended before it could be killed"
            assert time.monotonic() < deadline, "the rebuild never started its file"
            time.sleep(0.01)
        time.sleep(pause)
        parts = children_of(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return process, parts


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_a_rebuild_killed_at_a_random_moment_leaves_the_live_projection(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: Path
):
    items = list(synthetic_events(20_000, seed=9))
    assert {o.status for o in await store.append_many(items)} == {"stored"}
    live = live_path(tmp_path / "projections")
    # How long a rebuild takes here and now sets the range of the moment of the kill.
    source = StreamSource(store, nats_server.url)
    took = (await rebuild(source, live, parts=2, progress=False)).seconds
    expected = rows_of_file(live)
    script = tmp_path / "rebuild_then_die.py"
    script.write_text(textwrap.dedent(_KILLED_REBUILD))
    limit = 0.9 * took
    for _ in range(5):
        before = resolve(live)
        pause = random.uniform(0, limit)
        process, parts = _start_and_kill(script, nats_server.url, store, live, pause)
        if process.returncode == -signal.SIGKILL:
            break
        limit /= 2  # it finished first: try again, earlier
    else:
        pytest.skip(f"five rebuilds finished before their kill, the last {pause:.2f}s in")
    # The kernel kills the parts with their parent (PR_SET_PDEATHSIG).
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in parts) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(pid) for pid in parts), f"parts outlived a kill {pause:.2f}s in"
    # The kill may land after the atomic swap, while the process winds down: then the live
    # name holds the new, complete file. Either way it never holds a half-built one.
    now = resolve(live)
    assert now == before or (now.name.startswith("ledger-") and now.suffix == ".db"), now
    assert rows_of_file(live) == expected
    before = resolve(live)
    # The next rebuild in the directory removes what the killed one left, and succeeds.
    result = await rebuild(store, live, progress=False)
    assert leftovers(live.parent) == []
    assert resolve(live) == result.path != before
    conn = open_reader(live)
    assert rows_of(conn) == expected
    conn.close()
