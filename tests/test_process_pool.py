"""Tests for scripts/process_pool.py: the pattern directly, then the script as a user runs it."""

import json
import math
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

import process_pool
from conftest import ScriptRunner

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


def test_processes_give_the_serial_answer_and_leave_no_worker() -> None:
    size, chunksize = 30_000, 1_000
    serial = sum(map(process_pool.count_primes, process_pool.chunks(size, chunksize)))
    before = set(multiprocessing.active_children())
    with process_pool.process_pool(workers=2) as pool:
        workers = set(multiprocessing.active_children()) - before
        tasks = process_pool.chunks(size, chunksize)
        parallel = sum(process_pool.map_bounded(pool, process_pool.count_primes, tasks, 4))
    assert len(workers) == 2
    assert parallel == serial == sieve_count(size)
    assert not any(worker.is_alive() for worker in workers)


def test_workers_ignore_sigint_and_the_parent_does_not() -> None:
    with process_pool.process_pool(workers=1) as pool:
        handler = pool.submit(signal.getsignal, signal.SIGINT).result()
        blocked = pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, []).result()
    assert handler == signal.SIG_IGN
    assert signal.SIGINT not in blocked  # blocked while spawning; init_worker() unblocks it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def block_forever(started: threading.Event) -> None:
    """A task that overruns any grace period: only terminate() ends it."""
    started.set()
    threading.Event().wait()


def test_leaving_the_pool_terminates_only_its_own_overrunning_workers() -> None:
    # The manager is a child process too, started before the pool: it must be left alone.
    with multiprocessing.get_context("spawn").Manager() as manager:
        started = manager.Event()
        before = set(multiprocessing.active_children())
        with process_pool.process_pool(workers=1, grace_s=0.1) as pool:
            (worker,) = set(multiprocessing.active_children()) - before
            future = pool.submit(block_forever, started)
            assert started.wait(timeout=60)
        assert worker.exitcode == -signal.SIGTERM
        with pytest.raises(BrokenProcessPool):
            future.result(timeout=60)
        assert started.is_set()  # the manager still answers


def test_a_worker_that_dies_breaks_the_pool() -> None:
    before = set(multiprocessing.active_children())
    with process_pool.process_pool(workers=2) as pool:
        workers = set(multiprocessing.active_children()) - before
        pool.submit(os._exit, 1)
        results = process_pool.map_bounded(pool, abs, range(-40, 0), 2)
        with pytest.raises(BrokenProcessPool):
            list(results)
    assert not any(worker.is_alive() for worker in workers)


# --- the script, as a user runs it ---------------------------------------------------------------


def test_json_has_the_timings_and_a_matching_result(runner: ScriptRunner) -> None:
    proc = runner.run("process_pool", "--size", "60000", "--chunksize", "5000", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("serial_s", "threads_s", "processes_s", "startup_s", "speedup"):
        assert isinstance(report[key], float)
        assert report[key] > 0
    assert report["workers"] == process_pool.WORKERS
    assert report["tasks"] == 12
    assert report["result"] == sieve_count(60_000)
    assert report["results_match"] is True
    assert report["speedup"] == pytest.approx(report["serial_s"] / report["processes_s"], rel=0.01)


def test_default_table_shows_three_modes(runner: ScriptRunner) -> None:
    proc = runner.run("process_pool", "--size", "40000", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    for mode in ("serial", "threads", "processes"):
        assert mode in proc.stdout
    assert f"{sieve_count(40_000):,}" in proc.stdout
    assert "\N{CHECK MARK}" in proc.stdout


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "many"], "--workers"),
        (["--size", "abc"], "--size"),
        (["--size", "0"], "--size"),
        (["--chunksize", "0"], "--chunksize"),
        (["--turbo"], "--turbo"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    runner: ScriptRunner, args: list[str], argument: str
) -> None:
    runner.usage_error("process_pool", *args, argument=argument)


def test_crash_reports_a_broken_pool(runner: ScriptRunner) -> None:
    proc = runner.run("process_pool", "--crash", "--size", "100000")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: a worker process died abruptly"), proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("ready", "partial"),
    [
        ("serial: counting", ""),
        ("threads: ", "serial 40/40 tasks in"),
        ("processes: starting", "threads 40/40 tasks in"),  # while the workers boot
        ("workers ready", "threads 40/40 tasks in"),  # while they compute
    ],
)
def test_ctrl_c_exits_130_quickly_and_leaves_no_process(
    runner: ScriptRunner, ready: str, partial: str
) -> None:
    line = runner.ctrl_c("process_pool", "--size", "400000", "--workers", "2", ready=ready)
    assert line.startswith("interrupted: ")
    assert partial in line
