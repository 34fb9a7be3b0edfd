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


def test_query_country_as_of_an_instant_before_the_withdrawal(data_dir: Path):
    # [5], recorded at 12:00:04, is the last before the withdrawal at [6].
    result = ledger(
        data_dir, "query", "country", "KAZ", "--as-of", "2021-06-30T12:00:04.5Z", "--json"
    )

    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["as_of"]["sequence"] == 5
    assert body["as_of"]["now"] is False
    assert body["totals"]["people_trained"] == 571 + 60 + 1000


def test_the_past_is_said_in_the_tables(data_dir: Path):
    result = ledger(data_dir, "query", "country", "KAZ", "--as-of-sequence", "5")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "in the past: as of sequence 5 (2021-06-30T12:00:04+00:00)"
    )


def test_activities_activity_and_provenance_as_of(data_dir: Path):
    listed = ledger(
        data_dir, "activities", "--status", "withdrawn", "--as-of-sequence", "5", "--json"
    )
    then = ledger(data_dir, "query", "activity", "UZB-OP-1", "--as-of-sequence", "6", "--json")
    figure = ledger(
        data_dir,
        "provenance",
        "--country",
        "KAZ",
        "--metric",
        "people_trained",
        "--as-of-sequence",
        "5",
        "--json",
    )

    assert json.loads(listed.output)["items"] == []
    assert json.loads(then.output)["metrics"] == {"firearms_seized": 200}
    assert json.loads(figure.output)["total"] == 1631


def test_query_documents(data_dir: Path):
    result = ledger(data_dir, "query", "documents", "--json")

    assert result.exit_code == 0, result.output
    (only,) = json.loads(result.output)["items"]
    assert only["document"] == "SG report 2021 (A/76, item 109)"
    assert only["activities"] == 4  # the withdrawn one counts nowhere


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--as-of", "30 June"], "as_of"),
        (["--as-of-sequence", "99"], "as_of_sequence"),
        (["--document", "A/99/1"], "document"),
    ],
)
def test_a_bad_scope_is_a_clear_error(data_dir: Path, args: list[str], field: str):
    result = ledger(data_dir, "query", "country", "KAZ", *args)

    assert result.exit_code != 0
    assert field in result.output
    assert "Traceback" not in result.output
