"""Zero-config LLM: a deterministic writer served through litellm as the custom provider `offline/csm`.

It reads the JSON facts fenced in the last user message and writes a schema-valid answer from their
structured fields only (never free text such as notes), so output is grounded, repeatable and free of
anything a customer might have planted in their data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from src.app.config import OFFLINE_MODEL
from src.app.prompts.fencing import FACTS_OPEN

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # must precede the import: no cost-map download

import litellm  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.utils import ModelResponse, Usage  # noqa: E402

OFFLINE_PROVIDER = OFFLINE_MODEL.partition("/")[0]

Facts = Mapping[str, Any]
Answer = dict[str, Any]

_EMAIL = re.compile(r"\S+@\S+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_UNSAFE = re.compile(r"[^\w\s.,&'()/+%#:$-]")
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|instructions?|rules)\b"
    r"|\b(?:new|system) (?:instructions?|prompt)\b|\byou are now\b",
    re.IGNORECASE,
)
_DECODER = json.JSONDecoder(strict=False)
_FACTS_MARKER = re.compile(re.escape(FACTS_OPEN) + r"\s*")


@dataclass(frozen=True)
class _SignalKind:
    """How to talk about one health signal: its words, the raw field behind it and the action it calls for."""

    keywords: tuple[str, ...]
    phrase: str
    raw_field: str
    raw_format: Callable[[object], str | None]
    action: str


class _Weak(NamedTuple):
    """One of the weakest signals: its kind (None if unrecognised), words for it and 'points/max points'."""

    kind: _SignalKind | None
    phrase: str
    points: str


@dataclass(frozen=True)
class _Account:
    """The account identity fields the writers may quote."""

    name: str
    arr: float | None
    plan: str
    days_to_renewal: float | None

    @property
    def title(self) -> str:
        """The name as the first word of a sentence."""
        return _capitalized(self.name)

    @property
    def plan_label(self) -> str:
        """'enterprise plan', or 'current plan' when the plan is unknown."""
        return f"{self.plan or 'current'} plan"


class OfflineWriter(CustomLLM):
    """litellm handler for `offline/<anything>`: schema-valid JSON written from the prompt's fenced facts."""

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Answer a synchronous completion."""
        return _respond(kwargs)

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Answer an asynchronous completion (no I/O happens, so this is `completion`)."""
        return _respond(kwargs)


