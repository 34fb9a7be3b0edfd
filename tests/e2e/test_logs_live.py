"""``ledger --log-format json demo --no-serve``: it binds no port, and every line it logs is JSON
without a secret.

The port the demo would serve on (8000, its default) is held by the test while it runs: before
issue 20 the demo bound it although it served nothing, and failed. The demo imports the seed
report through intake with every office's signing key and runs the whole stack, so the scan
covers real work with the seeds of that data directory in use.
"""

from __future__ import annotations

import errno
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_metrics_live import LEDGER, TOKEN, _env, check_log_lines, seeds_in

DEMO_PORT = 8000
"""``ledger demo``'s default port (services/cli/stack.py)."""


def hold_port(port: int) -> socket.socket | None:
    """Listen on 127.0.0.1:``port``; ``None`` when something else holds it already (as well)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        assert exc.errno == errno.EADDRINUSE
        return None
    sock.listen(1)
    return sock


@pytest.mark.slow
def test_demo_without_serving_binds_no_port_and_logs_json_lines(tmp_path: Path) -> None:
    data_dir = tmp_path / "ledger"
    held = hold_port(DEMO_PORT)
    try:
        done = subprocess.run(
            [LEDGER, "--log-format", "json", "demo", "--no-serve"],
            env=_env(data_dir),
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        if held is not None:
            held.close()

    # Check the demo: it ran to its end although its port was taken.
    assert done.returncode == 0, done.stderr
    assert "The report as data" in done.stdout

    # Check the logs: JSON lines, with no seed of the data directory and no token.
    records = check_log_lines(done.stderr, [*seeds_in(data_dir), TOKEN])
    assert records, "the demo logged nothing: the scan would prove nothing"
    assert any(r.get("office") for r in records)
