"""``ledger doctor``'s rules, on values and files made here (services/cli/doctor.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.cli.doctor import SKEW_FAIL, SKEW_WARN, check_clock, check_files, check_lag


@pytest.mark.parametrize(
    ("server_ahead", "outcome", "words"),
    [
        (0.2, "ok", "0.20 s behind"),
        (-0.2, "ok", "0.20 s ahead of"),
        (SKEW_WARN + 0.5, "warn", f"{SKEW_WARN + 0.5:.2f} s behind"),
        (-(SKEW_FAIL + 10), "fail", f"{SKEW_FAIL + 10:.2f} s ahead of"),
    ],
)
def test_the_clock_skew_is_the_server_instant_against_the_round_trip_midpoint(
    server_ahead: float, outcome: str, words: str
) -> None:
    sent, received = 1_000_000.0, 1_000_004.0  # a slow round trip of 4 s is not skew
    middle = (sent + received) / 2
    server_now = dt.datetime.fromtimestamp(middle + server_ahead, dt.UTC)

    check = check_clock(server_now, sent, received)

    assert (check.outcome, words in check.found) == (outcome, True), check
    assert ("NTP" in check.fix) == (outcome != "ok")


def test_lag_is_ok_at_zero_or_moving_and_fails_when_stuck_or_missing() -> None:
    assert check_lag(40, 40, moved=False).outcome == "ok"
    assert check_lag(40, 30, moved=True).found == "at sequence 30, lag 10, catching up"
    stuck = check_lag(40, 30, moved=False)
    assert (stuck.outcome, stuck.found) == ("fail", "at sequence 30, lag 10, and not moving")
    assert "ledger up" in stuck.fix
    assert check_lag(40, None, moved=False).outcome == "fail"


def test_files_name_a_missing_directory_and_every_loose_seed(tmp_path: Path) -> None:
    [missing] = check_files(tmp_path / "nowhere")
    assert (missing.name, missing.outcome) == ("data directory", "fail")
    assert "ledger up" in missing.fix

    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    (creds / "admin.nk").write_text("SU...\n")
    (creds / "admin.nk").chmod(0o600)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "KAZ.nk").write_text("SU...\n")
    (tmp_path / "keys" / "KAZ.nk").chmod(0o640)

    place, secrets = check_files(tmp_path)
    assert place.outcome == "ok"
    assert (secrets.name, secrets.outcome) == ("credentials", "fail")
    assert secrets.found == "others may read keys/KAZ.nk (0640)"
    assert "chmod 600" in secrets.fix

    (tmp_path / "keys" / "KAZ.nk").chmod(0o600)
    assert check_files(tmp_path)[1].found == "2 seed files, readable by their owner only"
