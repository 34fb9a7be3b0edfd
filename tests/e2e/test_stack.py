"""``ledger up``, ``demo`` and ``status`` as real processes: start, find, refuse, stop, die."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.embedded import EmbeddedNats
from services.exit_codes import ExitCode
from services.runtime import read_runtime

LEDGER = str(Path(sys.executable).parent / "ledger")


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(data_dir)
    return env


def _start_up(data_dir: Path) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [LEDGER, "up", "--port", "0"],  # a free port for the query API
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runtime_file = data_dir / "runtime.json"
    deadline = time.monotonic() + 30
    while not runtime_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"ledger up did not start: {proc.communicate()}")
        time.sleep(0.05)
    return proc, json.loads(runtime_file.read_text())


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has yet to reap it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _wait_gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigkill_of_ledger_up_leaves_no_nats_server_behind(tmp_path: Path) -> None:
    proc, runtime = _start_up(tmp_path)
    nats_pid = runtime["nats_pid"]
    assert _is_alive(nats_pid)

    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert _wait_gone(nats_pid), f"nats-server {nats_pid} outlived its killed parent"
    assert read_runtime(tmp_path) is None  # the lock died with the process


@pytest.mark.slow
def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    proc, runtime = _start_up(tmp_path)
    assert runtime["nats_url"].startswith("nats://127.0.0.1:")

    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode == 0
    assert "ledger stopped." in out
    assert _wait_gone(runtime["nats_pid"])
    assert not (tmp_path / "runtime.json").exists()


@pytest.mark.slow
def test_a_second_up_on_the_same_data_dir_says_one_is_running(tmp_path: Path) -> None:
    proc, runtime = _start_up(tmp_path)
    try:
        second = subprocess.run(
            [LEDGER, "up"], env=_env(tmp_path), capture_output=True, text=True, timeout=30
        )
        assert second.returncode == ExitCode.NOT_RUNNING
        assert "already running" in second.stderr
        assert f"pid {runtime['pid']}" in second.stderr

        # Other commands find the running stack through runtime.json.
        status = subprocess.run(
            [LEDGER, "status", "--json"],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["nats_url"] == runtime["nats_url"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_with_a_url_nothing_is_started(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    env = _env(tmp_path) | {"LEDGER_NATS_URL": nats_server.url}
    status = subprocess.run(
        [LEDGER, "status", "--json"], env=env, capture_output=True, text=True, timeout=30
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["nats_url"] == nats_server.url
    assert not (tmp_path / "nats").exists()


def test_an_unreachable_url_is_a_clear_error(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"LEDGER_NATS_URL": "nats://127.0.0.1:9"}
    status = subprocess.run([LEDGER, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == ExitCode.UNREACHABLE
    assert "cannot reach NATS at nats://127.0.0.1:9" in status.stderr
    assert "Traceback" not in status.stderr


@pytest.mark.slow
def test_demo_appends_reads_back_and_is_idempotent(tmp_path: Path) -> None:
    first = subprocess.run(
        [LEDGER, "demo"], env=_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    assert "stored at sequence 1" in first.stdout
    assert "revised" in first.stdout

    again = subprocess.run(
        [LEDGER, "demo"], env=_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert "stored at" not in again.stdout.replace("already stored at", "")
    assert again.stdout.count("already stored at") == 4
