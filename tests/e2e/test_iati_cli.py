"""``ledger iati export`` and ``ledger iati validate`` through click's CliRunner, on projection
files made by the projector's applier (the seed report, and a ledger with a broken activity)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import etree

from events.model import CountryShare
from projections.apply import Applier
from projections.db import ensure_live, live_path, open_writer
from services.cli.demo import read_dataset
from services.cli.exit_codes import ExitCode
from services.cli.main import main
from tests.factories import make_reported, sealed
from tests.iati_seed import seed_report_projection
from tests.query_seed import raw_messages, seed_projection

LEDGER = "{urn:x-activity-ledger:iati:1}"


def ledger(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("seeded")
    seed_report_projection(live_path(data_dir))
    return data_dir


def test_the_seed_report_exports_and_the_file_validates(seeded: Path, tmp_path: Path):
    out = tmp_path / "unodc.xml"
    result = ledger(seeded, "iati", "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    activities = len(read_dataset())  # the seed report withdraws none
    assert f"{activities} activities" in result.output
    root = etree.parse(str(out)).getroot()
    assert root.get("version") == "2.03"
    assert len(root.findall("iati-activity")) == activities

    checked = ledger(seeded, "iati", "validate", str(out))
    assert checked.exit_code == 0, checked.output
    assert f"{activities} activities, valid IATI 2.03" in checked.output


def test_filters_and_reporting_org(seeded: Path, tmp_path: Path):
    out = tmp_path / "kaz.xml"
    result = ledger(
        seeded,
        "iati",
        "export",
        "--out",
        str(out),
        "--country",
        "KAZ",
        "--reporting-org",
        "XM-DAC-99999",
    )
    assert result.exit_code == 0, result.output
    root = etree.parse(str(out)).getroot()
    # The seed lists three activities under Kazakhstan (data/activities.jsonl).
    kaz = [a for a in read_dataset() if any(c.country == "KAZ" for c in a.countries)]
    identifiers = sorted(a.findtext("iati-identifier") for a in root)
    assert identifiers == sorted(f"XM-DAC-99999-{a.activity_id}" for a in kaz)
    assert {a.find("reporting-org").get("ref") for a in root} == {"XM-DAC-99999"}


def _broken_ledger(data_dir: Path) -> None:
    # Intake would refuse shares that sum to 90; the applier takes the event as stored, as a
    # stream written before a rule existed could hold one.
    broken = make_reported(
        activity_id="BROKEN-SHARES",
        countries=[CountryShare("KAZ", 45), CountryShare("UZB", 45)],
    )
    conn = open_writer(ensure_live(live_path(data_dir)))
    try:
        Applier(conn).apply(raw_messages([sealed(make_reported()), sealed(broken)]))
    finally:
        conn.close()


def test_a_broken_activity_makes_the_export_refuse_and_write_nothing(tmp_path: Path):
    _broken_ledger(tmp_path)
    out = tmp_path / "out.xml"
    out.write_text("the previous export")
    result = ledger(tmp_path, "iati", "export", "--out", str(out))
    assert result.exit_code == ExitCode.INVALID, result.output
    assert (
        "activity XM-DAC-41128-BROKEN-SHARES: recipient-country/@percentage: [3.1.2] "
        "Percentage values for recipient countries, must add up to 100%. (they sum to 90)"
    ) in result.output
    # Check: the old file is untouched, and no temporary file is left beside it.
    assert out.read_text() == "the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xml", "projections"]


def test_validate_names_the_missing_start_date(seeded: Path, tmp_path: Path):
    out = tmp_path / "unodc.xml"
    assert ledger(seeded, "iati", "export", "--out", str(out), "--country", "KAZ").exit_code == 0
    tree = etree.parse(str(out))
    first = tree.getroot()[0]
    for date in first.findall("activity-date"):
        if date.get("type") in ("1", "2"):
            first.remove(date)
    # An end date keeps the schema's "at least one activity-date"; the rule is the ruleset's.
    etree.SubElement(first, "activity-date", {"type": "3", "iso-date": "2030-01-01"})
    first.insert(6, first[-1])
    tree.write(str(out))

    result = ledger(seeded, "iati", "validate", str(out))
    assert result.exit_code == ExitCode.INVALID, result.output
    identifier = first.findtext("iati-identifier")
    assert f"activity {identifier}: activity-date: [6.11.1]" in result.output
    assert "must have a planned start date or an actual start date" in result.output


def test_import_reports_through_intake_writes_rejects_and_is_idempotent(url: str, tmp_path: Path):
    small = tmp_path / "small"
    seed_projection(live_path(small))
    out = tmp_path / "partner.xml"
    assert ledger(small, "iati", "export", "--out", str(out)).exit_code == 0
    # Two activities go wrong: one intake refuses (an unknown programme), one that names no
    # year at all, which is refused before sending.
    tree = etree.parse(str(out))
    first, second = tree.getroot()[0], tree.getroot()[1]
    first.set(f"{LEDGER}programme", "NO-SUCH-PROGRAMME")
    for name in ("year", "activity-id"):
        del second.attrib[f"{LEDGER}{name}"]
    second.remove(second.find("result"))
    for date in second.findall("activity-date"):
        second.remove(date)
    etree.SubElement(second, "activity-date", {"type": "3", "iso-date": "2030-01-01"})
    second.insert(6, second[-1])
    tree.write(str(out))
    first_line, second_line = (a.sourceline for a in etree.parse(str(out)).getroot()[:2])

    args = ("--nats-url", url, "--data-dir", str(tmp_path), "iati", "import", str(out))
    result = CliRunner().invoke(main, [*args, "--office", "HQ"])
    assert result.exit_code == ExitCode.FAILED, result.output
    assert f"{out}: 2 accepted, 0 already present, 2 rejected" in result.output
    assert f"line {first_line} CYBER-SHARED: rejected" in result.output
    assert f"line {second_line} KAZ-TRAINING-1: rejected (invalid) activity-date:" in (
        result.output
    )
    rejects = out.with_name(out.name + ".rejects.jsonl").read_text().splitlines()
    assert [json.loads(line)["line"] for line in rejects] == [first_line, second_line]

    again = CliRunner().invoke(main, [*args, "--office", "HQ"])
    assert f"{out}: 0 accepted, 2 already present, 2 rejected" in again.output


def test_an_export_that_matches_nothing_writes_nothing(seeded: Path, tmp_path: Path):
    out = tmp_path / "none.xml"
    result = ledger(seeded, "iati", "export", "--out", str(out), "--year", "1999")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert "no activity that is not withdrawn matches the filters" in result.output
    assert list(tmp_path.iterdir()) == []
