# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Shut an async service down gracefully on SIGTERM or Ctrl-C, within a grace period, then force.

Pattern:       The loop turns the first SIGTERM or SIGINT into a stop request and ignores the rest.
               On a stop, every task is cancelled and gets a grace period to clean up in `finally`
               (release, flush, log) and re-raise. A task still running after the grace ignored
               its cancellation: the service abandons it and exits, as a supervisor's SIGKILL would.
When to use:   Any asyncio service run by systemd, Kubernetes or a terminal: it must stop when told,
               quickly, without losing work or leaking connections.
When not to:   Threads and processes cannot be cancelled like this (process_pool.py). Deadlines
               and cancellation inside one request or batch: async_cancellation.py.
Run:           uv run scripts/async_shutdown.py
               uv run scripts/async_shutdown.py --run-ms 60000   (then SIGTERM or Ctrl-C it)
Try it:        --swallow: one job swallows CancelledError; the shutdown waits out the whole grace,
               then abandons it ("abandoned 1", a connection still out) and exits 1.
               --run-ms 60000, then `kill -TERM <pid>`: figures, cleaned up = cancelled, exit 143.
               --run-ms 60000, then Ctrl-C: one "interrupted" line with the figures, exit 130.
"""

import asyncio
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
GRACE_S = 1.0  # after a stop: ample for a release and a flush, well inside Kubernetes' 30 s
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Tally:
    """What became of the jobs: cleaned_up == cancelled when every cancelled one cleaned up."""

    started: int = 0
    completed: int = 0
    cancelled: int = 0
    cleaned_up: int = 0
    swallowed: int = 0  # cancellations a job caught and ignored: the bug


async def job(
    name: str,
    work: Callable[[], Awaitable[T]],
    items: int,
    pool: asyncio.Queue[int],
    flush: Callable[[list[T]], Awaitable[None]],
    tally: Tally,
) -> None:
    """Do `items` pieces of work holding a connection from `pool`, then flush the results.

    Cancelled, it still releases the connection, flushes what it did and logs, then re-raises.
    """
    connection = await pool.get()
    tally.started += 1
    done: list[T] = []
    cancelled = False
    try:
        for _ in range(items):
            result = await work()
            done.append(result)
    except asyncio.CancelledError:
        cancelled = True
        tally.cancelled += 1
        raise  # never swallow it: the shutdown waits for it
    else:
        tally.completed += 1
    finally:  # every way out, a cancellation too: release, flush, log
        pool.put_nowait(connection)
        await flush(done)  # an await: a second cancellation here would cut the clean-up short
        log.info(
            "%s: stopped after %d of %d items, flushed, connection released", name, len(done), items
        )
        if cancelled:
            tally.cleaned_up += 1


async def shutdown(tasks: Collection[asyncio.Task[Any]], grace_s: float) -> set[asyncio.Task[Any]]:
    """Cancel the tasks and give them grace_s to clean up; return those still running.

    A task still running ignored its cancellation: all that is left is to abandon it (exit).
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return set()
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    return pending


def stop_on_signals(stop: Callable[[str], None]) -> None:
    """Call stop("SIGTERM") or stop("SIGINT") on the first of them; ignore any signal after it.

    A second signal must not cut the clean-up short (uv passes Ctrl-C on once more). Call it on
    the main thread's running loop: signals reach only the main thread.
    """
    loop = asyncio.get_running_loop()

    def first(signum: signal.Signals) -> None:
        for each in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(each)
            signal.signal(each, signal.SIG_IGN)
        stop(signum.name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, first, signum)


# --- Demo plumbing: a service of jobs, its stop, and the figures ---------------------------------
SPARE_GRACES = 3  # jobs outlast the run by this many grace periods, so a stop always cancels them
COLUMNS = ("started", "completed", "cancelled", "cleaned_up", "swallowed")


async def item(seconds: float) -> float:
    """One piece of simulated I/O."""
    await asyncio.sleep(seconds)
    return seconds


async def flush(results: list[float]) -> None:
    await asyncio.sleep(0)  # stands in for a write, which yields to the loop


async def swallowing_job(
    name: str, seconds: float, items: int, pool: asyncio.Queue[int], tally: Tally
) -> None:
    """THE BUG behind --swallow: it catches CancelledError and carries on, so nothing stops it."""
    connection = await pool.get()
    tally.started += 1
    done = 0
    while done < items:  # bounded, so that the demo still ends if it is never abandoned
        try:
            await item(seconds)
            done += 1
        except asyncio.CancelledError:  # the bug: never swallow a cancellation
            tally.swallowed += 1
            log.warning("%s swallowed a cancellation and carries on", name)
    pool.put_nowait(connection)
    tally.completed += 1


