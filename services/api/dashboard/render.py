"""Templates and links: the Jinja2 environment, and what every page knows about its request.

Templates are autoescaped and strict (an unknown name is an error, not an empty string). Links
are built here, never by string pasting in templates, so that a page viewed with
``?as_of_sequence=N`` keeps asking for N on every link it offers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from litestar import MediaType, Response
from markupsafe import Markup, escape

from projections.answers import AsOf
from services.api.dashboard.format import (
    format_instant,
    format_number,
    kind_label,
    metric_label,
    metric_unit,
)

__all__ = ["Page", "href", "provenance_href", "render"]

PROVENANCE_KEYS = ("country", "programme", "year")

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
class Page:
    """One page being answered: its title, the sequence asked for, and the one it reflects."""

    title: str
    as_of: AsOf | None
    """``None`` on an error page that read no answer."""
    asked: int | None = None
    """The ``as_of_sequence`` in the request, if any."""

    def link(self, path: str, **params: Any) -> str:
        """A link to another page that keeps this page's ``as_of_sequence``."""
        return href(path, **params, as_of_sequence=self.asked)

    def provenance(self, metric: str, **keys: Any) -> str | None:
        """The link listing what makes up one figure; ``None`` for a figure no rollup keeps."""
        return provenance_href(metric, asked=self.asked, **keys)

    def figure(self, value: float | int, metric: str, **keys: Any) -> Markup:
        """A figure as text, linked to its provenance when the projection keeps it."""
        text = format_number(value)
        target = self.provenance(metric, **keys)
        if target is None:
            return Markup(text)
        # Markup.format would escape field by field; at a thousand links a page that shows.
        title = escape(f"Where {text} {metric_unit(metric)} come from")
        return Markup(f'<a class="fig" href="{escape(target)}" title="{title}">{text}</a>')

    @property
    def mismatch(self) -> bool:
        """Whether the page was asked for a sequence other than the one the projection holds."""
        return (
            self.asked is not None and self.as_of is not None and self.asked != self.as_of.sequence
        )


def provenance_href(metric: str, *, asked: int | None = None, **keys: Any) -> str | None:
    """The provenance page of one figure, given by metric and up to two of its keys.

    The projection keeps figures for any one or two of country, programme and year, but not
    for all three at once, so such a figure gets no link.
    """
    given = {k: keys.get(k) for k in PROVENANCE_KEYS if keys.get(k) is not None}
    if len(given) == len(PROVENANCE_KEYS):
        return None
    return href("/provenance", **given, metric=metric, as_of_sequence=asked)


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
        metric_label=metric_label,
        metric_unit=metric_unit,
        kind_label=kind_label,
        segment=segment,
    )
    env.globals.update(href=href)
    return env


def render(template: str, page: Page, *, status_code: int = 200, **context: Any) -> Response:
    """The HTML response of ``template`` for ``page`` with the given context."""
    html = _environment().get_template(template).render(page=page, **context)
    return Response(html, status_code=status_code, media_type=MediaType.HTML)
