"""An activity of the ledger as the data of one IATI ``iati-activity`` (pure: values in and out).

Every choice is written down in ``docs/iati.md``; in short:

- ``iati-identifier`` is the reporting organisation's ref, ``-``, and the activity id;
- title and summary are narratives (the activity's ``xml:lang`` is ``en``); an activity with
  no summary is described by its title, as the standard wants a description (rule 4.4.1);
- UNODC takes part as implementing organisation (role 4), and so does each partner, by name;
- the dates the office gave are actual (2, 4) when past, planned (1, 3) when to come; an
  activity with no start date gets a planned start on 1 January of its year, flagged
  ``ledger:derived="year"`` and said in a narrative;
- recipient countries are ISO alpha-2 with the shares as percentages; a multi-country activity
  without shares (which the ledger counts in no single country) gets equal percentages, so that
  they sum to 100 (rule 3.1.2), and ``ledger:shares="none"`` says they are not the ledger's;
  a venue is no recipient: it is named in ``ledger:venues``; an activity with no recipient
  country (a global one) has the recipient region 998, "developing countries, unspecified"
  (vocabulary 1), since the ruleset wants a country or a region (rule 3.7.1);
- sectors are the programme's DAC 5-digit codes (the programme catalogue's ``dac_sectors``),
  and the programme itself as a sector of vocabulary 99 (the reporting organisation's own);
- each metric is an indicator (measure 1, unit) of one output result, with the figure as the
  actual value of a period that is the activity's year; ``aggregation-status`` says whether the
  ledger sums it; a country's part of a shared figure is an extra actual with a
  ``recipient-country`` dimension;
- each source is a ``document-link``; ``last-updated-datetime`` is the time of the last event.

Fields IATI has no element for (year, kind, office, programme code) travel as attributes in
the ledger's own namespace (:data:`LEDGER_NS`), which the schema allows on ``iati-activity``.
"""

from __future__ import annotations

import datetime as dt
import functools
import urllib.parse
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from events.activity import ActivityState
from events.metrics import metric_rules
from events.model import CountryShare, Figure
from events.reference import Reference
from services.iati.codelists import alpha2_of

__all__ = [
    "DEFAULT_REPORTING_ORG",
    "LEDGER_NS",
    "ActivityDate",
    "DocumentLink",
    "IatiActivity",
    "Indicator",
    "Organisation",
    "Recipient",
    "SectorShare",
    "activity_of",
    "dac_sectors_of",
    "format_figure",
]

LEDGER_NS = "urn:x-activity-ledger:iati:1"
"""The namespace of the ledger's own attributes (an IATI extension: another namespace)."""

DEFAULT_REPORTING_ORG = "XM-DAC-41128"
"""UNODC's organisation identifier, assumed: ``XM-DAC`` (the OECD DAC list) and UNODC's CRS
channel code, 41128. Check it against UNODC's IATI Registry record before publishing; the
setting ``LEDGER_IATI_REPORTING_ORG`` and ``--reporting-org`` change it."""

UNSPECIFIED_REGION = "998"
"""Region codelist, vocabulary 1: developing countries, unspecified."""
UNODC_NAME = "United Nations Office on Drugs and Crime"
_MULTILATERAL = "40"  # OrganisationType
_IMPLEMENTING = "4"  # OrganisationRole
_PLANNED_START, _ACTUAL_START, _PLANNED_END, _ACTUAL_END = "1", "2", "3", "4"
_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Organisation:
    """A reporting or participating organisation."""

    name: str
    ref: str = ""
    type: str = ""
    role: str = ""


@dataclass(frozen=True)
class ActivityDate:
    """One ``activity-date``: its ActivityDateType code and day; ``derived`` when the ledger
    had no such date and it comes from the year."""

    type: str
    day: dt.date
    derived: bool = False


@dataclass(frozen=True)
class Recipient:
    """One ``recipient-country``: alpha-2 code and percentage (``None``: none written)."""

    code: str
    percentage: Decimal | None = None


@dataclass(frozen=True)
class SectorShare:
    """One ``sector``: vocabulary, code, percentage and, for vocabulary 99, its name."""

    vocabulary: str
    code: str
    percentage: Decimal
    name: str = ""


