"""`csm notion check` against a local Notion server: missing and mistyped properties, exit codes, --json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from src.app.cli import app
from tests.support.notion_server import ACCOUNTS_SCHEMA, EXPANSION_SCHEMA, QBR_SCHEMA, NotionServer

TOKEN = "secret_check_token_321"
OPTIONAL_ABSENT_FROM_SAMPLE_SCHEMA = ("Segment", "Days To Renewal")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotionServer]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    with NotionServer(token=TOKEN) as running:
        monkeypatch.setenv("CSM_NOTION_TOKEN", TOKEN)
        monkeypatch.setenv("CSM_NOTION_BASE_URL", running.base_url)
        monkeypatch.setenv("CSM_NOTION_REQUESTS_PER_S", "1000")
        monkeypatch.setenv("COLUMNS", "200")  # rich wraps table cells in a narrow terminal
        yield running


def configure(monkeypatch: pytest.MonkeyPatch, server: NotionServer, **schemas: dict[str, str]) -> dict[str, str]:
    ids = {}
    for role, schema in schemas.items():
        database_id, _ = server.add_database(role, schema)
        monkeypatch.setenv(f"CSM_NOTION_{role.upper()}_DATABASE_ID", database_id)
        ids[role] = database_id
    return ids


def run_check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["notion", "check", *args])
    return result.exit_code, result.stdout


def test_complete_databases_pass(server: NotionServer, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, server, accounts=ACCOUNTS_SCHEMA, qbr=QBR_SCHEMA, expansion=EXPANSION_SCHEMA)
    code, out = run_check("--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert [d["database"] for d in report["databases"]] == ["accounts", "qbr", "expansion"]
    accounts = report["databases"][0]
    assert accounts["data_source_id"] and accounts["error"] is None
    by_name = {p["name"]: p for p in accounts["properties"]}
    assert by_name["Health Status"]["status"] == "ok" and by_name["Health Status"]["purpose"] == "tam_health_rag"


def test_missing_and_mistyped_properties_are_listed_and_fail(
    server: NotionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = {k: v for k, v in ACCOUNTS_SCHEMA.items() if k not in ("CSM Health RAG", "Notes", "Usage Trend")}
    accounts["Feature Adoption Rate"] = "rich_text"
    configure(monkeypatch, server, accounts=accounts, qbr={"Title": "title"})

    code, out = run_check("--json")

    assert code == 1
    report = json.loads(out)
    problems = {
        (d["database"], p["name"]): (p["status"], p["required"], p["found_type"])
        for d in report["databases"]
        for p in d["properties"]
        if p["status"] != "ok"
    }
    assert problems == {
        ("accounts", "CSM Health RAG"): ("missing", True, None),
        ("accounts", "Usage Trend"): ("missing", True, None),
        ("accounts", "Notes"): ("missing", False, None),
        ("accounts", "Feature Adoption Rate"): ("wrong_type", True, "rich_text"),
        ("qbr", "CSM Key"): ("missing", True, None),
        **{("accounts", name): ("missing", False, None) for name in OPTIONAL_ABSENT_FROM_SAMPLE_SCHEMA},
        **{("qbr", name): ("missing", False, None) for name in list(QBR_SCHEMA)[1:] if name != "CSM Key"},
    }

    code, text = run_check()
    assert code == 1
    assert "accounts database" in text and "PROBLEMS" in text
    assert "CSM Health RAG" in text and "Feature Adoption Rate" in text and "wrong type" in text


def test_unreachable_database_and_missing_settings_are_reported(
    server: NotionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSM_NOTION_ACCOUNTS_DATABASE_ID", "0" * 32)
    code, out = run_check("--json")
    [accounts] = json.loads(out)["databases"]
    assert code == 1
    assert accounts["error"] == (
        "Notion database 00000000-0000-0000-0000-000000000000 not found or not shared with the integration "
        "(404 object_not_found)"
    )
    monkeypatch.delenv("CSM_NOTION_TOKEN")
    code, out = run_check("--json")
    assert code == 1 and "Set CSM_NOTION_TOKEN" in json.loads(out)["error"]


def test_a_server_answering_200_with_html_is_reported_not_a_crash(
    server: NotionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy page instead of JSON, every time: `csm notion check` retries, then names it and exits 1."""
    configure(monkeypatch, server, accounts=ACCOUNTS_SCHEMA)
    server.fail(200, "not_json", message="<html>proxy error</html>", times=100)
    code, out = run_check("--json")
    [accounts] = json.loads(out)["databases"]
    assert code == 1 and "not JSON after 3 attempt" in accounts["error"]
    assert "Traceback" not in out and "<html>" not in accounts["error"]
    assert len(server.requests) >= 3  # retried like a 5xx before giving up
