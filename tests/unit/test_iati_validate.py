"""The checks of an IATI activity (schema, codelists, ruleset), the export that refuses to write
what fails them, and the hardened reading of hostile files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import socket
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from events.activity import ActivityState
from events.model import CountryShare
from events.reference import load_reference
from services.iati.errors import IatiDataMissingError, IatiFileError, IatiInvalidError
from services.iati.export import write_document
from services.iati.mapping import ActivityDate, IatiActivity, Recipient, SectorShare, activity_of
from services.iati.schema import data_path, load_schema
from services.iati.validate import check_activity, validate_file
from services.iati.writer import element_of
from tests.factories import make_reported

TODAY = dt.date(2026, 1, 15)
NOW = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
DATA = Path(__file__).resolve().parents[2] / "services" / "iati" / "data"


def good(**fields: object) -> IatiActivity:
    return activity_of(
        ActivityState(activity=make_reported(**fields)), reference=load_reference(), today=TODAY
    )


def refusal(activity: IatiActivity, tmp_path: Path) -> IatiInvalidError:
    out = tmp_path / "out.xml"
    with pytest.raises(IatiInvalidError) as caught:
        write_document(out, [good(activity_id="FINE-1"), activity], now=NOW)
    # Nothing is written, and nothing is left behind.
    assert list(tmp_path.iterdir()) == []
    return caught.value


def test_a_missing_start_date_is_refused_naming_activity_element_and_rule(tmp_path: Path):
    broken = dataclasses.replace(good(), dates=(ActivityDate("3", dt.date(2020, 12, 31)),))
    error = refusal(broken, tmp_path)
    assert (error.activity, error.element, error.rule) == (
        "XM-DAC-41128-KAZ-TRAINING-1",
        "activity-date",
        "6.11.1",
    )
    assert "must have a planned start date or an actual start date" in str(error)


def test_percentages_summing_to_90_are_refused(tmp_path: Path):
    # Shares the ledger would refuse; mapped as they are, never "corrected".
    broken = good(countries=[CountryShare("KAZ", 45), CountryShare("UZB", 45)])
    assert [r.percentage for r in broken.recipients] == [Decimal(45), Decimal(45)]
    error = refusal(broken, tmp_path)
    assert (error.element, error.rule) == ("recipient-country/@percentage", "3.1.2")
    assert str(error).endswith("(they sum to 90)")


@pytest.mark.parametrize(
    ("change", "element", "rule"),
    [
        (
            {"sectors": (SectorShare("1", "15120", Decimal(100)),)},  # withdrawn in 2023
            "sector[@vocabulary='1']/@code",
            "codelist Sector",
        ),
        ({"recipients": (Recipient("XX"),)}, "recipient-country/@code", "codelist Country"),
        (
            {
                "dates": (
                    ActivityDate("2", dt.date(2020, 5, 1)),
                    ActivityDate("4", dt.date(2020, 4, 1)),
                )
            },
            "activity-date[@type='4']",
            "11.1.3",
        ),
        (
            {"dates": (ActivityDate("2", dt.date(2026, 5, 1)),)},
            "activity-date[@type='2']",
            "11.1.4",
        ),
        ({"identifier": "XM-DAC-41128-A/B"}, "iati-identifier", "1.3.13"),
        ({"identifier": "XX-OTHER-1"}, "iati-identifier", "1.1.21"),
        ({"description": " "}, "description/narrative", "4.4.1"),
        ({"status": "9"}, "activity-status/@code", "codelist ActivityStatus"),
        ({"participating": ()}, "activity-status", "XSD 2.03"),
    ],
)
def test_each_check_names_its_element_and_rule(
    change: dict[str, object], element: str, rule: str, tmp_path: Path
):
    error = refusal(dataclasses.replace(good(), **change), tmp_path)
    assert (error.element, error.rule) == (element, rule), str(error)


def test_the_vendored_files_are_the_published_ones():
    table = (DATA / "SOURCES.md").read_text("utf-8")
    rows = re.findall(r"^\| (\S+) \|.*\| ([0-9a-f]{40}) \|$", table, re.MULTILINE)
    assert len(rows) == 20
    for name, blob in rows:
        content = (DATA / name).read_bytes()
        # git's blob id: sha1 of "blob <size>\0" and the bytes.
        digest = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        assert digest == blob, name


HOSTILE = {
    "billion laughs": (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<iati-activities version="2.03">&lol3;</iati-activities>',
        "DOCTYPE",
    ),
    "external entity": (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
        '<iati-activities version="2.03"><iati-activity><iati-identifier>&secret;'
        "</iati-identifier></iati-activity></iati-activities>",
        "DOCTYPE",
    ),
    "not xml": ("iati-identifier,title\nA,B\n", "not well-formed XML"),
    "empty": ("", "not well-formed XML"),
    "another root": ('<?xml version="1.0"?><svg/>', "not <iati-activities>"),
    "old version": ('<iati-activities version="1.05"/>', "only IATI 2.03 files"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_unread(name: str, tmp_path: Path):
    text, message = HOSTILE[name]
    path = tmp_path / "in.xml"
    path.write_text(text)
    with pytest.raises(IatiFileError, match=message) as caught:
        validate_file(path, now=NOW)
    assert "root:" not in str(caught.value)  # nothing of /etc/passwd


def test_a_network_dtd_is_never_fetched(tmp_path: Path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        path = tmp_path / "in.xml"
        path.write_text(
            f'<?xml version="1.0"?><!DOCTYPE iati-activities SYSTEM "http://127.0.0.1:{port}/x.dtd">'
            '<iati-activities version="2.03"/>'
        )
        with pytest.raises(IatiFileError, match="DOCTYPE"):
            validate_file(path, now=NOW)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_a_file_over_the_limit_or_with_a_huge_text_node_is_refused(tmp_path: Path):
    path = tmp_path / "big.xml"
    path.write_text(
        '<iati-activities version="2.03"><iati-activity>'
        + "x" * 11_000_000
        + "</iati-activity></iati-activities>"
    )
    with pytest.raises(IatiFileError, match="over the limit of 1,000"):
        validate_file(path, now=NOW, max_bytes=1000)
    # libxml2's own limit on one text node (10 MB) holds: huge_tree is off.
    with pytest.raises(IatiFileError, match="not well-formed XML"):
        validate_file(path, now=NOW)


def test_text_that_xml_cannot_hold_is_refused_and_markup_in_text_stays_text(tmp_path: Path):
    error = refusal(good(title="Training \x01 of judges"), tmp_path)
    assert (error.activity, error.element, error.rule) == (
        "XM-DAC-41128-KAZ-TRAINING-1",
        "narrative",
        "XML 1.0",
    )
    out = tmp_path / "ok.xml"
    tricky = 'Judges & "prosecutors" <b>trained</b>\r\n</narrative><x/>'
    write_document(out, [good(title=tricky, partners=[tricky])], now=NOW)
    root = validate_file(out, now=NOW)
    assert root.activities == 1
    activity = etree.parse(str(out)).getroot()[0]
    assert activity.findtext("title/narrative") == tricky
    assert activity.findall("participating-org")[1].findtext("narrative") == tricky


def test_a_narratives_language_is_checked_against_the_language_codelist():
    element = element_of(good())
    element.find("title/narrative").set("{http://www.w3.org/XML/1998/namespace}lang", "zz")
    with pytest.raises(IatiInvalidError) as caught:
        check_activity(element, now=NOW)
    assert (caught.value.element, caught.value.rule) == (
        "narrative/@xml:lang",
        "codelist Language",
    )


def test_the_schema_loader_reads_no_url_and_names_a_missing_file(tmp_path: Path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        schema = tmp_path / "a.xsd"
        schema.write_text(
            '<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:a">'
            f'<xsd:import namespace="urn:b" schemaLocation="http://127.0.0.1:{port}/b.xsd"/>'
            "</xsd:schema>"
        )
        with pytest.raises(IatiDataMissingError, match="cannot be loaded"):
            load_schema(schema)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    with pytest.raises(IatiDataMissingError, match=r"nope\.xsd is missing"):
        data_path("schemas", "nope.xsd")
