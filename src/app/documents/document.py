"""The typed QBR document every renderer (HTML, Markdown, deck) draws from: figures with sources, and text."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from src.app.schemas import Rag

FeatureStatus = Literal["regular", "light", "unused"]


class Figure(BaseModel):
    """One number (or date) shown in a document, with where it came from and when it was read."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(description='What it is, as shown: "Annual recurring revenue".')
    value: int | float | str | None = Field(description="The raw value (None when the record does not have it).")
    display: str = Field(description='The value as shown: "$49,400".')
    source_field: str = Field(description='The field it was read or computed from: "account.arr".')
    record: str = Field(description='The record it came from: "account acct-0001 (Beacon Robotics)".')
    read_at: datetime = Field(description="When the record was read.")


class SignalLine(BaseModel):
    """One health signal as shown: "Feature adoption 15/20", with its strength word."""

    model_config = ConfigDict(frozen=True)

    key: str
    label: str
    text: str = Field(description='"Feature adoption 15/20", or "Collections risk -8.4 points" for a multiplier.')
    strength: str = Field(description='"strong", "fair", "weak", or "" for a multiplier.')
    figure: Figure


class QuarterScore(BaseModel):
    """A quarter's closing health score (the newest score on or before its last day, or today's to date)."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(description='"Q3 2026", or "Q4 2026 to date".')
    start: date
    end: date
    score: float | None
    rag: Rag | None
    figure: Figure | None


class HealthSection(BaseModel):
    """The health summary: score, RAG, the trend against the start of the period, and the signals behind it."""

    model_config = ConfigDict(frozen=True)

    score: Figure | None
    rag: Rag | None
    start_score: Figure | None = Field(description="The score the period started from (last quarter's close).")
    delta: int | None = Field(description="Rounded score minus rounded start score; None without both.")
    headline: str
    trend: str
    strengths: list[SignalLine]
    watch: list[SignalLine]
    narrative: str


class FeatureUse(BaseModel):
    """How much one available feature is used."""

    model_config = ConfigDict(frozen=True)

    feature: str
    label: str
    uses: int
    status: FeatureStatus


class AdoptionSection(BaseModel):
    """Adoption by feature, active users against seats, and what the account's team said about it."""

    model_config = ConfigDict(frozen=True)

    rate: Figure
    benchmark: Figure
    summary: str
    features: list[FeatureUse]
    active_users: list[tuple[str, int]] = Field(description="(month label, active users), oldest first.")
    seats_purchased: int | None
    commentary: str


class QBRDocument(BaseModel):
    """A Quarterly Business Review a CSM can present: every figure computed and sourced, prose from the QBR."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    account_name: str
    title: str
    subtitle: str
    period: str
    period_start: date
    period_end: date
    to_date: bool = Field(description="True when the period is not over yet.")
    generated_at: datetime
    as_of: date = Field(description="The local day the document was made.")
    green_threshold: float
    amber_threshold: float
    health: HealthSection
    quarters: list[QuarterScore] = Field(description="The last four quarters, oldest first, ending with the period.")
    history: list[tuple[date, float]] = Field(description="(day, last score of the day) over those quarters.")
    value: list[Figure]
    highlights: list[str]
    adoption: AdoptionSection
    risks: list[str]
    asks: list[str]
    next_steps: list[str]
    sources: list[Figure] = Field(description="Every figure of the document once, in order of appearance.")
