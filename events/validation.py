"""Domain rules that an event must meet before it may enter the stream.

Each check collects every problem it finds, as a :class:`FieldIssue` with the field's path and a
reason a field officer can act on, and raises them together in one :class:`InvalidEventError`.
Checks also normalise: a country or programme given by name comes back as its code.

The size limits of :mod:`events.limits` are checked here too. Decoding an office's command
already enforces them, but a Struct built in Python (by the importer, the CLI or a test) is not
checked by msgspec, and the client validates before it sends.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import msgspec

from events.errors import FieldIssue, InvalidEventError
from events.limits import (
    MAX_ACTOR,
    MAX_COUNTRIES,
    MAX_FIGURE,
    MAX_METRICS,
    MAX_NAME,
    MAX_PARAGRAPH,
    MAX_PARTNERS,
    MAX_REASON,
    MAX_SOURCES,
    MAX_TEXT,
    MAX_TITLE,
)
from events.model import ActivityReported, CountryShare, Source
from events.reference import FIRST_YEAR, Reference, latest_year
from events.subjects import is_token

__all__ = ["check_actor", "check_reason", "check_reported", "max_year_today"]

_SHARE_TOLERANCE = 0.01


def max_year_today() -> int:
    """The latest acceptable year today (:func:`events.reference.latest_year`)."""
    return latest_year(dt.date.today())


def check_reported(
    event: ActivityReported, ref: Reference, *, max_year: int | None = None
) -> ActivityReported:
    """Check a reported activity and return it with names resolved to codes.

    :param event: the activity as the office gave it.
    :param ref: the catalogues to check codes against.
    :param max_year: the latest acceptable year; next year when not given.
    :raises InvalidEventError: listing every problem found.
    """
    issues: list[FieldIssue] = []
    latest = max_year if max_year is not None else max_year_today()

    if not is_token(event.activity_id):
        issues.append(
            FieldIssue(
                "activity_id",
                f"{_shown(event.activity_id)} is not a valid id; use 1-64 letters, digits, '_' "
                "or '-' (no dots, spaces, '*' or '>')",
            )
        )
    if event.office not in ref.offices:
        issues.append(
            FieldIssue("office", f"unknown office {_shown(event.office)}; {_known(ref.offices)}")
        )
    programme = ref.programme_code(event.programme)
    if programme is None:
        issues.append(
            FieldIssue(
                "programme",
                f"unknown programme {_shown(event.programme)}; {_known(ref.programmes)}",
            )
        )
    if event.kind not in ref.kinds:
        issues.append(FieldIssue("kind", f"unknown kind {_shown(event.kind)}; {_known(ref.kinds)}"))
    if not event.title.strip():
        issues.append(FieldIssue("title", "the title is empty; give a short description"))
    _check_length(issues, "title", event.title, MAX_TITLE)
    _check_length(issues, "summary", event.summary, MAX_TEXT)
    _check_length(issues, "notes", event.notes, MAX_TEXT)
    _check_partners(event.partners, issues)
    _check_sources(event.sources, issues)
    if event.part_of is not None and (
        not is_token(event.part_of) or event.part_of == event.activity_id
    ):
        issues.append(
            FieldIssue(
                "part_of",
                f"{_shown(event.part_of)} is no other activity's id; give the id of the "
                "activity whose figures include this one's",
            )
        )

    countries = _check_countries(event.countries, ref, issues)

    if not FIRST_YEAR <= event.year <= latest:
        issues.append(
            FieldIssue(
                "year",
                f"{event.year} is outside {FIRST_YEAR}..{latest}; give the year it took place",
            )
        )
    if event.start_date and event.end_date and event.end_date < event.start_date:
        issues.append(
            FieldIssue(
                "end_date",
                f"end date {event.end_date} is before start date {event.start_date}",
            )
        )

    if len(event.metrics) > MAX_METRICS:
        issues.append(
            FieldIssue(
                "metrics", f"{len(event.metrics)} figures; at most {MAX_METRICS} are accepted"
            )
        )
    else:
        _check_metrics(event.metrics, ref, issues)

    if issues:
        raise InvalidEventError(issues)
    return msgspec.structs.replace(event, programme=programme, countries=countries)


def check_reason(reason: str, field: str = "reason") -> None:
    """A revision or withdrawal must say why, in at most 200 characters.

    :raises InvalidEventError: when the reason is blank or too long.
    """
    if not reason.strip():
        raise InvalidEventError(
            [FieldIssue(field, "a reason is required; say why the record changes")]
        )
    issues: list[FieldIssue] = []
    _check_length(issues, field, reason, MAX_REASON)
    if issues:
        raise InvalidEventError(issues)


def check_actor(actor: str, field: str = "actor") -> None:
    """Who issues a command is named in at most 200 characters.

    :raises InvalidEventError: when the name is too long.
    """
    issues: list[FieldIssue] = []
    _check_length(issues, field, actor, MAX_ACTOR)
    if issues:
        raise InvalidEventError(issues)


def _check_length(issues: list[FieldIssue], field: str, text: str, limit: int) -> None:
    if len(text) > limit:
        issues.append(
            FieldIssue(field, f"{len(text):,} characters; at most {limit:,} are accepted")
        )


def _check_partners(partners: list[str], issues: list[FieldIssue]) -> None:
    if len(partners) > MAX_PARTNERS:
        issues.append(
            FieldIssue(
                "partners", f"{len(partners):,} partners; at most {MAX_PARTNERS} are accepted"
            )
        )
        return
    for i, name in enumerate(partners):
        _check_length(issues, f"partners.{i}", name, MAX_NAME)


def _check_metrics(metrics: dict[str, float], ref: Reference, issues: list[FieldIssue]) -> None:
    for name, value in metrics.items():
        path = f"metrics.{name}"
        if name not in ref.metrics:
            issues.append(FieldIssue(path, f"unknown metric {_shown(name)}; {_known(ref.metrics)}"))
        elif not _is_figure(value):
            issues.append(
                FieldIssue(
                    path,
                    f"{_shown(value)} is not a figure; give a number of zero or more, "
                    f"at most {MAX_FIGURE:,}",
                )
            )


def _is_figure(value: object) -> bool:
    # Compare before anything converts the value: math.isfinite(10**400) raises OverflowError.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return 0 <= value <= MAX_FIGURE


def _check_sources(sources: list[Source], issues: list[FieldIssue]) -> None:
    if len(sources) > MAX_SOURCES:
        issues.append(
            FieldIssue("sources", f"{len(sources):,} sources; at most {MAX_SOURCES} are accepted")
        )
        return
    seen: set[tuple[str, int | None]] = set()
    for i, source in enumerate(sources):
        if not source.document.strip():
            issues.append(FieldIssue(f"sources.{i}.document", "the document is empty; name it"))
        _check_length(issues, f"sources.{i}.document", source.document, MAX_NAME)
        paragraph = source.paragraph
        if paragraph is not None and not 0 <= paragraph <= MAX_PARAGRAPH:
            issues.append(
                FieldIssue(
                    f"sources.{i}.paragraph",
                    f"{_shown(paragraph)} is not a paragraph number; give 0 to {MAX_PARAGRAPH:,}",
                )
            )
        if (source.document, paragraph) in seen:
            issues.append(FieldIssue(f"sources.{i}", "this source is listed twice"))
        seen.add((source.document, paragraph))


def _check_countries(
    countries: list[CountryShare], ref: Reference, issues: list[FieldIssue]
) -> list[CountryShare]:
    if len(countries) > MAX_COUNTRIES:
        # Checking each of 50,000 entries would only say the same few things 50,000 times.
        issues.append(
            FieldIssue(
                "countries",
                f"{len(countries):,} countries; at most {MAX_COUNTRIES} are accepted",
            )
        )
        return list(countries)
    resolved: list[CountryShare] = []
    seen: set[str] = set()
    for i, item in enumerate(countries):
        code = ref.country_code(item.country)
        if code is None:
            issues.append(
                FieldIssue(
                    f"countries.{i}.country",
                    f"unknown country {_shown(item.country)}; use an ISO 3166-1 alpha-3 code "
                    "or UN name",
                )
            )
            continue
        if code in seen:
            issues.append(FieldIssue(f"countries.{i}.country", f"{code} is listed twice"))
        seen.add(code)
        if item.role == "venue" and item.share is not None:
            issues.append(
                FieldIssue(
                    f"countries.{i}.share",
                    "a venue takes no share: it only hosted the activity; give shares to "
                    "the recipients only",
                )
            )
        elif item.share is not None and not _is_share(item.share):
            issues.append(
                FieldIssue(
                    f"countries.{i}.share",
                    f"share {_shown(item.share)} must be above 0 and at most 100",
                )
            )
        resolved.append(CountryShare(country=code, share=item.share, role=item.role))

    shares = [c.share for c in countries if c.role == "recipient"]
    given = [s for s in shares if s is not None]
    if given and len(given) != len(shares):
        issues.append(
            FieldIssue("countries", "give a share for every recipient country or for none")
        )
    elif given and all(_is_share(s) for s in given) and abs(sum(given) - 100) > _SHARE_TOLERANCE:
        issues.append(
            FieldIssue("countries", f"shares add up to {sum(given):g}, not 100; correct them")
        )
    return resolved


def _is_share(value: object) -> bool:
    # As for figures: compare, never convert, so that 10**400 is refused rather than overflowing.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 < value <= 100


def _shown(value: object, limit: int = 40) -> str:
    """A value as it appears in a message: its repr, cut short, since it may be hostile."""
    if isinstance(value, int) and not -(10**limit) < value < 10**limit:
        # repr() of an int over 4,300 digits raises ValueError; no one needs its digits anyway.
        return "a number too large to show"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _known(entries: Mapping[str, object], shown: int = 8) -> str:
    codes = sorted(entries)
    listed = ", ".join(codes[:shown])
    more = f" and {len(codes) - shown} more" if len(codes) > shown else ""
    return f"known: {listed}{more}"
