"""LiteLLMService: lazy litellm import, retries on transient errors only, bounded concurrency, no leaks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from src.app.config import CSMSettings
from src.app.prompts.fencing import FACTS_CLOSE, FACTS_OPEN
from src.app.schemas import ChurnNarrative
from src.app.tools.llm import LLMReply, LLMService
from src.app.tools.llm.litellm_service import LiteLLMService, load_litellm
from src.app.tools.llm.parsing import parse_model

litellm = load_litellm()  # sets LITELLM_LOCAL_MODEL_COST_MAP before importing, registers the offline provider

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Summarise the account TOP-SECRET-PROMPT as JSON."}]


class ScriptedProvider(litellm.CustomLLM):
    """A provider that raises or answers from a script and records calls and peak concurrency."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Exception | str] = []
        self.calls: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self.active = 0
        self.peak = 0

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay_s)
            step = self.script.pop(0) if self.script else '{"churn_narrative": "ok"}'
            if isinstance(step, Exception):
                raise step
            return litellm.ModelResponse(
                model="scripted/test",
                choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": step}}],
                usage=litellm.Usage(prompt_tokens=11, completion_tokens=7, total_tokens=18),
            )
        finally:
            self.active -= 1


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedProvider:
    handler = ScriptedProvider()
    entry = {"provider": "scripted", "custom_handler": handler}
    monkeypatch.setattr(litellm, "custom_provider_map", [*litellm.custom_provider_map, entry])
    return handler


def service(**overrides: Any) -> LiteLLMService:
    options: dict[str, Any] = {"model": "scripted/test", "retry_wait_s": 0, "max_attempts": 3, **overrides}
    return LiteLLMService(**options)


def error(name: str) -> Exception:
    cls = getattr(litellm, name)
    if name == "BadRequestError":
        return cls("bad request", model="test", llm_provider="scripted")
    if name == "Timeout":
        return cls("timed out", model="test", llm_provider="scripted")
    return cls(f"{name} happened", llm_provider="scripted", model="test")


def test_importing_and_constructing_does_not_import_litellm() -> None:
    code = (
        "import sys\n"
        "from src.app.config import CSMSettings\n"
        "from src.app.tools.llm.litellm_service import LiteLLMService\n"
        "LiteLLMService(model='offline/csm')\n"
        "LiteLLMService.from_settings(CSMSettings(_env_file=None))\n"
        "print('litellm' in sys.modules)\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_load_litellm_registers_the_offline_provider_again_if_it_was_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litellm, "custom_provider_map", [])
    assert load_litellm() is litellm
    assert [item["provider"] for item in litellm.custom_provider_map] == ["offline"]


def test_service_satisfies_the_protocol() -> None:
    assert isinstance(service(), LLMService)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"concurrency": 0}, {"timeout_s": 0}, {"retry_wait_s": -1}, {"requests_per_min": 0}],
)
def test_rejects_nonsense_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        service(**kwargs)


async def test_rate_limited_twice_then_succeeds_on_the_third_attempt(scripted: ScriptedProvider) -> None:
    scripted.script = [error("RateLimitError"), error("RateLimitError"), '{"churn_narrative": "third time"}']
    reply = await service().complete(MESSAGES, schema=ChurnNarrative)
    assert len(scripted.calls) == 3
    assert reply == LLMReply(
        content='{"churn_narrative": "third time"}',
        prompt_tokens=11,
        completion_tokens=7,
        model="scripted/test",
    )


@pytest.mark.parametrize("name", ["Timeout", "APIConnectionError", "InternalServerError", "ServiceUnavailableError"])
async def test_each_transient_error_is_retried(scripted: ScriptedProvider, name: str) -> None:
    scripted.script = [error(name)]
    reply = await service().complete(MESSAGES, schema=ChurnNarrative)
    assert len(scripted.calls) == 2
    assert reply.content == '{"churn_narrative": "ok"}'


async def test_gives_up_after_max_attempts_with_the_last_error(scripted: ScriptedProvider) -> None:
    scripted.script = [error("RateLimitError") for _ in range(5)]
    with pytest.raises(litellm.RateLimitError):
        await service(max_attempts=2).complete(MESSAGES, schema=ChurnNarrative)
    assert len(scripted.calls) == 2


@pytest.mark.parametrize("name", ["BadRequestError", "AuthenticationError"])
async def test_non_transient_errors_are_raised_after_one_attempt(scripted: ScriptedProvider, name: str) -> None:
    scripted.script = [error(name), '{"churn_narrative": "never reached"}']
    with pytest.raises(getattr(litellm, name)):
        await service().complete(MESSAGES, schema=ChurnNarrative)
    assert len(scripted.calls) == 1


async def test_concurrency_limit_is_respected(scripted: ScriptedProvider) -> None:
    scripted.delay_s = 0.05
    llm = service(concurrency=2)
    replies = await asyncio.gather(*(llm.complete(MESSAGES, schema=ChurnNarrative) for _ in range(6)))
    assert len(replies) == 6 and len(scripted.calls) == 6
    assert scripted.peak == 2


