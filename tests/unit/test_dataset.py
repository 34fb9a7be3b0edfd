"""The seed dataset keeps to the report: every figure is in the paragraph its source names.

The report is read from ``../shared/seed/`` beside the project; where that folder is absent
(e.g. a copy of the project on its own), the text checks are skipped with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from events.model import ActivityReported
from events.reference import load_reference
from events.validation import check_reported
from services.cli.demo import read_dataset

REPORT = Path(__file__).resolve().parents[2].parent / "shared" / "seed" / "000_8cff92d5588c1613.txt"
_SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹⁰"


def _paragraphs(text: str) -> dict[int, str]:
    """Numbered paragraphs; a paragraph runs on over page breaks until the next number."""
    paragraphs: dict[int, list[str]] = {}
    current = 0
    for line in text.splitlines():
        match = re.match(r"(\d+)\. ", line)
        if match and int(match.group(1)) == current + 1:
            current += 1
            paragraphs[current] = [line[match.end() :]]
        elif current and line.strip() and not line.lstrip().startswith(tuple(_SUPERSCRIPTS)):
            paragraphs[current].append(line)
    return {number: " ".join(lines) for number, lines in paragraphs.items()}


def _as_written(value: float) -> list[str]:
    """The ways the report writes a figure: "2,440", "5,600", "2.5 million", "2 million"."""
    forms = []
    if float(value).is_integer():
        forms.append(f"{int(value):,}")
        if value >= 1_000_000:
            forms.append(f"{value / 1_000_000:g} million")
    else:
        forms.append(f"{value:,g}")
    return forms


def _occurs(form: str, text: str) -> bool:
    # Not part of a longer number: "571" must not match "5,571" or "5710".
    return re.search(rf"(?<![\d,.]){re.escape(form)}(?![\d]|,\d)", text) is not None


RECORDS = read_dataset()  # read as `ledger import` reads the file


def test_the_dataset_has_the_reports_activities() -> None:
    assert len(RECORDS) >= 100
    ids = [r.activity_id for r in RECORDS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.activity_id)
def test_every_country_programme_and_code_resolves(record: ActivityReported) -> None:
    checked = check_reported(record, load_reference(), max_year=2021)
    assert checked.programme in load_reference().programmes
    assert record.sources and all(source.paragraph for source in record.sources)


@pytest.mark.skipif(not REPORT.exists(), reason=f"the report is not at {REPORT}")
@pytest.mark.parametrize("record", [r for r in RECORDS if r.metrics], ids=lambda r: r.activity_id)
def test_every_figure_occurs_in_its_paragraph(record: ActivityReported) -> None:
    paragraphs = _paragraphs(REPORT.read_text(encoding="utf-8"))
    cited = [source.paragraph for source in record.sources if source.paragraph is not None]
    assert cited
    for metric, value in record.metrics.items():
        forms = _as_written(value)
        assert any(_occurs(form, paragraphs[n]) for n in cited for form in forms), (
            f"{metric}={value} (written {' or '.join(forms)}) is in none of paragraphs {cited}"
        )


@pytest.mark.skipif(not REPORT.exists(), reason=f"the report is not at {REPORT}")
def test_the_paragraph_reader_finds_the_numbered_paragraphs() -> None:
    paragraphs = _paragraphs(REPORT.read_text(encoding="utf-8"))
    assert "5,600 participants" in paragraphs[4]
    assert len(paragraphs) >= 90
    assert list(paragraphs) == list(range(1, len(paragraphs) + 1))
