"""Fixtures of the end-to-end tests that drive the office commands against a real intake."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.infra.embedded import EmbeddedNats


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh server with the default stream, and one intake process serving it."""
    # The office commands keep an outbox in the data directory: one of this test's own.
    monkeypatch.setenv("LEDGER_DATA_DIR", str(tmp_path / "office"))
    with EmbeddedNats(tmp_path / "nats", server_name="office-e2e") as server:
        intake = subprocess.Popen(
            [sys.executable, "-m", "services.intake", "--nats-url", server.url],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert intake.stdout is not None
            assert intake.stdout.readline().startswith("intake ready")
            yield server.url
        finally:
            intake.terminate()
            intake.wait(10)
