"""Domain rules that an event must meet before it may enter the stream.

Each check collects every problem it finds, as a :class:`FieldIssue` with the field's path and a
reason a field officer can act on, and raises them together in one :class:`InvalidEventError`.
Checks also normalise: a country or programme given by name comes back as its code.
"""

from __future__ import annotations

import datetime as dt
import math

import msgspec

from events.errors import FieldIssue, InvalidEventError
from events.model import ActivityReported, CountryShare
from events.reference import Reference
from events.subjects import is_token

__all__ = ["FIRST_YEAR", "check_reason", "check_reported", "max_year_today"]

FIRST_YEAR = 1990
"""No activity before this year is accepted: the ledger is for current reporting."""

_SHARE_TOLERANCE = 0.01


def max_year_today() -> int:
    """The latest acceptable year: next year, so planned activities can be entered."""
    return dt.date.today().year + 1


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
                f"{event.activity_id!r} is not a valid id; use 1-64 letters, digits, '_' or '-' "
                "(no dots, spaces, '*' or '>')",
            )
        )
    if event.office not in ref.offices:
        issues.append(
            FieldIssue("office", f"unknown office {event.office!r}; {_known(ref.offices)}")
        )
    programme = ref.programme_code(event.programme)
    if programme is None:
        issues.append(
            FieldIssue(
                "programme", f"unknown programme {event.programme!r}; {_known(ref.programmes)}"
            )
        )
    if event.kind not in ref.kinds:
        issues.append(FieldIssue("kind", f"unknown kind {event.kind!r}; {_known(ref.kinds)}"))
    if not event.title.strip():
        issues.append(FieldIssue("title", "the title is empty; give a short description"))

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

    for name, value in event.metrics.items():
        path = f"metrics.{name}"
        if name not in ref.metrics:
            issues.append(FieldIssue(path, f"unknown metric {name!r}; {_known(ref.metrics)}"))
        elif isinstance(value, bool) or not math.isfinite(value) or value < 0:
            issues.append(
                FieldIssue(path, f"{value!r} is not a figure; give a number of zero or more")
            )

    if issues:
        raise InvalidEventError(issues)
    return msgspec.structs.replace(event, programme=programme, countries=countries)


def check_reason(reason: str, field: str = "reason") -> None:
    """A revision or withdrawal must say why; raise when the reason is blank."""
    if not reason.strip():
        raise InvalidEventError(
            [FieldIssue(field, "a reason is required; say why the record changes")]
        )


def _check_countries(
    countries: list[CountryShare], ref: Reference, issues: list[FieldIssue]
) -> list[CountryShare]:
    resolved: list[CountryShare] = []
    seen: set[str] = set()
    for i, item in enumerate(countries):
        code = ref.country_code(item.country)
        if code is None:
            issues.append(
                FieldIssue(
                    f"countries.{i}.country",
                    f"unknown country {item.country!r}; use an ISO 3166-1 alpha-3 code or UN name",
                )
            )
            continue
        if code in seen:
            issues.append(FieldIssue(f"countries.{i}.country", f"{code} is listed twice"))
        seen.add(code)
        if item.share is not None and (not math.isfinite(item.share) or not 0 < item.share <= 100):
            issues.append(
                FieldIssue(
                    f"countries.{i}.share", f"share {item.share!r} must be above 0 and at most 100"
                )
            )
        resolved.append(CountryShare(country=code, share=item.share))

    shares = [c.share for c in countries]
    given = [s for s in shares if s is not None]
    if given and len(given) != len(shares):
        issues.append(FieldIssue("countries", "give a share for every country or for none"))
    elif (
        given and all(math.isfinite(s) for s in given) and abs(sum(given) - 100) > _SHARE_TOLERANCE
    ):
        issues.append(
            FieldIssue("countries", f"shares add up to {sum(given):g}, not 100; correct them")
        )
    return resolved


def _known(entries: dict[str, object], shown: int = 8) -> str:
    codes = sorted(entries)
    listed = ", ".join(codes[:shown])
    more = f" and {len(codes) - shown} more" if len(codes) > shown else ""
    return f"known: {listed}{more}"
