"""Bar charts as inline SVG, drawn on the server: no script, nothing fetched from anywhere.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` for screen readers,
and a ``<title>`` on every bar so that pointing at it shows the exact figure. The page puts the
same figures in a table next to the chart, which is the accessible way to read them.
Colours come from the stylesheet (classes ``bar``, ``grid``, ``tick``), so the chart follows
the page's palette.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

from services.api.dashboard.format import format_number

__all__ = ["Bar", "column_chart", "nice_ticks", "row_chart"]

_WIDTH = 640
_COLUMN_HEIGHT = 240
_ROW_HEIGHT = 26
_LABEL_CHARS = 28


@dataclass(frozen=True)
class Bar:
    """One bar: its label on the axis, its value, and the longer text its tooltip shows."""

    label: str
    value: float
    detail: str = ""


def nice_ticks(top: float, most: int = 5) -> list[float]:
    """Round gridline values from 0 to at least ``top``: steps of 1, 2 or 5 times a power of 10.

    :param most: the most intervals wanted above zero.
    """
    if top <= 0:
        return [0.0, 1.0]
    rough = top / most
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    # Counts are whole numbers: a step below 1 would draw gridlines at 0.2 activities.
    step = max(step, 1.0) if top >= 1 else step
    count = math.ceil(top / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _head(chart_id: str, title: str, description: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'preserveAspectRatio="xMinYMin meet">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>'
    )


def _tooltip(bar: Bar, unit: str) -> str:
    return bar.detail or f"{bar.label}: {format_number(bar.value)} {unit}".strip()


def column_chart(bars: list[Bar], *, chart_id: str, title: str, unit: str) -> Markup:
    """Vertical bars, one per label in the given order, e.g. activities per year.

    :param chart_id: unique on the page; the ids of the chart's title and description.
    :param unit: what the values count, for the tooltips and the description.
    """
    left, right, top_pad, bottom = 56, 8, 12, 28
    plot_w, plot_h = _WIDTH - left - right, _COLUMN_HEIGHT - top_pad - bottom
    ticks = nice_ticks(max((b.value for b in bars), default=0.0))
    scale = plot_h / ticks[-1]
    description = (
        f"{len(bars)} bars of {unit}; "
        + "; ".join(f"{b.label}: {format_number(b.value)}" for b in bars[:40])
        + ". The table next to the chart has the same figures."
    )
    parts = [_head(chart_id, title, description, _WIDTH, _COLUMN_HEIGHT)]
    for tick in ticks:
        y = top_pad + plot_h - tick * scale
        parts.append(
            f'<line class="grid" x1="{left}" x2="{_WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{format_number(tick)}</text>"
        )
    slot = plot_w / max(len(bars), 1)
    width = min(slot * 0.7, 56)
    # Label every bar while they fit, else every n-th so that labels never overlap.
    every = max(1, math.ceil(len(bars) * 36 / plot_w))
    for index, bar in enumerate(bars):
        height = bar.value * scale
        x = left + index * slot + (slot - width) / 2
        y = top_pad + plot_h - height
        parts.append(
            f'<g class="bar"><rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{max(height, 0.0):.1f}" rx="2"><title>{escape(_tooltip(bar, unit))}'
            "</title></rect></g>"
        )
        if index % every == 0:
            parts.append(
                f'<text class="tick" x="{x + width / 2:.1f}" y="{_COLUMN_HEIGHT - 8}" '
                f'text-anchor="middle">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1].rstrip() + "…"


def row_chart(bars: list[Bar], *, chart_id: str, title: str, unit: str) -> Markup:
    """Horizontal bars, one row per label, longest names shortened, e.g. top countries.

    :param chart_id: unique on the page; the ids of the chart's title and description.
    :param unit: what the values count, for the tooltips and the description.
    """
    label_w, value_w, pad = 200, 64, 6
    height = pad * 2 + _ROW_HEIGHT * max(len(bars), 1)
    plot_w = _WIDTH - label_w - value_w
    top = max((b.value for b in bars), default=0.0) or 1.0
    description = (
        f"{len(bars)} bars of {unit}; "
        + "; ".join(f"{b.label}: {format_number(b.value)}" for b in bars[:40])
        + ". The table next to the chart has the same figures."
    )
    parts = [_head(chart_id, title, description, _WIDTH, height)]
    for index, bar in enumerate(bars):
        y = pad + index * _ROW_HEIGHT
        length = bar.value / top * plot_w
        parts.append(
            f'<g class="bar"><text class="tick" x="{label_w - 8}" y="{y + 17}" '
            f'text-anchor="end">{escape(_short(bar.label))}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{max(length, 1.0):.1f}" '
            f'height="{_ROW_HEIGHT - 8}" rx="2"><title>{escape(_tooltip(bar, unit))}</title>'
            f'</rect><text class="value" x="{label_w + length + 6:.1f}" y="{y + 17}">'
            f"{format_number(bar.value)}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
