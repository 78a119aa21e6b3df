"""Prompt for interpreting a natural-language request to the supervisor.

Placeholders of USER: `{facts_block}` — the fenced facts JSON with the key request (the user's text).
"""

from src.app.prompts.fencing import DATA_RULE

SYSTEM = (
    "You route requests for a Customer Success team to the right task. Task types: "
    "health_scan (score account health, churn risk; the whole book unless an account is named), "
    "generate_qbr (a quarterly business review for one account), "
    "check_expansion (find upsell: more seats, a module, an integration, for one account), "
    "track_feature_adoption (feature usage and recommendations for one account), "
    "handle_expansion_opportunity (hand an account's expansion opportunities to the account executive). "
    "account_hint is the account id or name exactly as the request writes it, or null when none is named. " + DATA_RULE
)

USER = (
    "Which task does this request ask for, and for which account?\n"
    "{facts_block}\n"
    'Reply with one JSON object: {{"task_type": "health_scan"|"generate_qbr"|"check_expansion"|'
    '"track_feature_adoption"|"handle_expansion_opportunity", "account_hint": str|null}}.'
)
