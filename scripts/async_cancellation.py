# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Stop async work on time: timeouts, and cancellation that cleans up.

Pattern:       asyncio.timeout() bounds a batch and wait_for() one call: both cancel what overruns.
               A cancelled task cleans up in `finally` (release, flush, log) and re-raises
               CancelledError, for whoever cancelled it waits for exactly that. TaskGroup, unlike
               gather, cancels the siblings of the first failure and raises an ExceptionGroup,
               handled with `except*`.
When to use:   Any asyncio code that must stop on a deadline or on the first failure, without
               leaking connections or losing the work already done.
When not to:   Threads and processes cannot be cancelled like this (process_pool.py); a blocking
               call inside a coroutine ignores cancellation until it returns (offload it first).
               Stopping a whole service on SIGTERM or Ctrl-C: async_shutdown.py.
Run:           uv run scripts/async_cancellation.py
               uv run scripts/async_cancellation.py --item-ms 10 --json
Try it:        Compare the gather() row with the TaskGroup row: gather raises at once but its
               siblings run on to the end; TaskGroup cancels them, and each one cleans up.
               Look at "cleaned up": it equals "cancelled" in every row, and "stop s" (the time
               from a deadline to the end of its clean-ups) stays near zero with --item-ms 500.
"""

import asyncio
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Tally:
    """What became of some tasks: cleaned_up == cancelled when every cancelled one cleaned up."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    cleaned_up: int = 0


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
        raise  # never swallow it: the canceller (a timeout, a TaskGroup) waits for it
    except Exception:
        tally.failed += 1
        raise
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


# --- Demo plumbing: four ways to be cancelled, and the figures -----------------------------------
BATCH = (1, 2, 3, 4, 5, 6)  # job lengths in items, under a deadline of 3.5 items: 3 are cut
BATCH_DEADLINE_ITEMS = 3.5
CALL_DEADLINE_ITEMS = 2  # the one call does 4 items: it is cut halfway
SIBLINGS = 4  # jobs in the gather() and TaskGroup steps; the first one fails
COLUMNS = ("started", "completed", "failed", "cancelled", "cleaned_up")


class JobFailedError(Exception):
    """A job's work failed: the upstream answered with an error."""


async def item(seconds: float, fails: bool = False) -> float:
    """One piece of simulated I/O."""
    await asyncio.sleep(seconds)
    if fails:
        raise JobFailedError("the upstream answered 500")
    return seconds


async def flush(results: list[float]) -> None:
    await asyncio.sleep(0)  # stands in for a write, which yields to the loop


@dataclass
class Step:
    name: str
    note: str = ""
    stop_s: float = 0.0  # from the deadline to the end of the clean-ups (timeout steps only)
    tally: Tally = field(default_factory=Tally)


class Demo:
    """One run's jobs: the connection pool they share, and a tally for each step."""

    def __init__(self, item_s: float, connections: int) -> None:
        self.item_s = item_s
        self.connections = connections
        self.pool: asyncio.Queue[int] = asyncio.Queue()
        for connection in range(connections):
            self.pool.put_nowait(connection)
        self.steps: list[Step] = []

    def step(self, name: str) -> Step:
        self.steps.append(Step(name))
        return self.steps[-1]

    def job(
        self, step: Step, number: int, items: int, fails: bool = False
    ) -> Coroutine[Any, Any, None]:
        work = partial(item, self.item_s, fails)
        return job(f"{step.name} #{number}", work, items, self.pool, flush, step.tally)


async def steps(demo: Demo) -> None:
    """The four ways a job gets cancelled, each on jobs that count what became of them."""
    loop = asyncio.get_running_loop()
    batch = demo.step(f"asyncio.timeout() on {len(BATCH)} jobs")
    deadline = loop.time() + BATCH_DEADLINE_ITEMS * demo.item_s
    try:
        async with asyncio.timeout_at(deadline), asyncio.TaskGroup() as group:
            for number, items in enumerate(BATCH):
                group.create_task(demo.job(batch, number, items))
    except TimeoutError:
        batch.note = "TimeoutError; the slow jobs cancelled"
        batch.stop_s = loop.time() - deadline

    call = demo.step("wait_for() on one call")
    timeout = CALL_DEADLINE_ITEMS * demo.item_s
    deadline = loop.time() + timeout
    try:
        await asyncio.wait_for(demo.job(call, 0, 2 * CALL_DEADLINE_ITEMS), timeout=timeout)
    except TimeoutError:
        call.note = "TimeoutError; the call cancelled"
        call.stop_s = loop.time() - deadline

    gathered = demo.step("gather(), one fails")
    tasks = [asyncio.ensure_future(demo.job(gathered, n, 3, fails=n == 0)) for n in range(SIBLINGS)]
    try:
        await asyncio.gather(*tasks)
    except JobFailedError:
        running = sum(1 for task in tasks if not task.done())
        gathered.note = f"raised at once; {running} siblings ran on"
        await asyncio.wait(tasks)  # gather() cancelled none of them: wait them out

    grouped = demo.step("TaskGroup, one fails")
    try:
        async with asyncio.TaskGroup() as group:
            for number in range(SIBLINGS):
                group.create_task(demo.job(grouped, number, 3, fails=number == 0))
    except* JobFailedError:
        grouped.note = "except* JobFailedError; siblings cancelled"


def figures_of(demo: Demo) -> dict[str, Any]:
    """The totals over every step, and each step's own row."""
    totals: Counter[str] = Counter()
    for step in demo.steps:
        totals.update(asdict(step.tally))
    rows = []
    for step in demo.steps:
        stop_s = round(step.stop_s, 3)
        rows.append({"step": step.name, **asdict(step.tally), "stop_s": stop_s, "note": step.note})
    return {
        **totals,
        "connections_out": demo.connections - demo.pool.qsize(),
        "shutdown_s": round(sum(step.stop_s for step in demo.steps), 3),
        "steps": rows,
    }


def demo_run(item_s: float, as_json: bool) -> int:
    """Run the four steps and report them; exit 1 if a connection was not given back."""

    async def main() -> dict[str, Any]:
        demo = Demo(item_s, connections=len(BATCH) + SIBLINGS)
        await steps(demo)
        return figures_of(demo)

    started = time.perf_counter()
    figures = asyncio.run(main())
    if as_json:
        click.echo(json.dumps(figures))
    else:
        table = Table("step", *(key.replace("_", " ") for key in COLUMNS), "stop s", "note")
        for row in figures["steps"]:
            counts = [str(row[key]) for key in COLUMNS]
            table.add_row(row["step"], *counts, f"{row['stop_s']:.3f}", row["note"])
        totals = [str(figures[key]) for key in COLUMNS]
        table.add_row("total", *totals, f"{figures['shutdown_s']:.3f}", "")
        Console().print(table)
        took = time.perf_counter() - started
        click.echo(f"{figures['connections_out']} connections still out; took {took:.2f} s")
    return 1 if figures["connections_out"] else 0


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--item-ms",
    type=click.IntRange(1, 10_000),
    default=50,
    help="Time one piece of a job's work takes, in milliseconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.pass_context
def cli(ctx: click.Context, item_ms: int, as_json: bool) -> None:
    """Cancel jobs four ways and count what became of them.

    Exit status: 0 when every connection came back, 1 when one did not.
    """
    ctx.exit(demo_run(item_ms / 1000, as_json))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click turns KeyboardInterrupt into Abort
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
