"""The office outbox end to end: the ``ledger`` CLI offline and online, a real nats-server and
intake process, and a CLI killed with SIGKILL while it sends."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import pytest
from click.testing import CliRunner, Result

from bench.synthetic import synthetic_activities
from events.store import EventStore
from services.cli.exit_codes import ExitCode
from services.cli.main import main
from services.client.outbox import Outbox
from services.infra.embedded import EmbeddedNats

LEDGER = (sys.executable, "-c", "from services.cli.main import main; main()")


class Ledger:
    """A nats-server with one intake process that can be stopped and started on one port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server: EmbeddedNats | None = None
        self.intake: subprocess.Popen[str] | None = None
        self.port = -1
        self.url = ""

    def start(self) -> str:
        self.server = EmbeddedNats(self.root / "nats", server_name="outbox-e2e", port=self.port)
        self.url = self.server.start()
        self.port = int(self.url.rpartition(":")[2])
        self.intake = subprocess.Popen(
            [sys.executable, "-m", "services.intake", "--nats-url", self.url],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.intake.stdout is not None
        assert self.intake.stdout.readline().startswith("intake ready")
        return self.url

    def stop(self) -> None:
        if self.intake is not None:
            self.intake.terminate()
            self.intake.wait(10)
            self.intake = None
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def ledger_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """A server, not started yet; the test starts it when the link comes back."""
    for name in ("LEDGER_NATS_URL", "LEDGER_DATA_DIR", "LEDGER_CREDS", "LEDGER_OFFICE"):
        monkeypatch.delenv(name, raising=False)
    server = Ledger(tmp_path)
    yield server
    server.stop()


def ledger(data_dir: Path, *args: str, url: str | None = None, stdin: str = "") -> Result:
    where = ["--data-dir", str(data_dir)] + (["--nats-url", url] if url else [])
    return CliRunner().invoke(main, [*where, *args], input=stdin)


def stream_events(url: str) -> list[tuple[str, str]]:
    """``(activity id, event type)`` of every event in the stream, in stream order."""

    async def read() -> list[tuple[str, str]]:
        nc = await nats.connect(url)
        try:
            events = []
            async for batch in EventStore(nc).read_raw():
                for raw in batch:
                    body = json.loads(raw.data)
                    events.append((raw.subject.rpartition(".")[2], body["type"]))
            return events
        finally:
            await nc.close()

    return asyncio.run(read())


def activity_json(activity_id: str, **overrides: object) -> str:
    record = {
        "activity_id": activity_id,
        "office": "KAZ",
        "programme": "GENERAL",
        "kind": "training",
        "title": "Training of criminal justice practitioners",
        "countries": [{"country": "Kazakhstan"}],
        "year": 2020,
        "metrics": {"people_trained": 571},
    }
    return json.dumps(record | overrides)


REVISE = ("revise", "KAZ-1", "--office", "KAZ", "--set", "metrics.people_trained=600")
REVISE_WHY = ("--reason", "final attendance list")


def test_a_day_offline_arrives_in_order_once_each(ledger_server: Ledger, tmp_path: Path) -> None:
    data = tmp_path / "office"
    # Check the day offline: no ledger runs on the data directory, nothing can be sent.
    for number, activity_id in enumerate(("KAZ-1", "KAZ-2", "KAZ-3"), start=1):
        queued = ledger(data, "report", "-", stdin=activity_json(activity_id))
        assert queued.exit_code == ExitCode.OK, queued.output
        assert f"{activity_id}: queued ({number} waiting)" in queued.output
    revised = ledger(data, *REVISE, *REVISE_WHY)
    assert revised.exit_code == ExitCode.OK, revised.output
    assert "KAZ-1: queued (4 waiting)" in revised.output
    # Check the link back: everything goes once, and the revision after its report.
    url = ledger_server.start()
    sent = ledger(data, "outbox", "send", url=url)
    assert sent.exit_code == ExitCode.OK, sent.output
    assert "sent 4: 4 stored, 0 rejected; 0 waiting" in sent.output
    expected = [
        ("KAZ-1", "ActivityReported"),
        ("KAZ-2", "ActivityReported"),
        ("KAZ-3", "ActivityReported"),
        ("KAZ-1", "ActivityRevised"),
    ]
    assert stream_events(url) == expected
    # Check each command run again: answered with its first outcome, nothing new stored.
    again = ledger(data, "report", "-", stdin=activity_json("KAZ-2"), url=url)
    assert again.exit_code == ExitCode.OK, again.output
    assert "KAZ-2: already stored, event " in again.output
    assert ", sequence 2 (version 1)" in again.output
    revised_again = ledger(data, *REVISE, *REVISE_WHY, url=url)
    assert revised_again.exit_code == ExitCode.OK, revised_again.output
    assert ", sequence 4 (version 2)" in revised_again.output
    assert stream_events(url) == expected


def test_a_stopped_server_queues_and_no_queue_fails_as_before(
    ledger_server: Ledger, tmp_path: Path
) -> None:
    data = tmp_path / "office"
    url = ledger_server.start()
    ledger_server.stop()

    queued = ledger(data, "report", "-", stdin=activity_json("KAZ-1"), url=url)
    refused = ledger(data, "report", "--no-queue", "-", stdin=activity_json("KAZ-2"))

    assert queued.exit_code == ExitCode.OK, queued.output
    assert "KAZ-1: queued (1 waiting)" in queued.output
    assert f"cannot reach NATS at {url}" in queued.output
    assert refused.exit_code == ExitCode.NOT_RUNNING, refused.output
    listed = ledger(data, "outbox", "list")
    assert "report KAZ/KAZ-1: waiting since" in listed.output
    assert "KAZ-2" not in listed.output
    assert "1 waiting, 0 rejected" in listed.output


def test_a_rejected_command_stays_visible_and_is_not_sent_again(
    ledger_server: Ledger, tmp_path: Path
) -> None:
    data = tmp_path / "office"
    ledger(data, "report", "-", stdin=activity_json("KAZ-1", year=1800))
    ledger(data, *REVISE, *REVISE_WHY)  # built on the report: it waits behind it
    ledger(data, "report", "-", stdin=activity_json("KAZ-2"))
    url = ledger_server.start()

    sent = ledger(data, "outbox", "send", url=url)

    assert sent.exit_code == ExitCode.OK, sent.output
    assert "sent 2: 1 stored, 1 rejected; 1 waiting" in sent.output
    assert stream_events(url) == [("KAZ-2", "ActivityReported")]
    listed = ledger(data, "outbox", "list")
    lines = listed.output.splitlines()
    assert "report KAZ/KAZ-1: rejected (invalid) year: 1800 is outside" in lines[0]
    assert "revise KAZ/KAZ-1: waiting since" in lines[1]
    assert lines[1].endswith("behind #1 (rejected)")
    # Check that neither the rejected command nor the one behind it goes again.
    box = Outbox(data)
    rejected_id = box.entries()[0].command_id
    settled_at = box.get(rejected_id).settled_at  # type: ignore[union-attr]
    box.close()
    again = ledger(data, "outbox", "send", url=url)
    assert "sent 0: 0 stored, 0 rejected; 1 waiting" in again.output
    retyped = ledger(data, "report", "-", stdin=activity_json("KAZ-1", year=1800), url=url)
    assert retyped.exit_code == ExitCode.INVALID
    assert f"ledger outbox drop {rejected_id}" in retyped.output
    box = Outbox(data)
    assert box.get(rejected_id).settled_at == settled_at  # type: ignore[union-attr]
    box.close()
    assert stream_events(url) == [("KAZ-2", "ActivityReported")]
    # Check drop: it says what it removed, and the revision behind it may go (and is refused).
    dropped = ledger(data, "outbox", "drop", rejected_id)
    assert dropped.exit_code == ExitCode.OK
    assert f"dropped #1 {rejected_id} report KAZ/KAZ-1: rejected (invalid)" in dropped.output
    last = ledger(data, "outbox", "send", url=url)
    assert "sent 1: 0 stored, 1 rejected; 0 waiting" in last.output
    assert "rejected (unknown_activity)" in last.output
    unknown = ledger(data, "outbox", "drop", "no-such-id")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert "holds no command 'no-such-id'" in unknown.output


def write_lines(path: Path, n: int) -> list[str]:
    with open(path, "w") as out:
        activities = list(synthetic_activities(n, seed=11))
        for activity in activities:
            out.write(json.dumps(msgspec.to_builtins(activity)) + "\n")
    return [a.activity_id for a in activities]


@pytest.mark.slow
def test_a_send_killed_midway_and_run_again_stores_each_command_once(
    ledger_server: Ledger, tmp_path: Path
) -> None:
    data = tmp_path / "office"
    path = tmp_path / "day.jsonl"
    ids = write_lines(path, 3000)
    queued = ledger(data, "import", str(path))
    assert queued.exit_code == ExitCode.OK, queued.output
    assert "0 accepted, 0 already present, 0 rejected, 3000 queued (3000 waiting)" in (
        queued.output
    )
    office = json.loads(path.read_text().splitlines()[-1])["office"]
    late = ("revise", ids[-1], "--office", office, "--set", "year=2021", "--reason", "typo")
    assert ledger(data, *late).exit_code == ExitCode.OK
    url = ledger_server.start()
    proc = subprocess.Popen(
        [*LEDGER, "--data-dir", str(data), "--nats-url", url, "outbox", "send"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(stream_events(url)) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = len(stream_events(url))
    assert partial < 3001, "the send finished before it was killed: nothing was tested"

    rerun = ledger(data, "outbox", "send", url=url)

    assert rerun.exit_code == ExitCode.OK, rerun.output
    assert "0 waiting" in rerun.output
    events = stream_events(url)
    counts = Counter(events)
    assert sorted(counts) == sorted(
        [(i, "ActivityReported") for i in ids] + [(ids[-1], "ActivityRevised")]
    )
    assert set(counts.values()) == {1}
    kinds = [kind for activity_id, kind in events if activity_id == ids[-1]]
    assert kinds == ["ActivityReported", "ActivityRevised"]


@pytest.mark.slow
def test_ledger_up_sends_what_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "office"
    for name in ("LEDGER_NATS_URL", "LEDGER_DATA_DIR", "LEDGER_CREDS"):
        monkeypatch.delenv(name, raising=False)
    assert ledger(data, "report", "-", stdin=activity_json("KAZ-1")).exit_code == ExitCode.OK
    up = subprocess.Popen(
        [*LEDGER, "--data-dir", str(data), "up", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    # A stack that never says it sent the outbox is killed, which ends the reading below.
    watchdog = threading.Timer(60, up.kill)
    watchdog.start()
    try:
        assert up.stdout is not None
        lines = iter(up.stdout.readline, "")
        said = next((line for line in lines if line.startswith("outbox:")), "")
        assert said.startswith("outbox: report of KAZ-1: stored, event "), said
        assert said.rstrip().endswith(", sequence 1")
    finally:
        watchdog.cancel()
        up.send_signal(signal.SIGINT)
        up.wait(30)
    assert "0 waiting, 0 rejected" in ledger(data, "outbox", "list").output
