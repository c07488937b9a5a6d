# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "click",
#     "rich",
# ]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Spread CPU-bound pure-Python work across cores with a process pool.

Pattern:       Threads cannot run Python bytecode in parallel (the GIL); processes can. Keep the
               work function at module level (spawned workers import it by name), send chunks big
               enough to make pickling cheap, keep a few futures in flight, not the whole input,
               and let the parent alone act on Ctrl-C, between tasks: cancel the queue, see
               every worker gone.
When to use:   Pure-Python CPU work in independent pieces with small inputs and results: parsing,
               scoring, simulations, image tiles. Here: counting primes, checked against serial.
When not to:   I/O (threads, asyncio); native code that releases the GIL (numpy: threads do); tiny
               tasks or huge arguments (pickling eats the gain); many machines (Celery, RQ, Dask).
Run:           uv run scripts/process_pool.py
               uv run scripts/process_pool.py --size 3000000 --workers 2 --json
Try it:        --workers 1: the process row drops to ~1x, so the speed-up is the cores.
               --chunksize 20 --size 200000: 10,000 tiny tasks, IPC dominates: processes lose.
               --crash: a worker is killed mid-run; the pool breaks and the script says so.
"""

import json
import math
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from multiprocessing.resource_tracker import _resource_tracker
from multiprocessing.synchronize import Semaphore
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------

# "spawn" starts each worker as a fresh interpreter that imports this file: it exists everywhere
# and, unlike "fork", is safe with threads in the parent. It costs a start-up (startup_s).
START_METHOD = "spawn"
# Numbers per task: a task costs ~0.35 ms of IPC (measured), 10,000 numbers 4-25 ms of work: IPC
# is ~2%, and at the end a core idles for one task at most. Far bigger: poor balance; smaller: IPC.
CHUNKSIZE = 10_000
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: no worker waits for the parent
SHUTDOWN_GRACE_S = 0.5  # after Ctrl-C, for running tasks (<= 25 ms) or start-ups to end
START_TIMEOUT_S = 30.0  # 0.1-0.9 s is normal; a worker not up by then never will be
# The cores this process may use, which a container can make fewer (3.13: os.process_cpu_count()).
WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
STOP_REQUESTED = threading.Event()  # set by Ctrl-C in the parent, acted on between tasks
T = TypeVar("T")
R = TypeVar("R")


def count_primes(numbers: range) -> int:
    """How many of `numbers` are prime, by trial division with divisors 6k +/- 1."""
    count = 0
    for n in numbers:
        if n < 4:
            count += n >= 2
        elif n % 2 and n % 3:
            for d in range(5, math.isqrt(n) + 1, 6):
                if n % d == 0 or n % (d + 2) == 0:
                    break
            else:
                count += 1
    return count


def chunks(size: int, chunksize: int) -> Iterator[range]:
    """range(size) in consecutive pieces, lazily; a range pickles as three ints, however long."""
    for start in range(0, size, chunksize):
        yield range(start, min(start + chunksize, size))


def map_bounded(
    executor: Executor,
    fn: Callable[[T], R],
    tasks: Iterable[T],
    max_in_flight: int,
    on_submit: Callable[[int], object] = lambda in_flight: None,
) -> Iterator[R]:
    """Yield fn(task) for every task, in completion order, with at most max_in_flight futures."""
    # Executor.map submits every task up front (its `buffersize` arrives in 3.14): a lazy stream of
    # a billion tasks would become a billion futures. on_submit(in_flight) observes the bound.
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
    finally:  # an error, or Ctrl-C in the consumer: drop what has not started
        for future in pending:
            future.cancel()


def request_stop(signum: int, frame: object) -> None:
    """The parent's SIGINT handler: note the request; whoever reads results stops between tasks."""
    # Raising KeyboardInterrupt here could land inside concurrent.futures while it holds a queue
    # lock, and shutdown() would wait on that lock for ever (seen here: 1 Ctrl-C in 40, on 3.11).
    STOP_REQUESTED.set()


def init_worker(ready: Semaphore) -> None:
    """Worker initializer: leave Ctrl-C to the parent, then report for work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited already with spawn; fork needs it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # the mask may be inherited too
    ready.release()


@contextmanager
def process_pool(workers: int, grace_s: float = SHUTDOWN_GRACE_S) -> Generator[ProcessPoolExecutor]:
    """Workers up and ignoring SIGINT; on exit, the queue cancelled and every worker gone."""
    context, before = multiprocessing.get_context(START_METHOD), multiprocessing.active_children()
    # While workers start, SIGINT is ignored (children keep "ignored" through exec, so none dies
    # booting) and blocked (so a Ctrl-C meanwhile waits, on Linux, for the parent's own handler).
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ready = context.Semaphore(0)  # the first semaphore starts the resource-tracker process
        # Reap that helper at exit instead of orphaning it, as Pythons from 2025 on do (gh-88887);
        # priority -1 runs after the semaphores are released. Private names: recheck on upgrade.
        multiprocessing.util.Finalize(None, _resource_tracker._stop, exitpriority=-1)  # ty: ignore[missing-attribute]
        executor = ProcessPoolExecutor(workers, context, init_worker, initargs=(ready,))
        for _ in range(workers):  # Python 3.11 starts one worker per submit(), up to `workers`
            executor.submit(int)
        # The executor's own list of processes is private: note the children it just started.
        processes = [child for child in multiprocessing.active_children() if child not in before]
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        for _ in range(workers):
            if not ready.acquire(timeout=START_TIMEOUT_S):
                raise TimeoutError(f"a worker did not start within {START_TIMEOUT_S} s")
        yield executor
    finally:
        # Workers finish their task, read the stop sentinel and exit; one whose task overruns
        # grace_s is terminated (the result is lost anyway). shutdown(wait=True) joins them all.
        timer = threading.Timer(grace_s, lambda: [process.terminate() for process in processes])
        timer.start()
        executor.shutdown(wait=True, cancel_futures=True)
        timer.cancel()


# --- Demo plumbing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What --json prints. processes_s is the job on a started pool, as a service keeps one."""

    workers: int
    tasks: int
    result: int
    results_match: bool
    serial_s: float
    threads_s: float
    processes_s: float
    startup_s: float  # not in processes_s; the table shows both
    speedup: float  # serial_s / processes_s


