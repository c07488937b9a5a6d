"""Tests for scripts/async_offload.py: the lag monitor and the offloading calls on the test's own
event loop, the figures, the CLI in-process, then the script as a user runs it (--json, Ctrl-C).

Timing is only checked where it is deterministic: a call that blocks the loop for D seconds makes
the pending heartbeat at least D minus one interval late, however noisy the machine. Nothing
sleeps to wait for something.
"""

import asyncio
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

import async_offload
from async_offload import LagMonitor, ModeResult
from conftest import Invocation, ScriptRunner

Invoke = Callable[..., Invocation]
BLOCK_S = 0.2

# --- the pattern ---------------------------------------------------------------------------------


def test_the_monitor_sees_a_blocking_call_as_lag() -> None:
    async def scenario() -> list[float]:
        async with LagMonitor(0.005) as monitor:
            time.sleep(BLOCK_S)  # noqa: ASYNC251 - the bug, on purpose: the loop cannot run
        return monitor.lags_s

    lags = asyncio.run(scenario())
    assert max(lags) >= BLOCK_S - 0.005  # deterministic: the beat was due 5 ms in, woke after


def test_the_monitor_sees_little_lag_while_a_thread_blocks() -> None:
    async def scenario() -> list[float]:
        async with LagMonitor(0.005) as monitor:
            await asyncio.to_thread(time.sleep, BLOCK_S)
        return monitor.lags_s

    lags = asyncio.run(scenario())
    assert len(lags) >= 5  # it kept beating (40 beats fit; a noisy machine still gets 5)
    result = ModeResult.of("to_thread", lags, 0)
    assert result.lag_p50_ms < 50  # generous: the median beat is far from the 200 ms blocked


def test_the_inline_call_blocks_and_the_offloaded_ones_do_not() -> None:
    """The same work, inline and offloaded: only the offloaded way lets another task run."""

    async def ticks_during(work: async_offload.Work) -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)  # one tick: the ticker runs
        before = ticks
        await work()
        during = ticks - before
        ticker.cancel()
        await asyncio.wait([ticker])
        return during

    async def scenario() -> list[int]:
        with ThreadPoolExecutor(1) as pool:
            return [
                await ticks_during(lambda: async_offload.call_inline(time.sleep, 0.05)),
                await ticks_during(lambda: async_offload.io_to_thread(0.05)),
                await ticks_during(lambda: async_offload.cpu_in_process(pool, 0.05)),
            ]

    inline, thread, executor = asyncio.run(scenario())
    assert inline == 0  # not one turn of the loop while it blocked
    assert thread > 0
    assert executor > 0


def test_a_request_id_survives_to_thread_but_not_run_in_executor() -> None:
    async def scenario() -> tuple[str, str]:
        async_offload.REQUEST_ID.set("req-42")
        in_thread = await asyncio.to_thread(async_offload.blocking_call, 0)
        loop = asyncio.get_running_loop()
        in_executor = await loop.run_in_executor(None, async_offload.blocking_call, 0)
        return in_thread, in_executor

    assert asyncio.run(scenario()) == ("req-42", "-")  # to_thread copies the context; this not


def test_crunch_works_for_the_time_asked() -> None:
    started = time.perf_counter()
    assert async_offload.crunch(0.02) >= 1
    assert time.perf_counter() - started >= 0.02


# --- the figures ---------------------------------------------------------------------------------


def test_percentiles_by_the_collections_method() -> None:
    lags = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    result = ModeResult.of("m", lags, 7)
    assert (result.lag_p50_ms, result.lag_p99_ms, result.lag_max_ms) == (50.5, 99.01, 100.0)
    assert result.served == 7


@pytest.mark.parametrize(("lags", "expected"), [([0.25], 250.0), ([], 0.0)])
def test_one_lag_is_every_percentile_and_none_is_no_lag(lags: list[float], expected: float) -> None:
    result = ModeResult.of("m", lags, 0)
    assert (result.lag_p50_ms, result.lag_p99_ms, result.lag_max_ms) == (expected,) * 3


# --- the command line, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--work-ms", "49"],
        ["--work-ms", "1001"],  # Ctrl-C waits for a blocking call: 1 s keeps it under 2 s
        ["--work-ms", "nan"],
        ["--work-ms", "inf"],
        ["--work-ms", "0.5"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(invoke: Invoke, args: list[str]) -> None:
    invoke(async_offload.run, *args).assert_usage_error("--work-ms")


def test_an_unknown_option_is_a_usage_error(invoke: Invoke) -> None:
    invoke(async_offload.run, "--seconds", "1").assert_usage_error("--seconds")


def test_the_demo_prints_a_table(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    done = invoke(async_offload.run, "--work-ms", "50")
    assert done.code == 0, done.stderr
    for mode in ("io inline", "io to_thread", "cpu inline", "cpu process pool"):
        assert re.search(rf"│ {mode} +│ +[\d.]+ │ +[\d.]+ │ +[\d.]+ │ +\d+ │", done.stdout), mode
    assert "request id read inside the to_thread call: request-2" in done.stdout


# --- the script, as a user runs it ---------------------------------------------------------------


def test_json_run_of_the_demo(runner: ScriptRunner) -> None:
    proc = runner.run("async_offload", "--work-ms", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report.keys() == {"work_ms", "request_id_in_thread", "modes"}
    assert report["request_id_in_thread"] == "request-2"
    modes = {mode["mode"]: mode for mode in report["modes"]}
    assert list(modes) == ["io inline", "io to_thread", "cpu inline", "cpu process pool"]
    keys = {"mode", "lag_p50_ms", "lag_p99_ms", "lag_max_ms", "served"}
    assert all(mode.keys() == keys for mode in report["modes"])
    for blocked in ("io inline", "cpu inline"):  # deterministic: the loop could not turn
        assert modes[blocked]["lag_max_ms"] >= 95  # 100 ms of work, less one 5 ms interval
        assert modes[blocked]["served"] == 0
    for offloaded in ("io to_thread", "cpu process pool"):  # direction only, generous
        assert modes[offloaded]["lag_p50_ms"] < modes["io inline"]["lag_max_ms"]
        assert modes[offloaded]["served"] > 0


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    """Also the check that pool workers ignore Ctrl-C: one that did not would print a traceback."""
    line = runner.ctrl_c("async_offload", "--work-ms", "500", ready="measuring io to_thread")
    pattern = r"interrupted during io to_thread; ways measured: 1; io inline: lag p99 \d+ ms"
    assert re.fullmatch(pattern, line), line
