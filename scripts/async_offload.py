# /// script
# requires-python = ">=3.11"
# dependencies = ["aiohttp", "click", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Keep the event loop free: move blocking calls to a thread and CPU work to a process.

Pattern:       Stay fully sync or fully async: a coroutine runs until its next await, so one
               blocking call in it (time.sleep, requests.get, a CPU loop) stalls every timer,
               socket and task on the loop. In async code, send blocking I/O to asyncio.to_thread
               (it carries contextvars, a request id say) and CPU work to run_in_executor on a
               ProcessPoolExecutor (the GIL would stall a thread). A heartbeat every 5 ms measures
               the cost: how late the loop wakes up, and how many requests it served meanwhile.
When to use:   A sync library (DB driver, SDK, file I/O) or a CPU-heavy step in an async service.
When not to:   An async client exists (httpx, asyncpg): use it, no thread needed. All-CPU batch
               jobs: no event loop at all (process_pool.py). Tiny calls: a thread hop costs ~50 us.
Run:           uv run scripts/async_offload.py    (--json: one object with a "modes" list)
Try it:        --work-ms 1000: the inline rows' max lag grows to ~1 s; the offloaded rows stay low.
               Press Ctrl-C in an inline row: even Ctrl-C waits until the blocking call returns.
"""

import asyncio
import json
import multiprocessing
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field

import aiohttp
import click
from aiohttp import web
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
HEARTBEAT_S = 0.005  # a beat every 5 ms: finer than the 20 ms goal, coarse enough to cost nothing
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")


def blocking_call(seconds: float) -> str:
    """A sync call that waits (requests.get, a DB driver); returns the request id it sees."""
    time.sleep(seconds)
    return REQUEST_ID.get()


def crunch(seconds: float) -> int:
    """CPU-bound work holding the GIL for `seconds`; module level, so a spawned worker finds it."""
    deadline = time.perf_counter() + seconds
    rounds = 0
    while time.perf_counter() < deadline:
        sum(i * i for i in range(1_000))  # pure-Python arithmetic: the GIL stays held
        rounds += 1
    return rounds


async def call_inline(work: Callable[[float], object], seconds: float) -> object:
    return work(seconds)  # THE BUG: a coroutine that makes a blocking call, and the loop waits


async def io_to_thread(seconds: float) -> str:
    return await asyncio.to_thread(blocking_call, seconds)  # the loop runs on meanwhile


async def cpu_in_process(pool: Executor, seconds: float) -> int:
    loop = asyncio.get_running_loop()  # run_in_executor copies no contextvars: pass what it needs
    return await loop.run_in_executor(pool, crunch, seconds)


def ignore_sigint() -> None:
    """Pool initializer: Ctrl-C is the parent's to handle; a worker finishes its task."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def make_process_pool(workers: int) -> ProcessPoolExecutor:
    """Workers started by "spawn" (fresh interpreters, safe with threads), deaf to Ctrl-C."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=ignore_sigint)


class LagMonitor:
    """Within `async with`, wake every interval_s and record in lags_s how late each wake-up was."""

    def __init__(self, interval_s: float = HEARTBEAT_S) -> None:
        self.interval_s = interval_s
        self.lags_s: list[float] = []
        self._due = 0.0  # when the pending beat should wake up, on the loop's clock
        self._beating = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._due = loop.time() + self.interval_s
            self._beating.set()
            await asyncio.sleep(self.interval_s)
            self.lags_s.append(max(0.0, loop.time() - self._due))

    async def __aenter__(self) -> "LagMonitor":
        self._task = asyncio.create_task(self._beat())
        await self._beating.wait()  # the first beat is due before the caller's work starts
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        late = asyncio.get_running_loop().time() - self._due
        if late > 0:  # a beat overdue now (the loop was blocked until this moment) counts too
            self.lags_s.append(late)
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # waits for it to end; a cancel of ours still raises


# --- Demo plumbing: a server and a client on the same loop, and the four ways ---------------------
CLIENT_TIMEOUT_S = 10.0  # longer than the longest blocking call (--work-ms caps it at 1 s)
CLIENT_PAUSE_S = 0.002  # between requests: a steady trickle, not a load test
Work = Callable[[], Awaitable[object]]  # one way of doing the work, ready to await


@dataclass(frozen=True)
class ModeResult:
    mode: str
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    served: int  # requests the loop served while the work ran

    @classmethod
    def of(cls, mode: str, lags_s: Sequence[float], served: int) -> "ModeResult":
        """Percentiles by the collection's one method; one sample is all three; none is no lag."""
        ms = [round(1000 * lag, 3) for lag in lags_s] or [0.0]
        if len(ms) == 1:  # statistics.quantiles needs two points on Python 3.11
            return cls(mode, ms[0], ms[0], ms[0], served)
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        return cls(mode, round(cuts[49], 3), round(cuts[98], 3), max(ms), served)


