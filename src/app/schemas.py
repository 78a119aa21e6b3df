"""Domain and LLM-output pydantic models (SPEC §5): signals, scores, alerts, QBRs, opportunities, messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator
from pydantic_core import to_jsonable_python

UsageTrend = Literal["growing", "stable", "declining", "inactive"]
Engagement = Literal["high", "medium", "low"]
InvoiceStatus = Literal["current", "overdue_30", "overdue_60", "overdue_90_plus"]
TicketSentiment = Literal["positive", "neutral", "negative", "critical"]
Rag = Literal["GREEN", "AMBER", "RED"]
CollectionsRisk = Literal["GREEN", "AMBER", "RED", "CRITICAL"]
ChurnRiskLevel = Literal["low", "medium", "high", "critical"]
ChurnTrigger = Literal["contract_proximity", "behavioral", "both"]
Confidence = Literal["low", "medium", "high"]
OpportunityType = Literal["seats", "module", "integration"]
QBRTrigger = Literal["quarterly", "contract_proximity"]
TaskType = Literal["health_scan", "generate_qbr", "check_expansion", "track_feature_adoption"]

TASK_TYPES: tuple[TaskType, ...] = (
    "health_scan",
    "generate_qbr",
    "check_expansion",
    "track_feature_adoption",
)
SalesTaskType = Literal["handle_expansion_opportunity"]
SALES_TASK_TYPE: SalesTaskType = "handle_expansion_opportunity"


class CSMHealthSignals(BaseModel):
    """The eleven health signals of one account, validated (mutable so callers can adjust one signal)."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    feature_adoption_rate: float = Field(ge=0, le=1)
    usage_trend: UsageTrend
    login_frequency_days: int | None = Field(default=None, ge=0)
    days_since_last_interaction: int | None = Field(default=None, ge=0)
    stakeholder_engagement: Engagement
    nps_score: int | None = Field(default=None, ge=0, le=10)
    invoice_payment_status: InvoiceStatus
    days_to_renewal: int | None = None
    seats_utilization_rate: float = Field(ge=0, le=2)
    open_ticket_count: int = Field(default=0, ge=0)
    avg_ticket_sentiment: TicketSentiment = "neutral"
    escalation_count_90_days: int = Field(default=0, ge=0)
    tam_health_rag: Rag | None = None
    collections_risk: CollectionsRisk | None = None


DEFAULT_SCORECARD_NAME = "default"
DEFAULT_SCORECARD_VERSION = "1"
"""The shipped scorecard; score rows stored before scorecards existed were computed by it (the seed scorer)."""