@dataclass(frozen=True)
class Indicator:
    """One metric as an indicator: its figure, and each recipient country's part of it."""

    metric: str
    title: str
    value: Figure
    summed: bool
    """Whether the ledger sums this metric into totals (``aggregation-status``)."""
    start: dt.date
    end: dt.date
    parts: tuple[tuple[str, Figure], ...] = ()
    """(alpha-2 country, that country's part of the figure), for shared figures."""


@dataclass(frozen=True)
class DocumentLink:
    """Where the activity is reported: a document and paragraph."""

    url: str
    document: str
    paragraph: int | None = None


@dataclass(frozen=True)
class IatiActivity:
    """Everything one ``iati-activity`` element says, in the schema's order."""

    identifier: str
    reporting_org: Organisation
    title: str
    description: str
    participating: tuple[Organisation, ...]
    status: str
    dates: tuple[ActivityDate, ...]
    recipients: tuple[Recipient, ...]
    region: str | None
    """A DAC recipient region (vocabulary 1) when there is no recipient country."""
    sectors: tuple[SectorShare, ...]
    documents: tuple[DocumentLink, ...]
    parent: str | None
    """The ``iati-identifier`` of the activity whose figures include this one's."""
    indicators: tuple[Indicator, ...]
    last_updated: dt.datetime | None = None
    ledger: dict[str, str] = field(default_factory=dict)
    """The ledger's own attributes (:data:`LEDGER_NS`): year, kind, office, programme, ..."""


def format_figure(value: Figure | Decimal) -> str:
    """A figure as IATI writes a decimal: ``571``, ``2.5``; never an exponent."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
    return text


def dac_sectors_of(reference: Reference, programme: str) -> tuple[tuple[str, Decimal], ...]:
    """The programme's DAC 5-digit sector codes and percentages, from the programme
    catalogue's ``dac_sectors`` (``"15130:50;15113:50"``); none when it has none."""
    entry = reference.programmes.get(programme)
    text = entry.detail.get("dac_sectors", "") if entry else ""
    pairs = []
    for part in str(text).split(";"):
        if part.strip():
            code, _, percent = part.partition(":")
            pairs.append((code.strip(), Decimal(percent.strip() or "100")))
    return tuple(pairs)


def _percentages(shares: list[Decimal | None]) -> tuple[list[Decimal], bool]:
    """Percentages to the cent for each recipient, and whether they are the ledger's own."""
    if shares and all(share is not None for share in shares):
        given = [share.quantize(_CENT, ROUND_HALF_EVEN) for share in shares if share is not None]
        # Rounding to the cent may leave a cent or two over or under 100: the last country
        # takes it. Shares that are wrong by more are left wrong, for validation to refuse.
        residual = _HUNDRED - sum(given, Decimal(0))
        if residual and abs(residual) <= _CENT * len(given):
            given[-1] += residual
        return given, True
    count = len(shares)
    equal = (_HUNDRED / count).quantize(_CENT, ROUND_HALF_EVEN)
    parts = [equal] * count
    parts[-1] = _HUNDRED - equal * (count - 1)
    return parts, False


def _recipients(countries: list[CountryShare]) -> tuple[tuple[Recipient, ...], dict[str, str]]:
    recipients = [c for c in countries if c.role == "recipient"]
    venues = [c.country for c in countries if c.role == "venue"]
    extra: dict[str, str] = {}
    if venues:
        extra["venues"] = " ".join(venues)
    codes = [alpha2_of(c.country) or c.country for c in recipients]
    if len(recipients) < 2:
        share = recipients[0].share if recipients else None
        percentage = None if share is None else Decimal(repr(share)).quantize(_CENT)
        return tuple(Recipient(code, percentage) for code in codes), extra
    shares = [None if c.share is None else Decimal(repr(c.share)) for c in recipients]
    percentages, own = _percentages(shares)
    if not own:
        extra["shares"] = "none"
    return tuple(Recipient(c, p) for c, p in zip(codes, percentages, strict=True)), extra


def _dates(state: ActivityState, today: dt.date) -> tuple[ActivityDate, ...]:
    activity = state.activity
    dates = []
    if activity.start_date is not None:
        kind = _ACTUAL_START if activity.start_date <= today else _PLANNED_START
        dates.append(ActivityDate(kind, activity.start_date))
    else:
        dates.append(ActivityDate(_PLANNED_START, dt.date(activity.year, 1, 1), derived=True))
    if activity.end_date is not None:
        kind = _ACTUAL_END if activity.end_date <= today else _PLANNED_END
        dates.append(ActivityDate(kind, activity.end_date))
    return tuple(dates)


