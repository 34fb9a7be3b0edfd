"""The world map: a choropleth of one figure per country, drawn as inline SVG on the server.

The shapes are Natural Earth's 1:110m admin-0 countries (public domain), projected once
(Robinson) and simplified into ``world_110m.json`` beside this module, keyed by ISO 3166-1
alpha-3 code; ``docs/dashboard.md`` says how that file was made. Nothing is fetched at run
time. Every country is a link to its page with a ``<title>`` that gives its figure; colours
are classes of the stylesheet (``m0`` for none, ``m1``..``m5`` from least to most), so the map
follows the page's palette and the Content-Security-Policy, which allows no inline style.

The map is one image to assistive technology, and out of the keyboard's tab order (else a
stop per country before the page's content): the countries' table has the same figures and
links.

A country with no figure of its own that multi-country activities without shares name (the
tables list those activities apart, counted in no country) gets the class ``apart``; every
country they name says so on hover.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources

from markupsafe import Markup, escape

from services.api.dashboard.format import format_number

__all__ = [
    "CLASSES",
    "Band",
    "MapFigure",
    "Shapes",
    "bands_of",
    "load_shapes",
    "on_map",
    "world_map",
]

CLASSES = 5
"""How many colours the figures are shown in, besides "no figure"."""


@dataclass(frozen=True)
class Shapes:
    """The base map: its size in SVG units and one path per country code."""

    width: int
    height: int
    paths: dict[str, str]


@functools.cache
def load_shapes() -> Shapes:
    """The vendored shapes, read once per process."""
    text = resources.files(__package__).joinpath("world_110m.json").read_text("utf-8")
    data = json.loads(text)
    return Shapes(int(data["width"]), int(data["height"]), dict(data["paths"]))


@dataclass(frozen=True)
class MapFigure:
    """One country's figure on the map, and how many multi-country activities name it."""

    name: str
    value: float
    multi_country: int = 0


@dataclass(frozen=True)
class Band:
    """One colour of the legend: its class and the figures it spans."""

    css: str
    low: float
    high: float

    @property
    def label(self) -> str:
        """``12`` or ``12 – 40``."""
        if self.low == self.high:
            return format_number(self.low)
        return f"{format_number(self.low)} – {format_number(self.high)}"


def bands_of(values: list[float]) -> list[Band]:
    """Up to :data:`CLASSES` bands of about as many countries each, from least to most.

    Figures per country are skewed (a few countries hold most of them), so equal counts
    rather than equal widths: every colour is used, and one large figure does not leave the
    others all pale. Equal figures always fall in one band.
    """
    ordered = sorted({value for value in values if value > 0})
    if not ordered:
        return []
    count = min(CLASSES, len(ordered))
    bands = []
    for index in range(count):
        part = ordered[index * len(ordered) // count : (index + 1) * len(ordered) // count]
        bands.append(Band(f"m{index + 1}", part[0], part[-1]))
    return bands


def _css_of(value: float, bands: list[Band]) -> str:
    for band in bands:
        if value <= band.high:
            return band.css
    return bands[-1].css


def world_map(
    figures: Mapping[str, MapFigure],
    *,
    names: Mapping[str, str],
    link: Callable[[str], str],
    title: str,
    unit: str,
) -> tuple[Markup, list[Band]]:
    """The map of ``figures`` by country code, and its legend's bands.

    :param figures: the countries with a figure or named by a multi-country activity; any
        other country is drawn without one.
    :param names: every country's display name, by code, for the hover titles.
    :param link: the URL of a country's page, from its code.
    :param unit: what the figures count, for the hover titles.
    """
    shapes = load_shapes()
    bands = bands_of([figure.value for figure in figures.values()])
    parts = [
        f'<svg class="worldmap" viewBox="0 0 {shapes.width} {shapes.height}" role="img" '
        f'aria-labelledby="map-t map-d" preserveAspectRatio="xMidYMid meet">'
        f'<title id="map-t">{escape(title)}</title>'
        f'<desc id="map-d">A world map: each country is shaded by its figure and links to its '
        f"page. The table of countries gives the same figures.</desc>"
    ]
    for code, path in shapes.paths.items():
        figure = figures.get(code)
        name = names.get(code, code)
        if figure is not None and figure.value > 0:
            css = _css_of(figure.value, bands)
            text = f"{name}: {format_number(figure.value)} {unit}".rstrip()
        else:
            css = "apart" if figure is not None and figure.multi_country else "m0"
            text = f"{name}: no figure"
        if figure is not None and figure.multi_country:
            text += (
                f"; also named by {format_number(figure.multi_country)} multi-country "
                f"{'activity' if figure.multi_country == 1 else 'activities'} without shares, "
                "counted in no country"
            )
        parts.append(
            f'<a href="{escape(link(code))}" data-country="{code}" tabindex="-1">'
            f'<path class="{css}" d="{path}"><title>{escape(text)}</title></path></a>'
        )
    parts.append("</svg>")
    return Markup("".join(parts)), bands


def on_map(code: str) -> bool:
    """Whether the map draws the country: small states are not on a 1:110m map."""
    return code in load_shapes().paths
