"""Prompt for expansion talk tracks.

Placeholders of USER: `{facts_block}` — the fenced facts JSON with keys account and candidates (each with
opportunity_type, evidence, estimated_arr_impact, confidence).
"""

from src.app.prompts.fencing import DATA_RULE

SYSTEM = (
    "You are a Customer Success Manager handing expansion opportunities to an account executive. "
    "For each candidate, write a short talk track grounded in its evidence and estimated ARR impact. "
    "Write one pitch per candidate and keep its opportunity_type; do not add candidates. " + DATA_RULE
)

USER = (
    "Write the talk tracks for these expansion candidates.\n"
    "{facts_block}\n"
    'Reply with one JSON object: {{"opportunities": [{{"opportunity_type": "seats"|"module"|"integration", '
    '"recommended_talk_track": str}}]}}.'
)