def tally(progress: Progress, mode: str, tasks: int, results: Iterable[int]) -> int:
    """Sum results as they arrive, on a progress bar whose clock times the phase."""
    bar, total = progress.add_task(mode, total=tasks), 0
    for value in results:
        if STOP_REQUESTED.is_set():  # between tasks, holding no lock: Ctrl-C acts here
            raise KeyboardInterrupt
        total += value
        progress.advance(bar)
    progress.stop_task(bar)
    return total


def summary(progress: Progress) -> str:
    """How far each phase got, and in how long: the partial results for the Ctrl-C line."""
    return ", ".join(
        f"{t.description} {t.completed:.0f}/{t.total:.0f} tasks in {t.elapsed or 0:.2f} s"
        for t in progress.tasks
    )


def compare(progress: Progress, size: int, chunksize: int, workers: int, crash: bool) -> Report:
    """The same chunks serially, on threads, then on processes (--crash: processes only)."""
    n, in_flight = math.ceil(size / chunksize), workers * IN_FLIGHT_PER_WORKER
    say = partial(progress.console.print, markup=False, soft_wrap=True)  # above a live bar
    serial = threaded = 0
    if not crash:
        say(f"serial: counting primes below {size:,} in {n} tasks")
        serial = tally(progress, "serial", n, map(count_primes, chunks(size, chunksize)))
        say(f"threads: {workers} threads taking turns with the GIL")
        with ThreadPoolExecutor(workers) as threads:
            results = map_bounded(threads, count_primes, chunks(size, chunksize), in_flight)
            threaded = tally(progress, "threads", n, results)
    say(f"processes: starting {workers} {START_METHOD} workers")
    started = time.perf_counter()
    with process_pool(workers) as pool:
        startup_s = round(time.perf_counter() - started, 4)
        say(f"processes: {workers} workers ready after {startup_s:.2f} s")
        if crash:  # a task that kills its worker outright, as the OOM killer would
            pool.submit(os._exit, 1)
        results = map_bounded(pool, count_primes, chunks(size, chunksize), in_flight)
        parallel = tally(progress, "processes", n, results)
    serial_s, threads_s, processes_s = (round(task.elapsed or 0.0, 4) for task in progress.tasks)
    return Report(
        workers=workers,
        tasks=n,
        result=parallel,
        results_match=serial == threaded == parallel,
        serial_s=serial_s,
        threads_s=threads_s,
        processes_s=processes_s,
        startup_s=startup_s,
        speedup=round(serial_s / processes_s, 3),
    )


def render(report: Report, size: int) -> Table:
    table = Table(title=f"Primes below {size:,} in {report.tasks} tasks")
    for column in ("mode", "workers", "seconds", "speed-up", "result"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    result = f"{report.result:,} " + ("\N{CHECK MARK}" if report.results_match else "\N{BALLOT X}")
    for mode, workers, s in [
        ("serial", 1, report.serial_s),
        ("threads (one GIL)", report.workers, report.threads_s),
        ("processes (pool started)", report.workers, report.processes_s),
        ("processes + pool start-up", report.workers, report.startup_s + report.processes_s),
    ]:
        table.add_row(mode, str(workers), f"{s:.2f}", f"{report.serial_s / s:.2f}x", result)
    return table


# --- CLI -----------------------------------------------------------------------------------------


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--size", type=click.IntRange(10_000), default=1_000_000, help="Primes below this.")
@click.option("--chunksize", type=click.IntRange(1), default=CHUNKSIZE, help="Numbers per task.")
@click.option("--workers", type=click.IntRange(1, 64), default=WORKERS, help="Pool size.")
@click.option("--crash", is_flag=True, help="Kill a worker mid-run to show a broken pool.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(size: int, chunksize: int, workers: int, crash: bool, as_json: bool) -> None:
    """Count primes serially, on threads and on processes, and compare."""
    signal.signal(signal.SIGINT, request_stop)
    stderr = Console(stderr=True)  # a live bar only on a terminal: logs get the status lines
    with Progress(console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        try:
            report = compare(progress, size, chunksize, workers, crash)
        except KeyboardInterrupt as err:  # main() prints it, once the live bar is gone
            raise click.Abort(f"interrupted: {summary(progress) or 'no task had started'}") from err
        except BrokenProcessPool as err:  # the OOM killer, say; a broken pool cannot be reused
            died = f"a worker process died abruptly ({summary(progress)}): the pool is broken"
            raise click.ClickException(died) from err
    if not report.results_match:
        raise click.ClickException(f"the modes disagree: {report}")
    if as_json:
        click.echo(json.dumps(asdict(report)))
    else:
        Console().print(render(report, size))


def main() -> None:
    """Run the CLI with the collection's exit codes: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        cli.main(standalone_mode=False)
    except click.UsageError as err:  # bad or missing arguments, named by click
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as err:  # expected runtime failures: one line, no traceback
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(1)
    except click.Abort as err:  # Ctrl-C: ours with the partial results, or click's own
        click.echo(str(err) or "interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
