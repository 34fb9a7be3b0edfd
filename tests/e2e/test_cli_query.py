"""The reader commands through click's CliRunner, on a seeded projection (tests/query_seed.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from services.cli.exit_codes import ExitCode
from services.cli.main import main
from tests.query_seed import seed_projection

AS_OF = {"sequence": 7, "time": "2021-06-30T12:00:06Z"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    seed_projection(tmp_path / "projections" / "ledger.db")
    return tmp_path


def ledger(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args])


def test_query_country_json_is_the_api_answer(data_dir: Path):
    result = ledger(data_dir, "query", "country", "Kazakhstan", "--year", "2020", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["as_of"] == AS_OF
    assert (body["country"], body["year"], body["activities"]) == ("KAZ", 2020, 1)
    assert body["totals"] == {"people_trained": 571.0}
    assert body["multi_country_count"] == 1


def test_query_country_prints_tables(data_dir: Path):
    result = ledger(data_dir, "query", "country", "KAZ")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "KAZ Kazakhstan: 2 activities counted"
    assert "│ people_trained │   631 │ people │ sum  │" in lines
    assert "  MULTI-1 (KAZ, UZB, KGZ): Regional workshop on border control" in lines
    assert lines[-1] == "as of sequence 7 (2021-06-30T12:00:06+00:00)"


def test_query_programme_and_year(data_dir: Path):
    programme = json.loads(ledger(data_dir, "query", "programme", "GENERAL", "--json").output)
    assert programme["totals"] == {"firearms_seized": 250.0, "people_trained": 601.0}
    year = json.loads(ledger(data_dir, "query", "year", "2021", "--json").output)
    assert year["totals"] == {
        "firearms_seized": 250.0,
        "participants": 50.0,
        "people_trained": 100.0,
    }


def test_activities_with_filters_and_pages(data_dir: Path):
    result = ledger(data_dir, "activities", "--country", "KAZ", "--limit", "3", "--json")
    page = json.loads(result.output)
    assert [i["activity_id"] for i in page["items"]] == [
        "CYBER-SHARED",
        "KAZ-TRAINING-1",
        "MULTI-1",
    ]

    rest = ledger(
        data_dir, "activities", "--country", "KAZ", "--cursor", page["next_cursor"], "--json"
    )
    assert [i["activity_id"] for i in json.loads(rest.output)["items"]] == ["WITHDRAWN-1"]
    found = ledger(data_dir, "activities", "--q", "trigger")
    assert "UZB-OP-1" in found.output
    assert "KAZ-TRAINING-1" not in found.output


def test_provenance_lists_the_figure(data_dir: Path):
    result = ledger(
        data_dir, "provenance", "--country", "KAZ", "--metric", "people_trained", "--json"
    )

    body = json.loads(result.output)
    assert body["total"] == 631.0
    assert {i["activity_id"]: i["value"] for i in body["items"]} == {
        "CYBER-SHARED": 60.0,
        "KAZ-TRAINING-1": 571.0,
        "MULTI-1": 0.0,
    }
    table = ledger(data_dir, "provenance", "--country", "KAZ", "--metric", "people_trained")
    assert table.output.splitlines()[0].strip() == "people_trained: 631"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("query", "country", "Atlantis"), ExitCode.NOT_FOUND, "error: country: unknown country"),
        (("query", "year", "1700"), ExitCode.INVALID, "error: year: 1700 is out of range"),
        (("activities", "--limit", "900"), ExitCode.INVALID, "error: limit: 900 is out of range"),
        (("activities", "--cursor", "x"), ExitCode.INVALID, "error: cursor: is not a cursor"),
        (("provenance", "--metric", "smiles"), ExitCode.NOT_FOUND, "error: metric: unknown metric"),
    ],
)
def test_bad_input_exits_with_its_code_and_names_the_parameter(data_dir, args, code, message):
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args])

    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_no_projection_is_a_clear_error(tmp_path: Path):
    result = ledger(tmp_path, "query", "country", "KAZ")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert "no projection at" in result.output
