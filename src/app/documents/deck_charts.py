"""Native python-pptx charts for the QBR deck: a score line over RAG bands, bars by category, lines over time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from pptx.chart import data as chart_data
from pptx.chart.plot import _BasePlot
from pptx.dml.color import RGBColor
from pptx.enum.chart import XL_CHART_TYPE, XL_LABEL_POSITION, XL_LEGEND_POSITION, XL_MARKER_STYLE
from pptx.oxml.ns import qn
from pptx.oxml.xmlchemy import OxmlElement
from pptx.shapes.shapetree import SlideShapes
from pptx.util import Length, Pt

from src.app.documents.charts import BAND_COLORS, LINE_COLOR, RAG_COLORS, rag_of

Box = tuple[Length, Length, Length, Length]
"""(left, top, width, height) of a chart on a slide."""


def rgb(color: str) -> RGBColor:
    """A python-pptx colour from a CSS hex colour like "#2e7d32"."""
    factory: Any = RGBColor  # untyped in python-pptx
    return cast(RGBColor, factory(*bytes.fromhex(color.lstrip("#"))))


def add_score_bands_chart(
    shapes: SlideShapes,
    box: Box,
    categories: Sequence[str],
    scores: Sequence[float | None],
    *,
    green: float,
    amber: float,
) -> None:
    """A native line of scores (0-100) in front of red, amber and green bands; each marker in its band's colour.

    The bands are a stacked area chart; the score series is moved into a line chart on the same axes (the XML
    python-pptx cannot write by itself), so the embedded workbook keeps all four series. Missing scores are gaps.
    """
    count = len(categories)
    bands = [("Red", [amber] * count), ("Amber", [green - amber] * count), ("Green", [100 - green] * count)]
    data = _chart_data(categories, [*bands, ("Score", scores)], "0")
    chart = _add_chart(shapes, XL_CHART_TYPE.AREA_STACKED, box, data)
    chart.has_legend = False
    chart.value_axis.minimum_scale, chart.value_axis.maximum_scale = 0, 100
    chart.value_axis.major_unit = 20
    chart.value_axis.has_major_gridlines = False
    chart.value_axis.tick_labels.font.size = Pt(12)
    chart.category_axis.tick_labels.font.size = Pt(12)
    area = chart.plots[0]
    for series, band in zip(list(area.series)[:3], ("RED", "AMBER", "GREEN"), strict=True):
        series.format.fill.solid()
        series.format.fill.fore_color.rgb = rgb(BAND_COLORS[band])
        series.format.line.fill.background()
    _move_last_series_to_line_chart(area)
    line = chart.plots[1]
    line.has_data_labels = True
    labels = line.data_labels
    labels.number_format, labels.number_format_is_linked = "0", False
    labels.position = XL_LABEL_POSITION.ABOVE
    labels.font.size, labels.font.bold = Pt(14), True
    series = line.series[0]
    series.smooth = False
    series.format.line.color.rgb = rgb(LINE_COLOR)
    series.format.line.width = Pt(2.5)
    for index, score in enumerate(scores):
        if score is None:
            continue
        marker = series.points[index].marker
        marker.style, marker.size = XL_MARKER_STYLE.CIRCLE, 11
        marker.format.fill.solid()
        marker.format.fill.fore_color.rgb = rgb(RAG_COLORS[rag_of(score, green, amber)])
        marker.format.line.color.rgb = rgb("#ffffff")


def _add_chart(shapes: SlideShapes, kind: XL_CHART_TYPE, box: Box, data: Any) -> Any:
    """Add a chart and return it (python-pptx types `add_chart` as returning the chart; it returns its frame)."""
    frame: Any = shapes.add_chart(kind, *box, data)
    return frame.chart


def _chart_data(
    categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], number_format: str
) -> Any:
    """python-pptx chart data (an untyped class, hence `Any`): categories and named series of values."""
    factory: Any = chart_data.CategoryChartData
    data = factory(number_format=number_format)
    data.categories = list(categories)
    for name, values in series:
        data.add_series(name, list(values))
    return data


def _move_last_series_to_line_chart(area: _BasePlot) -> None:
    """Move the last `c:ser` of an area chart into a new `c:lineChart` sharing its axes, right after it."""
    area_el = area._element
    series_el = area_el.findall(qn("c:ser"))[-1]
    line_el = OxmlElement("c:lineChart")
    for tag, value in (("c:grouping", "standard"), ("c:varyColors", "0")):
        child = OxmlElement(tag)
        child.set("val", value)
        line_el.append(child)
    line_el.append(series_el)
    marker = OxmlElement("c:marker")
    marker.set("val", "1")
    line_el.append(marker)
    for axis in area_el.findall(qn("c:axId")):
        copy = OxmlElement("c:axId")
        copy.set("val", axis.get("val"))
        line_el.append(copy)
    area_el.addnext(line_el)


def add_bar_chart(shapes: SlideShapes, box: Box, bars: Sequence[tuple[str, float, str]], *, number_format: str) -> None:
    """Native horizontal bars, one per (label, value, CSS colour), first on top, each value printed at its end."""
    data = _chart_data([label for label, _, _ in bars], [("Value", [value for _, value, _ in bars])], number_format)
    chart = _add_chart(shapes, XL_CHART_TYPE.BAR_CLUSTERED, box, data)
    chart.has_legend = False
    chart.category_axis.reverse_order = True  # the first category on top
    chart.category_axis.tick_labels.font.size = Pt(11)
    chart.value_axis.visible = False
    chart.value_axis.has_major_gridlines = False
    plot = chart.plots[0]
    plot.vary_by_categories = False
    plot.gap_width = 40
    plot.has_data_labels = True
    plot.data_labels.number_format, plot.data_labels.number_format_is_linked = number_format, False
    plot.data_labels.position = XL_LABEL_POSITION.OUTSIDE_END
    plot.data_labels.font.size = Pt(10)
    for index, (_, _, color) in enumerate(bars):
        point = plot.series[0].points[index]
        point.format.fill.solid()
        point.format.fill.fore_color.rgb = rgb(color)


def add_lines_chart(
    shapes: SlideShapes, box: Box, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]]
) -> None:
    """Native lines with markers, one per (name, values, CSS colour), with a legend at the bottom."""
    data = _chart_data(categories, [(name, values) for name, values, _ in series], "#,##0")
    chart = _add_chart(shapes, XL_CHART_TYPE.LINE_MARKERS, box, data)
    chart.has_legend = True
    chart.legend.position, chart.legend.include_in_layout = XL_LEGEND_POSITION.BOTTOM, False
    chart.legend.font.size = Pt(12)
    chart.value_axis.minimum_scale = 0
    chart.value_axis.has_major_gridlines = False
    chart.value_axis.tick_labels.font.size = Pt(11)
    chart.category_axis.tick_labels.font.size = Pt(11)
    for plotted, (_, _, color) in zip(chart.plots[0].series, series, strict=True):
        plotted.smooth = False
        plotted.format.line.color.rgb = rgb(color)
        plotted.format.line.width = Pt(2.5)
        plotted.marker.style, plotted.marker.size = XL_MARKER_STYLE.CIRCLE, 7
        plotted.marker.format.fill.solid()
        plotted.marker.format.fill.fore_color.rgb = rgb(color)
