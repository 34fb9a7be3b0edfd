"""Templates and links: the Jinja2 environment, and what every page knows about its request.

Templates are autoescaped and strict (an unknown name is an error, not an empty string). Links
are built here, never by string pasting in templates, so that a page viewed as of a past
moment or narrowed to one document (``as_of``, ``as_of_sequence``, ``release``, ``document``)
keeps asking for it on every link it offers, and so that the time control and the "back to
now" link can name the same page at another moment.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from litestar import MediaType, Request, Response
from litestar.di import NamedDependency
from litestar.params import FromQuery, SkipValidation
from markupsafe import Markup, escape

from events.reference import load_reference
from projections.answers import AsOf, Timeline
from projections.temporal import Scope, scope_of
from services.api.dashboard.format import (
    format_exact,
    format_instant,
    format_number,
    kind_label,
    metric_label,
    metric_unit,
)
from services.api.dashboard.views import blank, parse_sequence

__all__ = [
    "SCOPE_KEYS",
    "Asked",
    "Page",
    "Scoped",
    "Slider",
    "asked_by",
    "href",
    "provenance_href",
    "render",
]

PROVENANCE_KEYS = ("country", "programme", "year")
SCOPE_KEYS = ("as_of", "as_of_sequence", "release", "document")
"""The query parameters that choose which ledger a page shows; every link keeps them."""
_LEFT_OUT = frozenset({*SCOPE_KEYS, "cursor"})
"""Not kept by a link to the same page at another moment: a cursor belongs to one moment."""

# Codes, years and metric names need no quoting; skipping ``quote`` for them matters on a page
# of a thousand figure links (a year's page at 100k events).
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]*")


def _value(value: Any) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else quote(text, safe="")


def href(path: str, **params: Any) -> str:
    """A local URL: ``path`` with the given query parameters, leaving out empty ones."""
    query = "&".join(f"{k}={_value(v)}" for k, v in params.items() if v is not None and v != "")
    return f"{path}?{query}" if query else path


def segment(value: Any) -> str:
    """One path segment, quoted (activity ids and programme codes are free text)."""
    return quote(str(value), safe="")


@dataclass(frozen=True)
class Asked:
    """Which ledger a request asked for, as it asked (to keep on links), and which page."""

    as_of: str | None = None
    """The instant or date as given, e.g. ``2021-06-30T12:00:04.5Z``."""
    as_of_sequence: int | None = None
    release: str | None = None
    document: str | None = None
    scope: Scope | None = None
    """The checked scope for the queries; ``None`` for the present, their fast path."""
    path: str = "/"
    """The page's path, for a link to it at another moment."""
    params: tuple[tuple[str, str], ...] = ()
    """The page's other query parameters, its cursor left out."""

    def keep(self) -> dict[str, Any]:
        """The scope's parameters, as a link keeps them (``None`` for those not given)."""
        return {
            "as_of": self.as_of,
            "as_of_sequence": self.as_of_sequence,
            "release": self.release,
            "document": self.document,
        }


async def asked_by(
    request: Request,
    as_of: FromQuery[str | None] = None,
    as_of_sequence: FromQuery[str | None] = None,
    release: FromQuery[str | None] = None,
    document: FromQuery[str | None] = None,
) -> Asked:
    """The dependency every page and download takes: its scope, checked by ``scope_of``.

    A GET form sends every field, so a blank one means "not given" (the document select's
    "All documents" is blank), unlike in the JSON API, which refuses an empty document.

    :raises BadParameterError: naming the parameter that is malformed (400 page).
    """
    # async: Litestar would run a plain function in a thread, for every request.
    sequence = parse_sequence(as_of_sequence)
    as_of, release, document = blank(as_of), blank(release), blank(document)
    scope = scope_of(as_of, sequence, document, release)
    # From the query string itself: Litestar's parsed parameters do not keep their order, and
    # a link back to the same page should read as the reader's own address did.
    query = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"))
    params = tuple((name, value) for name, value in query if name not in _LEFT_OUT)
    # The path arrives decoded: quoted again, and with one leading slash, so that a link to it
    # stays on this server ("//host", and "/\host" too, are other hosts to a browser).
    path = "/" + quote(request.url.path.lstrip("/"), safe="/")
    return Asked(as_of, sequence, release, document, None if scope.is_now else scope, path, params)


NOW = Asked()

Scoped = NamedDependency[SkipValidation[Asked]]
"""A handler's parameter ``scoped``: the :func:`asked_by` dependency's answer."""


@dataclass(frozen=True)
class Mark:
    """A release on the time control: a link to the page as of its sequence."""

    name: str
    sequence: int
    percent: int
    """Where along the slider, 0..100 (a class of the stylesheet: inline style is forbidden)."""
    url: str
    title: str


@dataclass(frozen=True)
class Slider:
    """The time control's range, where the page is on it, and the releases along it."""

    low: int
    high: int
    value: int
    low_time: dt.datetime | None
    high_time: dt.datetime | None
    marks: list[Mark]
    today: str
    """The date input's maximum: a later date is in the future, which is refused."""
    first_day: str
    date: str
    """The date field's value: the page's ``as_of`` when it was a date, else empty."""


def _percent(sequence: int, low: int, high: int) -> int:
    if high <= low:
        return 0
    return round(min(max((sequence - low) / (high - low), 0.0), 1.0) * 100)


