"""``ledger cluster up``: starts a usable cluster, prints how to use it, stops it on Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from events.store import EventStore
from events.subjects import Namespace
from services.infra.access import role_credentials
from services.infra.stack import ConnectionFailedError, connect

pytestmark = pytest.mark.cluster

LEDGER = str(Path(sys.executable).parent / "ledger")


class Output:
    """The lines a process prints, read by a thread (select() cannot see buffered lines)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        stdout = process.stdout
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in iter(stdout.readline, ""):
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def until(self, last: str, timeout: float = 60.0) -> list[str]:
        """The lines up to and including ``last``."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
            if line == last:
                return seen
        raise AssertionError(f"no {last!r} from ledger cluster up; it printed {seen}")

    def rest(self) -> list[str]:
        """Every line still to come, once the process has exited."""
        self._reader.join(10)
        found = []
        while (line := self._lines.get_nowait()) is not None:
            found.append(line)
        return found


@pytest.fixture
def cluster_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """A running ``ledger --data-dir <tmp> cluster up --port 0`` and its output."""
    process = subprocess.Popen(
        [LEDGER, "--data-dir", str(tmp_path), "cluster", "up", "--nodes", "3", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process, Output(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def refuses(url: str) -> bool:
    """Whether nothing listens at ``url`` any more."""
    host, _, port = url.removeprefix("nats://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


async def test_cluster_up_serves_an_r3_stream_and_stops_on_ctrl_c(
    cluster_up: tuple[subprocess.Popen[str], Output], tmp_path: Path
) -> None:
    process, output = cluster_up
    lines = output.until("Ctrl-C to stop.")
    exports = dict(
        line.strip().removeprefix("export ").split("=", 1) for line in lines if "export" in line
    )
    assert exports["LEDGER_REPLICAS"] == "3"
    urls = exports["LEDGER_NATS_URL"].split(",")
    assert len(urls) == 3
    # Check the nodes keep their stores under the data directory, and know its users.
    assert exports["LEDGER_DATA_DIR"] == str(tmp_path)
    assert (tmp_path / "cluster" / "node-0" / "nats-server.conf").exists()
    with pytest.raises(ConnectionFailedError, match="refused a client without credentials"):
        await connect(exports["LEDGER_NATS_URL"], timeout=5)

    # Check the printed settings are all a client needs to create and use an R3 stream.
    admin = role_credentials(Path(exports["LEDGER_DATA_DIR"]), "admin")
    nc = await connect(exports["LEDGER_NATS_URL"], creds=admin)
    try:
        store = EventStore(nc, Namespace.for_tests(f"cli{os.getpid()}"))
        info = await store.ensure_stream(replicas=3)
        assert info.config.num_replicas == 3
    finally:
        await nc.close()

    # Check Ctrl-C stops every node and the command itself cleanly.
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert output.rest() == ["ledger cluster stopped."]
    assert all(refuses(url) for url in urls)
