"""Secrets hygiene: configured keys and tokens appear in no log line, error, audit row or `--json` output."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.schemas import ChatMessage, DraftResult, EmailMessage
from src.app.tools.llm.litellm_service import LiteLLMService
from tests.hardening.conftest import ROOT, agent_on, csm_env, offline_settings, run_csm
from tests.support.fakes import AT_RISK, HEALTHY, ScriptedLLM, make_account

graph = build_customer_success_graph()
WEBHOOK = "http://127.0.0.1:9/services/T0SECRET/B0SECRET/hookSECRETvalue42"
SECRETS = {
    "CSM_LLM_API_KEY": "sk-test-llmSECRET-0123456789",
    "CSM_NOTION_TOKEN": "ntn_notionSECRET_0123456789",
    "CSM_SLACK_BOT_TOKEN": "xoxb-slackSECRET-0123456789",
    "CSM_SLACK_WEBHOOK_URL": WEBHOOK,
    "CSM_GOOGLE_CHAT_WEBHOOK_URL": "http://127.0.0.1:9/v1/spaces/AAA/messages?key=gchatSECRET&token=tokSECRET",
    "CSM_REDIS_URL": "redis://:redisSECRETpassword@127.0.0.1:9/0",
}
LOCAL_BACKENDS = {"CSM_NOTION_BASE_URL": "http://127.0.0.1:9", "CSM_SLACK_API_BASE": "http://127.0.0.1:9/api/"}


def leaks(text: str) -> list[str]:
    """The settings whose secret value appears in `text`."""
    return [name for name, value in SECRETS.items() if value in text]


class LeakyChat:
    """A chat client failing the way an HTTP client does: its error message quotes the full webhook URL."""

    async def post(self, message: ChatMessage, *, idempotency_key: str) -> str:
        raise ConnectionError(f"Client error '404 Not Found' for url '{WEBHOOK}'")


class LeakyMail:
    """A mail client whose error echoes the bearer token it was given."""

    async def create_draft(
        self, message: EmailMessage, *, idempotency_key: str, account_id: str | None = None, kind: str = "email"
    ) -> DraftResult:
        raise PermissionError(f"401 for token {SECRETS['CSM_SLACK_BOT_TOKEN']}")


@pytest.fixture
def secret_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CSMSettings:
    for name, value in {**SECRETS, **LOCAL_BACKENDS}.items():
        monkeypatch.setenv(name, value)
    return offline_settings(tmp_path / "data")


def test_settings_and_clients_never_print_their_secrets(secret_settings: CSMSettings) -> None:
    assert secret_settings.llm_api_key is not None  # the values really were configured
    for text in (repr(secret_settings), str(secret_settings), repr(LiteLLMService.from_settings(secret_settings))):
        assert leaks(text) == []
    assert leaks(secret_settings.model_dump_json()) == []


async def test_adapter_errors_quoting_secrets_are_masked_in_results_logs_and_audit(
    ctx: CSMContext, secret_settings: CSMSettings
) -> None:
    llm = ScriptedLLM({"ChurnNarrative": [RuntimeError(f"bad key {SECRETS['CSM_LLM_API_KEY']}")]})
    ctx = replace(ctx, settings=secret_settings, llm=llm, chat=LeakyChat())
    await ctx.store.upsert_accounts([make_account("risk", AT_RISK, renews_in_days=10), make_account("a", HEALTHY)])
    with capture_logs() as logs:
        scan = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=ctx))["result"]
        failed_qbr = await agent_on(replace(ctx, mail=LeakyMail())).execute(
            {"type": "generate_qbr", "account_id": "a"}, {}
        )
    [alert] = scan["alerts"]
    assert "**********" in alert["errors"]["chat_alert"] and "**********" in failed_qbr["error"]
    assert any(e["stage"] == "call_llm" for e in scan["errors"])
    audit = [entry.model_dump_json() for entry in await ctx.store.list_audit(limit=100)]
    for text in (json.dumps(scan), json.dumps(failed_qbr), json.dumps(logs, default=str), *audit):
        assert leaks(text) == []


def test_cli_output_and_logs_carry_no_secret(tmp_path: Path) -> None:
    # Every backend is configured (and unreachable on 127.0.0.1), except Notion: a token alone makes the
    # store Notion, which needs a database id and a server (the in-process test covers the token).
    configured = {name: value for name, value in SECRETS.items() if name != "CSM_NOTION_TOKEN"}
    env = csm_env(tmp_path / "data", **configured, **LOCAL_BACKENDS)
    book = tmp_path / "book.json"
    book.write_text(json.dumps([make_account("a", HEALTHY), make_account("r", AT_RISK, renews_in_days=10)]))
    outputs = []
    for args in (
        ("import", str(book), "--json"),
        ("scan", "--json"),
        ("qbr", "r", "--json"),
        ("audit", "--json"),
    ):
        done = run_csm("--log-level", "DEBUG", *args, env=env)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        outputs.append(done.stdout + done.stderr)
    assert json.loads(outputs[3].split("\n", 1)[0])["audit"]  # the run really produced artifacts to audit
    for output in outputs:
        assert leaks(output) == []


def test_dot_env_files_are_git_ignored_but_the_example_is_not() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to ignore files from")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored(".env") and ignored(".env.local") and ignored("deploy/.env")
    assert not ignored(".env.example")


def parts_longer_than_8(secret: str) -> list[str]:
    """Every piece of a secret a server might echo alone (split on URL and token separators), over 8 characters."""
    import re

    return [piece for piece in re.split(r"[/?&=:@.\-_]+", secret) if len(piece) > 8]


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_parts_of_a_secret_echoed_back_alone_are_masked(secret_settings: CSMSettings, name: str) -> None:
    from src.app.config import redact_secrets

    secret = SECRETS[name]
    echoed = " | ".join(["server said:", *parts_longer_than_8(secret), secret.rsplit("/", 1)[-1]])
    masked = redact_secrets(echoed, secret_settings)
    assert parts_longer_than_8(secret), name  # the case really has parts to hide
    assert [part for part in parts_longer_than_8(secret) if part in masked] == []
    assert "server said:" in masked  # the rest of the message stays readable


def test_credential_file_fields_are_masked(tmp_path: Path) -> None:
    from src.app.config import redact_secrets

    credentials = {
        "type": "authorized_user",
        "client_id": "1234.apps.example",
        "client_secret": "GOCSPX-clientSECRETvalue",
        "refresh_token": "1//refreshSECRETtoken0123",
    }
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(credentials))
    settings = offline_settings(tmp_path / "data", gmail_credentials_file=path)
    masked = redact_secrets(
        f"invalid_grant for {credentials['refresh_token']} ({credentials['client_secret']})", settings
    )
    assert "refreshSECRETtoken0123" not in masked and "clientSECRETvalue" not in masked


def test_a_chained_exception_in_a_log_line_shows_no_secret(tmp_path: Path) -> None:
    script = (
        "import logging, structlog\n"
        "from src.app.config import CSMSettings, masker_for\n"
        "from src.app.logging_setup import configure_logging\n"
        "configure_logging(level='WARNING', json_output=True, mask=masker_for(CSMSettings()))\n"
        "def job():\n"
        "    try:\n"
        "        raise ConnectionError('token ' + CSMSettings().notion_token.get_secret_value())\n"
        "    except ConnectionError as error:\n"
        "        raise RuntimeError('job failed') from error\n"
        "try:\n"
        "    job()\n"
        "except RuntimeError:\n"
        "    structlog.get_logger().exception('job_failed')\n"
        "    logging.getLogger('apscheduler').exception('Job raised an exception')\n"
    )
    env = csm_env(tmp_path, **SECRETS)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "job failed" in done.stderr and "Job raised an exception" in done.stderr
    assert leaks(done.stderr) == [] and "notionSECRET_0123456789" not in done.stderr
