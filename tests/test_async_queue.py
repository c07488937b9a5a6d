"""Tests for scripts/async_queue.py: the pipeline and the counter in-process, then the script.

The pattern tests run pipeline() on an event loop of their own and check what it promises against
independent counts kept by the test (items made vs items taken), not only the figures it reports.
Nothing sleeps to wait for something; no test asserts on timing beyond a sanity bound.
"""

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator

import pytest

import async_queue
from async_queue import Progress, SharedCounter
from conftest import Invocation, ScriptRunner


async def no_wait(item: int) -> int:
    await asyncio.sleep(0)  # a turn of the loop, as any I/O would give
    return item


def run_pipeline(
    items: Iterator[int], workers: int, maxsize: int, handle: Callable[[int], Awaitable[int]]
) -> tuple[async_queue.PipelineStats, list[int]]:
    collected: list[int] = []

    async def scenario() -> async_queue.PipelineStats:
        return await async_queue.pipeline(
            items, handle, collected.append, workers=workers, maxsize=maxsize
        )

    return asyncio.run(scenario()), collected


# --- the pattern ---------------------------------------------------------------------------------


def test_every_item_is_handled_and_collected_once() -> None:
    stats, collected = run_pipeline(iter(range(300)), 7, 10, no_wait)
    assert sorted(collected) == list(range(300))
    assert stats.collected == 300


def test_the_producer_waits_while_the_queue_is_full() -> None:
    """Counted by the test: items made but not yet taken by a worker never exceed maxsize + 1."""
    made = 0
    taken = 0
    waiting: list[int] = []

    def items() -> Iterator[int]:
        nonlocal made
        for item in range(500):
            made += 1
            waiting.append(made - taken)  # in the queue, plus this one about to be put
            yield item

    async def handle(item: int) -> int:
        nonlocal taken
        taken += 1
        await asyncio.sleep(0)
        return item

    stats, collected = run_pipeline(items(), 4, 10, handle)
    assert len(collected) == 500
    assert stats.peak_depth == 10  # reached, never passed
    assert max(waiting) == 11  # 10 in the queue and the next in the producer's hand


def test_an_unbounded_queue_takes_every_item_at_once() -> None:
    stats, collected = run_pipeline(iter(range(500)), 4, 0, no_wait)
    assert len(collected) == 500
    assert stats.peak_depth == 500  # the producer never waited


def test_a_failing_handler_stops_the_pipeline_instead_of_hanging() -> None:
    async def handle(item: int) -> int:
        await asyncio.sleep(0)
        if item == 50:
            raise ValueError("item 50 is bad")
        return item

    with pytest.raises(ExceptionGroup) as caught:
        run_pipeline(iter(range(1000)), 5, 10, handle)
    assert caught.group_contains(ValueError, match="item 50 is bad")


def test_cancelling_the_caller_leaves_no_task_behind() -> None:
    async def scenario() -> set[asyncio.Task]:
        first = asyncio.Event()

        async def handle(item: int) -> int:
            first.set()
            await asyncio.Event().wait()  # never answers
            return item

        running = asyncio.create_task(
            async_queue.pipeline(range(100), handle, print, workers=5, maxsize=10)
        )
        await first.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(scenario()) == set()


def test_the_counter_loses_updates_without_its_lock_and_keeps_them_with_it() -> None:
    async def scenario(locked: bool) -> int:
        counter = SharedCounter(async_queue.save_nowhere, locked=locked)
        await asyncio.gather(*[counter.add() for _ in range(10)])
        return counter.value

    assert asyncio.run(scenario(locked=True)) == 10
    assert asyncio.run(scenario(locked=False)) == 1  # all ten read 0 before any wrote


# --- the demo's figures --------------------------------------------------------------------------


def measure(count: int, maxsize: int, locked: bool = True) -> async_queue.Run:
    return asyncio.run(async_queue.measure(count, 20, maxsize, 0.0, locked, Progress()))


def test_lost_updates_show_without_the_lock_only() -> None:
    assert measure(400, 50, locked=True).lost_updates == 0
    assert measure(400, 50, locked=False).lost_updates > 0


def test_peak_memory_stays_flat_when_bounded_and_grows_when_not() -> None:
    """1 KiB an item: 10x the items moves the bounded peak little, the unbounded one ~10x."""
    bounded = measure(300, 20).peak_memory_kib
    bounded_10x = measure(3000, 20).peak_memory_kib
    unbounded = measure(300, 0).peak_memory_kib
    unbounded_10x = measure(3000, 0).peak_memory_kib
    assert bounded_10x < 1.5 * bounded
    assert unbounded_10x > 5 * unbounded
    assert unbounded_10x > 3000  # the 3000 items, all held at once
    assert bounded_10x < unbounded_10x / 5


# --- the command line, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--items", "0"], "--items"),
        (["--items", "10001"], "--items"),
        (["--items", "abc"], "--items"),
        (["--workers", "0"], "--workers"),
        (["--maxsize", "-1"], "--maxsize"),
        (["--latency-ms", "0"], "--latency-ms"),
        (["--latency-ms", "nan"], "--latency-ms"),
        (["--latency-ms", "inf"], "--latency-ms"),
        (["--lock", "yes"], "yes"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(async_queue.run, *args).assert_usage_error(argument)


def test_the_demo_prints_two_tables(
    invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    done = invoke(async_queue.run, "--items", "100", "--latency-ms", "1", "--no-lock")
    assert done.code == 0, done.stderr
    assert "items: 100, workers: 50, maxsize: 100" in done.stdout
    assert re.search(r"│ peak queue depth +│ 100 ", done.stdout), done.stdout
    assert re.search(r"│ lost counter updates \(without the lock\) +│ [1-9]", done.stdout)
    assert re.search(r"│ no bound +│ 1,000 +│ [\d,]+ KiB", done.stdout), done.stdout


# --- the script, as a user runs it ---------------------------------------------------------------
JSON_KEYS = {"items", "workers", "maxsize", "peak_depth", "peak_memory_kib", "elapsed_s"}
JSON_KEYS |= {"ideal_s", "lost_updates", "latency_ms", "lock", "ratio", "memory"}


def test_json_run_of_the_demo(runner: ScriptRunner) -> None:
    args = ["--items", "200", "--workers", "20", "--maxsize", "10", "--latency-ms", "10"]
    proc = runner.run("async_queue", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures.keys() == JSON_KEYS
    assert (figures["items"], figures["workers"], figures["maxsize"]) == (200, 20, 10)
    assert figures["peak_depth"] == 10
    assert figures["lost_updates"] == 0
    assert figures["ideal_s"] == pytest.approx(0.1)  # 200 x 0.01 / 20
    assert 0.5 < figures["ratio"] < 10  # sanity only: timing is the benchmark's job
    sizes = [(row["maxsize"], row["items"]) for row in figures["memory"]]
    assert sizes == [(10, 200), (10, 2000), (0, 200), (0, 2000)]
    assert "pipeline: workers: 20, maxsize: 10" in proc.stderr


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    args = ["--items", "10000", "--workers", "10", "--latency-ms", "100"]
    line = runner.ctrl_c("async_queue", *args, ready="pipeline: ")
    assert re.fullmatch(r"interrupted: [\d,]+ of 10,000 items done \(timed run\)", line), line