@dataclass(frozen=True)
class Page:
    """One page being answered: its title, the ledger it reflects, and what it was asked."""

    title: str
    as_of: AsOf | None
    """``None`` on an error page that read no answer."""
    asked: Asked = NOW
    timeline: Timeline | None = None
    """The ledger's history for the time control; ``None`` on an error page."""
    documents: tuple[str, ...] = field(default=())
    """Every document, for the document select."""

    def link(self, path: str, **params: Any) -> str:
        """A link to another page that keeps this page's scope (a parameter given wins)."""
        kept = {k: v for k, v in self.asked.keep().items() if k not in params}
        return href(path, **params, **kept)

    def api(self, path: str, **params: Any) -> str:
        """A link to the JSON API (or its CSV) for the same ledger as this page.

        A release is its sequence, so the API is asked for that sequence.
        """
        kept = self.asked.keep()
        if kept["release"] is not None and self.as_of is not None:
            kept["release"] = None
            kept["as_of_sequence"] = self.as_of.sequence
        return href(path, **params, **{k: v for k, v in kept.items() if k not in params})

    def provenance(self, metric: str, **keys: Any) -> str | None:
        """The link listing what makes up one figure; ``None`` for a figure no rollup keeps."""
        return provenance_href(metric, asked=self.asked.keep(), **keys)

    def figure(self, value: float | int, metric: str, **keys: Any) -> Markup:
        """A figure as text, linked to its provenance when the projection keeps it."""
        return self._figure(value, self.provenance(metric, **keys), metric)

    def figure_at(
        self, value: float | int, metric: str, at: Mapping[str, Any], **keys: Any
    ) -> Markup:
        """A figure of another moment (e.g. a release's), linked to its provenance then."""
        return self._figure(value, provenance_href(metric, asked=at, **keys), metric)

    @staticmethod
    def _figure(value: float | int, target: str | None, metric: str) -> Markup:
        text = format_number(value)
        if target is None:
            return Markup(text)
        # Markup.format would escape field by field; at a thousand links a page that shows.
        title = escape(f"Where {text} {metric_unit(metric)} come from")
        return Markup(f'<a class="fig" href="{escape(target)}" title="{title}">{text}</a>')

    # -- time travel ---------------------------------------------------------------------------

    @property
    def travelled(self) -> bool:
        """Whether the page shows other than the whole ledger now: the banner says so."""
        if self.as_of is None:
            return False
        as_of = self.as_of
        return not as_of.now or as_of.document is not None or self.asked.release is not None

    @property
    def now_url(self) -> str:
        """The same page, now and over every document."""
        return href(self.asked.path, **dict(self.asked.params))

    def sorted_by(self, sort: str) -> str:
        """The same page, at the same moment, with its tables sorted by ``sort``."""
        return href(
            self.asked.path, **{**dict(self.asked.params), "sort": sort}, **self.asked.keep()
        )

    def here(self, **scope: Any) -> str:
        """The same page as of another moment or document (its cursor left out)."""
        return href(self.asked.path, **dict(self.asked.params), **scope)

    def fields(self, *keys: str) -> list[tuple[str, str]]:
        """Hidden fields for a GET form of this page: its own parameters and the named scope
        parameters it has, so that the form changes only what it asks."""
        kept = self.asked.keep()
        return [*self.asked.params, *((k, str(kept[k])) for k in keys if kept[k] is not None)]

    def scope_fields(self) -> list[tuple[str, str]]:
        """Hidden fields that keep this page's scope in a form to another page of it."""
        return [(k, str(v)) for k, v in self.asked.keep().items() if v is not None]

    @functools.cached_property
    def slider(self) -> Slider | None:
        """The time control, or ``None`` when there is no history to move along."""
        line = self.timeline
        if line is None or line.first is None or line.last is None or self.as_of is None:
            return None
        low, high = line.first.sequence, max(line.last.sequence, self.as_of.sequence)
        marks = [
            Mark(
                release.name,
                release.sequence,
                _percent(release.sequence, low, high),
                href(
                    self.asked.path,
                    **dict(self.asked.params),
                    release=release.name,
                    document=self.asked.document,
                ),
                f"Release {release.name}: the ledger as of sequence {release.sequence}"
                + (f", {format_instant(release.time)}" if release.time else ""),
            )
            for release in line.releases
        ]
        asked = self.asked.as_of
        return Slider(
            low=low,
            high=high,
            value=min(max(self.as_of.sequence, low), high),
            low_time=line.first.time,
            high_time=line.last.time,
            marks=marks,
            today=dt.datetime.now(dt.UTC).date().isoformat(),
            first_day=line.first.time.date().isoformat() if line.first.time else "",
            date=asked if asked is not None and len(asked) == 10 else "",
        )


def provenance_href(
    metric: str, *, asked: Mapping[str, Any] | None = None, **keys: Any
) -> str | None:
    """The provenance page of one figure, given by metric and up to two of its keys.

    The projection keeps figures for any one or two of country, programme and year, but not
    for all three at once, so such a figure gets no link.

    :param asked: the scope parameters the link keeps (``Asked.keep``).
    """
    given = {k: keys.get(k) for k in PROVENANCE_KEYS if keys.get(k) is not None}
    if len(given) == len(PROVENANCE_KEYS):
        return None
    return href("/provenance", **given, metric=metric, **(asked or {}))


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("services.api.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=format_number,
        instant=format_instant,
        exact=format_exact,
        metric_label=metric_label,
        metric_unit=metric_unit,
        kind_label=kind_label,
        segment=segment,
        country_name=lambda code: load_reference().country_name(str(code)),
    )
    env.globals.update(href=href)
    return env


def render(template: str, page: Page, *, status_code: int = 200, **context: Any) -> Response:
    """The HTML response of ``template`` for ``page`` with the given context."""
    html = _environment().get_template(template).render(page=page, **context)
    return Response(html, status_code=status_code, media_type=MediaType.HTML)
