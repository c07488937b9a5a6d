# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Spread CPU-bound pure-Python work across cores with a process pool.

Pattern:       Threads cannot run Python bytecode in parallel (the GIL); processes can. Keep the
               work function at module level (spawned workers import it by name), send chunks big
               enough to make pickling cheap, keep a few futures in flight, not the whole input,
               and start the workers up front: one that dies starting breaks the pool at once.
When to use:   Pure-Python CPU work in independent pieces with small inputs and results: parsing,
               scoring, simulations, image tiles. Here: counting primes, the same count each way.
When not to:   I/O (threads, asyncio); native code that releases the GIL (numpy: threads do); tiny
               tasks or huge arguments (pickling eats the gain); many machines (Celery, RQ, Dask).
Run:           uv run scripts/process_pool.py
Try it:        --workers 1: the process rows drop to ~1x, so the speed-up is the cores.
               --chunksize 20 --size 200000: 10,000 tiny tasks: processes lose, map_bounded most.
               --crash: the pool's first task kills its worker; the script says the pool broke.
"""

import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
# 10,000 numbers: 2-25 ms of work to ~0.35 ms of IPC; at the end a core idles one task at most.
CHUNKSIZE = 10_000
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: no worker waits for the parent
# The cores this process may use, which a container can make fewer (3.13: os.process_cpu_count()).
WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
T = TypeVar("T")
R = TypeVar("R")


def is_prime(n: int) -> bool:
    """Trial division by 2, by 3, then by 6k - 1 and 6k + 1 up to the square root of n."""
    if n < 4:
        return n >= 2
    if n % 2 == 0 or n % 3 == 0:
        return False
    for d in range(5, math.isqrt(n) + 1, 6):  # noqa: SIM110 - all() over a generator: ~1.6x slower
        if n % d == 0 or n % (d + 2) == 0:
            return False
    return True


def count_primes(numbers: range) -> int:
    """How many of `numbers` are prime: the work of one task."""
    return sum(1 for n in numbers if is_prime(n))


def chunks(size: int, chunksize: int) -> Iterator[range]:
    """range(size) in consecutive pieces, lazily; a range pickles as three ints, however long."""
    for start in range(0, size, chunksize):
        yield range(start, min(start + chunksize, size))


def start_workers(executor: ProcessPoolExecutor, workers: int) -> list[Future[int]]:
    """Start every worker now: a future each, done when it answers, broken if one died starting."""
    # Python 3.11 starts a worker per submit() while none is idle: a no-op each starts them all.
    return [executor.submit(int) for _ in range(workers)]


def map_bounded(
    executor: Executor,
    fn: Callable[[T], R],
    tasks: Iterable[T],
    max_in_flight: int,
    on_submit: Callable[[int], object] = lambda in_flight: None,
) -> Iterator[R]:
    """Yield fn(task) for every task, in completion order, with at most max_in_flight futures."""
    # Executor.map submits every task up front (its `buffersize` arrives in 3.14): a lazy stream of
    # a billion tasks would become a billion futures. The bound costs a round trip per task (a
    # worker may wait for the parent to submit the next): with tiny tasks, Executor.map is faster
    # (1.6 s against 1.0 s at --chunksize 20), so make tasks bigger. on_submit(in_flight) sees it.
    pending: set[Future[R]] = set()
    try:
        for task in tasks:
            if len(pending) >= max_in_flight:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
            pending.add(executor.submit(fn, task))
            on_submit(len(pending))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:  # an error, or the consumer stopped early: drop what has not started
        for future in pending:
            future.cancel()


# --- Demo plumbing -------------------------------------------------------------------------------
START_METHOD = "spawn"  # a fresh interpreter per worker: unlike "fork", safe with threads
# After Ctrl-C running tasks finish: at these caps one takes <= 0.15 s (20,000 numbers < 10**7).
MAX_SIZE = 10**7
MAX_CHUNKSIZE = 20_000
ROUNDS = 3  # runs of each mode; the fastest counts, as other programs can only add time (timeit)
MODES = ("serial", "threads", "processes", "Executor.map")  # processes: map_bounded on the pool


def ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the parent's to act on, between tasks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this also drops one held while it started
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextmanager
def demo_pool(workers: int, stop: threading.Event) -> Generator[ProcessPoolExecutor]:
    """A started pool whose workers leave Ctrl-C to us; leaving it drops the tasks not started."""
    context = multiprocessing.get_context(START_METHOD)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=ignore_sigint)
    # Workers inherit the blocked SIGINT: none dies of Ctrl-C before ignore_sigint() (bpo-33613).
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        starting = start_workers(pool, workers)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        while not stop.is_set() and wait(starting, timeout=0.05).not_done:
            continue  # each worker imports this file first: on a busy machine, for seconds
        if stop.is_set():  # Ctrl-C: stop them, not wait (3.14 has pool.terminate_workers())
            for worker in multiprocessing.active_children():  # the pool's are our only ones
                worker.terminate()
            raise KeyboardInterrupt
        yield pool
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        pool.shutdown(wait=True, cancel_futures=True)  # the running tasks end: see MAX_CHUNKSIZE


@dataclass
class Run:
    """The stop flag that Ctrl-C sets, what runs now, and each mode's seconds per round."""

    stop: threading.Event = field(default_factory=threading.Event)
    phase: str = "the pool's start-up"
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu_seconds: dict[str, list[float]] = field(default_factory=dict)  # of this thread

    def total(self, results: Iterable[int]) -> int:
        """Sum the results as they arrive; after Ctrl-C, stop between two of them."""
        answer = 0
        for value in results:
            if self.stop.is_set():
                raise KeyboardInterrupt
            answer += value
        return answer

    def summary(self) -> str:
        fastest = ", ".join(f"{mode} {min(runs):.2f} s" for mode, runs in self.seconds.items())
        return f"during {self.phase}; fastest so far: {fastest or 'none'}"


