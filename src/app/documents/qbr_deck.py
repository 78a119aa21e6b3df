"""Render a `QBRDocument` as a PowerPoint deck (python-pptx, 16:9) with native charts a CSM can present."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE
from pptx.enum.text import MSO_AUTO_SIZE, PP_ALIGN
from pptx.slide import Slide
from pptx.util import Emu, Inches, Pt

from src.app.documents.charts import RAG_COLORS
from src.app.documents.deck_charts import Box, add_bar_chart, add_lines_chart, add_score_bands_chart, rgb
from src.app.documents.document import QBRDocument
from src.app.documents.qbr_html import FEATURE_COLORS, USERS_COLOR
from src.app.documents.wording import fmt_moment, fmt_number

INK = "#1d2430"
MUTED = "#5f6b7a"
SEATS_COLOR = "#9e9e9e"
SLIDE_WIDTH = Inches(13.333)
SLIDE_HEIGHT = Inches(7.5)
MARGIN = Inches(0.6)
SOURCES_PER_SLIDE = 11
"""Rows of the sources table on one appendix slide."""
BLANK_LAYOUT = 6
"""The blank layout of python-pptx's default template."""


def build_deck(doc: QBRDocument) -> Any:
    """The QBR as a python-pptx `Presentation`: title, health, value, adoption, risks and asks, next steps, sources."""
    deck: Any = Presentation()
    deck.slide_width, deck.slide_height = SLIDE_WIDTH, SLIDE_HEIGHT
    _title_slide(_slide(deck), doc)
    _health_slide(_slide(deck, "Health summary"), doc)
    _value_slide(_slide(deck, "Value delivered"), doc)
    _adoption_slide(_slide(deck, "Adoption"), doc)
    risks = _slide(deck, "Risks and asks")
    _bullets(risks, "Risks", doc.risks or ["None on record."], _box(0, 1.5, 6, 5.4))
    _bullets(risks, "Asks", doc.asks or ["None this quarter."], _box(6.4, 1.5, 6, 5.4))
    steps = [f"{index}. {step}" for index, step in enumerate(doc.next_steps, start=1)]
    _bullets(_slide(deck, "Next steps"), "", steps or ["To be agreed in the review."], _box(0, 1.5, 12, 5.4), size=20)
    pages = [doc.sources[i : i + SOURCES_PER_SLIDE] for i in range(0, len(doc.sources), SOURCES_PER_SLIDE)] or [[]]
    for number, page in enumerate(pages, start=1):
        title = "Appendix: sources" + (f" ({number} of {len(pages)})" if len(pages) > 1 else "")
        _sources_slide(_slide(deck, title), doc, page)
    return deck


def write_deck(doc: QBRDocument, path: Path) -> Path:
    """Write the QBR deck to `path` (.pptx) and return the path."""
    build_deck(doc).save(str(path))
    return path


def _slide(deck: Any, title: str = "") -> Slide:
    slide: Slide = deck.slides.add_slide(deck.slide_layouts[BLANK_LAYOUT])
    if title:
        _text(slide, title, _box(0, 0.4, 12.1, 0.9), size=30, bold=True)
    return slide


def _box(left: float, top: float, width: float, height: float) -> Box:
    """A box in inches, `left` measured from the margin."""
    return Emu(MARGIN + Inches(left)), Inches(top), Inches(width), Inches(height)


def _text(
    slide: Slide, text: str, box: Box, *, size: int = 16, bold: bool = False, color: str = INK, center: bool = False
) -> None:
    frame = slide.shapes.add_textbox(*box).text_frame
    frame.word_wrap = True
    paragraph = frame.paragraphs[0]
    paragraph.text = text
    paragraph.alignment = PP_ALIGN.CENTER if center else PP_ALIGN.LEFT
    paragraph.font.size, paragraph.font.bold = Pt(size), bold
    paragraph.font.color.rgb = rgb(color)


def _bullets(slide: Slide, heading: str, items: Sequence[str], box: Box, *, size: int = 16) -> None:
    frame = slide.shapes.add_textbox(*box).text_frame
    frame.word_wrap = True
    frame.auto_size = MSO_AUTO_SIZE.TEXT_TO_FIT_SHAPE  # long lists shrink to fit when the deck is opened
    lines = ([heading] if heading else []) + [item if item[:1].isdigit() else f"• {item}" for item in items]
    for index, line in enumerate(lines):
        paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
        paragraph.text = line
        is_heading = bool(heading) and index == 0
        paragraph.font.size = Pt(size + 2 if is_heading else size)
        paragraph.font.bold = is_heading
        paragraph.font.color.rgb = rgb(MUTED if is_heading else INK)
        paragraph.space_after = Pt(8)


def _title_slide(slide: Slide, doc: QBRDocument) -> None:
    _text(slide, doc.account_name, _box(0, 2.3, 12.1, 1.2), size=44, bold=True)
    _text(slide, f"Quarterly Business Review, {doc.period}", _box(0, 3.5, 12.1, 0.8), size=28, color=MUTED)
    _text(slide, doc.subtitle, _box(0, 4.4, 12.1, 0.6), size=18, color=MUTED)


