"""Settings for the CSM agent (explicit argument > `CSM_*` environment / `.env` > default) and the secret masker.

The masker masks every configured secret and every part of one a server might echo back on its own: a URL's
password, path segments and query values (a webhook's key and token), the pieces of a token between separators,
and the private fields of a Google credentials file. Whole values are masked first, then every part longer than
8 characters, longest first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

OFFLINE_MODEL = "offline/csm"
DraftReview = Literal["direct", "hold", "interrupt"]
"""How drafts reach a mailbox: at once (direct), after a person approves them (hold), or after the run pauses
for a person's decision (interrupt: LangGraph `interrupt()`; drafts written outside such runs are held)."""
LLMResponseFormat = Literal["auto", "json_schema", "json_object", "none"]
"""How to ask for JSON: auto (the schema when litellm knows the model accepts one, else JSON mode) or forced."""


Executor = Literal["local", "celery"]
"""Where scheduled per-account work runs: in the scheduler's process, or on Celery workers."""


class CSMSettings(BaseSettings):
    """All configuration in one place; every value can be set with a `CSM_`-prefixed environment variable."""

    model_config = SettingsConfigDict(env_prefix="CSM_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".csm-data"), description="Folder for the local store and outbox.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir.")
    timezone: str = Field(default="UTC", description="Time zone for renewal dates, quarters and schedules.")
    llm_model: str = Field(default=OFFLINE_MODEL, description="Any litellm model string.")
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_attempts: int = Field(default=3, ge=1, le=10)
    llm_concurrency: int = Field(default=4, ge=1, le=64)
    llm_requests_per_min: float | None = Field(
        default=None, gt=0, description="The provider's request cap; LLM requests are paced under it (unset: unpaced)."
    )
    llm_response_format: LLMResponseFormat = Field(
        default="auto",
        description="auto: the JSON schema when litellm knows the model accepts one, else JSON mode.",
    )
    llm_input_cost_per_1k_tokens: float | None = Field(
        default=None, ge=0, description="USD per 1,000 prompt tokens; overrides litellm's price list."
    )
    llm_output_cost_per_1k_tokens: float | None = Field(
        default=None, ge=0, description="USD per 1,000 completion tokens; overrides litellm's price list."
    )
    green_threshold: float = Field(default=70, ge=0, le=100)
    amber_threshold: float = Field(default=40, ge=0, le=100)
    churn_window_days: int = Field(default=60, ge=0)
    scorecard: Path | None = Field(
        default=None,
        description="A scorecard file (TOML), or a set of scorecards chosen by segment; unset: the shipped default.",
    )
    alert_cooldown_days: int = Field(default=7, ge=0)
    max_alerts_per_scan: int = Field(default=5, ge=0)
    allowed_recipient_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Domains drafts may be addressed to; empty allows any internal address."
    )
    tenant_id: str = Field(default="default", min_length=1, description="Tenant id stamped on every event.")
    draft_review: DraftReview = Field(
        default="direct", description="direct: drafts land at once; hold: after approval; interrupt: the run pauses."
    )
    desk_session_key: SecretStr | None = Field(
        default=None, description="Signs the review desk's session cookies (default: a key kept in data_dir)."
    )

    notion_token: SecretStr | None = Field(default=None, description="Notion integration token; enables Notion.")
    notion_accounts_database_id: str | None = None
    notion_qbr_database_id: str | None = None
    notion_expansion_database_id: str | None = None
    notion_base_url: str = "https://api.notion.com"
    notion_requests_per_s: float = Field(default=3.0, gt=0)

    gmail_credentials_file: Path | None = Field(
        default=None, description="Service-account or OAuth authorized-user JSON; enables Gmail drafts."
    )
    gmail_delegate_to_rep: bool = Field(
        default=False, description="Service accounts only: create each draft in the rep's own mailbox."
    )
    gmail_api_base: str | None = Field(default=None, description="Override of the Gmail API root URL (tests).")

    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_default_channel: str | None = None
    slack_api_base: str = "https://slack.com/api/"
    google_chat_webhook_url: SecretStr | None = None
    chat_messages_per_s: float = Field(default=1.0, gt=0)

    redis_url: SecretStr | None = Field(default=None, description="Redis URL; enables Redis Streams events.")
    events_stream_maxlen: int = Field(default=100_000, ge=1)

    executor: Executor = Field(
        default="local", description="local: jobs run in the scheduler's process; celery: they go to Celery workers."
    )
    broker_url: SecretStr | None = Field(
        default=None, description="Celery broker (amqp://... or redis://...); required with CSM_EXECUTOR=celery."
    )
    worker_queue: str = Field(default="csm", min_length=1, description="The Celery queue per-account tasks go to.")
    worker_scan_page_size: int = Field(
        default=2000, ge=1, description="Accounts per page task of a whole-book scan sent to the Celery workers."
    )
    rate_limit_url: SecretStr | None = Field(
        default=None,
        description="Redis for the rate limits every worker shares (default: CSM_REDIS_URL, else a redis:// broker).",
    )
    llm_rate_window_s: int = Field(
        default=60, ge=1, le=3600, description="The window over which the provider enforces its request cap."
    )
    broker_visibility_timeout_s: int = Field(
        default=3600, ge=1, description="Redis broker only: an unacknowledged task is delivered again after this."
    )

    @property
    def shared_limits_url(self) -> str | None:
        """The Redis URL for limits shared by every worker, or None when none is configured."""
        for candidate in (self.rate_limit_url, self.redis_url, self.broker_url):
            url = candidate.get_secret_value() if candidate is not None else ""
            if url.startswith(("redis://", "rediss://")):
                return url
        return None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Paris')") from error
        return value

    @field_validator("allowed_recipient_domains", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [str(part).strip().lower().lstrip("@") for part in value if str(part).strip()]
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)

    def embedded_backends(self, *, data_dir: Path) -> CSMSettings:
        """These settings with every real backend but the LLM switched off: local store, outbox and bus."""
        return self.model_copy(
            update={
                "data_dir": data_dir,
                "database_url": None,
                "notion_token": None,
                "gmail_credentials_file": None,
                "slack_webhook_url": None,
                "slack_bot_token": None,
                "google_chat_webhook_url": None,
                "redis_url": None,
                "executor": "local",
            }
        )

    @property
    def resolved_database_url(self) -> str:
        """The store URL: the configured one, else a SQLite file inside data_dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'csm.sqlite'}"


MASK = "**********"
MIN_SECRET_LENGTH = 4
"""Shorter configured secrets are not masked (masking "a" would garble every message)."""
MIN_PART_LENGTH = 9
"""Parts of a secret of at least this many characters are masked on their own (a part of 8 or fewer is not)."""
CREDENTIAL_FIELDS = ("client_secret", "refresh_token", "private_key", "private_key_id", "token")
"""Fields of a Google credentials file that are secrets in their own right."""
_SEPARATORS = re.compile(r"[/?&=:@#;,._\s]+|-(?=[^-]{4})")


class SecretMasker:
    """Masks a fixed set of secrets and their parts in any text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        needles: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                needles.add(secret)
                needles.update(part for part in secret_parts(secret) if len(part) >= MIN_PART_LENGTH)
        ordered = sorted(needles, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """`text` with every secret and secret part replaced by the mask."""
        return text if self._pattern is None else self._pattern.sub(MASK, text)


def secret_parts(secret: str) -> set[str]:
    """The pieces of a secret a server might echo alone: URL password, path segments, query values, token pieces.

    A URL's host is not a secret part (masking `googleapis` would garble every message naming the host).
    """
    if "://" not in secret:
        return {piece for piece in _SEPARATORS.split(secret) if piece}
    url = urlsplit(secret)
    parts = {piece for piece in (url.password, url.username, unquote(url.path).strip("/")) if piece}
    for value in [unquote(segment) for segment in url.path.split("/")] + [v for _, v in parse_qsl(url.query)]:
        parts.add(value)
        parts.update(piece for piece in _SEPARATORS.split(value) if piece)
    return {part for part in parts if part}


def credential_file_secrets(path: Path | None) -> list[str]:
    """The secret fields of a Google credentials JSON file (none when it is unset or unreadable)."""
    if path is None:
        return []
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(content, dict):
        return []
    found = [str(content[name]) for name in CREDENTIAL_FIELDS if isinstance(content.get(name), str)]
    # A private key is also echoed line by line (PEM body lines are 64 characters).
    key = content.get("private_key")
    if isinstance(key, str):
        found += [line for line in key.splitlines() if len(line) >= MIN_PART_LENGTH and "PRIVATE KEY" not in line]
    return found


def masker_for(settings: CSMSettings) -> SecretMasker:
    """The masker for every secret `settings` holds: `SecretStr` values and the credentials file's fields."""
    values = [
        value.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    ]
    return SecretMasker([*values, *credential_file_secrets(settings.gmail_credentials_file)])


def redact_secrets(text: str, settings: CSMSettings) -> str:
    """`text` with every configured secret, and every part of one longer than 8 characters, masked."""
    return masker_for(settings)(text)


def settings_for(data_dir: Path | None) -> CSMSettings:
    """Settings from the environment, with the data folder overridden when given."""
    return CSMSettings(data_dir=data_dir) if data_dir else CSMSettings()