def register_offline_provider() -> None:
    """Add the offline provider to `litellm.custom_provider_map` once, keeping any other entries."""
    if not any(item.get("provider") == OFFLINE_PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": OFFLINE_PROVIDER, "custom_handler": OfflineWriter()})


def _respond(kwargs: Mapping[str, Any]) -> ModelResponse:
    """Build litellm's response object around the written answer, with usage estimated at ~4 chars a token."""
    messages = list(kwargs.get("messages") or [])
    optional_params = kwargs.get("optional_params") or {}
    content = _write_answer(messages, optional_params.get("response_format"))
    prompt_tokens = max(1, sum(len(_text(message)) for message in messages) // 4)
    completion_tokens = max(1, len(content) // 4)
    return ModelResponse(
        id="offline-" + hashlib.sha256(content.encode()).hexdigest()[:24],
        model=f"{OFFLINE_PROVIDER}/{kwargs.get('model') or OFFLINE_MODEL.partition('/')[2]}",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


def _write_answer(messages: list[Any], response_format: object) -> str:
    """The JSON answer: the writer named by the response schema, or one generated from the schema itself."""
    name, schema = _requested_schema(response_format)
    facts = _facts(messages)
    writer = _WRITERS.get(name)
    if writer is not None:
        answer = writer(facts)
    else:
        answer = _from_schema(schema, _dict(schema.get("$defs")), _account(facts).name)
    return json.dumps(answer, ensure_ascii=False)


def _requested_schema(response_format: object) -> tuple[str, dict[str, Any]]:
    """Name and JSON schema of a `{"type": "json_schema", "json_schema": {...}}` response format."""
    spec = _dict(_dict(response_format).get("json_schema"))
    return str(spec.get("name") or ""), _dict(spec.get("schema"))


def _facts(messages: list[Any]) -> dict[str, Any]:
    """The facts of the last user message that has a JSON object right after a FACTS_OPEN marker ({} if none).

    Looking further back than the very last user message keeps repair turns ("your reply was invalid...")
    grounded. Markers that only mention the fence (as DATA_RULE does) are skipped since no object follows
    them, and a closing marker inside a JSON string cannot cut the object short.
    """
    for message in reversed(messages):
        if _dict(message).get("role") == "user":
            facts = _fenced_object(_text(message))
            if facts is not None:
                return facts
    return {}


def _fenced_object(text: str) -> dict[str, Any] | None:
    """The first JSON object that directly follows a FACTS_OPEN marker in `text`."""
    for marker in _FACTS_MARKER.finditer(text):
        try:
            value, _ = _DECODER.raw_decode(text, marker.end())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _text(message: object) -> str:
    """Text of a chat message whose content is a string or a list of text parts."""
    content = _dict(message).get("content")
    if isinstance(content, str):
        return content
    return "".join(str(_dict(part).get("text") or "") for part in _list(content))


# ---------------------------------------------------------------------------------------------- writers


def _churn_narrative(facts: Facts) -> Answer:
    """ChurnNarrative: who, how healthy, why at risk, weakest signals and renewal timing; actions to match."""
    account, score = _account(facts), _dict(facts.get("score"))
    signals, weakest = _dict(facts.get("signals")), _weakest(facts)
    sentences = [
        _score_sentence(account, score),
        _churn_sentence(score),
        _weakest_sentence(weakest, signals),
        _renewal_sentence(account.days_to_renewal),
    ]
    actions = [kind.action.format(name=account.name) for kind, _, _ in weakest[:3] if kind is not None]
    if account.days_to_renewal is not None and account.days_to_renewal <= 90:
        actions.append(f"Open the renewal plan with {account.name} now: confirm decision makers and timeline.")
    actions += [
        f"Hold a health check call with {account.name}'s champion this week to agree priorities.",
        f"Share a 30-day success plan with {account.name} that addresses the weakest areas.",
    ]
    return {
        "churn_narrative": " ".join(sentence for sentence in sentences if sentence),
        "recommended_actions": _unique(actions)[:4],
    }


def _qbr_narrative(facts: Facts) -> Answer:
    """QBRNarrative: health summary, ROI highlights, adoption commentary, expansion next steps, risks."""
    account, score = _account(facts), _dict(facts.get("score"))
    period = _clean(facts.get("period"), limit=20) or "this period"
    return {
        "health_summary": _qbr_summary(account, score, period, _clean(facts.get("trigger"), limit=30)),
        "roi_highlights": _roi_highlights(_dict(facts.get("roi_metrics")), account, period),
        "adoption_commentary": _adoption_commentary(account, _dict(facts.get("adoption")), period),
        "expansion_next_steps": _expansion_steps(account, facts),
        "risks": _qbr_risks(account, score, _weakest(facts)),
    }


def _expansion_pitches(facts: Facts) -> Answer:
    """ExpansionPitches: one talk track per valid candidate, citing its evidence and ARR impact."""
    account = _account(facts)
    pitches = [
        {"opportunity_type": kind, "recommended_talk_track": _talk_track(account, candidate, kind)}
        for candidate in map(_dict, _list(facts.get("candidates"))[:10])
        if (kind := candidate.get("opportunity_type")) in _OFFERS
    ]
    return {"opportunities": pitches}


def _adoption_insights(facts: Facts) -> Answer:
    """AdoptionInsights: adoption against the plan benchmark, top features, and what to do about the gaps."""
    account = _account(facts)
    underused = _names(facts.get("underutilized_features"))
    gap = _num(_dict(facts.get("benchmark_comparison")).get("delta"))
    templates = (
        "Run a 30-minute enablement session on {feature} for {name}'s power users, then review usage.",
        "Add {feature} to {name}'s onboarding checklist so new users meet it in their first week.",
        "Share a short customer example of {feature} in a workflow {name} already runs.",
    )
    recommendations = [
        templates[index].format(feature=feature, name=account.name) for index, feature in enumerate(underused[:3])
    ]
    if gap is not None and round(gap * 100) < 0:
        recommendations.append(
            f"Agree a target with {account.name} to close the {abs(round(gap * 100))}-point gap to the "
            f"{account.plan_label} benchmark before the next QBR."
        )
    recommendations += [
        f"Review the feature usage report with {account.name}'s champion at the next check-in.",
        f"Identify one team at {account.name} to pilot the least-used features and report back.",
    ]
    return {"summary": _adoption_summary(account, facts, underused), "recommendations": recommendations[:5]}


def _supervisor_route(facts: Facts) -> Answer:
    """SupervisorRoute: the task type the request's keywords point to, plus the account it names, if any."""
    request = facts.get("request")
    text = request.lower() if isinstance(request, str) else ""
    task_type = next(
        (task for keywords, task in _ROUTES if any(keyword in text for keyword in keywords)), "health_scan"
    )
    return {
        "task_type": task_type,
        "account_hint": _account_hint(request) if isinstance(request, str) else None,
    }


def _account_hint(request: str) -> str | None:
    """An account id ('acct-001') or a capitalised name after 'for', 'of', 'on'... in the request."""
    match = _ACCOUNT_ID.search(request) or _ACCOUNT_NAME.search(request)
    return (_clean(match.group(1), limit=80) or None) if match else None


# ---------------------------------------------------------------------------------------------- sentences


def _score_sentence(account: _Account, score: Facts) -> str:
    """Identity and score, e.g. 'Acme (enterprise plan, $120,000 ARR) has a health score of 38/100 (RED)'."""
    money = _money(account.arr)
    details = [part for part in (account.plan and account.plan_label, money and f"{money} ARR") if part]
    identity = account.title + (f" ({', '.join(details)})" if details else "")
    value = _num(score.get("score"))
    if value is None:
        return f"{identity} has no current health score on record."
    rag = _clean(score.get("rag"), limit=8)
    movement = _movement(value, _num(score.get("previous_score")))
    return f"{identity} has a health score of {_fmt(round(value, 1))}/100{f' ({rag})' if rag else ''}{movement}."


def _movement(value: float, previous: float | None) -> str:
    """', down from 55' / ', up from 40' / ', unchanged since the last scan' / ''."""
    if previous is None:
        return ""
    if round(value, 1) == round(previous, 1):
        return ", unchanged since the last scan"
    return f", {'down' if value < previous else 'up'} from {_fmt(round(previous, 1))}"


def _churn_sentence(score: Facts) -> str:
    """'Churn risk is critical, triggered by ...' (empty when the level is unknown)."""
    level = _clean(score.get("churn_risk_level"), limit=10)
    if not level:
        return ""
    trigger = _TRIGGERS.get(str(score.get("churn_triggered_by")), "")
    return f"Churn risk is {level}{f', triggered by {trigger}' if trigger else ''}."


def _weakest_sentence(weakest: list[_Weak], signals: Facts) -> str:
    """'The weakest areas are feature adoption (4/20 points; 20% of features adopted) and ...'."""
    parts = []
    for kind, phrase, points in weakest[:3]:
        detail = kind.raw_format(signals.get(kind.raw_field)) if kind is not None else None
        parts.append(
            f"{phrase} ({'; '.join(item for item in (points, detail) if item)})" if points or detail else phrase
        )
    if not parts:
        return ""
    return f"The weakest {'area is' if len(parts) == 1 else 'areas are'} {_join(parts)}."


def _renewal_sentence(days: float | None) -> str:
    """How far away the renewal is, and what that means for timing."""
    if days is None:
        return "No renewal date is on record, so confirm the contract term with the customer."
    if days < 0:
        return f"The contract end date passed {_fmt(-days)} days ago, so the renewal needs attention now."
    urgency = "recovery work has to start this week" if days <= 60 else "there is time to recover if work starts now"
    return f"Renewal is {_fmt(days)} days away, so {urgency}."


def _qbr_summary(account: _Account, score: Facts, period: str, trigger: str) -> str:
    """The QBR health summary: score and movement, churn level, why this review happens now."""
    value, level = _num(score.get("score")), _clean(score.get("churn_risk_level"), limit=10)
    rag = _clean(score.get("rag"), limit=8)
    opening = f"{account.title} has no health score on record for {period}."
    if value is not None:
        movement = _movement(value, _num(score.get("previous_score")))
        rag_part, churn_part = f" ({rag})" if rag else "", f" and {level} churn risk" if level else ""
        opening = (
            f"{account.title} ends {period} with a health score of {_fmt(round(value, 1))}/100"
            f"{rag_part}{movement}{churn_part}."
        )
    if trigger == "contract_proximity":
        days = account.days_to_renewal
        reason = f"renewal is {_fmt(days)} days away" if days is not None and days >= 0 else "renewal is close"
        why = f"This review was brought forward because {reason}."
    else:
        why = "This is the scheduled quarterly review."
    money = _money(account.arr)
    plan = f"The account is on the {account.plan_label}{f' at {money} ARR' if money else ''}."
    return " ".join((opening, why, plan))


def _roi_highlights(metrics: Facts, account: _Account, period: str) -> list[str]:
    """One line per ROI metric, or a note that none were recorded."""
    lines = [line for key, raw in list(metrics.items())[:10] if (line := _metric_line(str(key), raw))]
    return lines or [f"No ROI metrics were recorded for {period}; agree baseline measures with {account.name}."]


def _adoption_commentary(account: _Account, adoption: Facts, period: str) -> str:
    """How much of the product the account uses and which features lag."""
    used, underused = _names(adoption.get("features_used")), _names(adoption.get("underutilized_features"))
    rate = _num(adoption.get("adoption_rate"))
    if rate is None and not used:
        return f"Feature adoption data was not available for {account.name} in {period}."
    text = f"{account.title} actively uses {len(used)} features{f' ({_join(used[:5])})' if used else ''}"
    text += f", an adoption rate of {_pct(rate)}." if rate is not None else "."
    if underused:
        verb = "is" if len(underused) == 1 else "are"
        text += f" {_join(underused[:5])} {verb} underused, and that is where the next gains in value are."
    return text


def _expansion_steps(account: _Account, facts: Facts) -> list[str]:
    """One step per expansion candidate, or an adoption-led step when there are none."""
    steps = []
    for candidate in map(_dict, _list(facts.get("expansion_candidates"))[:5]):
        kind = candidate.get("opportunity_type")
        if kind not in _OFFERS:
            continue
        evidence = _names(candidate.get("evidence"), limit=120)
        impact, confidence = _money(_num(candidate.get("estimated_arr_impact"))), _confidence(candidate)
        steps.append(
            f"{_OFFERS[kind][0]}: {evidence[0] if evidence else 'signals in the account data'}"
            f"; estimated {impact or 'unquantified'} ARR at {confidence} confidence."
        )
    if steps:
        return steps
    underused = _names(_dict(facts.get("adoption")).get("underutilized_features"))
    if underused:
        return [f"Lead with adoption before expansion: drive usage of {_join(underused[:2])} at {account.name}."]
    return [f"Revisit expansion with {account.name} at the next review once usage growth is confirmed."]


def _qbr_risks(account: _Account, score: Facts, weakest: list[_Weak]) -> list[str]:
    """Risks from the weakest signals, the churn level and an imminent renewal."""
    risks = [f"{_capitalized(phrase)} is weak{f' ({points})' if points else ''}." for _, phrase, points in weakest[:3]]
    level = score.get("churn_risk_level")
    if level in ("high", "critical"):
        trigger = _TRIGGERS.get(str(score.get("churn_triggered_by")), "")
        risks.append(f"Churn risk is {level}{f', driven by {trigger}' if trigger else ''}.")
    days = account.days_to_renewal
    if days is not None and 0 <= days <= 90:
        risks.append(f"Renewal is {_fmt(days)} days away.")
    return risks or ["No material risks this quarter; keep monitoring usage and renewal timing."]


def _talk_track(account: _Account, candidate: Facts, kind: str) -> str:
    """A talk track for one expansion candidate: evidence, offer, ARR impact and how hard to push."""
    evidence = _names(candidate.get("evidence"), limit=120)[:3]
    impact, confidence = _money(_num(candidate.get("estimated_arr_impact"))), _confidence(candidate)
    sentences = [
        f"{account.title} is on the {account.plan_label}"
        + (f", and the account data shows {_join(evidence)}." if evidence else "."),
        _OFFERS[kind][1],
        f"The estimated impact is {impact} in additional ARR." if impact else "",
        f"Confidence is {confidence}, so position it as {_FRAMING[confidence]}.",
    ]
    return " ".join(sentence for sentence in sentences if sentence)


def _adoption_summary(account: _Account, facts: Facts, underused: list[str]) -> str:
    """Adoption rate against the plan benchmark, the most-used features and the underused ones."""
    used, rate = _names(facts.get("features_used")), _num(facts.get("adoption_rate"))
    benchmark = _dict(facts.get("benchmark_comparison"))
    plan_rate, delta = _num(benchmark.get("plan_benchmark")), _num(benchmark.get("delta"))
    if rate is None and not used:
        return f"No feature usage data is on record for {account.name}."
    sentence = f"{account.title} uses {len(used)} features"
    if rate is not None:
        sentence += f" for an adoption rate of {_pct(rate)}"
    if plan_rate is not None and delta is not None:
        points = round(delta * 100)
        position = "in line with" if points == 0 else f"{abs(points)} points {'above' if points > 0 else 'below'}"
        sentence += f", {position} the {account.plan_label} benchmark of {_pct(plan_rate)}"
    parts = [sentence + "."]
    top = _top_features(_dict(facts.get("feature_usage")))
    if top:
        parts.append(f"The most-used {'feature is' if len(top) == 1 else 'features are'} {_join(top)}.")
    if underused:
        parts.append(f"{_join(underused[:5])} {'is' if len(underused) == 1 else 'are'} underused.")
    return " ".join(parts)


def _top_features(usage: Facts) -> list[str]:
    """Up to three most-used features as 'Reports (120 uses)', ties broken by name."""
    counts = [(name, count) for key, raw in usage.items() if (name := _clean(key, limit=40)) and (count := _num(raw))]
    ranked = sorted(counts, key=lambda item: (-item[1], item[0]))[:3]
    return [f"{name} ({_fmt(count)} uses)" for name, count in ranked]


# ---------------------------------------------------------------------------------------------- generic


def _from_schema(node: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> Any:
    """A minimal value valid for a JSON schema node: text for strings, [] for lists, 0 for numbers."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _from_schema(_dict(defs.get(ref.rsplit("/", 1)[-1])), defs, name)
    for key in ("const", "default"):
        if key in node:
            return node[key]
    if _list(node.get("enum")):
        return _list(node.get("enum"))[0]
    options = [_dict(option) for option in _list(node.get("anyOf") or node.get("oneOf"))]
    if options:
        return None if any(o.get("type") == "null" for o in options) else _from_schema(options[0], defs, name)
    return _from_type(node, defs, name)


def _from_type(node: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> Any:
    """The value for a typed schema node (object, array, string, number, boolean)."""
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        properties = _dict(node.get("properties"))
        return {
            key: _from_schema(_dict(properties.get(key)), defs, name)
            for key in _list(node.get("required"))
            if isinstance(key, str)
        }
    if kind == "array":
        count = int(_num(node.get("minItems")) or 0)
        return [_from_schema(_dict(node.get("items")), defs, name) for _ in range(count)]
    if kind == "string":
        text = f"{_clean(node.get('title'), limit=40) or 'Summary'} for {name}."
        return text[: int(_num(node.get("maxLength")) or len(text))]
    if kind in ("integer", "number"):
        lowest = _num(node.get("minimum")) or 0
        return math.ceil(lowest) if kind == "integer" else lowest
    return False if kind == "boolean" else None


# ---------------------------------------------------------------------------------------------- helpers


def _account(facts: Facts) -> _Account:
    """Quotable account fields; renewal days fall back to the raw signals."""
    account = _dict(facts.get("account"))
    renewal = _num(account.get("days_to_renewal"))
    return _Account(
        name=_clean(account.get("name"), limit=80) or "the account",
        arr=_num(account.get("arr")),
        plan=_clean(account.get("plan"), limit=30),
        days_to_renewal=renewal if renewal is not None else _num(_dict(facts.get("signals")).get("days_to_renewal")),
    )


def _weakest(facts: Facts) -> list[_Weak]:
    """The weakest signals as (kind, human phrase, 'points/max points')."""
    weakest = []
    for item in map(_dict, _list(facts.get("weakest_signals"))):
        key = str(item.get("signal") or "").lower()
        kind = next((kind for kind in _SIGNAL_KINDS if any(word in key for word in kind.keywords)), None)
        phrase = kind.phrase if kind is not None else _clean(key.replace("_", " "), limit=40)
        if not phrase:
            continue
        points, most = _num(item.get("points")), _num(item.get("max_points"))
        weakest.append(
            _Weak(kind, phrase, f"{_fmt(points)}/{_fmt(most)} points" if points is not None and most else "")
        )
    return weakest


def _clean(value: object, *, limit: int) -> str:
    """A short single-line copy of a customer-controlled value, without emails, links or instructions."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = _UNSAFE.sub(" ", _URL.sub(" ", _EMAIL.sub(" ", str(value))))
    text = " ".join(text.split())
    if _INSTRUCTION.search(text):
        return ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _names(value: object, *, limit: int = 40) -> list[str]:
    """Cleaned, non-empty strings of a list (at most 20)."""
    return [name for item in _list(value)[:20] if (name := _clean(item, limit=limit))]


def _metric_line(key: str, raw: object) -> str:
    """'Seat utilization: 96%' for one ROI metric ('' when its value is missing or not available)."""
    words = key.lower().split("_")
    label = _clean(" ".join(word.upper() if word in _ACRONYMS else word for word in words if word != "pct"), limit=50)
    value = _metric_value(words, raw)
    return f"{_capitalized(label)}: {value}" if label and value else ""


def _metric_value(words: list[str], raw: object) -> str:
    """A metric value in the unit its key implies: percent, ratio as percent, money, or a plain number."""
    number = _num(raw)
    if number is None:
        text = _clean(raw, limit=40)
        return "" if text.lower() in _NOT_AVAILABLE else text
    if {"pct", "percent"} & set(words):
        return f"{_fmt(number)}%"
    if {"rate", "ratio", "utilization", "utilisation"} & set(words) and 0 <= number <= 2:
        return _pct(number)
    return _money(number) if {"arr", "mrr", "revenue"} & set(words) else _fmt(number)


def _confidence(candidate: Facts) -> str:
    """The candidate's confidence level, 'medium' when missing or unknown."""
    value = candidate.get("confidence")
    return value if isinstance(value, str) and value in _FRAMING else "medium"


def _num(value: object) -> float | None:
    """A finite number, or None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: float | None) -> str:
    """'1,250' for whole numbers, at most two decimals otherwise ('12.5', '0.96')."""
    if value is None:
        return "?"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")


def _money(value: float | None) -> str:
    """'$120,000', or '' when unknown."""
    return "" if value is None else f"${value:,.0f}"


def _pct(value: float) -> str:
    """'42%' for 0.42."""
    return f"{value:.0%}"


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _capitalized(text: str) -> str:
    """`text` with its first letter upper-cased and the rest untouched."""
    return text[:1].upper() + text[1:]


def _unique(items: list[str]) -> list[str]:
    """Items in order, duplicates removed."""
    return list(dict.fromkeys(items))


def _dict(value: object) -> dict[str, Any]:
    """`value` if it is a dict, else {}."""
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    """`value` if it is a list, else []."""
    return value if isinstance(value, list) else []


def _raw_pct(value: object) -> str | None:
    """'20% of features adopted' style value for ratio signals."""
    number = _num(value)
    return None if number is None else _pct(number)


def _raw_int(value: object) -> str | None:
    """Whole-number signal value."""
    number = _num(value)
    return None if number is None else _fmt(number)


def _raw_text(value: object) -> str | None:
    """Enum-like signal value in words ('overdue_60' → 'overdue 60')."""
    return _clean(value, limit=20).replace("_", " ") or None


def _formatted(template: str, raw: Callable[[object], str | None]) -> Callable[[object], str | None]:
    """A raw-value formatter that places the formatted value into `template`."""

    def render(value: object) -> str | None:
        text = raw(value)
        return None if text is None else template.format(text)

    return render


_SIGNAL_KINDS: tuple[_SignalKind, ...] = (
    _SignalKind(
        ("adoption",),
        "feature adoption",
        "feature_adoption_rate",
        _formatted("{} of features adopted", _raw_pct),
        "Run an enablement session on the least-used features with {name}'s admins and set a 30-day target.",
    ),
    _SignalKind(
        ("usage", "trend"),
        "product usage",
        "usage_trend",
        _formatted("usage {}", _raw_text),
        "Review the usage trend with {name}'s champion and agree a plan to restore weekly active usage.",
    ),
    _SignalKind(
        ("login",),
        "login frequency",
        "login_frequency_days",
        _formatted("logins every {} days", _raw_int),
        "Re-engage inactive users at {name} with a guided re-onboarding sequence and name a usage owner.",
    ),
    _SignalKind(
        ("interaction", "contact"),
        "recent CSM contact",
        "days_since_last_interaction",
        _formatted("{} days since the last touchpoint", _raw_int),
        "Book a check-in with {name}'s primary stakeholder within five business days.",
    ),
    _SignalKind(
        ("invoice", "payment"),
        "invoice payment status",
        "invoice_payment_status",
        _formatted("invoices {}", _raw_text),
        "Align with Finance on {name}'s outstanding invoice before the renewal conversation.",
    ),
    _SignalKind(
        ("support", "ticket", "sentiment"),
        "support experience",
        "open_ticket_count",
        _formatted("{} open tickets", _raw_int),
        "Review {name}'s open support tickets with the support lead and share resolution dates.",
    ),
    _SignalKind(
        ("renewal",),
        "renewal timing",
        "days_to_renewal",
        _formatted("{} days to renewal", _raw_int),
        "Start the renewal plan with {name}: confirm decision makers, timeline and success criteria.",
    ),
    _SignalKind(
        ("seat",),
        "seat utilisation",
        "seats_utilization_rate",
        _formatted("{} of seats in use", _raw_pct),
        "Audit seat usage with {name}'s admin and reassign unused licences to active teams.",
    ),
    _SignalKind(
        ("stakeholder", "engagement"),
        "stakeholder engagement",
        "stakeholder_engagement",
        _formatted("{} engagement", _raw_text),
        "Request an executive business review to broaden sponsorship at {name}.",
    ),
    _SignalKind(
        ("nps",),
        "customer sentiment (NPS)",
        "nps_score",
        _formatted("NPS {}", _raw_int),
        "Close the loop on {name}'s latest NPS feedback with a follow-up call.",
    ),
    _SignalKind(
        ("escalation",),
        "escalations",
        "escalation_count_90_days",
        _formatted("{} escalations in 90 days", _raw_int),
        "Run an escalation review with {name} and share the remediation plan.",
    ),
)

_TRIGGERS = {
    "contract_proximity": "contract proximity (a weak score inside the renewal window)",
    "behavioral": "behavioural signals (falling usage and infrequent logins)",
    "both": "both contract proximity and behavioural signals",
}

_OFFERS = {
    "seats": ("Seat expansion", "Propose adding seats so every active user is licensed as the team grows."),
    "module": (
        "Additional module",
        "Offer a guided trial of the module that extends workflows the team relies on.",
    ),
    "integration": (
        "Integration",
        "Offer to scope the integration with their technical owner to remove manual work.",
    ),
}

_ACRONYMS = {"arr", "mrr", "nps", "rag", "roi", "api", "sla"}
_NOT_AVAILABLE = {"", "n/a", "na", "none", "unknown"}

_FRAMING = {
    "high": "a natural next step this quarter",
    "medium": "an option to validate with the champion first",
    "low": "an exploratory conversation rather than a firm ask",
}

_ROUTES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("hand off", "handoff", "hand-off", "account executive", "sales team", "handle expansion"),
        "handle_expansion_opportunity",
    ),
    (("qbr", "business review", "quarterly review"), "generate_qbr"),
    (("adoption", "feature usage", "underused", "underutilized", "underutilised"), "track_feature_adoption"),
    (("expansion", "expand", "upsell", "upgrade", "more seats", "cross-sell"), "check_expansion"),
    (("health", "churn", "risk", "scan"), "health_scan"),
)

_ACCOUNT_ID = re.compile(r"\b([a-z]+[-_]\d[\w-]*)\b", re.IGNORECASE)
_ACCOUNT_NAME = re.compile(r"\b(?i:for|of|on|at|about|account)\s+([A-Z0-9][\w&.'-]*(?:\s+[A-Z0-9][\w&.'-]*)*)")

_WRITERS: dict[str, Callable[[Facts], Answer]] = {
    "ChurnNarrative": _churn_narrative,
    "QBRNarrative": _qbr_narrative,
    "ExpansionPitches": _expansion_pitches,
    "AdoptionInsights": _adoption_insights,
    "SupervisorRoute": _supervisor_route,
}