@dataclass
class Stop:
    """Why and when the service was told to stop: a signal, or the end of its run."""

    reason: str = ""
    at: float = 0.0
    asked: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, reason: str) -> None:
        if not self.asked.is_set():
            self.reason = reason
            self.at = time.perf_counter()
            self.asked.set()


async def service(
    jobs: int, item_s: float, run_s: float, grace_s: float, swallow: bool
) -> dict[str, Any]:
    """Run `jobs` jobs until the timer, SIGTERM or Ctrl-C; shut them down; return the figures."""
    stop = Stop()
    stop_on_signals(stop)
    pool: asyncio.Queue[int] = asyncio.Queue()
    for connection in range(jobs):
        pool.put_nowait(connection)
    tally = Tally()
    items = math.ceil((run_s + SPARE_GRACES * grace_s) / item_s)
    workers = []
    for number in range(jobs):
        if swallow and number == 0:
            work = swallowing_job("job #0", item_s, items, pool, tally)
        else:
            work = job(f"job #{number}", partial(item, item_s), items, pool, flush, tally)
        workers.append(asyncio.create_task(work))
    asyncio.get_running_loop().call_later(run_s, stop, "timer")  # a no-op after a signal
    click.echo(f"running: {jobs} jobs; they stop in {run_s:g} s, or on SIGTERM or Ctrl-C", err=True)
    await stop.asked.wait()
    stuck = await shutdown(workers, grace_s)
    shutdown_s = time.perf_counter() - stop.at
    return {
        **asdict(tally),
        "abandoned": len(stuck),
        "connections_out": jobs - pool.qsize(),
        "stopped_by": stop.reason,
        "grace_s": grace_s,
        "shutdown_s": round(shutdown_s, 3),
    }


def finish(figures: dict[str, Any], as_json: bool) -> int:
    """Say what happened, the way the stop asks for; return the exit code."""
    if figures["stopped_by"] == "SIGINT":  # Ctrl-C: one line on stderr, nothing on stdout
        counts = ", ".join(f"{figures[key]} {key.replace('_', ' ')}" for key in COLUMNS)
        out = f"{figures['abandoned']} abandoned, {figures['connections_out']} connections out"
        shut = f"{out}; shut down in {figures['shutdown_s']:.2f} s"
        click.echo(f"interrupted: {counts}, {shut}", err=True)
        return 130
    if as_json:
        click.echo(json.dumps(figures))
    else:
        table = Table(*(key.replace("_", " ") for key in COLUMNS), "abandoned", "connections out")
        counts = [str(figures[key]) for key in (*COLUMNS, "abandoned", "connections_out")]
        table.add_row(*counts)
        Console().print(table)
        shut = f"stopped by {figures['stopped_by']}, shut down in {figures['shutdown_s']:.2f} s"
        click.echo(f"{shut} (grace {figures['grace_s']:g} s)")
    if figures["abandoned"]:  # the shutdown was not clean, whatever asked for it
        return 1
    return 143 if figures["stopped_by"] == "SIGTERM" else 0  # 128 + 15, as a shell reports it


def demo_run(
    jobs: int, item_s: float, run_s: float, grace_s: float, swallow: bool, as_json: bool
) -> int:
    """Run the service and report it; force the exit if a job would not stop."""

    async def main() -> int:
        figures = await service(jobs, item_s, run_s, grace_s, swallow)
        code = finish(figures, as_json)
        if figures["abandoned"]:  # force: leave without them, as SIGKILL would; no clean-up runs
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code

    return asyncio.run(main())


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--jobs", type=click.IntRange(1, 1000), default=8, help="Jobs the service runs.")
@click.option("--item-ms", type=click.IntRange(1, 10_000), default=50, help="Time per item (ms).")
@click.option(
    "--run-ms", type=click.IntRange(0, 86_400_000), default=1000, help="Time until it stops (ms)."
)
@click.option(
    "--grace-ms",
    type=click.IntRange(1, 60_000),
    default=int(GRACE_S * 1000),
    help="Time jobs get to clean up after a stop, before they are abandoned, in milliseconds.",
)
@click.option("--swallow", is_flag=True, help="Make one job swallow its cancellation (the bug).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.pass_context
def cli(
    ctx: click.Context,
    jobs: int,
    item_ms: int,
    run_ms: int,
    grace_ms: int,
    swallow: bool,
    as_json: bool,
) -> None:
    """Run a service of jobs until its timer, SIGTERM or Ctrl-C stops it, then shut it down.

    Exit status: 0 when the timer stops it, 143 on SIGTERM (after the figures), 130 on Ctrl-C
    (one line); 1 after a timer or SIGTERM stop that had to abandon a job.
    """
    ctx.exit(demo_run(jobs, item_ms / 1000, run_ms / 1000, grace_ms / 1000, swallow, as_json))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C before the service listens for it
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
