"""Tests for scripts/process_pool.py: the pattern, the demo plumbing, the CLI in-process, then
the real script where a real process is the point (a default run, an exit code, Ctrl-C)."""

import json
import math
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import pytest

import process_pool
from conftest import Invocation, ScriptRunner

Invoke = Callable[..., Invocation]
SPAWN = multiprocessing.get_context("spawn")
# A worker that dies starting must surface at once. Start-up takes 0.1-1 s here; the old pattern
# waited 30 s for it, so anything under this bound shows the failure was not waited out.
PROMPTLY_S = 15.0

# --- the pattern ---------------------------------------------------------------------------------


def sieve_count(size: int) -> int:
    """An independent oracle: the sieve of Eratosthenes, nothing shared with trial division."""
    if size < 3:
        return 0
    is_prime = bytearray([1]) * size
    is_prime[0] = is_prime[1] = 0
    for n in range(2, math.isqrt(size - 1) + 1):
        if is_prime[n]:
            is_prime[n * n :: n] = bytes(len(range(n * n, size, n)))
    return sum(is_prime)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 25, 26, 1_000, 20_011])
def test_count_primes_agrees_with_a_sieve(size: int) -> None:
    assert process_pool.count_primes(range(size)) == sieve_count(size)


@pytest.mark.parametrize(("size", "chunksize"), [(10, 3), (9, 3), (1, 5), (7, 1), (0, 4)])
def test_chunks_cover_the_range_once_in_order(size: int, chunksize: int) -> None:
    parts = list(process_pool.chunks(size, chunksize))
    assert [n for part in parts for n in part] == list(range(size))
    assert all(1 <= len(part) <= chunksize for part in parts)
    assert len(parts) == math.ceil(size / chunksize)


def test_chunks_are_lazy() -> None:
    # A trillion numbers in chunks of one: only possible if nothing is materialised up front.
    parts = process_pool.chunks(10**12, 1)
    assert next(parts) == range(1)
    assert next(parts) == range(1, 2)


@pytest.mark.parametrize("max_in_flight", [1, 2, 5])
def test_map_bounded_keeps_the_bound_and_every_result(max_in_flight: int) -> None:
    seen: list[int] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = process_pool.map_bounded(
            pool, lambda n: n * n, range(50), max_in_flight, on_submit=seen.append
        )
        assert sorted(results) == [n * n for n in range(50)]
    assert len(seen) == 50
    assert max(seen) == max_in_flight


def test_map_bounded_pulls_tasks_lazily() -> None:
    # An endless task stream: the consumer stops after 10 results, so at most 10 + bound are read.
    pulled: list[int] = []

    def endless():
        n = 0
        while True:
            pulled.append(n)
            yield n
            n += 1

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = process_pool.map_bounded(pool, abs, endless(), max_in_flight=3)
        first = [next(results) for _ in range(10)]
    assert len(first) == 10
    assert len(pulled) <= 10 + 3


def count_on_a_plain_pool(size: int, chunksize: int) -> tuple[int, int, bool]:
    """What a service would do: its own executor, the pattern's two calls, from its own thread."""
    before = set(multiprocessing.active_children())
    with ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
        wait(process_pool.start_workers(pool, 2))
        started = len(set(multiprocessing.active_children()) - before)
        tasks = process_pool.chunks(size, chunksize)
        total = sum(process_pool.map_bounded(pool, process_pool.count_primes, tasks, 4))
    return started, total, threading.current_thread() is threading.main_thread()


def test_the_core_runs_unchanged_on_a_plain_pool_from_another_thread() -> None:
    before = set(multiprocessing.active_children())
    with ThreadPoolExecutor(1) as caller:
        started, total, on_main = caller.submit(count_on_a_plain_pool, 30_000, 1_000).result()
    assert not on_main
    assert started == 2  # every worker was started before the first task
    assert total == sieve_count(30_000)
    assert set(multiprocessing.active_children()) == before  # and none outlived the pool


@pytest.mark.parametrize(
    ("initializer", "initargs"),
    [
        (math.sqrt, (-1,)),  # raises ValueError: math domain error
        (signal.raise_signal, (signal.SIGKILL,)),  # killed before it takes a task
    ],
    ids=["initializer-raises", "worker-killed"],
)
def test_a_worker_that_dies_starting_breaks_the_pool_at_once(
    initializer: Callable[..., object], initargs: tuple[object]
) -> None:
    started = time.monotonic()
    with ProcessPoolExecutor(2, SPAWN, initializer, initargs) as pool:
        starting = process_pool.start_workers(pool, 2)
        assert all(isinstance(future.exception(), BrokenProcessPool) for future in starting)
        with pytest.raises(BrokenProcessPool):  # and it stays broken
            pool.submit(abs, -1)
    assert time.monotonic() - started < PROMPTLY_S


# --- the demo plumbing ---------------------------------------------------------------------------


def test_demo_workers_ignore_sigint_and_the_parent_keeps_its_own() -> None:
    handler_before = signal.getsignal(signal.SIGINT)
    with process_pool.demo_pool(1, threading.Event()) as pool:
        handler = pool.submit(signal.getsignal, signal.SIGINT).result()
        blocked = pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, []).result()
    assert handler == signal.SIG_IGN
    assert signal.SIGINT not in blocked  # held while the worker started; ignore_sigint() lets go
    assert signal.getsignal(signal.SIGINT) is handler_before
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_ctrl_c_stop_while_the_workers_start_stops_them_instead_of_waiting() -> None:
    stop = threading.Event()
    stop.set()  # as the SIGINT handler would, while the workers still import the script
    before = set(multiprocessing.active_children())
    with pytest.raises(KeyboardInterrupt), process_pool.demo_pool(2, stop):
        pytest.fail("the pool started after all")
    assert set(multiprocessing.active_children()) == before  # none left running