class CSMHealthScore(BaseModel):
    """One account's deterministic health score with its per-signal breakdown and movement since last scan."""

    account_id: str
    score: float = Field(ge=0, le=100)
    rag: Rag
    churn_risk_level: ChurnRiskLevel
    churn_triggered_by: ChurnTrigger | None = None
    signal_breakdown: dict[str, float]
    computed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    previous_score: float | None = None
    signal_deltas: dict[str, float] = Field(default_factory=dict)
    coverage: float | None = Field(
        default=None, ge=0, le=1, description="Share of the scorecard's points whose signals were observed"
    )
    missing_signals: list[str] = Field(default_factory=list, description="Scorecard signals that were not observed")
    scorecard_name: str = Field(default=DEFAULT_SCORECARD_NAME, description="The scorecard that computed the score")
    scorecard_version: str = Field(default=DEFAULT_SCORECARD_VERSION, description="That scorecard's version")
    alert_rule: bool | None = Field(
        default=None, description="Whether the scorecard's alert rule fired; None: the default rule applies"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def should_alert(self) -> bool:
        """Whether this score warrants a churn alert: the scorecard's rule, by default RAG RED or risk high/critical."""
        if self.alert_rule is not None:
            return self.alert_rule
        return self.rag == "RED" or self.churn_risk_level in ("high", "critical")

    @property
    def scorecard(self) -> tuple[str, str]:
        """(name, version) of the scorecard: scores are compared only with scores of the same scorecard."""
        return self.scorecard_name, self.scorecard_version

    @computed_field  # type: ignore[prop-decorator]
    @property
    def score_delta(self) -> float | None:
        """Change since the previous score, when one exists."""
        return None if self.previous_score is None else round(self.score - self.previous_score, 2)


SCORE_FIELDS = frozenset(CSMHealthScore.model_fields)
"""The stored fields of a `CSMHealthScore` (its computed fields excluded)."""

_ALL_FIELDS_SET = set(SCORE_FIELDS)
_new_model = CSMHealthScore.__new__
_set_dict = object.__setattr__
_set_fields_set, _set_extra, _set_private = (
    BaseModel.__dict__[slot].__set__
    for slot in ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
)


def trusted_score(fields: dict[str, Any]) -> CSMHealthScore:
    """A `CSMHealthScore` made, without validation, from a dict of all its fields already valid (the dict is kept).

    For scores our own scorer computed or our own store wrote: what `model_construct` does, in a fifth of the time
    (a whole-book scan builds two scores per account), pydantic's slots set through their own descriptors. Raises
    ValueError unless every field, and only fields, is given.
    """
    if fields.keys() != SCORE_FIELDS:
        raise ValueError(f"a trusted score needs exactly the fields {sorted(SCORE_FIELDS)}, got {sorted(fields)}")
    score = _new_model(CSMHealthScore)
    _set_dict(score, "__dict__", fields)
    _set_fields_set(score, _ALL_FIELDS_SET.copy())
    _set_extra(score, None)
    _set_private(score, None)
    return score


@dataclass(frozen=True, slots=True)
class PriorScore:
    """What a whole-book scan reads of an account's newest stored score: enough for deltas, alerts and reruns."""

    account_id: str
    score: float
    rag: Rag
    churn_risk_level: ChurnRiskLevel
    signal_breakdown: dict[str, float]
    computed_at: datetime
    scorecard: tuple[str, str]
    """(name, version) of the scorecard that computed it."""


StoredScore = CSMHealthScore | PriorScore
"""A stored score as a scan compares with it: the whole score, or the columns a scan reads of it."""


@dataclass(frozen=True, slots=True)
class AccountRisk:
    """An account's risk state as the scan that scored it reports it to the alert step."""

    account_id: str
    rag: Rag
    churn_risk_level: ChurnRiskLevel


RiskOf = StoredScore | AccountRisk
"""Anything that names an account's risk state (RAG and churn risk level), as alert cooldowns compare them."""


class ChurnNarrative(BaseModel):
    """LLM output for a churn alert: why the account is at risk and what to do this week."""

    model_config = ConfigDict(extra="ignore")

    churn_narrative: str = Field(min_length=1, max_length=4000)
    recommended_actions: list[str] = Field(default_factory=list, max_length=8)


class ChurnRiskResult(BaseModel):
    """A churn risk assessment: the deterministic score plus the LLM-written narrative."""

    account_id: str
    churn_risk_level: ChurnRiskLevel
    churn_triggered_by: ChurnTrigger | None = None
    score: float
    rag: Rag
    churn_narrative: str
    recommended_actions: list[str] = Field(default_factory=list)


class ExpansionCandidate(BaseModel):
    """A deterministic expansion signal found in an account's record (before the LLM writes the pitch)."""

    opportunity_type: OpportunityType
    evidence: list[str]
    estimated_arr_impact: float = Field(ge=0)
    confidence: Confidence


class ExpansionPitch(BaseModel):
    """LLM output for one candidate: the talk track for the account executive."""

    model_config = ConfigDict(extra="ignore")

    opportunity_type: OpportunityType
    recommended_talk_track: str = Field(min_length=1, max_length=2000)


class ExpansionPitches(BaseModel):
    """LLM output for check_expansion: one pitch per candidate it was given."""

    model_config = ConfigDict(extra="ignore")

    opportunities: list[ExpansionPitch] = Field(default_factory=list, max_length=10)


class ExpansionOpportunity(BaseModel):
    """An expansion opportunity ready for the Sales hand-off."""

    account_id: str
    opportunity_type: OpportunityType
    evidence: list[str]
    estimated_arr_impact: float = Field(ge=0)
    recommended_talk_track: str
    confidence: Confidence


class QBRNarrative(BaseModel):
    """LLM output for a QBR: the prose sections (facts and identity come from the caller, never the LLM)."""

    model_config = ConfigDict(extra="ignore")

    health_summary: str = Field(min_length=1, max_length=4000)
    roi_highlights: list[str] = Field(default_factory=list, max_length=10)
    adoption_commentary: str = Field(default="", max_length=4000)
    expansion_next_steps: list[str] = Field(default_factory=list, max_length=10)
    risks: list[str] = Field(default_factory=list, max_length=10)


class QBRContent(BaseModel):
    """A Quarterly Business Review for one account and period."""

    account_id: str
    account_name: str
    period: str
    trigger: QBRTrigger
    health_summary: str
    roi_metrics: dict[str, float | str]
    feature_adoption_scorecard: dict[str, str]
    expansion_next_steps: list[str]
    risks: list[str] = Field(default_factory=list)
    roi_highlights: list[str] = Field(default_factory=list)
    adoption_commentary: str = ""
    document_markdown: str = Field(default="", description="The QBR document as Markdown (the Notion page body).")


class AdoptionInsights(BaseModel):
    """LLM output for feature adoption: a short summary and concrete recommendations."""

    model_config = ConfigDict(extra="ignore")

    summary: str = Field(min_length=1, max_length=4000)
    recommendations: list[str] = Field(min_length=1, max_length=10)


class FeatureAdoptionReport(BaseModel):
    """Feature adoption for one account: what is used, what is not, and what to do about it."""

    account_id: str
    features_used: list[str]
    adoption_rate: float = Field(ge=0, le=1)
    underutilized_features: list[str]
    recommendations: list[str]
    benchmark_comparison: dict[str, float]
    summary: str = ""


class CSMHandoffRequest(BaseModel):
    """The payload the CSM side hands to the Sales side for one expansion opportunity (SPEC §3 keys and more).

    `evidence` is one string, as the platform's `ExpansionOpportunity` has it; the list is `evidence_items`
    (a payload that still sends a list as `evidence` is accepted). `idempotency_key` is the same on every rerun
    in the quarter, so a Sales agent can drop repeats.
    """

    type: SalesTaskType = SALES_TASK_TYPE
    account_id: str
    opportunity_type: OpportunityType
    evidence: str
    estimated_arr_impact: float
    recommended_talk_track: str
    confidence: Confidence
    evidence_items: list[str] = Field(default_factory=list)
    idempotency_key: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _evidence_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("evidence"), list):
            items = [str(item) for item in data["evidence"]]
            data = {**data, "evidence": "; ".join(items), "evidence_items": data.get("evidence_items") or items}
        return data

    def evidence_list(self) -> list[str]:
        """The evidence as a list of facts (`evidence_items`, else the one string)."""
        return list(self.evidence_items) or [self.evidence]


