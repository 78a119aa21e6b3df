"""Page bodies as Notion blocks: QBR and expansion pages, long text split at Notion's limits, batches of 100."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from src.app.schemas import ExpansionOpportunity, QBRContent
from src.app.tools.store.notion.properties import MAX_RICH_TEXT_ITEMS, MAX_TEXT, rich_text

MAX_BLOCKS_PER_REQUEST = 100
"""Children per pages.create or blocks.children.append request (Notion's limit)."""

Block = dict[str, Any]


def heading(text: str) -> Block:
    """A level-2 heading."""
    return _text_block("heading_2", text[:MAX_TEXT])


def paragraphs(text: str) -> list[Block]:
    """One paragraph per blank-line separated part; a part longer than 100 × 2,000 characters spans blocks."""
    per_block = MAX_TEXT * MAX_RICH_TEXT_ITEMS
    return [
        _text_block("paragraph", part[start : start + per_block])
        for part in (p.strip() for p in text.split("\n\n"))
        if part
        for start in range(0, len(part), per_block)
    ]


def bullets(items: Iterable[str]) -> list[Block]:
    """One bulleted list item per non-empty item."""
    return [_text_block("bulleted_list_item", item) for item in items if item.strip()]


def batches(blocks: Sequence[Block], size: int = MAX_BLOCKS_PER_REQUEST) -> list[list[Block]]:
    """Consecutive batches of at most `size` blocks, in order."""
    return [list(blocks[start : start + size]) for start in range(0, len(blocks), size)]


def qbr_blocks(qbr: QBRContent) -> list[Block]:
    """The body of a QBR page: the QBR document's Markdown, or (a QBR stored without one) its sections."""
    if qbr.document_markdown.strip():
        return markdown_blocks(qbr.document_markdown)
    sections: list[tuple[str, list[Block]]] = [
        ("Health summary", paragraphs(qbr.health_summary)),
        ("ROI metrics", bullets(_pairs(qbr.roi_metrics))),
        ("ROI highlights", bullets(qbr.roi_highlights)),
        ("Feature adoption scorecard", bullets(_pairs(qbr.feature_adoption_scorecard))),
        ("Adoption commentary", paragraphs(qbr.adoption_commentary)),
        ("Expansion next steps", bullets(qbr.expansion_next_steps)),
        ("Risks", bullets(qbr.risks)),
    ]
    return [block for title, body in sections if body for block in (heading(title), *body)]


_ESCAPED = re.compile(r"\\([\\`*_\[\]<>|#])")
_NUMBERED = re.compile(r"^\d+\.\s+")


def markdown_blocks(markdown: str) -> list[Block]:
    """Notion blocks from the QBR Markdown: headings, paragraphs, bullets, numbered steps; a table row is a bullet."""
    blocks: list[Block] = []
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line or re.fullmatch(r"\|?[\s:|-]+\|?", line):
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 3)
            blocks.append(_text_block(f"heading_{level}", _plain(line.lstrip("#").strip())[:MAX_TEXT]))
        elif line.startswith("- "):
            blocks.append(_text_block("bulleted_list_item", _plain(line[2:])))
        elif _NUMBERED.match(line):
            blocks.append(_text_block("numbered_list_item", _plain(_NUMBERED.sub("", line))))
        elif line.startswith("|"):
            cells = [_plain(cell.strip()) for cell in re.split(r"(?<!\\)\|", line.strip("|"))]
            blocks.append(_text_block("bulleted_list_item", " · ".join(cell for cell in cells if cell)))
        else:
            blocks += paragraphs(_plain(line))
    return blocks


def _plain(text: str) -> str:
    """Markdown inline syntax removed: bold, italics and code marks, and escapes."""
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<![\\\w])_(.+?)_(?!\w)", r"\1", text)
    text = text.replace("`", "")
    return _ESCAPED.sub(r"\1", text)


def opportunity_blocks(opportunity: ExpansionOpportunity) -> list[Block]:
    """The body of an expansion record: the evidence and the talk track."""
    return [
        heading("Evidence"),
        *bullets(opportunity.evidence),
        heading("Talk track"),
        *paragraphs(opportunity.recommended_talk_track),
    ]


def _pairs(values: Mapping[str, object]) -> list[str]:
    return [f"{name}: {value}" for name, value in values.items()]


def _text_block(kind: str, text: str) -> Block:
    return {"object": "block", "type": kind, kind: {"rich_text": rich_text(text)}}