def test_after_a_ctrl_c_the_second_one_is_ignored_until_exit(
    invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv passes a second Ctrl-C on: it must not interrupt the exit the first one started."""

    def pressed_ctrl_c(*args: object) -> process_pool.Report:
        signal.raise_signal(signal.SIGINT)  # the lesson's handler sets the stop flag
        raise KeyboardInterrupt  # as Run.total does once it sees the flag

    monkeypatch.setattr(process_pool, "compare", pressed_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    try:
        done = invoke(process_pool.run)
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    assert done.code == 130, done.stderr
    assert ignored


def test_a_ctrl_c_stop_ends_the_count_between_tasks() -> None:
    run = process_pool.Run()
    seen: list[int] = []

    def results():
        for value in (1, 2, 3):
            seen.append(value)
            if value == 2:
                run.stop.set()  # as the SIGINT handler would, while a task runs
            yield value

    with pytest.raises(KeyboardInterrupt):
        run.total(results())
    assert seen == [1, 2]  # the third task was never asked for


def test_the_partial_results_say_where_and_what_so_far() -> None:
    run = process_pool.Run()
    assert run.summary() == "during the pool's start-up; fastest so far: none"
    run.phase = "round 2 of 3: threads"
    run.seconds = {"serial": [0.5, 0.25]}
    assert run.summary() == "during round 2 of 3: threads; fastest so far: serial 0.25 s"


# --- the command line, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "many"], "--workers"),
        (["--size", "abc"], "--size"),
        (["--size", "0"], "--size"),
        (["--chunksize", "0"], "--chunksize"),
        (["--chunksize", "20001"], "--chunksize"),  # a long task would hold Ctrl-C up
        (["--size", "10000001"], "--size"),
        (["--turbo"], "--turbo"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Invoke, args: list[str], argument: str
) -> None:
    invoke(process_pool.run, *args).assert_usage_error(argument)


def test_the_table_shows_every_mode_and_its_count(invoke: Invoke) -> None:
    done = invoke(process_pool.run, "--size", "20000", "--workers", "1")
    assert done.code == 0, done.stderr
    for mode in ("serial", "threads", "processes", "Executor.map"):
        assert mode in done.stdout
    assert done.stdout.count(f"{sieve_count(20_000):,}") == 4
    assert "workers: 1, best of 3, start-up: " in done.stdout
    assert "speed-up: vs one core doing it all (" in done.stdout
    assert "starting the pool (spawn, workers: 1)" in done.stderr


def test_crash_reports_a_broken_pool_even_when_the_count_would_win(invoke: Invoke) -> None:
    # Regression: with one task, the count could finish before the pool broke, and the report
    # then failed with "ValueError: not enough values to unpack" (1 run in 3-6). The crash task is
    # now the pool's first, and its own result is awaited: it can only end in BrokenProcessPool.
    done = invoke(process_pool.run, "--crash", "--size", "10000", "--chunksize", "10000")
    assert done.code == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "error: the pool is broken: a worker died during the --crash run; fastest so far: none"
    )
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# --- the script, as a user runs it ---------------------------------------------------------------


def test_json_times_every_mode_alike_in_interleaved_rounds(runner: ScriptRunner) -> None:
    proc = runner.run("process_pool", "--size", "60000", "--chunksize", "5000", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    modes = ["serial", "threads", "processes", "Executor.map"]
    seconds = report["seconds"]
    assert report["workers"] == process_pool.WORKERS
    assert report["results"] == dict.fromkeys(modes, sieve_count(60_000))
    assert list(seconds) == modes
    assert all(isinstance(value, float) and value > 0 for value in seconds.values())
    # The baseline is the serial run's CPU time, which a busy machine cannot shrink (a thread's
    # CPU time never exceeds its wall time), so no speed-up can pass the worker count.
    baseline = report["serial_cpu_s"]
    assert 0 < baseline <= seconds["serial"]
    assert report["speedup"] == pytest.approx(baseline / seconds["processes"], rel=0.01)
    assert report["bare_map_speedup"] == pytest.approx(baseline / seconds["Executor.map"], rel=0.01)
    assert report["speedup"] <= report["workers"] * 1.1  # a sanity bound, not a benchmark
    # Every mode ran once per round, in turn, so noise cannot favour one of them for a whole run.
    rounds = [line for line in proc.stderr.splitlines() if line.startswith("round ")]
    expected = [f"round {n} of 3: {mode}" for n in (1, 2, 3) for mode in modes]
    assert rounds == expected


def test_crash_exits_1_with_one_line(runner: ScriptRunner) -> None:
    proc = runner.run("process_pool", "--crash", "--size", "10000", "--chunksize", "10000")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: the pool is broken: a worker died")
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("ready", "partial"),
    [
        ("starting the pool", "during the pool's start-up; fastest so far: none"),
        ("round 1 of 3: serial", "during round 1 of 3: serial; fastest so far: none"),
        ("round 1 of 3: threads", "during round 1 of 3: threads; fastest so far: serial "),
        ("round 1 of 3: processes", "during round 1 of 3: processes; fastest so far: serial "),
    ],
    ids=["worker-start-up", "serial", "threads", "processes"],
)
def test_ctrl_c_exits_130_quickly_and_leaves_no_process(
    runner: ScriptRunner, ready: str, partial: str
) -> None:
    line = runner.ctrl_c("process_pool", "--size", "200000", "--workers", "2", ready=ready)
    assert line.startswith(f"interrupted {partial}"), line