class SupervisorRoute(BaseModel):
    """LLM output for a natural-language request: the task it asks for and the account it names, if any."""

    model_config = ConfigDict(extra="ignore")

    task_type: TaskType | SalesTaskType
    account_hint: str | None = Field(default=None, max_length=200)


class CSMAlertResult(BaseModel):
    """What one churn alert did on each of the four channels."""

    account_id: str
    channels: dict[str, bool] = Field(
        default_factory=lambda: {
            "notion": False,
            "event_bus": False,
            "email_alert": False,
            "chat_alert": False,
        }
    )
    draft_id: str | None = None
    alerts_sent: int = 0
    errors: dict[str, str] = Field(default_factory=dict)


class EmailMessage(BaseModel):
    """An email to be saved as a draft (never sent)."""

    to: str = Field(min_length=3)
    subject: str
    body_html: str
    body_text: str | None = None
    cc: list[str] = Field(default_factory=list)
    thread_id: str | None = None

    @field_validator("to")
    @classmethod
    def _one_address(cls, value: str) -> str:
        if "@" not in value or "," in value or ";" in value:
            raise ValueError(f"'to' must be exactly one email address, got {value!r}")
        return value.strip()


class DraftResult(BaseModel):
    """A created (or already existing) draft."""

    draft_id: str
    to: str
    subject: str
    location: str | None = None
    created: bool = True


class ChatMessage(BaseModel):
    """A chat message for a space/channel, threaded per account when thread_key is set."""

    space_name: str
    text: str
    thread_key: str | None = None


class Ticket(BaseModel):
    """A support ticket on an account (customer-controlled text)."""

    model_config = ConfigDict(extra="ignore")

    subject: str = ""
    body: str = ""
    status: str = "open"
    sentiment: TicketSentiment = "neutral"


class AccountRecord(BaseModel):
    """An account's identity and detail (signals are validated separately so each bad field is named)."""

    model_config = ConfigDict(extra="ignore")

    account_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=500)
    arr: float = Field(default=0, ge=0)
    plan: str = "standard"
    status: str = "active"
    rep_email: str | None = None
    ae_email: str | None = None
    chat_space: str | None = None
    contract_end_date: date | datetime | None = None
    features_available: list[str] = Field(default_factory=list)
    feature_usage: dict[str, int] = Field(default_factory=dict)
    seats_purchased: int | None = Field(default=None, ge=0)
    seats_active: int | None = Field(default=None, ge=0)
    usage_history: list[int] = Field(default_factory=list)
    tickets: list[Ticket] = Field(default_factory=list)
    notes: str = ""


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of any result (datetimes as ISO strings, models as dicts)."""
    return to_jsonable_python(value)
