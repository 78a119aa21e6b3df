"""LiteLLMService against a local OpenAI-compatible server: wire format, key handling, timeouts, retries, limits."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from src.app.prompts.fencing import FACTS_CLOSE, FACTS_OPEN
from src.app.schemas import ChurnNarrative
from src.app.tools.llm.litellm_service import LiteLLMService, load_litellm
from src.app.tools.llm.parsing import parse_model
from tests.support.openai_server import OpenAIServer

litellm = load_litellm()

KEY = "sk-local-SECRET-4711"
FACTS = {"account": {"name": "Globex", "arr": 50000}, "score": {"score": 35, "rag": "RED"}}
MESSAGES = [{"role": "user", "content": f"Write it as JSON.\n{FACTS_OPEN}{json.dumps(FACTS)}{FACTS_CLOSE}"}]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def service(server: OpenAIServer, model: str = "openai/gpt-4o-mini", **options: Any) -> LiteLLMService:
    settings: dict[str, Any] = {"api_base": server.url, "api_key": SecretStr(KEY), "retry_wait_s": 0, **options}
    return LiteLLMService(model=model, **settings)


async def test_the_schema_goes_out_as_json_schema_when_litellm_knows_the_model_supports_it(
    server: OpenAIServer,
) -> None:
    reply = await service(server).complete(MESSAGES, schema=ChurnNarrative)
    [request] = server.requests
    assert request.body["model"] == "gpt-4o-mini"
    response_format = request.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "ChurnNarrative" and response_format["json_schema"]["strict"]
    sent_schema = response_format["json_schema"]["schema"]
    assert set(sent_schema["properties"]) == set(ChurnNarrative.model_json_schema()["properties"])
    assert sent_schema["additionalProperties"] is False
    narrative = parse_model(reply.content, ChurnNarrative)
    assert narrative.churn_narrative.startswith("Globex ($50,000 ARR) has a health score of 35/100 (Red).")


@pytest.mark.parametrize(
    ("model", "mode", "expected"),
    [
        ("openai/qwen-local", "auto", "json_object"),  # litellm does not know the model: JSON mode
        ("openai/qwen-local", "json_schema", "json_schema"),  # a vLLM / llama.cpp / LM Studio server that can
        ("openai/gpt-4o-mini", "json_object", "json_object"),
        ("openai/qwen-local", "none", None),  # a server that rejects response_format: prompt + parser only
    ],
)
async def test_json_mode_when_the_schema_is_not_known_to_be_supported_and_overrides(
    server: OpenAIServer, model: str, mode: str, expected: str | None
) -> None:
    await service(server, model, response_format=mode).complete(MESSAGES, schema=ChurnNarrative)
    [request] = server.requests
    assert request.body.get("response_format", {}).get("type") == expected


async def test_the_key_is_sent_as_a_bearer_token_and_never_logged_or_raised(
    server: OpenAIServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fault_retry_after_s = 0.01
    llm = service(server, max_attempts=3)
    with capture_logs() as logs:
        server.script("rate_limit", "server_error")
        await llm.complete(MESSAGES, schema=ChurnNarrative)  # 429, 500, then the third attempt answers
        server.script("server_error", "server_error", "server_error")
        with pytest.raises(litellm.InternalServerError) as failed:
            await llm.complete(MESSAGES, schema=ChurnNarrative)
    assert [request.headers["Authorization"] for request in server.requests] == [f"Bearer {KEY}"] * 6
    assert [log["error"] for log in logs if log["event"] == "llm.retry"] == [
        "RateLimitError",
        "InternalServerError",
        "InternalServerError",
        "InternalServerError",
    ]
    captured = capsys.readouterr()
    for text in (repr(logs), caplog.text, captured.out, captured.err, str(failed.value), repr(llm)):
        assert KEY not in text


async def test_a_slow_server_is_cut_off_at_the_timeout_and_retried_a_bounded_number_of_times(
    server: OpenAIServer,
) -> None:
    server.script("slow", "slow", "slow")
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        await service(server, timeout_s=0.3, max_attempts=2).complete(MESSAGES, schema=ChurnNarrative)
    assert time.monotonic() - started < 2 * 0.3 + 0.5
    assert server.arrivals == 2


async def test_one_slow_reply_is_retried_and_the_next_attempt_answers(server: OpenAIServer) -> None:
    server.script("slow")
    reply = await service(server, timeout_s=0.3).complete(MESSAGES, schema=ChurnNarrative)
    assert parse_model(reply.content, ChurnNarrative) and server.arrivals == 2


@pytest.mark.parametrize(("fault", "status"), [("rate_limit", 429), ("server_error", 500)])
async def test_one_429_or_500_costs_exactly_one_extra_server_hit(server: OpenAIServer, fault: Any, status: int) -> None:
    server.fault_retry_after_s = 0.01
    server.script(fault)
    reply = await service(server).complete(MESSAGES, schema=ChurnNarrative)
    assert server.statuses() == [status, 200]  # litellm's and openai's own retries are off: nothing stacks
    assert reply.prompt_tokens == server.requests[-1].reply["usage"]["prompt_tokens"]


async def test_persistent_429s_give_up_after_max_attempts_server_hits(server: OpenAIServer) -> None:
    server.fault_retry_after_s = 0.01
    server.script(*("rate_limit",) * 10)
    with pytest.raises(litellm.RateLimitError):
        await service(server, max_attempts=3).complete(MESSAGES, schema=ChurnNarrative)
    assert server.statuses() == [429, 429, 429]


async def test_retry_after_holds_the_retry_back(server: OpenAIServer) -> None:
    server.fault_retry_after_s = 0.3
    server.script("rate_limit")
    await service(server).complete(MESSAGES, schema=ChurnNarrative)  # backoff 0: only Retry-After makes it wait
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.3


async def test_requests_over_the_servers_rate_cap_wait_for_a_free_slot() -> None:
    with OpenAIServer(rate_limit=2, rate_window_s=0.4) as capped:
        llm = service(capped, concurrency=3)
        replies = await asyncio.gather(*(llm.complete(MESSAGES, schema=ChurnNarrative) for _ in range(3)))
    assert len(replies) == 3 and sorted(capped.statuses()) == [200, 200, 200, 429]
    accepted = sorted(request.received_at for request in capped.requests if request.status == 200)
    assert accepted[2] - accepted[0] >= 0.4  # the third came back once the window let it in


async def test_paced_requests_stay_under_the_servers_rate_cap_with_concurrency_to_spare() -> None:
    with OpenAIServer(rate_limit=4, rate_window_s=0.5) as capped:  # 480 a minute
        llm = service(capped, concurrency=10, requests_per_min=360)  # 1/6 s apart: slack for the client's jitter
        await llm.complete(MESSAGES, schema=ChurnNarrative)  # litellm's slow first call, off the paced burst
        await asyncio.gather(*(llm.complete(MESSAGES, schema=ChurnNarrative) for _ in range(9)))
    assert capped.statuses() == [200] * 10  # unpaced, 10 at once would draw six 429s


async def test_the_concurrency_limit_holds_at_the_server() -> None:
    with OpenAIServer(latency_s=0.1) as slow:
        llm = service(slow, concurrency=3)
        await asyncio.gather(*(llm.complete(MESSAGES, schema=ChurnNarrative) for _ in range(10)))
    assert slow.arrivals == 10 and slow.max_in_flight == 3


async def test_known_models_are_costed_at_litellms_price(server: OpenAIServer) -> None:
    reply = await service(server).complete(MESSAGES, schema=ChurnNarrative)
    usage = server.requests[0].reply["usage"]
    price = litellm.model_cost["gpt-4o-mini"]
    expected = usage["prompt_tokens"] * price["input_cost_per_token"]
    expected += usage["completion_tokens"] * price["output_cost_per_token"]
    assert (reply.prompt_tokens, reply.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert reply.cost_usd == pytest.approx(expected) and reply.cost_usd > 0


async def test_local_models_cost_nothing_unless_priced(server: OpenAIServer) -> None:
    free = await service(server, "openai/qwen-local").complete(MESSAGES, schema=ChurnNarrative)
    priced = await service(
        server, "openai/qwen-local", input_cost_per_1k_tokens=1.0, output_cost_per_1k_tokens=2.0
    ).complete(MESSAGES, schema=ChurnNarrative)
    assert free.cost_usd == 0.0
    assert priced.cost_usd == pytest.approx((priced.prompt_tokens * 1.0 + priced.completion_tokens * 2.0) / 1000)
    assert "input_cost_per_token" not in server.requests[-1].body