async def test_requests_per_min_spaces_every_server_hit_retries_included(scripted: ScriptedProvider) -> None:
    scripted.script = [error("RateLimitError")]
    llm = service(concurrency=8, requests_per_min=1200)  # one request every 0.05 s
    started = time.monotonic()
    await asyncio.gather(*(llm.complete(MESSAGES, schema=ChurnNarrative) for _ in range(4)))
    assert len(scripted.calls) == 5  # four calls and one retry, all through the pacer
    assert time.monotonic() - started >= 4 * 0.05


async def test_without_requests_per_min_nothing_is_paced(scripted: ScriptedProvider) -> None:
    started = time.monotonic()
    await asyncio.gather(*(service(concurrency=8).complete(MESSAGES, schema=ChurnNarrative) for _ in range(8)))
    assert time.monotonic() - started < 0.2


def test_one_service_works_across_event_loops(scripted: ScriptedProvider) -> None:
    scripted.delay_s = 0.01
    llm = service(concurrency=1)

    async def burst() -> list[LLMReply]:
        return await asyncio.gather(*(llm.complete(MESSAGES, schema=ChurnNarrative) for _ in range(3)))

    assert len(asyncio.run(burst())) == 3
    assert len(asyncio.run(burst())) == 3
    assert scripted.peak == 1


async def test_settings_reach_litellm_and_unknown_models_get_json_mode(scripted: ScriptedProvider) -> None:
    settings = CSMSettings(
        _env_file=None,
        llm_model="scripted/test",
        llm_api_base="http://127.0.0.1:9/v1",
        llm_api_key=SecretStr("sk-test-123"),
        llm_timeout_s=7,
    )
    await LiteLLMService.from_settings(settings).complete(MESSAGES, schema=ChurnNarrative)
    call = scripted.calls[0]
    assert (call["api_base"], call["api_key"], call["timeout"]) == (
        "http://127.0.0.1:9/v1",
        "sk-test-123",
        7.0,
    )
    assert call["optional_params"]["response_format"] == {"type": "json_object"}
    assert call["optional_params"]["max_retries"] == 0


async def test_logs_never_contain_the_key_or_the_prompt(scripted: ScriptedProvider) -> None:
    scripted.script = [error("RateLimitError")]
    llm = service(api_key=SecretStr("sk-test-123"))
    with capture_logs() as logs:
        await llm.complete(MESSAGES, schema=ChurnNarrative)
    assert {
        "event": "llm.retry",
        "model": "scripted/test",
        "attempt": 1,
        "error": "RateLimitError",
    }.items() <= (next(log for log in logs if log["event"] == "llm.retry").items())
    assert any(log["event"] == "llm.complete" and log["schema"] == "ChurnNarrative" for log in logs)
    text = repr(logs) + repr(llm)
    assert "sk-test-123" not in text and "TOP-SECRET-PROMPT" not in text


async def test_offline_model_end_to_end_uses_the_schema() -> None:
    facts = {"account": {"name": "Globex", "arr": 50000}, "score": {"score": 35, "rag": "RED"}}
    messages = [{"role": "user", "content": f"Write it.\n{FACTS_OPEN}{json.dumps(facts)}{FACTS_CLOSE}"}]
    reply = await LiteLLMService(model="offline/csm").complete(messages, schema=ChurnNarrative)
    narrative = parse_model(reply.content, ChurnNarrative).churn_narrative
    assert narrative.startswith("Globex ($50,000 ARR) has a health score of 35/100 (Red).")
    assert reply.model == "offline/csm" and reply.prompt_tokens > 0 and reply.completion_tokens > 0


async def test_configured_prices_give_the_reply_its_cost(scripted: ScriptedProvider) -> None:
    llm = service(input_cost_per_1k_tokens=0.5, output_cost_per_1k_tokens=1.5)
    reply = await llm.complete(MESSAGES, schema=ChurnNarrative)
    assert reply.cost_usd == pytest.approx(11 * 0.0005 + 7 * 0.0015)
    assert "input_cost_per_token" not in scripted.calls[0]["optional_params"]  # pricing is ours, never sent


async def test_models_without_a_price_cost_nothing(scripted: ScriptedProvider) -> None:
    assert (await service().complete(MESSAGES, schema=ChurnNarrative)).cost_usd == 0.0


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("json_schema", "json_schema"), ("json_object", "json_object"), ("none", None), ("auto", "json_object")],
)
async def test_response_format_can_be_forced(scripted: ScriptedProvider, mode: str, expected: str | None) -> None:
    await service(response_format=mode).complete(MESSAGES, schema=ChurnNarrative)
    sent = scripted.calls[0]["optional_params"].get("response_format")
    assert (sent or {}).get("type") == expected
    if expected == "json_schema":
        assert sent["json_schema"]["name"] == "ChurnNarrative" and sent["json_schema"]["strict"] is True


def test_an_unknown_response_format_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="'xml'"):
        service(response_format="xml")
