from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from src.app.config import CSMSettings


def test_precedence_is_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSM_TIMEZONE", raising=False)
    assert CSMSettings(_env_file=None).timezone == "UTC"  # type: ignore[call-arg]
    monkeypatch.setenv("CSM_TIMEZONE", "Europe/Paris")
    assert CSMSettings(_env_file=None).timezone == "Europe/Paris"  # type: ignore[call-arg]
    assert CSMSettings(_env_file=None, timezone="Asia/Tokyo").timezone == "Asia/Tokyo"  # type: ignore[call-arg]


def test_env_file_is_read_but_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CSM_MAX_ALERTS_PER_SCAN=2\nCSM_ALERT_COOLDOWN_DAYS=3\n")
    monkeypatch.setenv("CSM_ALERT_COOLDOWN_DAYS", "9")
    settings = CSMSettings(_env_file=env_file)  # type: ignore[call-arg]
    assert (settings.max_alerts_per_scan, settings.alert_cooldown_days) == (2, 9)


def test_bad_values_are_rejected_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        CSMSettings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="llm_concurrency"):
        CSMSettings(llm_concurrency=0)


def test_default_database_is_sqlite_inside_the_data_dir(tmp_path: Path) -> None:
    settings = CSMSettings(data_dir=tmp_path, database_url=None)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'csm.sqlite'}"
    assert settings.llm_api_key is None and "secret" not in repr(CSMSettings(llm_api_key="secret"))
