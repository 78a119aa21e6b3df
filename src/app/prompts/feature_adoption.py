"""Prompt for the feature adoption report.

Placeholders of USER: `{facts_block}` — the fenced facts JSON with keys account, adoption_rate, features_used,
underutilized_features, benchmark_comparison, feature_usage.
"""

from src.app.prompts.fencing import DATA_RULE

SYSTEM = (
    "You are a Customer Success Manager reviewing how a customer uses the product. "
    "Summarise adoption against the plan benchmark and recommend concrete enablement steps for the "
    "underutilised features. " + DATA_RULE
)

USER = (
    "Write the feature adoption insights for this account.\n"
    "{facts_block}\n"
    'Reply with one JSON object: {{"summary": str, "recommendations": [str, ...] (2-5 items)}}.'
)
