"""Render a `QBRDocument` as one standalone HTML page: inline CSS, inline SVG charts, no external assets."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from src.app.documents.charts import RAG_COLORS, bar_svg, score_history_svg
from src.app.documents.document import FeatureStatus, Figure, QBRDocument
from src.app.documents.wording import fmt_moment, fmt_number

FEATURE_COLORS: dict[FeatureStatus, str] = {
    "regular": RAG_COLORS["GREEN"],
    "light": RAG_COLORS["AMBER"],
    "unused": RAG_COLORS["RED"],
}
"""Bar colour of a feature by how much it is used."""

USERS_COLOR = "#1f3a5f"
"""Bar colour of active users per month."""


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """The template environment: autoescape on for every template, undefined names are errors."""
    return Environment(
        loader=PackageLoader("src.app.documents", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_qbr_html(doc: QBRDocument) -> str:
    """The QBR as a standalone HTML document; all text is escaped, charts are inline SVG."""
    template = _environment().get_template("qbr.html")
    return template.render(
        doc=doc,
        green=fmt_number(doc.green_threshold),
        amber=fmt_number(doc.amber_threshold),
        score_chart=Markup(score_history_svg(doc.history, doc.green_threshold, doc.amber_threshold, span=_span(doc))),
        adoption_chart=Markup(adoption_svg(doc)),
        users_chart=Markup(active_users_svg(doc)) if doc.adoption.active_users else "",
        read_once=_read_once(doc),
        read_at=_read_at,
    )


def write_qbr_html(doc: QBRDocument, path: Path) -> Path:
    """Write the HTML document to `path` (UTF-8) and return the path."""
    path.write_text(render_qbr_html(doc), encoding="utf-8")
    return path


def adoption_svg(doc: QBRDocument) -> str:
    """Uses by available feature, most used on top, coloured by regular / light / no use."""
    bars = [(feature.label, float(feature.uses), FEATURE_COLORS[feature.status]) for feature in doc.adoption.features]
    return bar_svg(bars, title="Uses by feature", value_suffix=" uses")


def active_users_svg(doc: QBRDocument) -> str:
    """Active users per month, oldest on top."""
    bars = [(month, float(users), USERS_COLOR) for month, users in doc.adoption.active_users]
    return bar_svg(bars, title="Active users by month", value_suffix=" users")


def _span(doc: QBRDocument) -> tuple[date, date]:
    """The score chart's x axis: from the first of the four quarters to the period's end, or today to date."""
    return doc.quarters[0].start, min(doc.as_of, doc.period_end)


def _read_once(doc: QBRDocument) -> str:
    """When every source was read at the same moment, that moment (the appendix says it once), else ""."""
    moments = {figure.read_at for figure in doc.sources}
    return fmt_moment(moments.pop()) if len(moments) == 1 else ""


def _read_at(figure: Figure) -> str:
    return fmt_moment(figure.read_at)
