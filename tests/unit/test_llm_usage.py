"""Usage meters: totals and per-model figures add up, meters nest, overlapping runs keep their own calls; sinks."""

from __future__ import annotations

import asyncio

from src.app.tools.llm import LLMReply
from src.app.tools.llm.usage import UsageMeter, added_usage, deliver_llm_usage, metered, record_llm_usage, usage_sink


def reply(prompt: int, completion: int, cost: float = 0.0, model: str = "m") -> LLMReply:
    return LLMReply(content="{}", prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost, model=model)


def test_a_meter_adds_up_calls_tokens_and_cost_in_total_and_by_model() -> None:
    meter = UsageMeter()
    for item in (reply(100, 20, 0.0001, "gpt-4o-mini"), reply(50, 5, 0.00005, "gpt-4o-mini"), reply(7, 3, 0, "")):
        meter.add(item)
    assert meter.summary() == {
        "calls": 3,
        "prompt_tokens": 157,
        "completion_tokens": 28,
        "total_tokens": 185,
        "cost_usd": 0.00015,
        "by_model": {
            "gpt-4o-mini": {
                "calls": 2,
                "prompt_tokens": 150,
                "completion_tokens": 25,
                "total_tokens": 175,
                "cost_usd": 0.00015,
            },
            "unknown": {"calls": 1, "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "cost_usd": 0.0},
        },
    }


def test_an_empty_meter_reports_zeros() -> None:
    assert UsageMeter().summary() == {
        "calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost_usd": 0.0,
        "by_model": {},
    }


def test_recording_outside_any_run_is_a_no_op_and_a_closed_meter_stops_counting() -> None:
    record_llm_usage(reply(1, 1))
    with metered() as meter:
        record_llm_usage(reply(10, 2))
    record_llm_usage(reply(1000, 1000))
    assert (meter.summary()["calls"], meter.summary()["prompt_tokens"]) == (1, 10)


def test_nested_meters_both_see_inner_calls_and_only_the_outer_sees_the_rest() -> None:
    with metered() as job:
        record_llm_usage(reply(1, 1))
        with metered() as task:
            record_llm_usage(reply(10, 10))
        record_llm_usage(reply(100, 100))
    assert task.summary()["prompt_tokens"] == 10
    assert job.summary()["prompt_tokens"] == 111 and job.summary()["calls"] == 3


async def test_overlapping_runs_on_one_loop_keep_their_own_calls() -> None:
    first_started, second_recorded = asyncio.Event(), asyncio.Event()

    async def run(name: str, tokens: list[int]) -> dict[str, object]:
        with metered() as meter:
            if name == "a":
                first_started.set()
                await second_recorded.wait()  # b records while a's meter is open
            else:
                await first_started.wait()
            await asyncio.gather(*(spawned(count) for count in tokens))  # child tasks inherit the context
            if name == "b":
                second_recorded.set()
        return meter.summary()

    async def spawned(tokens: int) -> None:
        await asyncio.sleep(0)
        record_llm_usage(reply(tokens, 1, model="m"))

    with metered() as outer:
        a, b = await asyncio.gather(run("a", [1, 2]), run("b", [10, 20, 30]))
    assert (a["calls"], a["prompt_tokens"]) == (2, 3)
    assert (b["calls"], b["prompt_tokens"]) == (3, 60)
    assert (outer.summary()["calls"], outer.summary()["prompt_tokens"]) == (5, 63)


def test_usage_blocks_from_several_workers_add_up_per_model() -> None:
    one, two, three = UsageMeter(), UsageMeter(), UsageMeter()
    for meter, item in (
        (one, reply(100, 20, 0.0001, "a")),
        (two, reply(50, 5, 0.00005, "a")),
        (two, reply(9, 1, 0.0, "b")),
    ):
        meter.add(item)
    together = UsageMeter()
    for item in (reply(100, 20, 0.0001, "a"), reply(50, 5, 0.00005, "a"), reply(9, 1, 0.0, "b")):
        together.add(item)
    assert added_usage([one.summary(), None, three.summary(), two.summary()]) == together.summary()
    older = {"calls": 2, "prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6, "cost_usd": 0.5}
    summed = added_usage([older, one.summary()])
    assert (summed["calls"], summed["cost_usd"], sorted(summed["by_model"])) == (3, 0.5001, ["a", "unknown"])
    assert added_usage([]) == UsageMeter().summary()


async def test_sinks_get_each_reply_of_their_block_and_its_tasks_and_nothing_outside() -> None:
    outer_got: list[int] = []
    inner_got: list[int] = []

    async def outer(item: LLMReply) -> None:
        outer_got.append(item.prompt_tokens)

    async def inner(item: LLMReply) -> None:
        inner_got.append(item.prompt_tokens)

    await deliver_llm_usage([reply(1, 1)])
    with usage_sink(outer):
        await deliver_llm_usage([reply(2, 1), reply(3, 1)])
        with usage_sink(inner):
            await asyncio.gather(asyncio.create_task(deliver_llm_usage([reply(4, 1)])))
    await deliver_llm_usage([reply(5, 1)])
    assert (outer_got, inner_got) == ([2, 3, 4], [4])
