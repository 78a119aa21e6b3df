"""Settings for the CSM agent: explicit argument > `CSM_*` environment / `.env` > default."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFLINE_MODEL = "offline/csm"


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
    green_threshold: float = Field(default=70, ge=0, le=100)
    amber_threshold: float = Field(default=40, ge=0, le=100)
    churn_window_days: int = Field(default=60, ge=0)
    alert_cooldown_days: int = Field(default=7, ge=0)
    max_alerts_per_scan: int = Field(default=5, ge=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Paris')") from error
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)

    @property
    def resolved_database_url(self) -> str:
        """The store URL: the configured one, else a SQLite file inside data_dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'csm.sqlite'}"
