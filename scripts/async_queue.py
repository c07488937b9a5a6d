# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Feed W workers through a bounded asyncio.Queue, so memory stays flat however many items come.

Pattern:       A producer awaits queue.put() on an asyncio.Queue(maxsize): when the workers fall
               behind it waits, so at most maxsize items sit in memory (backpressure). W consumers
               handle items and pass results to one collector over a second bounded queue.
               Shutdown is queue.join() then cancel: join waits until every item is done, and the
               idle consumers, parked in get(), lose nothing when cancelled (no sentinel count).
               State shared across an await needs an asyncio.Lock, or updates are lost.
When to use:   A stream of work bigger than memory, or of unknown length, handled by a fixed
               number of concurrent I/O-bound workers (crawls, message consumers, ETL steps).
When not to:   A known, modest list of calls: a semaphore over gather (async_fetch.py) is simpler.
               CPU-bound work (process_pool.py). Work that must survive a crash: use a broker.
Run:           uv run scripts/async_queue.py
               uv run scripts/async_queue.py --workers 50 --items 2000 --latency-ms 50
Try it:        --maxsize 0: the queue is unbounded, and peak memory grows with the items (10x).
               --no-lock: the shared counter loses updates; lost_updates is no longer 0.
               --workers 5: elapsed follows the ideal N x latency / W, with 10x fewer workers.
"""

import asyncio
import json
import signal
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PipelineStats:
    collected: int
    peak_depth: int  # the most items ever waiting in the input queue: never above its maxsize
    elapsed_s: float


async def pipeline(
    items: Iterable[T],
    handle: Callable[[T], Awaitable[R]],
    collect: Callable[[R], None],
    *,
    workers: int,
    maxsize: int,
) -> PipelineStats:
    """Handle every item with `workers` tasks at once; pass each result to `collect`, in one task.

    `items` is read lazily, one at a time, as the queue makes room (maxsize 0: no bound at all).
    An exception from `handle` stops the pipeline and comes out in an ExceptionGroup: return
    failures as results to keep going. Cancelling the caller cancels every task it started.
    """
    inbox: asyncio.Queue[T] = asyncio.Queue(maxsize)
    outbox: asyncio.Queue[R] = asyncio.Queue(maxsize)
    collected = 0
    peak_depth = 0

    async def consume() -> None:
        while True:
            item = await inbox.get()
            try:
                await outbox.put(await handle(item))
            finally:
                inbox.task_done()  # even on failure, or join() below would wait forever

    async def collect_all() -> None:
        nonlocal collected
        while True:
            result = await outbox.get()
            collect(result)
            collected += 1
            outbox.task_done()

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(consume()) for _ in range(workers)]
        tasks.append(group.create_task(collect_all()))
        for item in items:
            await inbox.put(item)  # waits while the queue is full: the backpressure
            peak_depth = max(peak_depth, inbox.qsize())  # the depth only grows on a put
        await inbox.join()  # every item handled...
        await outbox.join()  # ...and every result collected
        for task in tasks:  # now all of them wait in get(), holding nothing
            task.cancel()
    return PipelineStats(collected, peak_depth, time.perf_counter() - started)


class SharedCounter:
    """A count many tasks update, with an await (saving it) between reading and writing it."""

    def __init__(self, save: Callable[[int], Awaitable[None]], *, locked: bool = True) -> None:
        self.value = 0
        self.save = save
        self.lock = asyncio.Lock() if locked else None  # unlocked only to show the bug

    async def add(self, amount: int = 1) -> None:
        if self.lock is None:
            await self._read_save_write(amount)
        else:
            async with self.lock:  # one task at a time from the read to the write
                await self._read_save_write(amount)

    async def _read_save_write(self, amount: int) -> None:
        new = self.value + amount
        await self.save(new)  # unlocked, other tasks read the old value while this one waits
        self.value = new  # ...and then each writes old + 1: their updates are lost


# --- Demo plumbing: items with a payload, a simulated I/O wait, and the numbers ---------------
ITEM_BYTES = 1024  # each item carries 1 KiB, so items waiting in memory show in the peak


def jobs(count: int) -> Iterator[bytes]:
    """Made one at a time, as the queue takes them: a file or a cursor would do the same."""
    for _ in range(count):
        yield bytes(ITEM_BYTES)


async def save_nowhere(value: int) -> None:
    """Stands in for writing the count to a database: it lets other tasks run meanwhile."""
    await asyncio.sleep(0)


def make_handler(latency_s: float, counter: SharedCounter) -> Callable[[bytes], Awaitable[int]]:
    async def handle(job: bytes) -> int:
        await asyncio.sleep(latency_s)  # the I/O wait: a call to a service, a query
        await counter.add(1)
        return len(job)

    return handle


@dataclass
class Progress:  # how far the demo got, for the line Ctrl-C prints
    phase: str = "timed run"
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class Run:
    stats: PipelineStats
    peak_memory_kib: float  # the most memory Python allocated during the run (tracemalloc)
    lost_updates: int  # items handled minus what the shared counter says


async def measure(
    count: int, workers: int, maxsize: int, latency_s: float, locked: bool, progress: Progress
) -> Run:
    """One pipeline run over `count` fresh jobs, with its peak memory and lost counter updates."""
    counter = SharedCounter(save_nowhere, locked=locked)
    handle = make_handler(latency_s, counter)
    progress.done = 0
    progress.total = count

    def collect(size: int) -> None:
        progress.done += 1

    tracemalloc.start()
    try:
        stats = await pipeline(jobs(count), handle, collect, workers=workers, maxsize=maxsize)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Run(stats, round(peak / 1024, 1), stats.collected - counter.value)


def cancel_on_ctrl_c() -> None:
    """The first Ctrl-C cancels the running task; later ones (uv passes one on) are ignored."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def cancel() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second cancel would cut the clean-up
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, cancel)


