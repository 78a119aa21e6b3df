"""Server-side SVG charts (pygal, no JavaScript): score history over RAG bands and bars by category.

Each function returns one `<svg>` element as a string, safe to inline in an HTML page: labels are escaped by the
renderer, and the configuration `<script>` and comments pygal adds are removed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import date, timedelta

import pygal
from pygal.style import Style

RAG_COLORS: dict[str, str] = {"GREEN": "#2e7d32", "AMBER": "#ef8f00", "RED": "#c62828"}
"""Strong RAG colours for points, bars and text."""

BAND_COLORS: dict[str, str] = {"GREEN": "#e3f1e4", "AMBER": "#fdf1dc", "RED": "#f9e0e0"}
"""Pale RAG colours for the bands behind a line (opaque, so overlapping fills never mix)."""

LINE_COLOR = "#1f3a5f"
"""The colour of a plotted score line."""

FONT = "Helvetica, Arial, sans-serif"

_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def rag_of(score: float, green: float, amber: float) -> str:
    """The RAG band of a score: "GREEN" at or above `green`, "AMBER" at or above `amber`, else "RED"."""
    if score >= green:
        return "GREEN"
    return "AMBER" if score >= amber else "RED"


def score_history_svg(
    points: Sequence[tuple[date, float]],
    green: float = 70,
    amber: float = 40,
    *,
    span: tuple[date, date] | None = None,
    title: str = "Health score",
    width: int = 800,
    height: int = 320,
) -> str:
    """A line of scores over time on red, amber and green bands, each dot in its band's colour.

    Args:
        points: (day, score) pairs on a 0-100 scale, in any order; one pair draws a single dot.
        green: The lowest GREEN score.
        amber: The lowest AMBER score.
        span: The first and last day of the x axis (the bands cover it); defaults to the points' first and last.
        title: The chart's accessible title (not drawn).
        width: Width of the SVG's view box.
        height: Height of the SVG's view box.

    Returns:
        An `<svg>` element; "No data" is drawn when `points` is empty.
    """
    if not amber < green:
        raise ValueError(f"amber ({amber}) must be lower than green ({green})")
    ordered = sorted(points)
    if not ordered:  # pygal cannot render an empty date chart
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img">'
            f"<title>{html.escape(title)}</title>"
            f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" fill="#5f6b7a" font-size="18">'
            "No data: no health score on record yet</text></svg>"
        )
    chart = pygal.DateLine(
        js=[],
        disable_xml_declaration=True,
        range=(0, 100),
        show_legend=False,
        width=width,
        height=height,
        style=_style(colors=(BAND_COLORS["GREEN"], BAND_COLORS["AMBER"], BAND_COLORS["RED"], LINE_COLOR)),
        x_value_formatter=lambda day: f"{day.day} {day:%b %Y}",
        x_label_rotation=0,
        truncate_label=-1,
        show_x_guides=False,
        y_labels=[0, amber, green, 100],
        dots_size=4,
        margin_right=48,
    )
    if ordered:
        first, last = span or (ordered[0][0], ordered[-1][0])
        for level in (100, green, amber):  # later fills paint over earlier ones: green, then amber, then red
            chart.add("", [(first, level), (last, level)], fill=True, show_dots=False)
        chart.add(
            title,
            [{"value": (day, score), "color": RAG_COLORS[rag_of(score, green, amber)]} for day, score in ordered],
            stroke_style={"width": 2.5},
        )
        chart.x_labels = _spread(first, last, 5)
    return _clean(chart.render(is_unicode=True), title)


def bar_svg(
    bars: Sequence[tuple[str, float, str]],
    *,
    title: str,
    value_suffix: str = "",
    width: int = 800,
    bar_height: int = 26,
) -> str:
    """Horizontal bars, one per (label, value, colour), first bar on top, each label followed by its value.

    Args:
        bars: (label, value, CSS colour) triples in display order.
        title: The chart's accessible title (not drawn).
        value_suffix: Appended to each value in the labels, e.g. " uses".
        width: Width of the SVG's view box.
        bar_height: Height given to each bar, which sets the chart's height.

    Returns:
        An `<svg>` element; "No data" is drawn when `bars` is empty.
    """
    chart = pygal.HorizontalBar(
        js=[],
        disable_xml_declaration=True,
        show_legend=False,
        width=width,
        height=max(len(bars), 3) * bar_height + 80,
        style=_style(colors=("#607d8b",)),
        show_x_labels=False,
        show_y_guides=False,
        range=(0, max((value for _, value, _ in bars), default=0) or 1),
        truncate_label=-1,
    )
    if bars:
        # pygal draws the first label at the bottom
        chart.x_labels = [f"{label}  {value:,.0f}{value_suffix}" for label, value, _ in reversed(bars)]
        chart.add(title, [{"value": value, "color": color} for _, value, color in reversed(bars)])
    return _clean(chart.render(is_unicode=True), title)


def _style(*, colors: Sequence[str]) -> Style:
    return Style(
        background="transparent",
        plot_background="#ffffff",
        foreground="#333333",
        foreground_strong="#111111",
        foreground_subtle="#888888",
        opacity="1",
        opacity_hover="1",
        stroke_width="2.5",
        colors=tuple(colors),
        font_family=FONT,
        label_font_family=FONT,
        major_label_font_family=FONT,
        value_font_family=FONT,
        value_label_font_family=FONT,
        no_data_font_family=FONT,
        label_font_size=13,
        major_label_font_size=13,
        value_font_size=12,
        no_data_font_size=24,
        guide_stroke_color="#dddddd",
        major_guide_stroke_color="#dddddd",
    )


def _spread(first: date, last: date, count: int) -> list[date]:
    """`count` days evenly spaced in time from `first` to `last` (just `first` when they are the same day)."""
    days = (last - first).days
    if days <= 0:
        return [first]
    return sorted({first + timedelta(days=round(days * index / (count - 1))) for index in range(count)})


def _clean(svg: str, title: str) -> str:
    """Drop pygal's script and comments, and give the chart an accessible name."""
    svg = _COMMENT.sub("", _SCRIPT.sub("", svg))
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escaped}" ', 1)
