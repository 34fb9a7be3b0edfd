"""What an operator sees of a real ``ledger up``: /metrics, the badge's lag, the status, the logs.

One ``ledger --log-format json up`` runs as a process with a bearer token set; the test imports
a file it writes itself through ``ledger import``, then reads /metrics (parsed with
prometheus-client's own parser) until the intake counter shows every line and the lag is back
to 0, reads the dashboard's badge and ``ledger status``, stops the stack, and checks every line
the two processes logged: JSON, and free of every seed and the token in use.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.cli.demo import DATASET

LEDGER = str(Path(sys.executable).parent / "ledger")
TOKEN = "operator-token-" + "x7Q2" * 6
LINES = 7
"""Activities the test's own import file holds: the dataset's first seven lines."""


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATA_DIR=str(data_dir), LEDGER_API_TOKEN=TOKEN, LEDGER_LOG_FORMAT="json")
    return env


def _get(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def seeds_in(data_dir: Path) -> list[str]:
    """Every nkey seed the data directory holds: the NATS users' and the offices' keys."""
    found = [
        line.strip()
        for folder in ("creds", "keys")
        for path in (data_dir / folder).glob("*.nk")
        for line in path.read_text().splitlines()
        if line.strip().startswith("S")
    ]
    assert found, "the data directory holds no seed: the scan would prove nothing"
    return found


def check_log_lines(text: str, secrets: list[str]) -> list[dict]:
    """Every line of ``text`` parsed as JSON, with the fields every line carries; none holds
    a secret or anything shaped like a seed."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)  # a line that does not parse fails here
        assert {"time", "level", "component", "event", "message"} <= record.keys(), record
        for secret in secrets:
            assert secret not in line
        assert not re.search(r"\bS[UAONCPX][A-Z2-7]{50,}", line), line
        records.append(record)
    return records


@pytest.mark.slow
def test_an_operator_watches_an_import_in_metrics_badge_status_and_logs(tmp_path: Path) -> None:
    data_dir = tmp_path / "ledger"
    env = _env(data_dir)
    proc = subprocess.Popen(
        [LEDGER, "up", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runtime_file = data_dir / "runtime.json"
        deadline = time.monotonic() + 30
        while not runtime_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        runtime = json.loads(runtime_file.read_text())
        api = runtime["api_url"]
        # The embedded server's monitoring endpoint, on loopback, is where the stack finds it.
        assert runtime["nats_monitor_url"].startswith("http://127.0.0.1:")

        # /metrics is a read route like the others: with a token set, it needs the token.
        assert _get(f"{api}/metrics", token=None)[0] == 401

        # Check the import: the test's own file of LINES activities.
        lines = DATASET.read_text().splitlines()[:LINES]
        source = tmp_path / "batch.jsonl"
        source.write_text("\n".join(lines) + "\n")
        imported = subprocess.run(
            [LEDGER, "import", str(source)], env=env, capture_output=True, text=True, timeout=60
        )
        assert imported.returncode == 0, imported.stderr
        ids = [json.loads(line)["activity_id"] for line in lines]

        # Check the metrics: every line counted once, and the lag back to 0.
        accepted = ("ledger_intake_commands_total", (("code", ""), ("outcome", "accepted")))
        lag = ("ledger_projector_lag_events", ())
        for _ in range(100):
            status, text = _get(f"{api}/metrics")
            assert status == 200
            samples = _samples(text)
            if samples.get(accepted) == LINES and samples.get(lag) == 0:
                break
            time.sleep(0.1)
        assert samples[accepted] == LINES
        assert samples[lag] == 0
        assert samples[("ledger_projector_checkpoint_sequence", ())] == LINES
        assert samples[("ledger_stream_last_sequence", ())] >= LINES
        assert samples[("ledger_stream_messages", ())] >= LINES
        assert samples[("ledger_nats_server_healthy", ())] == 1
        assert samples[("ledger_outbox_commands_waiting", ())] == 0
        assert samples[("ledger_rebuild_progress_ratio", ())] == 1
        assert samples[("ledger_intake_request_seconds_count", ())] >= 1

        # Check the API's timing: by route template, never the path asked.
        assert _get(f"{api}/v1/countries/KAZ")[0] == 200
        assert _get(f"{api}/v1/activities/{ids[0]}")[0] == 200
        text = _get(f"{api}/metrics")[1]
        routes = {
            dict(labels)["route"]
            for (name, labels) in _samples(text)
            if name == "ledger_api_request_seconds_count"
        }
        assert {"/v1/countries/{country}", "/v1/activities/{activity_id}"} <= routes
        assert not any(activity_id in text for activity_id in ids)
        assert "KAZ" not in text

        # Check the badge: a number, not "unknown".
        status, page = _get(f"{api}/")
        badge = re.search(r'data-testid="status">(.*?)</p>', page, re.S)
        assert badge is not None
        assert re.search(r"Lag <strong>0</strong>", badge.group(1)), badge.group(1)

        # Check the status: the API's and the CLI's.
        status, body = _get(f"{api}/v1/status")
        answer = json.loads(body)
        assert answer["projections"][0]["lag"] == 0
        assert answer["lag_note"] is None and answer["follows_stream"] is True
        shown = subprocess.run(
            [LEDGER, "status", "--json"], env=env, capture_output=True, text=True, timeout=30
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["projections"][0]["lag"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        _, logged = proc.communicate(timeout=30)

    # Check the logs: every line of both processes is JSON and carries no secret.
    secrets = [*seeds_in(data_dir), TOKEN]
    records = check_log_lines(logged + imported.stderr + shown.stderr, secrets)
    assert any(r["component"] == "intake" and r.get("office") for r in records), records
    assert any(r["component"] == "projector" and "sequence" in r for r in records), records