def _health_slide(slide: Slide, doc: QBRDocument) -> None:
    health = doc.health
    color = RAG_COLORS[health.rag] if health.rag else MUTED
    tile = slide.shapes.add_shape(MSO_SHAPE.RECTANGLE, *_box(0, 1.5, 2.2, 1.6))
    tile.fill.solid()
    tile.fill.fore_color.rgb = rgb(color)
    tile.line.fill.background()
    score = health.score.display.split("/")[0] if health.score else "–"
    _text(slide, score, _box(0, 1.55, 2.2, 1.0), size=48, bold=True, color="#ffffff", center=True)
    rag = (health.rag or "not scored").capitalize()
    _text(slide, rag, _box(0, 2.5, 2.2, 0.5), size=16, color="#ffffff", center=True)
    _text(slide, health.headline, _box(2.5, 1.45, 9.6, 0.6), size=20, bold=True)
    _text(slide, health.trend, _box(2.5, 2.05, 9.6, 0.6), size=16)
    if health.narrative:
        _text(slide, health.narrative, _box(2.5, 2.6, 9.6, 0.8), size=14, color=MUTED)
    categories = [quarter.label for quarter in doc.quarters]
    scores = [quarter.score for quarter in doc.quarters]
    green, amber = doc.green_threshold, doc.amber_threshold
    add_score_bands_chart(slide.shapes, _box(0, 3.5, 7.4, 3.5), categories, scores, green=green, amber=amber)
    bands = f"Bands: green from {fmt_number(green)}, amber from {fmt_number(amber)}, red below {fmt_number(amber)}."
    _text(slide, bands, _box(0, 7.0, 7.4, 0.4), size=11, color=MUTED)
    lines = [f"{line.text} ({line.strength})" for line in health.strengths]
    _bullets(slide, "Going well", lines or ["Nothing at full strength yet."], _box(7.7, 3.5, 4.4, 1.7), size=14)
    watch = [f"{line.text} ({line.strength})" if line.strength else line.text for line in health.watch]
    _bullets(slide, "To watch", watch or ["Nothing below 80 %."], _box(7.7, 5.2, 4.4, 1.9), size=14)


def _value_slide(slide: Slide, doc: QBRDocument) -> None:
    rows = len(doc.value)
    table = slide.shapes.add_table(rows, 2, *_box(0, 1.5, 6.6, 0.45 * rows)).table
    table.columns[0].width, table.columns[1].width = Inches(4.2), Inches(2.4)
    for row, figure in enumerate(doc.value):
        for column, text in enumerate((figure.label, figure.display)):
            cell = table.cell(row, column)
            cell.text = text
            paragraph = cell.text_frame.paragraphs[0]
            paragraph.font.size, paragraph.font.bold = Pt(15), column == 1
            paragraph.alignment = PP_ALIGN.RIGHT if column else PP_ALIGN.LEFT
    _bullets(slide, "Highlights", doc.highlights or ["None recorded this quarter."], _box(7.0, 1.5, 5.1, 5.4))


def _adoption_slide(slide: Slide, doc: QBRDocument) -> None:
    adoption = doc.adoption
    headline = f"{adoption.rate.display}; typical for the plan: {adoption.benchmark.display}."
    _text(slide, headline, _box(0, 1.3, 12.1, 0.5), size=18, bold=True)
    _text(slide, adoption.summary, _box(0, 1.8, 12.1, 0.8), size=13, color=MUTED)
    bars = [(feature.label, float(feature.uses), FEATURE_COLORS[feature.status]) for feature in adoption.features]
    if bars:
        add_bar_chart(slide.shapes, _box(0, 2.6, 6.4, 4.7), bars, number_format="#,##0")
    else:
        _text(slide, "No features on record.", _box(0, 2.6, 6.4, 0.5))
    if adoption.active_users:
        months = [month for month, _ in adoption.active_users]
        lines: list[tuple[str, Sequence[float], str]] = [
            ("Active users", [float(users) for _, users in adoption.active_users], USERS_COLOR)
        ]
        if adoption.seats_purchased is not None:
            lines.append(("Seats purchased", [float(adoption.seats_purchased)] * len(months), SEATS_COLOR))
        add_lines_chart(slide.shapes, _box(6.7, 2.6, 5.4, 4.7), months, lines)


def _sources_slide(slide: Slide, doc: QBRDocument, page: Sequence[Any]) -> None:
    moments = {figure.read_at for figure in doc.sources}
    if len(moments) == 1:
        _text(slide, f"Every record was read on {fmt_moment(moments.pop())}.", _box(0, 1.2, 12.1, 0.4), size=12)
    if not page:
        return
    table = slide.shapes.add_table(len(page) + 1, 4, *_box(0, 1.7, 12.1, 0.4 * (len(page) + 1))).table
    for column, width in enumerate((3.0, 2.2, 3.6, 3.3)):
        table.columns[column].width = Inches(width)
    rows = [("Figure", "Value", "Source field", "Record")]
    rows += [(figure.label, figure.display, figure.source_field, figure.record) for figure in page]
    for row, cells in enumerate(rows):
        for column, text in enumerate(cells):
            cell = table.cell(row, column)
            cell.text = text
            cell.text_frame.paragraphs[0].font.size = Pt(11)
