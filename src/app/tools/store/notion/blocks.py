"""Page bodies as Notion blocks: QBR and expansion pages, long text split at Notion's limits, batches of 100."""

from __future__ import annotations

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
    """The body of a QBR page: health summary, ROI, adoption scorecard, next steps and risks."""
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
