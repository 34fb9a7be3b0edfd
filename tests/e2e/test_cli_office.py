"""The office commands end to end: the ``ledger`` CLI, a real nats-server, a real intake process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import nats
import pytest
from click.testing import CliRunner, Result

from bench.synthetic import synthetic_activities
from events.store import EventStore
from services.cli.exit_codes import ExitCode
from services.cli.main import main


def ledger(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--nats-url", url, *args], input=stdin)


def stored_activities(url: str) -> list[str]:
    """The activity id of every event in the stream, in stream order."""

    async def read() -> list[str]:
        nc = await nats.connect(url)
        try:
            ids = []
            async for batch in EventStore(nc).read_raw():
                ids.extend(raw.subject.rpartition(".")[2] for raw in batch)
            return ids
        finally:
            await nc.close()

    return asyncio.run(read())


def activity_json(ascii_only: bool = True, **overrides: object) -> str:
    record = {
        "activity_id": "KAZ-TRAINING-1",
        "office": "KAZ",
        "programme": "GENERAL",
        "kind": "training",
        "title": "Training of criminal justice practitioners",
        "countries": [{"country": "Kazakhstan"}],
        "year": 2020,
        "metrics": {"people_trained": 571, "participants": 600},
    }
    return json.dumps(record | overrides, ensure_ascii=ascii_only)


def test_each_outcome_has_its_exit_code(url: str, tmp_path: Path) -> None:
    # Check report, from a file and from standard input.
    (tmp_path / "a.json").write_text(activity_json())
    assert ledger(url, "report", str(tmp_path / "a.json")).exit_code == ExitCode.OK
    bad = ledger(url, "report", "-", stdin=activity_json(activity_id="B", year=1800))
    assert bad.exit_code == ExitCode.INVALID
    assert "year: 1800 is outside" in bad.output
    again = ledger(url, "report", "-", stdin=activity_json(title="Other"))
    assert again.exit_code == ExitCode.CONFLICT
    assert "already reported" in again.output
    # Check revise: metrics merge, stale versions conflict, wrong office is refused.
    ok = ledger(
        url, "revise", "KAZ-TRAINING-1", "--office", "KAZ",
        "--set", "metrics.people_trained=640", "--reason", "final list",
        "--expected-version", "1",
    )  # fmt: skip
    assert ok.exit_code == ExitCode.OK, ok.output
    assert "now at version 2" in ok.output
    stale = ledger(
        url, "revise", "KAZ-TRAINING-1", "--office", "KAZ", "--set", "year=2021",
        "--reason", "x", "--expected-version", "1",
    )  # fmt: skip
    assert stale.exit_code == ExitCode.CONFLICT
    assert "at version 2, not 1" in stale.output
    forbidden = ledger(url, "withdraw", "KAZ-TRAINING-1", "--office", "VNM", "--reason", "not ours")
    assert forbidden.exit_code == ExitCode.REFUSED
    unchanged = ledger(
        url, "revise", "KAZ-TRAINING-1", "--office", "KAZ", "--set", "year=2020", "--reason", "x"
    )
    assert unchanged.exit_code == ExitCode.INVALID
    assert "changes: the revision changes nothing" in unchanged.output
    unknown = ledger(url, "withdraw", "NOPE", "--office", "KAZ", "--reason", "x")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    # Check withdraw, then that a withdrawn activity refuses changes.
    assert (
        ledger(
            url, "withdraw", "KAZ-TRAINING-1", "--office", "KAZ", "--reason", "duplicate"
        ).exit_code
        == ExitCode.OK
    )
    late = ledger(
        url, "revise", "KAZ-TRAINING-1", "--office", "KAZ", "--set", "year=2021", "--reason", "x"
    )
    assert late.exit_code == ExitCode.REFUSED
    assert "withdrawn" in late.output
    assert stored_activities(url) == ["KAZ-TRAINING-1"] * 3


def test_without_a_running_ledger_the_office_is_told_to_start_one(tmp_path: Path) -> None:
    # Without the outbox (--no-queue), as before it: told at once, nothing kept.
    withdraw = ["withdraw", "X", "--office", "KAZ", "--reason", "x", "--no-queue"]
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), *withdraw])
    assert result.exit_code == ExitCode.NOT_RUNNING
    assert "ledger up" in result.output


def write_lines(path: Path, n: int, bad_every: int = 0) -> set[int]:
    """``n`` synthetic records as JSON Lines; every ``bad_every``-th line broken. Bad lines."""
    bad: set[int] = set()
    kinds = ("{not json", "unknown country", "unknown field")
    with open(path, "w") as out:
        for number, activity in enumerate(synthetic_activities(n, seed=7), start=1):
            record = msgspec.to_builtins(activity)
            if bad_every and number % bad_every == 0:
                kind = kinds[len(bad) % 3]
                bad.add(number)
                if kind == "{not json":
                    out.write("{not json\n")
                    continue
                if kind == "unknown country":
                    record["countries"] = [{"country": "Atlantis"}]
                else:
                    record["colour"] = "blue"
            out.write(json.dumps(record) + "\n")
    return bad


@pytest.mark.slow
def test_a_large_import_with_bad_lines_reports_each_and_a_rerun_changes_nothing(
    url: str, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    bad = write_lines(path, 10_000, bad_every=100)

    first = ledger(url, "import", str(path), "--window", "512")

    assert first.exit_code == ExitCode.FAILED
    assert f"9900 accepted, 0 already present, {len(bad)} rejected" in first.output
    listed = {int(line.split(":")[0].removeprefix("line ")) for line in
              first.output.splitlines() if line.startswith("line ")}  # fmt: skip
    assert listed == bad
    rejects = [json.loads(line) for line in (tmp_path / "big.jsonl.rejects.jsonl").open()]
    assert {r["line"] for r in rejects} == bad
    assert {r["field"] for r in rejects if r["code"] == "invalid"} >= {"countries.0.country"}
    # Check the second run: nothing new, the same lines rejected.
    second = ledger(url, "import", str(path))
    assert f"0 accepted, 9900 already present, {len(bad)} rejected" in second.output
    assert len(stored_activities(url)) == 10_000 - len(bad)


@pytest.mark.slow
def test_an_import_killed_midway_and_rerun_ends_with_exactly_the_files_activities(
    url: str, tmp_path: Path
) -> None:
    path = tmp_path / "killed.jsonl"
    write_lines(path, 10_000)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from services.cli.main import main; main()",
            "--nats-url",
            url,
            "import",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(stored_activities(url)) < 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # Commands already on their way are still stored by intake after the kill; wait for calm.
    settled = -1
    while settled != len(stored_activities(url)):
        settled = len(stored_activities(url))
        time.sleep(0.3)
    partial = len(stored_activities(url))

    rerun = ledger(url, "import", str(path))

    assert rerun.exit_code == ExitCode.OK, rerun.output
    ids = stored_activities(url)
    assert sorted(ids) == sorted(a.activity_id for a in synthetic_activities(10_000, seed=7))
    assert f"{10_000 - partial} accepted, {partial} already present" in rerun.output


def test_a_csv_file_is_imported_with_shares_and_metric_columns(url: str, tmp_path: Path):
    path = tmp_path / "offices.csv"
    path.write_text(
        "activity_id,office,programme,kind,title,countries,year,metric.people_trained\n"
        'CSV-1,KAZ,GENERAL,training,"Judges, prosecutors",KAZ:60;UZB:40,2021,"1,200"\n'
        "CSV-2,KAZ,GENERAL,training,Police,Kazakhstan,2020,\n"
        "CSV-3,KAZ,GENERAL,training,Customs,KAZ,twenty,5\n"
    )

    result = ledger(url, "import", str(path))

    assert result.exit_code == ExitCode.FAILED
    assert "2 accepted, 0 already present, 1 rejected" in result.output
    assert "line 4: rejected (invalid) year:" in result.output
    assert sorted(stored_activities(url)) == ["CSV-1", "CSV-2"]


@pytest.mark.parametrize(
    ("content", "exit_code", "words"),
    [
        (b"activity_id,office,colour\n", ExitCode.INVALID, "unknown column 'colour'"),
        (b"activity_id,office,metric.bananas\n", ExitCode.INVALID, "unknown metric"),
        (b"activity_id,office,programme,kind,title,year\n", ExitCode.INVALID, "no rows"),
        (b"", ExitCode.INVALID, "empty"),
    ],
)
def test_a_bad_csv_file_is_refused_whole(
    url: str, tmp_path: Path, content: bytes, exit_code: int, words: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)

    result = ledger(url, "import", str(path))

    assert result.exit_code == exit_code
    assert words in result.output
    assert "Traceback" not in result.output
    assert stored_activities(url) == []


def test_bad_utf8_and_an_oversized_line_are_rejected_lines_and_the_rest_is_stored(
    url: str, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    with open(path, "wb") as out:
        out.write(activity_json(activity_id="OK-1").encode() + b"\n")
        out.write(
            activity_json(False, activity_id="LATIN-1", title="S\xe3o Paulo").encode("latin-1")
        )
        out.write(b"\n")
        # 64 MiB on one line against a 1 MiB limit stands for the 1 GB line of the issue.
        out.write(b'{"title": "' + b"x" * (64 << 20) + b'"}\n')
        out.write(activity_json(activity_id="OK-2").encode() + b"\n")

    result = ledger(url, "import", str(path), "--max-line-bytes", str(1 << 20))

    assert result.exit_code == ExitCode.FAILED
    assert "2 accepted, 0 already present, 2 rejected" in result.output
    assert "line 2: rejected (invalid) not UTF-8: byte 0xe3" in result.output
    assert "line 3: rejected (invalid) the line is 67,108,878 bytes long" in result.output
    assert sorted(stored_activities(url)) == ["OK-1", "OK-2"]
