"""Render drafts and chat text from sections, escaping every piece of customer or LLM text."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from pydantic import BaseModel, Field


class Section(BaseModel):
    """A titled block of a message: paragraphs and bullet points."""

    title: str = ""
    paragraphs: list[str] = Field(default_factory=list)
    bullets: list[str] = Field(default_factory=list)


BODY_STYLE = (
    "font-family: Arial, Helvetica, sans-serif; font-size: 14px; line-height: 1.5; color: #1f2933; max-width: 760px"
)
"""Inline style of every HTML draft (mail clients keep inline styles and drop style sheets)."""


def greeting(address: str) -> str:
    """A greeting from an address: "maria.lopez@x.com" -> "Hi Maria,"; "Hi," when no first name shows."""
    first = re.split(r"[._+-]", address.partition("@")[0])[0]
    return f"Hi {first.capitalize()}," if first.isalpha() and len(first) > 1 else "Hi,"


def render_html(heading: str, sections: Sequence[Section], *, intro: Sequence[str] = ()) -> str:
    """An HTML email body (a greeting and why it was sent first, in `intro`); all text is HTML-escaped."""
    parts = [f"<h2>{html.escape(heading)}</h2>"]
    parts.extend(f"<p>{html.escape(line)}</p>" for line in intro if line)
    for section in sections:
        if section.title:
            parts.append(f"<h3>{html.escape(section.title)}</h3>")
        parts.extend(f"<p>{html.escape(paragraph)}</p>" for paragraph in section.paragraphs)
        if section.bullets:
            items = "".join(f"<li>{html.escape(bullet)}</li>" for bullet in section.bullets)
            parts.append(f"<ul>{items}</ul>")
    parts.append("<p><em>Drafted by the CSM agent for your review. Nothing has been sent.</em></p>")
    return f'<div style="{BODY_STYLE}">\n' + "\n".join(parts) + "\n</div>"


def render_text(heading: str, sections: Sequence[Section], *, intro: Sequence[str] = ()) -> str:
    """The plain-text alternative of `render_html`."""
    lines = [heading, "=" * len(heading)]
    if any(intro):
        lines += ["", *(line for line in intro if line)]
    for section in sections:
        lines.append("")
        if section.title:
            lines.append(section.title)
        lines.extend(section.paragraphs)
        lines.extend(f"- {bullet}" for bullet in section.bullets)
    lines += ["", "Drafted by the CSM agent for your review. Nothing has been sent."]
    return "\n".join(lines)


def escape_chat(text: str) -> str:
    """Escape text for Slack mrkdwn / Google Chat (`&`, `<`, `>`), so it cannot ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
