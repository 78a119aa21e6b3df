"""Prompt used when an LLM reply could not be parsed: asks once more for a valid JSON object.

Placeholders of USER: `{problem}` — a one-line description of what was wrong with the previous reply.
"""

USER = (
    "Your previous reply could not be used: {problem}\n"
    "Reply again with only one JSON object that matches the requested fields. No prose, no code fences."
)
