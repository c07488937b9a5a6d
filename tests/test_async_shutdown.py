"""Tests for scripts/async_shutdown.py: the pattern in-process, then the script as a process.

The pattern tests run on the test's own event loop with tiny item times; they wait on events and
tasks, never on sleeps. Timing is asserted only as a sanity bound.
"""

import asyncio
import json
import os
import re
import signal
from collections.abc import Callable, Generator
from functools import partial

import pytest

import async_shutdown as lesson
from async_shutdown import Tally
from conftest import Invocation, ScriptRunner, check_a_cancelled_job_cleans_up, pool_of


@pytest.fixture
def signals_restored() -> Generator[None]:
    """The lesson leaves SIGTERM and SIGINT ignored after a signal: put them back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


# --- the pattern ---------------------------------------------------------------------------------


def test_a_cancelled_job_releases_flushes_and_re_raises() -> None:
    check_a_cancelled_job_cleans_up(lesson)


def test_a_job_that_finishes_flushes_everything_and_counts_completed() -> None:
    flushed: list[float] = []
    tally = Tally()

    async def sink(results: list[float]) -> None:
        flushed.extend(results)

    async def scenario() -> asyncio.Queue[int]:
        pool = pool_of(1)
        await lesson.job("j", partial(lesson.item, 0), 3, pool, sink, tally)
        return pool

    assert asyncio.run(scenario()).qsize() == 1
    assert flushed == [0, 0, 0]
    assert (tally.started, tally.completed, tally.cancelled, tally.cleaned_up) == (1, 1, 0, 0)


def test_shutdown_reports_a_task_that_swallows_its_cancellation() -> None:
    tally = Tally()

    async def scenario() -> tuple[int, int]:
        pool = pool_of(1)
        bug = asyncio.create_task(lesson.swallowing_job("bug", 0.001, 300, pool, tally))
        fine = asyncio.create_task(
            lesson.job("ok", partial(lesson.item, 0.001), 10**6, pool_of(1), lesson.flush, tally)
        )
        await asyncio.sleep(0)  # both start
        stuck = await lesson.shutdown([bug, fine], grace_s=0.05)
        still_out = 1 - pool.qsize()
        await bug  # bounded: it ends by itself
        return len(stuck), still_out

    assert asyncio.run(scenario()) == (1, 1)
    assert tally.swallowed >= 1
    assert (tally.cancelled, tally.cleaned_up) == (1, 1)  # the good job cleaned up


def test_shutdown_of_no_tasks_is_immediate() -> None:
    assert asyncio.run(lesson.shutdown([], grace_s=10)) == set()


def test_the_first_signal_stops_and_later_ones_are_ignored(signals_restored: None) -> None:
    reasons: list[str] = []

    async def scenario() -> None:
        stopped = asyncio.Event()

        def stop(reason: str) -> None:
            reasons.append(reason)
            stopped.set()

        lesson.stop_on_signals(stop)
        signal.raise_signal(signal.SIGTERM)
        await stopped.wait()
        signal.raise_signal(signal.SIGINT)  # ignored now: it would cut a clean-up short
        signal.raise_signal(signal.SIGTERM)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert reasons == ["SIGTERM"]
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


# --- the command line, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--jobs", "0"], "--jobs"),
        (["--item-ms", "0"], "--item-ms"),
        (["--item-ms", "nan"], "--item-ms"),
        (["--run-ms", "-1"], "--run-ms"),
        (["--grace-ms", "0"], "--grace-ms"),
        (["--grace-ms", "inf"], "--grace-ms"),
        (["--swallow", "yes"], "yes"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(lesson.run, *args).assert_usage_error(argument)


def test_the_table_run(invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    done = invoke(lesson.run, "--item-ms", "5", "--run-ms", "20", "--jobs", "3")
    assert done.code == 0, done.stderr
    assert re.search(r"│ 3 +│ 0 +│ 3 +│ 3 +│ 0 +│ 0 +│ 0 +│", done.stdout), done.stdout
    assert "stopped by timer" in done.stdout


@pytest.mark.parametrize(
    ("stopped_by", "abandoned", "code"),
    [("timer", 0, 0), ("SIGTERM", 0, 143), ("timer", 1, 1), ("SIGTERM", 1, 1)],
)
def test_an_abandoned_job_fails_the_run_whatever_stopped_it(
    capsys: pytest.CaptureFixture[str], stopped_by: str, abandoned: int, code: int
) -> None:
    """Regression: a SIGTERM that had to abandon a job exited 143, as after a clean shutdown."""
    figures: dict[str, object] = dict.fromkeys(lesson.COLUMNS, 0)
    figures["abandoned"] = abandoned
    figures["connections_out"] = abandoned
    figures["stopped_by"] = stopped_by
    figures["grace_s"] = 1.0
    figures["shutdown_s"] = 1.0
    assert lesson.finish(figures, as_json=True) == code
    assert json.loads(capsys.readouterr().out)["abandoned"] == abandoned


def test_swallow_is_forced_after_the_grace(
    invoke: Callable[..., Invocation],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    forced: list[int] = []
    monkeypatch.setattr(os, "_exit", forced.append)  # the process must survive the test
    args = ["--swallow", "--item-ms", "5", "--run-ms", "10", "--grace-ms", "50", "--json"]
    done = invoke(lesson.run, *args)
    figures = json.loads(done.stdout)
    assert forced == [1]
    assert done.code == 1
    assert (figures["abandoned"], figures["connections_out"]) == (1, 1)
    assert figures["swallowed"] >= 1
    assert figures["cancelled"] == figures["cleaned_up"] == 7  # every other job cleaned up
    assert figures["shutdown_s"] >= 0.05  # it waited out the whole grace
    assert "job #0 swallowed a cancellation" in caplog.text


# --- the script, as a user runs it ---------------------------------------------------------------
KEYS = {"started", "completed", "cancelled", "cleaned_up", "shutdown_s", "abandoned"}


def test_json_run_of_the_service(runner: ScriptRunner) -> None:
    proc = runner.run("async_shutdown", "--item-ms", "10", "--run-ms", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures.keys() >= KEYS
    assert figures["stopped_by"] == "timer"
    assert figures["cancelled"] == figures["cleaned_up"] == figures["started"] == 8
    assert (figures["abandoned"], figures["connections_out"]) == (0, 0)


def test_sigterm_mid_run_shuts_down_gracefully(runner: ScriptRunner) -> None:
    args = ["--run-ms", "60000", "--json"]
    done = runner.interrupt("async_shutdown", *args, ready="running:", signum=signal.SIGTERM)
    assert done.returncode == 143, done.stderr
    assert done.seconds_to_exit < 2.0, done.seconds_to_exit
    assert not done.survivors
    assert "Traceback" not in done.stderr
    figures = json.loads(done.stdout)
    assert figures["stopped_by"] == "SIGTERM"
    assert figures["cancelled"] == figures["cleaned_up"] == 8  # every job
    assert (figures["abandoned"], figures["connections_out"]) == (0, 0)


def test_ctrl_c_exits_130_with_the_figures(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("async_shutdown", "--run-ms", "60000", ready="running:")
    match = re.fullmatch(
        r"interrupted: 8 started, 0 completed, (\d+) cancelled, (\d+) cleaned up, "
        r"0 swallowed, 0 abandoned, 0 connections out; shut down in [\d.]+ s\n?",
        line,
    )
    assert match, line
    assert match[1] == match[2] == "8"
