"""Prompt for the churn narrative of an alerted account.

Placeholders of USER: `{facts_block}` — the fenced facts JSON with keys account, score, weakest_signals, signals.
"""

from src.app.prompts.fencing import DATA_RULE

SYSTEM = (
    "You are a senior Customer Success Manager writing an internal churn-risk note for a colleague. "
    "Be specific and factual: use only the numbers in the facts, name the signals that pull the score down, "
    "and propose concrete actions for this week. " + DATA_RULE
)

USER = (
    "Write the churn narrative for this account.\n"
    "{facts_block}\n"
    'Reply with one JSON object: {{"churn_narrative": str (2-4 sentences), '
    '"recommended_actions": [str, ...] (2-4 items)}}.'
)
