"""Read what a draft says from a projection: summaries, provenance and activities, in one snapshot.

Every figure comes from the query functions every interface calls (:mod:`projections.queries`):
a section's metrics and how each adds up from the summary, every activity's part in a figure
from :func:`~projections.queries.provenance`, which counts by the fold's own rules, so a
draft can say nothing the counting rules forbid: a figure that is not summed is never a total,
and a multi-country activity without shares gives no country a figure. The activities come
from :func:`~projections.queries.get_activity`, as of the draft's ledger.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from events.reference import load_reference
from projections import queries
from projections.answers import ActivityDetail, Provenance, ProvenanceItem
from projections.errors import BadParameterError
from projections.temporal import Scope
from services.drafts.document import Cited, DraftFacts, FigureFacts, Part, SectionFacts

__all__ = ["MOST_ACTIVITIES", "MOST_SECTIONS", "gather_draft"]

MOST_ACTIVITIES = 2000
"""The most activities one section names: each is a sentence and notes; a larger section is
no draft a person edits, and would hold a server's worker for long."""
MOST_SECTIONS = 50
"""The most sections one draft has."""
_ACTIVITY_COUNT = "*"


def _unique(codes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(codes))


def gather_draft(
    conn: sqlite3.Connection,
    *,
    programmes: Iterable[str] = (),
    countries: Iterable[str] = (),
    year: int | None = None,
    scope: Scope | None = None,
) -> DraftFacts:
    """The facts of a draft with one section per programme, then one per country.

    :param programmes: programme codes, names or aliases.
    :param countries: ISO3 codes or UN names.
    :param year: narrow every section to this year.
    :param scope: as of when (``as_of``, ``as_of_sequence``, ``release``) and which document.
    :raises UnknownKeyError: for an unknown programme, country, release or document.
    :raises BadParameterError: for no section, too many, a section of more than
        :data:`MOST_ACTIVITIES` activities, or a scope that cannot be.
    """
    wanted = [("programme", queries.resolve_programme(p)) for p in _unique(programmes)]
    wanted += [("country", queries.resolve_country(c)) for c in _unique(countries)]
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        raise BadParameterError("programme", "give a programme or a country to draft, or both")
    if len(wanted) > MOST_SECTIONS:
        raise BadParameterError(
            "programme", f"{len(wanted)} sections asked; a draft has at most {MOST_SECTIONS}"
        )
    with queries.snapshot(conn):
        as_of = queries.view_of(conn, scope=scope)
        release = (
            queries.get_release(conn, scope.release)
            if scope is not None and scope.release is not None
            else None
        )
        sections = [_section(conn, kind, code, year, scope) for kind, code in wanted]
    return DraftFacts(as_of=as_of, release=release, sections=sections)


def _pages(
    conn: sqlite3.Connection, key: dict[str, Any], metric: str, scope: Scope | None
) -> tuple[Provenance, list[ProvenanceItem]]:
    """Every item of a figure's provenance, page after page, up to one more than the bound."""
    first = queries.provenance(conn, **key, metric=metric, limit=queries.MAX_LIMIT, scope=scope)
    items, answer = list(first.items), first
    while answer.next_cursor is not None and len(items) <= MOST_ACTIVITIES:
        answer = queries.provenance(
            conn,
            **key,
            metric=metric,
            cursor=answer.next_cursor,
            limit=queries.MAX_LIMIT,
            scope=scope,
        )
        items.extend(answer.items)
    return first, items


def _section(
    conn: sqlite3.Connection, kind: str, code: str, year: int | None, scope: Scope | None
) -> SectionFacts:
    if kind == "programme":
        summary = queries.programme_summary(conn, code, year, scope=scope)
    else:
        summary = queries.country_summary(conn, code, year, scope=scope)
    key: dict[str, Any] = {kind: code, "year": year}
    _, listed = _pages(conn, key, _ACTIVITY_COUNT, scope)
    if len(listed) > MOST_ACTIVITIES:
        narrowed = f" in {year}" if year is not None else ""
        raise BadParameterError(
            kind,
            f"{summary.name or code} has more than {MOST_ACTIVITIES:,} activities{narrowed}; a "
            "draft section names at most that many: narrow it to a year or a document",
        )
    details = {
        item.activity_id: queries.get_activity(conn, item.activity_id, scope=scope)
        for item in listed
    }
    figures = []
    for metric, rule in sorted(summary.rules.items()):
        answer, items = _pages(conn, key, metric, scope)
        parts = [
            _part(item, rule, details.get(item.activity_id), code if kind == "country" else None)
            for item in items
            if item.counted and not item.multi_country
        ]
        figures.append(
            FigureFacts(
                metric=metric,
                rule=rule,
                unit=summary.units.get(metric, ""),
                total=answer.total if rule == "sum" else None,
                parts=[part for part in parts if part is not None],
            )
        )
    activities = sorted(
        (_cited(detail) for detail in details.values()), key=lambda a: (a.year, a.activity_id)
    )
    return SectionFacts(
        scope=kind,
        code=code,
        name=summary.name or code,
        year=year,
        figures=figures,
        activities=activities,
        listed_only=[item.activity_id for item in listed if item.multi_country],
    )


def _part(
    item: ProvenanceItem, rule: str, detail: ActivityDetail | None, country: str | None
) -> Part | None:
    """An item's part in the figure: its share of a summed figure, or its own figure of one
    that is not summed; ``None`` for an activity the section does not list."""
    if detail is None:
        return None
    value = item.value if rule == "sum" else item.figure
    if value is None:
        return None
    share = next((place.share for place in detail.countries if place.country == country), None)
    if rule == "sum" and share is not None and share != 100:
        return Part(activity_id=item.activity_id, value=value, share=share)
    return Part(activity_id=item.activity_id, value=value)


def _cited(detail: ActivityDetail) -> Cited:
    reference = load_reference()
    return Cited(
        activity_id=detail.activity_id,
        title=detail.title,
        kind=detail.kind,
        year=detail.year,
        places=[
            reference.country_name(place.country)
            for place in detail.countries
            if place.role == "recipient"
        ],
        sources=list(detail.sources),
        event_ids=list(detail.event_ids),
        last_event_id=detail.last_event_id,
        sequence=detail.last_sequence,
    )
