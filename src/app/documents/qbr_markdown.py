"""Render a `QBRDocument` as Markdown: the same sections as the HTML page, the text a Notion page is built from."""

from __future__ import annotations

import re
from collections.abc import Sequence

from src.app.documents.document import Figure, QBRDocument
from src.app.documents.wording import fmt_moment

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md_escape(text: str) -> str:
    r"""Escape Markdown syntax in text from records or the LLM, so it shows as written: "a*b" -> "a\*b"."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_qbr_markdown(doc: QBRDocument) -> str:
    """The QBR as Markdown: title, health summary, value delivered, adoption, risks and asks, next steps, sources."""
    lines = [f"# {md_escape(doc.title)}", "", f"_{md_escape(doc.subtitle)}_", ""]
    lines += _health(doc)
    lines += ["## Value delivered", "", *_figure_table(doc.value)]
    if doc.highlights:
        lines += ["### Highlights", "", *_bullets(doc.highlights)]
    rate, benchmark = md_escape(doc.adoption.rate.display), md_escape(doc.adoption.benchmark.display)
    lines += ["## Adoption", "", f"**{rate}**; typical for the plan: {benchmark}.", ""]
    lines += [md_escape(doc.adoption.summary), ""]
    if doc.adoption.commentary:
        lines += [md_escape(doc.adoption.commentary), ""]
    lines += ["| Feature | Uses |", "| --- | ---: |"]
    lines += [f"| {md_escape(feature.label)} | {feature.uses:,} |" for feature in doc.adoption.features]
    lines += [""]
    lines += ["## Risks and asks", "", "### Risks", "", *(_bullets(doc.risks) or ["None on record.", ""])]
    lines += ["### Asks", "", *(_bullets(doc.asks) or ["None this quarter.", ""])]
    steps = [f"{index}. {md_escape(step)}" for index, step in enumerate(doc.next_steps, start=1)]
    lines += ["## Next steps", "", *(steps or ["To be agreed in the review."]), ""]
    lines += ["## Appendix: sources", "", *_sources(doc.sources)]
    return "\n".join(lines).rstrip() + "\n"


def _health(doc: QBRDocument) -> list[str]:
    health = doc.health
    lines = ["## Health summary", "", f"**{md_escape(health.headline)}** {md_escape(health.trend)}", ""]
    if health.narrative:
        lines += [md_escape(health.narrative), ""]
    if health.strengths:
        lines += ["### Going well", "", *_bullets([f"{line.text} ({line.strength})" for line in health.strengths])]
    if health.watch:
        watch = [f"{line.text} ({line.strength})" if line.strength else line.text for line in health.watch]
        lines += ["### To watch", "", *_bullets(watch)]
    lines += ["### Health score, last four quarters", ""]
    lines += ["| " + " | ".join(md_escape(quarter.label) for quarter in doc.quarters) + " |"]
    lines += ["|" + " --- |" * len(doc.quarters)]
    cells = [quarter.figure.display if quarter.figure else "no score" for quarter in doc.quarters]
    return [*lines, "| " + " | ".join(cells) + " |", ""]


def _bullets(items: Sequence[str]) -> list[str]:
    return [f"- {md_escape(item)}" for item in items] + [""] if items else []


def _figure_table(figures: Sequence[Figure]) -> list[str]:
    rows = [f"| {md_escape(figure.label)} | {md_escape(figure.display)} |" for figure in figures]
    return ["| Figure | Value |", "| --- | ---: |", *rows, ""]


def _sources(figures: Sequence[Figure]) -> list[str]:
    moments = {figure.read_at for figure in figures}
    once = len(moments) == 1
    lines = [f"Every record was read on {fmt_moment(moments.pop())}.", ""] if once else []
    lines += ["| Figure | Value | Source field | Record |" + ("" if once else " Read |")]
    lines += ["| --- | --- | --- | --- |" + ("" if once else " --- |")]
    for figure in figures:
        cells = [figure.label, figure.display, f"`{figure.source_field}`", figure.record]
        row = [md_escape(cell) if index != 2 else cell for index, cell in enumerate(cells)]
        lines.append("| " + " | ".join(row) + " |" + ("" if once else f" {fmt_moment(figure.read_at)} |"))
    return lines
