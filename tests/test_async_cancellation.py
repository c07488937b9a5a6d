"""Tests for scripts/async_cancellation.py: the pattern in-process, then the script as a process.

The pattern tests run on the test's own event loop with tiny item times; they wait on events and
tasks, never on sleeps. Timing is asserted only as a sanity bound.
"""

import asyncio
import json
import re
from collections.abc import Callable

import pytest

import async_cancellation as lesson
from conftest import Invocation, ScriptRunner, check_a_cancelled_job_cleans_up, pool_of

# --- the pattern ---------------------------------------------------------------------------------


def test_a_cancelled_job_releases_flushes_and_re_raises() -> None:
    check_a_cancelled_job_cleans_up(lesson)


def test_a_failed_job_releases_flushes_and_raises_its_error() -> None:
    flushed: list[float] = []
    tally = lesson.Tally()

    async def sink(results: list[float]) -> None:
        flushed.extend(results)

    async def scenario() -> asyncio.Queue[int]:
        pool = pool_of(1)
        fails = lesson.item(0, fails=True)
        with pytest.raises(lesson.JobFailedError):
            await lesson.job("j", lambda: fails, 1, pool, sink, tally)
        return pool

    assert asyncio.run(scenario()).qsize() == 1
    assert flushed == []
    assert (tally.started, tally.failed, tally.cancelled, tally.cleaned_up) == (1, 1, 0, 0)


def test_steps_taskgroup_cancels_siblings_gather_does_not() -> None:
    async def scenario() -> lesson.Demo:
        demo = lesson.Demo(0.01, connections=10)
        await lesson.steps(demo)
        return demo

    demo = asyncio.run(scenario())
    by_name = {step.name.split()[0]: step for step in demo.steps}
    gathered = by_name["gather(),"].tally
    grouped = by_name["TaskGroup,"].tally
    assert (gathered.failed, gathered.cancelled, gathered.completed) == (1, 0, 3)
    assert (grouped.failed, grouped.cancelled, grouped.cleaned_up) == (1, 3, 3)
    assert "except*" in by_name["TaskGroup,"].note
    batch = by_name["asyncio.timeout()"].tally
    assert batch.cancelled >= 1
    assert batch.cancelled == batch.cleaned_up
    assert batch.completed + batch.cancelled == len(lesson.BATCH)
    assert by_name["wait_for()"].tally.cleaned_up == 1
    assert by_name["asyncio.timeout()"].stop_s >= 0
    assert demo.pool.qsize() == 10  # every connection came back


# --- the command line, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--item-ms", "0"], "--item-ms"),
        (["--item-ms", "nan"], "--item-ms"),
        (["--item-ms", "inf"], "--item-ms"),
        (["--json", "yes"], "yes"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(lesson.run, *args).assert_usage_error(argument)


def test_the_table_run(invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    done = invoke(lesson.run, "--item-ms", "5")
    assert done.code == 0, done.stderr
    total = re.search(r"total +│ 15 +│ \d+ +│ 2 +│ (\d+) +│ (\d+) +│", done.stdout)
    assert total, done.stdout
    assert total[1] == total[2]  # cleaned up == cancelled
    assert "0 connections still out" in done.stdout


# --- the script, as a user runs it ---------------------------------------------------------------
KEYS = {"started", "completed", "cancelled", "cleaned_up", "shutdown_s", "connections_out", "steps"}


def test_json_run_of_the_demo(runner: ScriptRunner) -> None:
    proc = runner.run("async_cancellation", "--item-ms", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures.keys() >= KEYS
    assert figures["cancelled"] == figures["cleaned_up"] > 0
    assert figures["started"] == figures["completed"] + figures["failed"] + figures["cancelled"]
    assert figures["connections_out"] == 0
    assert 0 <= figures["shutdown_s"] < 5  # a sanity bound: clean-ups take no real time here