@dataclass(frozen=True)
class Report:
    """What --json prints. The processes run on a started pool, as a service keeps one."""

    workers: int
    results: dict[str, int]  # the primes each mode found: the same count, or a bug
    startup_s: float  # the pool's, apart from the timings
    seconds: dict[str, float]  # each mode's fastest round
    serial_cpu_s: float  # the serial run's CPU time: the work on one free core
    speedup: float  # serial_cpu_s / processes (map_bounded)
    bare_map_speedup: float  # serial_cpu_s / Executor.map on the same pool: map_bounded's match


def compare(size: int, chunksize: int, workers: int, crash: bool, run: Run) -> Report:
    """Start the pool, then run every mode on the same chunks in each round, all timed alike."""
    bound = workers * IN_FLIGHT_PER_WORKER
    click.echo(f"starting the pool ({START_METHOD}, workers: {workers})", err=True)
    started = time.perf_counter()
    with demo_pool(workers, run.stop) as pool, ThreadPoolExecutor(workers) as threads:
        startup_s = round(time.perf_counter() - started, 4)
        if crash:  # the pool's first task kills its worker with SIGKILL, as the OOM killer would
            run.phase = "the --crash run"
            pool.submit(signal.raise_signal, signal.SIGKILL).result()  # never returns a result
        results: dict[str, int] = {}
        for number in range(1, ROUNDS + 1):
            for mode in MODES:  # no live progress bar: it would take the GIL from some modes
                run.phase = f"round {number} of {ROUNDS}: {mode}"
                click.echo(run.phase, err=True)
                tasks = chunks(size, chunksize)  # a fresh stream of the same chunks
                started = time.perf_counter()
                cpu_started = time.thread_time()
                if mode == "serial":
                    counts = map(count_primes, tasks)
                elif mode == "Executor.map":  # this call submits every task at once
                    counts = pool.map(count_primes, tasks)
                else:
                    executor = threads if mode == "threads" else pool
                    counts = map_bounded(executor, count_primes, tasks, bound)
                results[mode] = run.total(counts)
                run.seconds.setdefault(mode, []).append(time.perf_counter() - started)
                run.cpu_seconds.setdefault(mode, []).append(time.thread_time() - cpu_started)
    fastest = {mode: round(min(runs), 4) for mode, runs in run.seconds.items()}
    # The baseline is the serial run's CPU time, not its wall time: on a shared machine the
    # scheduler can give one thread less than a core while N processes get more than one.
    serial_cpu_s = round(min(run.cpu_seconds["serial"]), 4)
    return Report(
        workers=workers,
        results=results,
        startup_s=startup_s,
        seconds=fastest,
        serial_cpu_s=serial_cpu_s,
        speedup=round(serial_cpu_s / fastest["processes"], 3),
        bare_map_speedup=round(serial_cpu_s / fastest["Executor.map"], 3),
    )


def render(report: Report, size: int) -> Table:
    counts = f"workers: {report.workers}, best of {ROUNDS}, start-up: {report.startup_s:.2f} s"
    baseline = f"speed-up: vs one core doing it all ({report.serial_cpu_s:.2f} s)"
    table = Table(title=f"Primes below {size:,}", caption=f"{counts}\n{baseline}")
    for column in ("mode", "primes", "seconds", "speed-up"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, seconds in report.seconds.items():
        primes = f"{report.results[mode]:,}"
        table.add_row(mode, primes, f"{seconds:.2f}", f"{report.serial_cpu_s / seconds:.2f}x")
    return table


# --- CLI -----------------------------------------------------------------------------------------


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--size",
    type=click.IntRange(10_000, MAX_SIZE),
    default=500_000,
    help="Count the primes below this number.",
)
@click.option(
    "--chunksize",
    type=click.IntRange(1, MAX_CHUNKSIZE),
    default=CHUNKSIZE,
    help="Numbers per task: big chunks cost less to send, small ones share the work out evenly.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=WORKERS,
    help="Worker processes in the pool, and threads in the threaded run.",
)
@click.option("--crash", is_flag=True, help="Kill a worker with the first task, as OOM would.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(size: int, chunksize: int, workers: int, crash: bool, as_json: bool) -> None:
    """Count primes serially, on threads and on processes, and compare the times."""
    state = Run()
    # Ctrl-C sets a flag read between tasks: a KeyboardInterrupt inside concurrent.futures can
    # leave shutdown() waiting for ever on a queue lock (seen: 1 Ctrl-C in 40, on 3.11).
    previous = signal.signal(signal.SIGINT, lambda signum, frame: state.stop.set())
    try:
        report = compare(size, chunksize, workers, crash, state)
    except KeyboardInterrupt as err:  # run() prints it
        raise click.Abort(f"interrupted {state.summary()}") from err
    except BrokenProcessPool as err:  # the OOM killer, say; a broken pool cannot be reused
        raise click.ClickException(f"the pool is broken: a worker died {state.summary()}") from err
    finally:  # after a Ctrl-C, ignore the second one uv passes on: it would cut the exit short
        signal.signal(signal.SIGINT, signal.SIG_IGN if state.stop.is_set() else previous)
    if as_json:
        click.echo(json.dumps(asdict(report)))
    else:
        Console().print(render(report, size))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
