"""``ledger up``, ``demo`` and ``status`` as real processes: start, find, refuse, stop, die."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from services.cli.demo import DATASET, REVISIONS
from services.cli.exit_codes import ExitCode
from services.infra.embedded import EmbeddedNats, EmbeddedNatsError
from services.infra.runtime import read_runtime

LEDGER = str(Path(sys.executable).parent / "ledger")


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(data_dir)
    return env


def _start_up(data_dir: Path, *flags: str) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [LEDGER, "up", "--port", "0", *flags],  # a free port for the query API
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


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, with their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(") ", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if parent == pid:
            found[int(stat.parent.name)] = command
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_projector_in_its_own_process_projects_and_dies_with_ledger_up(tmp_path: Path) -> None:
    proc, runtime = _start_up(tmp_path, "--projector-process")
    projectors: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not projectors and time.monotonic() < deadline:
            time.sleep(0.05)  # the stack starts its components after runtime.json
            children = _children(proc.pid)
            projectors = [pid for pid, cmd in children.items() if "services.projector" in cmd]
        assert len(projectors) == 1, children
        imported = subprocess.run(
            [LEDGER, "import", str(DATASET)],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        # The report: "trained 571 practitioners in Kazakhstan", through the other process.
        trained = None
        deadline = time.monotonic() + 60
        while trained != 571 and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                url = f"{runtime['api_url']}/v1/countries/KAZ"
                with urllib.request.urlopen(url, timeout=10) as answer:
                    trained = json.load(answer)["totals"].get("people_trained")
            except OSError:  # no projection yet, or not this country yet
                continue
        assert trained == 571
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _wait_gone(projectors[0]), "the projector outlived its killed ledger up"
    assert _wait_gone(runtime["nats_pid"])


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
def test_demo_imports_the_report_tells_its_story_and_is_idempotent(tmp_path: Path) -> None:
    lines = [line for line in DATASET.read_text().splitlines() if line.strip()]
    revisions = [line for line in REVISIONS.read_text().splitlines() if line.strip()]

    first = subprocess.run(
        [LEDGER, "demo", "--no-serve", "--port", "0"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert f"{len(lines)} new, 0 already present, 0 rejected" in out
    assert f"; {len(revisions)} new revisions from revisions.jsonl" in " ".join(out.split())
    assert re.search(r"Kazakhstan\s.*571 people trained", out)
    # The provenance example adds up: the figure equals the sum of the activities listed.
    total, count = re.search(
        r"Where a figure comes from: ([\d,]+) .*? from (\d+) activities", out, re.DOTALL
    ).groups()
    parts = re.findall(r"^\s+([\d,]+)\s+P\d{3}-", out, flags=re.MULTILINE)
    assert len(parts) == int(count)
    assert sum(int(p.replace(",", "")) for p in parts) == int(total.replace(",", ""))

    again = subprocess.run(
        [LEDGER, "demo", "--no-serve", "--port", "0"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert f"0 new, {len(lines)} already present, 0 rejected" in again.stdout
    assert "; 0 new revisions from revisions.jsonl" in " ".join(again.stdout.split())

    # Every event went in through intake, signed with its office's key.
    verify = subprocess.run(
        [LEDGER, "verify", "--json"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(verify.stdout)
    assert (verify.returncode, report["ok"], report["signed"]) == (
        0,
        True,
        len(lines) + len(revisions),
    )


@pytest.mark.slow
def test_demo_serves_until_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [LEDGER, "demo", "--port", "0"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Dashboard:"):
                url = line.split()[1].rstrip("/")
                break
        assert url, "the demo never printed its URL"
        with urllib.request.urlopen(f"{url}/v1/countries/KAZ", timeout=10) as answer:
            assert json.load(answer)["totals"]["people_trained"] == 571
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_a_reload_the_server_refuses_is_an_error_and_the_server_keeps_running(
    tmp_path: Path,
) -> None:
    with EmbeddedNats(tmp_path / "nats", server_name="reload-e2e") as server:
        server.reload()  # the same configuration: confirmed, no error
        server.extra_config = "max_payload: {"  # not even parseable
        with pytest.raises(EmbeddedNatsError, match="refused its new configuration"):
            server.reload()
        assert server.process is not None and server.process.poll() is None
        # The old configuration still serves: a client still gets the server's INFO line.
        host, port = server.url.removeprefix("nats://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            assert sock.recv(4) == b"INFO"