@dataclass
class Progress:
    """The demo so far, which Ctrl-C reports: the way running, and the ways measured."""

    mode: str = "the start-up"
    results: list[ModeResult] = field(default_factory=list)
    request_id_in_thread: str = "-"
    served: int = 0  # requests the demo server answered


async def keep_asking(session: aiohttp.ClientSession, url: str) -> None:
    """The client: one request at a time, a short pause between them, until cancelled."""
    while True:
        async with session.get(url) as response:
            await response.read()
        await asyncio.sleep(CLIENT_PAUSE_S)


async def measure(mode: str, work: Work, progress: Progress) -> ModeResult:
    """Run one way's work under a LagMonitor, counting the requests served meanwhile."""
    async with LagMonitor() as monitor:
        before = progress.served
        await work()
        served = progress.served - before
    return ModeResult.of(mode, monitor.lags_s, served)


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


async def demo(pool: Executor, seconds: float, progress: Progress) -> None:
    """Serve and ask on this loop, and measure the lag while each way does the same work."""
    cancel_on_ctrl_c()

    async def ping(request: web.Request) -> web.Response:
        progress.served += 1
        return web.Response(text="pong")

    app = web.Application()
    app.router.add_get("/ping", ping)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S))
    client = asyncio.create_task(keep_asking(session, f"{site.name}/ping"))
    ways: dict[str, Work] = {
        "io inline": lambda: call_inline(blocking_call, seconds),
        "io to_thread": lambda: io_to_thread(seconds),
        "cpu inline": lambda: call_inline(crunch, seconds),
        "cpu process pool": lambda: cpu_in_process(pool, seconds),
    }
    try:
        for number, (mode, work) in enumerate(ways.items(), start=1):
            progress.mode = mode
            click.echo(f"measuring {mode} ({1000 * seconds:.0f} ms of work)", err=True)
            REQUEST_ID.set(f"request-{number}")  # as a middleware would, per request
            if mode == "io to_thread":
                progress.request_id_in_thread = await io_to_thread(0)
            progress.results.append(await measure(mode, work, progress))
    finally:
        client.cancel()
        await asyncio.wait([client])
        await session.close()
        await runner.cleanup()


@contextmanager
def demo_pool() -> Generator[Executor]:
    """One started worker (the work runs one task at a time); shut down on every path."""
    # Workers inherit this blocked SIGINT, so none dies of Ctrl-C before ignore_sigint() runs.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    pool = make_process_pool(1)
    try:
        pool.submit(int).result()  # start the worker now, not in the middle of a measurement
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        yield pool
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        pool.shutdown(wait=True, cancel_futures=True)  # a running task ends within --work-ms


def show(results: Sequence[ModeResult], request_id: str, seconds: float) -> None:
    title = f"Event-loop lag while {1000 * seconds:.0f} ms of work runs each way"
    table = Table(title=title, caption=f"request id read inside the to_thread call: {request_id}")
    for column in ("way", "lag p50 ms", "lag p99 ms", "lag max ms", "requests served"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for result in results:
        lags = [f"{ms:.1f}" for ms in (result.lag_p50_ms, result.lag_p99_ms, result.lag_max_ms)]
        table.add_row(result.mode, *lags, str(result.served))
    Console().print(table)


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--work-ms",
    type=click.IntRange(50, 1000),
    default=500,
    help="How long the work lasts in each way; Ctrl-C waits for a blocking call this long.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(work_ms: int, as_json: bool) -> None:
    """Do the same work four ways and measure how long the event loop is kept waiting."""
    seconds = work_ms / 1000
    progress = Progress()
    click.echo("starting a process pool (spawn, 1 worker)", err=True)
    try:
        with demo_pool() as pool:
            asyncio.run(demo(pool, seconds, progress))
    except (asyncio.CancelledError, KeyboardInterrupt) as err:  # Ctrl-C, in the loop or before it
        lags = [f"; {r.mode}: lag p99 {r.lag_p99_ms:.0f} ms" for r in progress.results]
        message = f"interrupted during {progress.mode}; ways measured: {len(progress.results)}"
        raise click.Abort(message + "".join(lags)) from err
    report = {
        "work_ms": work_ms,
        "request_id_in_thread": progress.request_id_in_thread,
        "modes": [asdict(result) for result in progress.results],
    }
    if as_json:
        click.echo(json.dumps(report))
    else:
        show(progress.results, progress.request_id_in_thread, seconds)


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
