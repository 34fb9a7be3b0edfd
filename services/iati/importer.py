"""``ledger iati import``: the activities of an IATI 2.03 file, reported through intake.

Each ``iati-activity`` becomes an ``ActivityReported`` of the importing office:

- the activity id is the ledger's own (``ledger:activity-id``) when the file is a ledger's
  export, else the ``iati-identifier`` without its reporting organisation's prefix, with any
  character an id may not hold turned into ``-``;
- title and description narratives (English, or the activity's language); recipient countries
  (alpha-2 to the ledger's alpha-3) with their percentages as shares, unless the file says
  they are not shares (``ledger:shares="none"``); the start and end dates, actual before planned,
  but not a date the export derived from the year;
- the year: ``ledger:year``, else the year of the first indicator period, else of the start;
- programme and kind: the ledger's attributes, else a sector of vocabulary 99 that names a
  programme, else the ``--programme`` and ``--kind`` given;
- each indicator whose reference (vocabulary 99) or title names a known metric
  (``events/reference/metrics.json``) is that metric, with the period's overall actual value
  (the actuals with a dimension are a country's part, already in it);
- everything else the ledger has no field for goes, in words, into ``notes``.

The records then go to intake exactly as ``ledger import`` sends a JSON Lines file: they are
written as one (a temporary file beside the import) and given to
:func:`services.client.importer.import_file`, so batching, the command ids derived from each
record's content (a second run stores nothing twice), progress, the summary and the rejects
file are that command's own. A rejection names the line of the activity in the IATI file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
from lxml import etree

from events.decisions import split_validation_error
from events.limits import MAX_ID, MAX_TEXT
from events.metrics import metric_rules
from events.model import ActivityReported
from events.reference import load_reference
from services.client.importer import ImportSummary, LineRejection, import_file
from services.client.office import OfficeClient
from services.iati.codelists import alpha3_of
from services.iati.errors import IatiFileError
from services.iati.mapping import LEDGER_NS
from services.iati.validate import DEFAULT_MAX_BYTES, read_activities

__all__ = ["DEFAULT_KIND", "DEFAULT_PROGRAMME", "import_iati", "record_of", "records_of"]

DEFAULT_PROGRAMME = "GENERAL"
"""The programme of an activity whose file names none the ledger knows."""
DEFAULT_KIND = "technical_assistance"
"""The kind of an activity whose file says none."""

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_encoder = msgspec.json.Encoder()


def _ledger(element: etree._Element, name: str) -> str | None:
    return element.get(f"{{{LEDGER_NS}}}{name}")


def _narrative(element: etree._Element | None, lang: str) -> str:
    """The English narrative of an element (or its language's, or the first)."""
    if element is None:
        return ""
    narratives = element.findall("narrative")
    for narrative in narratives:
        if (narrative.get(XML_LANG) or lang) == "en" and narrative.text:
            return narrative.text.strip()
    return next((n.text.strip() for n in narratives if n.text and n.text.strip()), "")


def _figure(text: str | None) -> int | float | None:
    if text is None or not _NUMBER.fullmatch(text.strip()):
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _day(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((text or "")[:10])
    except ValueError:
        return None


class _Reader:
    """Maps one activity; collects what it cannot map as notes."""

    def __init__(self, activity: etree._Element, programme: str) -> None:
        self.activity = activity
        self.lang = activity.get(XML_LANG) or "en"
        self.notes: list[str] = []
        self.default_programme = programme

    def identifier(self) -> tuple[str, str]:
        identifier = (self.activity.findtext("iati-identifier") or "").strip()
        org = self.activity.find("reporting-org")
        ref = (org.get("ref") if org is not None else None) or ""
        own = _ledger(self.activity, "activity-id")
        if own:
            return identifier, own
        local = identifier.removeprefix(ref + "-") if ref else identifier
        return identifier, _ID_CHARACTERS.sub("-", local).strip("-")

    def countries(self) -> list[dict[str, Any]]:
        shares = _ledger(self.activity, "shares") != "none"
        found: list[dict[str, Any]] = []
        for element in self.activity.iterfind("recipient-country"):
            code = element.get("code", "")
            alpha3 = alpha3_of(code)
            if alpha3 is None:
                self.notes.append(f"recipient country {code!r} is not in the ledger's catalogue")
                continue
            entry: dict[str, Any] = {"country": alpha3}
            percentage = _figure(element.get("percentage"))
            if (
                shares
                and percentage is not None
                and len(self.activity.findall("recipient-country")) > 1
            ):
                entry["share"] = float(percentage)
            found.append(entry)
        for element in self.activity.iterfind("recipient-region"):
            code = element.get("code", "")
            if not (code == "998" and _ledger(self.activity, "activity-id")):
                self.notes.append(
                    f"recipient region {code} (vocabulary {element.get('vocabulary', '1')})"
                )
        for venue in (_ledger(self.activity, "venues") or "").split():
            found.append({"country": venue, "role": "venue"})
        return found

    def dates(self) -> tuple[dt.date | None, dt.date | None]:
        by_type: dict[str, dt.date] = {}
        for element in self.activity.iterfind("activity-date"):
            day = _day(element.get("iso-date"))
            if day is not None and _ledger(element, "derived") is None:
                by_type.setdefault(element.get("type", ""), day)
        start = by_type.get("2") or by_type.get("1")
        end = by_type.get("4") or by_type.get("3")
        return start, end

    def metrics(self) -> tuple[dict[str, int | float], int | None]:
        rules = metric_rules()
        metrics: dict[str, int | float] = {}
        first_year: int | None = None
        for indicator in self.activity.iterfind("result/indicator"):
            reference = indicator.find("reference[@vocabulary='99']")
            title = _narrative(indicator.find("title"), self.lang)
            name = reference.get("code", "") if reference is not None else ""
            if name not in rules:
                name = title.split(":", 1)[0].strip()
            total: int | float | None = None
            for period in indicator.iterfind("period"):
                begins = period.find("period-start")
                start = _day(begins.get("iso-date") if begins is not None else None)
                if start is not None and first_year is None:
                    first_year = start.year
                for actual in period.iterfind("actual"):
                    if actual.find("dimension") is not None:
                        continue
                    value = _figure(actual.get("value"))
                    if value is not None:
                        total = value if total is None else total + value
            if name in rules and total is not None:
                metrics[name] = total
            else:
                shown = "no value" if total is None else f"actual {total}"
                self.notes.append(f"indicator {title or name!r}: {shown}")
        return metrics, first_year

    def programme(self) -> str:
        own = _ledger(self.activity, "programme")
        if own:
            return own
        programmes = load_reference().programmes
        for sector in self.activity.iterfind("sector[@vocabulary='99']"):
            if sector.get("code") in programmes:
                return str(sector.get("code"))
        return self.default_programme

    def partners(self, ref: str) -> list[str]:
        partners = []
        for org in self.activity.iterfind("participating-org"):
            if ref and org.get("ref") == ref:
                continue
            name = _narrative(org, self.lang) or org.get("ref", "")
            if name:
                partners.append(name)
        return partners

    def sources(self) -> list[dict[str, Any]]:
        sources = []
        for link in self.activity.iterfind("document-link"):
            document = _ledger(link, "document") or _narrative(link.find("title"), self.lang)
            if not document:
                continue
            source: dict[str, Any] = {"document": document}
            paragraph = _ledger(link, "paragraph")
            if paragraph and paragraph.isdigit():
                source["paragraph"] = int(paragraph)
            sources.append(source)
        return sources


def record_of(
    activity: etree._Element,
    *,
    office: str,
    position: int = 0,
    programme: str = DEFAULT_PROGRAMME,
    kind: str = DEFAULT_KIND,
) -> ActivityReported | LineRejection:
    """One IATI activity as the report of an activity by ``office``, or why it cannot be."""
    line = activity.sourceline or position
    reader = _Reader(activity, programme)
    identifier, activity_id = reader.identifier()
    if not activity_id or len(activity_id) > MAX_ID:
        return LineRejection(
            line,
            "invalid",
            f"the iati-identifier {identifier!r} gives no activity id of 1 to {MAX_ID} letters, "
            "digits, _ or -",
            "iati-identifier",
            activity_id[:MAX_ID],
        )
    org = activity.find("reporting-org")
    ref = (org.get("ref") if org is not None else None) or ""
    title = _narrative(activity.find("title"), reader.lang)
    summary = _narrative(activity.find("description"), reader.lang)
    start, end = reader.dates()
    metrics, period_year = reader.metrics()
    own_year = _ledger(activity, "year")
    year = int(own_year) if own_year and own_year.isdigit() else period_year
    if year is None and start is not None:
        year = start.year
    if year is None:
        return LineRejection(
            line,
            "invalid",
            "the activity has no year: no ledger:year, indicator period or start date",
            "activity-date",
            activity_id,
        )
    related = activity.find("related-activity[@type='1']")
    part_of = None
    if related is not None and ref and related.get("ref", "").startswith(ref + "-"):
        part_of = related.get("ref", "").removeprefix(ref + "-")
    if not _ledger(activity, "activity-id"):
        reader.notes.insert(0, f"imported from IATI activity {identifier}")
    data: dict[str, Any] = {
        "activity_id": activity_id,
        "office": office,
        "programme": reader.programme(),
        "kind": _ledger(activity, "kind") or kind,
        "title": title,
        "summary": "" if summary == title else summary,
        "countries": reader.countries(),
        "year": year,
        "start_date": start,
        "end_date": end,
        "metrics": metrics,
        "partners": reader.partners(ref),
        "sources": reader.sources(),
        "part_of": part_of,
        "notes": "; ".join(reader.notes)[:MAX_TEXT],
    }
    try:
        return msgspec.convert(data, ActivityReported)
    except msgspec.ValidationError as exc:
        field, message = split_validation_error(exc)
        return LineRejection(line, "invalid", message, field, activity_id)


def records_of(
    path: Path,
    *,
    office: str,
    programme: str = DEFAULT_PROGRAMME,
    kind: str = DEFAULT_KIND,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, ActivityReported | LineRejection]]:
    """Each activity of an IATI file, with its line, as a report or the reason it cannot be.

    :raises IatiFileError: when the file cannot be read as IATI 2.03.
    """
    with open(path, "rb") as stream:
        for position, activity in enumerate(read_activities(stream, path, max_bytes=max_bytes), 1):
            record = record_of(
                activity, office=office, position=position, programme=programme, kind=kind
            )
            yield activity.sourceline or position, record
            if on_progress is not None:
                on_progress(stream.tell())


async def import_iati(
    client: OfficeClient,
    path: Path,
    *,
    office: str,
    programme: str = DEFAULT_PROGRAMME,
    kind: str = DEFAULT_KIND,
    window: int = 256,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Report every activity of an IATI file through intake, as ``ledger import`` does.

    :param on_progress: called with (bytes done, bytes in all) of the current phase: reading
        the IATI file, then sending its records.
    :raises IatiFileError: when the file cannot be read as IATI 2.03; nothing is sent.
    :raises IntakeUnavailableError: when intake stops answering; importing again is safe.
    """
    size = path.stat().st_size
    lines: list[int] = []
    rejections: list[LineRejection] = []
    # In the temporary directory, not beside the IATI file: its folder may be read-only (a
    # mounted share), and tempfile makes the file its owner's alone (0600).
    handle, name = tempfile.mkstemp(prefix="ledger-iati-", suffix=".jsonl")
    staged = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            for line, record in records_of(
                path,
                office=office,
                programme=programme,
                kind=kind,
                max_bytes=max_bytes,
                on_progress=(lambda done: on_progress(done, size)) if on_progress else None,
            ):
                if isinstance(record, LineRejection):
                    rejections.append(record)
                    continue
                lines.append(line)
                out.write(_encoder.encode(record) + b"\n")
        if not lines and not rejections:
            raise IatiFileError(f"{path}: the file holds no iati-activity; nothing to import")
        staged_size = staged.stat().st_size
        summary = (
            await import_file(
                client,
                staged,
                window=window,
                csv_format=False,
                on_progress=(lambda done: on_progress(done, staged_size)) if on_progress else None,
            )
            if lines
            else ImportSummary()
        )
    finally:
        staged.unlink(missing_ok=True)
    # The staged file's line n is the n-th record kept: name the IATI file's line instead.
    summary.rejections = sorted(
        rejections + [replace(r, line=_line(lines, r.line)) for r in summary.rejections],
        key=lambda r: r.line,
    )
    return summary


def _line(lines: list[int], staged: int) -> int:
    return lines[staged - 1] if 0 < staged <= len(lines) else staged