@dataclass(frozen=True)
class Demo:
    main: Run
    memory: list[dict[str, float]]  # peak memory at N and 10N items, bounded and unbounded


async def demo(
    items: int, workers: int, maxsize: int, latency_s: float, locked: bool, progress: Progress
) -> Demo:
    """The timed run, then the memory check: no I/O wait there, as it changes no peak."""
    cancel_on_ctrl_c()  # from here on Ctrl-C cancels this run, and its figures so far are kept
    click.echo(f"pipeline: workers: {workers}, maxsize: {maxsize or 'no bound'}", err=True)
    main = await measure(items, workers, maxsize, latency_s, locked, progress)
    progress.phase = "timed run finished; memory check"
    memory = []
    for bound in sorted({maxsize, 0}, reverse=True):
        for count in (items, 10 * items):
            probe = await measure(count, workers, bound, 0.0, True, progress)
            row = {"maxsize": bound, "items": count, "peak_memory_kib": probe.peak_memory_kib}
            memory.append(row)
    return Demo(main, memory)


def show(figures: dict, demo_run: Demo) -> None:
    """The figures as two tables, on stdout."""
    bound = figures["maxsize"] or "no bound"
    title = f"items: {figures['items']:,}, workers: {figures['workers']}, maxsize: {bound}"
    table = Table(show_header=False, title=title)
    table.add_row("peak queue depth", f"{figures['peak_depth']:,}")
    table.add_row("elapsed", f"{figures['elapsed_s']:.2f} s")
    table.add_row("ideal: N x latency / W", f"{figures['ideal_s']:.2f} s: {figures['ratio']}x")
    table.add_row("peak memory", f"{figures['peak_memory_kib']:,.0f} KiB")
    lock = "with the lock" if figures["lock"] else "without the lock"
    table.add_row(f"lost counter updates ({lock})", f"{figures['lost_updates']:,}")
    console = Console()
    console.print(table)
    memory = Table("maxsize", "items", "peak memory", title="Peak memory as the items grow 10x")
    for row in demo_run.memory:
        kib = f"{row['peak_memory_kib']:,.0f} KiB"
        memory.add_row(str(row["maxsize"] or "no bound"), f"{row['items']:,}", kib)
    console.print(memory)


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--items", type=click.IntRange(1, 10_000), default=1000, help="Items to handle.")
@click.option("--workers", type=click.IntRange(1, 1000), default=50, help="Consumer tasks.")
@click.option(
    "--maxsize", type=click.IntRange(0, 100_000), default=100, help="Queue bound; 0: no bound."
)
@click.option(
    "--latency-ms", type=click.IntRange(1, 10_000), default=20, help="I/O wait for each item."
)
@click.option("--lock/--no-lock", default=True, help="Guard the shared counter with a lock.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def cli(items: int, workers: int, maxsize: int, latency_ms: int, lock: bool, as_json: bool) -> None:
    """Handle items with a producer, W consumers and a collector over bounded queues."""
    progress = Progress()
    try:
        demo_run = asyncio.run(demo(items, workers, maxsize, latency_ms / 1000, lock, progress))
    except asyncio.CancelledError as err:  # by Ctrl-C
        done = f"{progress.done:,} of {progress.total:,} items done"
        raise click.Abort(f"interrupted: {done} ({progress.phase})") from err
    stats = demo_run.main.stats
    ideal = items * latency_ms / 1000 / workers  # N x L / W
    figures = {
        "items": items,
        "workers": workers,
        "maxsize": maxsize,
        "latency_ms": latency_ms,
        "lock": lock,
        "peak_depth": stats.peak_depth,
        "peak_memory_kib": demo_run.main.peak_memory_kib,
        "elapsed_s": round(stats.elapsed_s, 4),
        "ideal_s": round(ideal, 4),
        "ratio": round(stats.elapsed_s / ideal, 4),
        "lost_updates": demo_run.main.lost_updates,
        "memory": demo_run.memory,
    }
    if as_json:
        click.echo(json.dumps(figures))
    else:
        show(figures, demo_run)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
