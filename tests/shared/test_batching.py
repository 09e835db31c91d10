"""GroupCommit: concurrent calls served in batches, results and failures handed back to each caller."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from parley_shared.batching import GroupCommit
from parley_shared.shutdown import Drains


class Recorder:
    def __init__(self, *, fail_on: str | None = None, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.gate = gate

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail_on in items:
            raise ValueError(f"bad item in a batch of {len(items)}")
        return [item.upper() for item in items]


async def test_a_lone_call_runs_at_once_and_gets_its_result() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder, name="test", drains=Drains())
    assert await group.submit("a") == "A"
    assert recorder.batches == [["a"]]


async def test_calls_made_while_batches_run_go_together_into_the_next_batch() -> None:
    gate = asyncio.Event()
    recorder = Recorder(gate=gate)
    group = GroupCommit(recorder, name="test", drains=Drains(), max_batches=1)
    first = asyncio.create_task(group.submit("a"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(x)) for x in "bcde"]
    await asyncio.sleep(0)
    gate.set()
    assert await first == "A"
    assert [await t for t in rest] == ["B", "C", "D", "E"]  # each caller gets its own result
    assert recorder.batches == [["a"], ["b", "c", "d", "e"]]
    assert (group.batches, group.items) == (2, 5)


async def test_batches_never_exceed_max_size_and_keep_submission_order() -> None:
    gate = asyncio.Event()
    recorder = Recorder(gate=gate)
    group = GroupCommit(recorder, name="test", drains=Drains(), max_batches=1, max_size=3)
    tasks = [asyncio.create_task(group.submit(str(i))) for i in range(8)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [str(i) for i in range(8)]
    assert recorder.batches == [["0"], ["1", "2", "3"], ["4", "5", "6"], ["7"]]


async def test_a_failing_batch_fails_each_of_its_callers_and_not_the_others() -> None:
    gate = asyncio.Event()
    recorder = Recorder(fail_on="bad", gate=gate)
    group = GroupCommit(recorder, name="test", drains=Drains(), max_batches=1)
    first = asyncio.create_task(group.submit("ok"))
    await asyncio.sleep(0)
    second = [asyncio.create_task(group.submit(x)) for x in ("x", "bad", "y")]
    await asyncio.sleep(0)
    gate.set()
    assert await first == "OK"
    for task in second:
        with pytest.raises(ValueError, match="batch of 3"):
            await task
    assert await group.submit("later") == "LATER"  # the group goes on


async def test_with_retry_alone_a_bad_item_fails_alone_and_the_others_succeed() -> None:
    gate = asyncio.Event()
    recorder = Recorder(fail_on="bad", gate=gate)
    group = GroupCommit(
        recorder, name="test", drains=Drains(), max_batches=1, retry_alone=lambda exc: isinstance(exc, ValueError)
    )
    first = asyncio.create_task(group.submit("ok"))
    await asyncio.sleep(0)
    second = [asyncio.create_task(group.submit(x)) for x in ("x", "bad", "y")]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *second, return_exceptions=True)
    assert results[:2] == ["OK", "X"] and results[3] == "Y"
    assert isinstance(results[2], ValueError) and "batch of 1" in str(results[2])
    assert recorder.batches == [["ok"], ["x", "bad", "y"], ["x"], ["bad"], ["y"]]


async def test_metrics_count_batches_items_and_retries_alone_by_name() -> None:
    def value(metric: str) -> float:
        return REGISTRY.get_sample_value(f"parley_group_commit_{metric}_total", {"name": "metrics-test"}) or 0.0

    gate = asyncio.Event()
    recorder = Recorder(fail_on="bad", gate=gate)
    group = GroupCommit(
        recorder,
        name="metrics-test",
        drains=Drains(),
        max_batches=1,
        retry_alone=lambda exc: isinstance(exc, ValueError),
    )
    before = {m: value(m) for m in ("batches", "items", "retried_alone")}
    first = asyncio.create_task(group.submit("ok"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(x)) for x in ("x", "bad", "y")]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *rest, return_exceptions=True)
    # Two batches served four callers (the second re-ran its three items alone, counted once).
    assert {m: value(m) - before[m] for m in before} == {"batches": 2, "items": 4, "retried_alone": 1}


async def test_drain_waits_for_running_and_queued_batches_and_gives_up_after_its_timeout() -> None:
    gate = asyncio.Event()
    recorder = Recorder(gate=gate)
    group = GroupCommit(recorder, name="test", drains=Drains(), max_batches=1)
    callers = [asyncio.create_task(group.submit(x)) for x in "abc"]
    await asyncio.sleep(0)
    await group.drain(timeout_s=0.05)  # the first batch is held: drain gives up, nothing is lost
    assert not any(c.done() for c in callers)
    for caller in callers:
        caller.cancel()  # the callers go away (shutdown); their items are still handled
    asyncio.get_running_loop().call_later(0.05, gate.set)
    await group.drain(timeout_s=5)
    assert recorder.batches == [["a"], ["b", "c"]]  # the queued batch ran too before drain returned
    await group.drain()  # nothing running: returns at once


async def test_retry_alone_is_not_used_for_errors_it_declines() -> None:
    gate = asyncio.Event()
    recorder = Recorder(fail_on="bad", gate=gate)
    group = GroupCommit(
        recorder, name="test", drains=Drains(), max_batches=1, retry_alone=lambda exc: False
    )  # e.g. the database is away
    first = asyncio.create_task(group.submit("ok"))
    await asyncio.sleep(0)
    second = [asyncio.create_task(group.submit(x)) for x in ("x", "bad")]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *second, return_exceptions=True)
    assert results[0] == "OK" and all(isinstance(r, ValueError) for r in results[1:])
    assert recorder.batches == [["ok"], ["x", "bad"]]


async def test_an_exception_as_a_result_fails_that_caller_alone() -> None:
    async def one_by_one(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"item {i}") if i == 2 else i * 10 for i in items]

    group = GroupCommit(one_by_one, name="test", drains=Drains())
    tasks = [asyncio.create_task(group.submit(i)) for i in (1, 2, 3)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "item 2"


async def test_a_cancelled_caller_leaves_its_batch_running() -> None:
    gate = asyncio.Event()
    recorder = Recorder(gate=gate)
    group = GroupCommit(recorder, name="test", drains=Drains(), max_batches=1)
    caller = asyncio.create_task(group.submit("a"))
    other = asyncio.create_task(group.submit("b"))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    gate.set()
    assert await other == "B"
    assert ["a"] in recorder.batches  # the item was still handled


async def test_a_batch_returning_the_wrong_number_of_results_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    with pytest.raises(RuntimeError, match="1 items"):
        await GroupCommit(short, name="test", drains=Drains()).submit(1)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GroupCommit(Recorder(), name="test", drains=Drains(), max_batches=0)


async def test_a_batch_does_not_run_in_its_first_callers_context() -> None:
    import contextvars

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
    seen: list[str] = []

    async def run(items: list[int]) -> list[int]:
        seen.append(request_id.get())
        return items

    request_id.set("first caller")
    assert await GroupCommit(run, name="test", drains=Drains()).submit(1) == 1
    assert seen == ["none"] and request_id.get() == "first caller"
