"""``ledger doctor`` against a real ``ledger up``: all well, then a seed others may read, then
no server. Each failing check names what is wrong and its fix, and the exit code says it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.cli.exit_codes import ExitCode
from services.cli.main import main
from services.infra.runtime import read_runtime

LEDGER = str(Path(sys.executable).parent / "ledger")
CHECKS = ["data directory", "credentials", "server", "stream", "projection", "outbox", "clock"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(data_dir)
    return env


def healthy(data_dir: Path) -> bool:
    runtime = read_runtime(data_dir)
    try:
        with urllib.request.urlopen(f"{runtime.api_url}/healthz", timeout=2) as answer:
            return answer.status == 200
    except (AttributeError, OSError):
        return False


def doctor(data_dir: Path) -> tuple[int, list[dict]]:
    # In this process: the checks are the same, without a second of start-up each time.
    done = CliRunner().invoke(main, ["--data-dir", str(data_dir), "doctor", "--json"], env={})
    return done.exit_code, [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.slow
def test_doctor_finds_a_healthy_ledger_then_a_loose_seed_then_no_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "ledger"
    proc = subprocess.Popen(
        [LEDGER, "up", "--port", "0"],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not healthy(data_dir):  # the projector has made its file
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)

        # Check a healthy ledger: every check, in order, each ok, and exit 0.
        code, checks = doctor(data_dir)
        assert [c["name"] for c in checks] == CHECKS
        assert {c["name"]: c["outcome"] for c in checks} == dict.fromkeys(CHECKS, "ok"), checks
        assert code == ExitCode.OK

        # Check a seed that others may read: the credentials check fails and names the fix.
        seed = data_dir / "creds" / "query.nk"
        seed.chmod(0o644)
        code, checks = doctor(data_dir)
        seed.chmod(0o600)
        found = {c["name"]: c for c in checks}
        assert found["credentials"]["outcome"] == "fail"
        assert "creds/query.nk (0644)" in found["credentials"]["found"]
        assert "chmod 600" in found["credentials"]["fix"]
        assert code == ExitCode.FAILED
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)

    # Check no server: the server check fails and says how to start one; nothing is started.
    code, checks = doctor(data_dir)
    found = {c["name"]: c for c in checks}
    assert found["server"]["outcome"] == "fail"
    assert "ledger up" in found["server"]["fix"]
    assert found["data directory"]["outcome"] == "ok"
    assert code == ExitCode.FAILED
    assert not (data_dir / "runtime.json").exists()