def _status(state: ActivityState, today: dt.date) -> str:
    """ActivityStatus: 1 pipeline when it starts later, 3 finalisation when it has ended (or
    its year has), else 2 implementation. The ledger knows nothing of financial closure (4)."""
    activity = state.activity
    if activity.start_date is not None and activity.start_date > today:
        return "1"
    if activity.end_date is not None:
        return "3" if activity.end_date <= today else "2"
    return "3" if activity.year < today.year else "2"


@functools.lru_cache(maxsize=4096)
def _document_url(document: str) -> str:
    # A UN document symbol (A/76/119) has a stable address; any other title is a search.
    symbol = document.replace(" ", "")
    if "/" in symbol and symbol.replace("/", "").replace(".", "").isalnum():
        return "https://undocs.org/" + urllib.parse.quote(symbol, safe="/")
    return "https://digitallibrary.un.org/search?" + urllib.parse.urlencode({"p": document})


def _indicators(
    state: ActivityState, reference: Reference, recipients: tuple[Recipient, ...], own: bool
) -> tuple[Indicator, ...]:
    activity = state.activity
    start, end = dt.date(activity.year, 1, 1), dt.date(activity.year, 12, 31)
    rules = metric_rules()
    indicators = []
    for metric in sorted(activity.metrics):
        value = activity.metrics[metric]
        entry = reference.metrics.get(metric)
        summed = metric in rules and rules[metric].aggregate == "sum"
        title = f"{metric}: {entry.detail.get('description', '')}" if entry else metric
        parts: tuple[tuple[str, Figure], ...] = ()
        if summed and own and len(recipients) > 1:
            parts = tuple(
                (r.code, _part(value, r.percentage)) for r in recipients if r.percentage is not None
            )
        indicators.append(Indicator(metric, title.rstrip(": "), value, summed, start, end, parts))
    return tuple(indicators)


def _part(value: Figure, percentage: Decimal | None) -> Figure:
    share = Decimal(repr(value)) * (percentage or _HUNDRED) / _HUNDRED
    return float(share.quantize(Decimal("0.000001")))


def activity_of(
    state: ActivityState,
    *,
    reference: Reference,
    reporting_org: str = DEFAULT_REPORTING_ORG,
    last_updated: dt.datetime | None = None,
    today: dt.date,
) -> IatiActivity:
    """The IATI data of one activity's state.

    :param reporting_org: the organisation identifier every activity is reported under.
    :param last_updated: the time of the activity's last event.
    :param today: what "past" and "to come" are measured against (actual or planned dates).
    """
    activity = state.activity
    recipients, extra = _recipients(activity.countries)
    programme = reference.programmes.get(activity.programme)
    sectors = [
        SectorShare("1", code, percent)
        for code, percent in dac_sectors_of(reference, activity.programme)
    ]
    sectors.append(
        SectorShare(
            "99", activity.programme, _HUNDRED, programme.name if programme else activity.programme
        )
    )
    partners = tuple(Organisation(name, role=_IMPLEMENTING) for name in activity.partners)
    ledger = {
        "activity-id": activity.activity_id,
        "office": activity.office,
        "programme": activity.programme,
        "kind": activity.kind,
        "year": str(activity.year),
        **extra,
    }
    return IatiActivity(
        identifier=f"{reporting_org}-{activity.activity_id}",
        reporting_org=Organisation(UNODC_NAME, reporting_org, _MULTILATERAL),
        title=activity.title,
        description=activity.summary or activity.title,
        participating=(
            Organisation(UNODC_NAME, reporting_org, _MULTILATERAL, _IMPLEMENTING),
            *partners,
        ),
        status=_status(state, today),
        dates=_dates(state, today),
        recipients=recipients,
        region=None if recipients else UNSPECIFIED_REGION,
        sectors=tuple(sectors),
        documents=tuple(
            DocumentLink(_document_url(s.document), s.document, s.paragraph)
            for s in activity.sources
        ),
        parent=f"{reporting_org}-{activity.part_of}" if activity.part_of else None,
        indicators=_indicators(state, reference, recipients, "shares" not in extra),
        last_updated=last_updated,
        ledger=ledger,
    )
