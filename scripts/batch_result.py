# /// script
# requires-python = ">=3.11"
# dependencies = ["aiohttp", "click", "rich", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Process a batch where some items fail, and return what succeeded and what failed, by kind.

Pattern:       process_batch() runs an async handler over every item, C at a time, and returns a
               typed BatchResult[T]: the items that succeeded, and a Failure (item, error,
               attempts) for each one that did not. The caller names the transient errors
               (retried for that item, with tenacity) and the poison (recorded, skipped); any
               other error is a bug and aborts the batch. The caller sets the failure policy.
When to use:   Imports, syncs, fan-out writes: one bad item among many must not sink the rest.
When not to:   All-or-nothing work (a DB transaction); items that depend on each other. A retry
               is only safe like this when the failure comes before the write (the busy ones), or
               the write is idempotent (an idempotency key, or an upsert by the item's id).
Run:           uv run scripts/batch_result.py
Try it:        --max-failure-rate 0.01: exit 1, as 2% of the orders are poison.
               --items 50 --json: 4 busy orders retried, 2 poison orders failed.
"""

import asyncio
import json
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Generic, TypeVar

import aiohttp
import click
import tenacity
from aiohttp import web
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
T = TypeVar("T")


@dataclass(frozen=True)
class Failure(Generic[T]):
    item: T
    error: Exception  # a poison error, or the last transient one when the retries ran out
    attempts: int


@dataclass(frozen=True)
class BatchResult(Generic[T]):
    succeeded: list[T]  # in the order they finished
    failed: list[Failure[T]]
    retries: int  # attempts beyond each item's first, over the whole batch
    elapsed_s: float

    @property
    def items(self) -> int:
        return len(self.succeeded) + len(self.failed)

    @property
    def failure_rate(self) -> float:
        return len(self.failed) / self.items if self.items else 0.0

    def failed_by_kind(self) -> dict[str, int]:
        """Failures counted by error type, the most common first."""
        kinds = Counter(type(failure.error).__name__ for failure in self.failed)
        return dict(kinds.most_common())


async def process_batch(
    items: Iterable[T],
    handle: Callable[[T], Awaitable[object]],
    retrying: tenacity.AsyncRetrying,
    concurrency: int,
    *,
    transient: tuple[type[Exception], ...],  # worth another try for the same item
    poison: tuple[type[Exception], ...],  # this item will never succeed: record it, move on
) -> BatchResult[T]:
    """Handle every item once, `concurrency` at a time: each ends succeeded or failed, not both.

    `retrying` gives the stop and the wait; what is retried is `transient`, never `poison` (its
    own retry= is replaced). Any other error is a bug: it aborts the batch.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    worth_retrying = tenacity.retry_if_exception_type(transient)
    retry = worth_retrying & tenacity.retry_if_not_exception_type(poison)
    succeeded: list[T] = []
    failed: list[Failure[T]] = []
    retries = 0
    pending = iter(items)  # shared by the workers: next() gives each item to exactly one of them

    async def worker() -> None:
        nonlocal retries
        for item in pending:
            # A copy per item: one AsyncRetrying shared by concurrent calls mixes up their state.
            # reraise: the handler's own error ends in the Failure, not tenacity's RetryError.
            attempt = retrying.copy(retry=retry, reraise=True)
            try:
                await attempt(handle, item)
                succeeded.append(item)
            except transient + poison as err:
                failed.append(Failure(item, err, attempt.statistics["attempt_number"]))
            retries += attempt.statistics["attempt_number"] - 1

    started = time.perf_counter()
    async with asyncio.TaskGroup() as workers:
        for _ in range(concurrency):
            workers.create_task(worker())
    return BatchResult(succeeded, failed, retries, time.perf_counter() - started)


# --- Demo plumbing: orders, an order service that fails some of them, the numbers ---------------
CONCURRENCY = 20  # writes in flight at once
ATTEMPTS = 3  # a busy answer is retried; the store turns an order away once only
WAIT = tenacity.wait_random_exponential(multiplier=0.01, max=1.0)  # from 10 ms, doubling, jittered
TIMEOUT = aiohttp.ClientTimeout(total=10.0)  # a request, all in: loopback answers in about 1 ms


@dataclass(frozen=True)
class Order:
    id: str
    sku: str
    quantity: int


def make_order(n: int) -> Order:
    """Order n. Poison, 2%: one in a hundred has no quantity, one a sku the store rejects."""
    quantity = 0 if n % 100 == 13 else 1 + n % 5  # the store answers 422
    sku = "SKU-\N{SNOWMAN}" if n % 100 == 37 else f"SKU-{n % 97}"  # the store answers 500
    return Order(f"o-{n:06d}", sku, quantity)


class StoreBusyError(Exception):
    """Try again later, nothing was written (the store said 503)."""


class InvalidOrderError(Exception):
    """The store says this order is invalid (it said 422)."""


class StoreFaultError(Exception):
    """This order trips a fault in the store, every time (it said 500)."""


ERROR_BY_STATUS = {503: StoreBusyError, 422: InvalidOrderError, 500: StoreFaultError}


@dataclass
class Ledger:
    """What the store did, by order id: the truth a BatchResult is checked against."""

    attempts: Counter[str] = field(default_factory=Counter)  # requests received
    writes: Counter[str] = field(default_factory=Counter)  # orders stored: each must end 0 or 1


@asynccontextmanager
async def order_store(ledger: Ledger) -> AsyncGenerator[Callable[[Order], Awaitable[None]]]:
    """The store, an HTTP service on a loopback port; yields a handler that POSTs it an order."""

    async def take_order(request: web.Request) -> web.Response:  # the store's side
        order = Order(**await request.json())
        ledger.attempts[order.id] += 1
        if order.quantity < 1:
            return web.Response(status=422, text="the quantity must be at least 1")
        if not order.sku.isascii():
            return web.Response(status=500, text=f"cannot store the sku {order.sku!r}")
        if order.id.endswith("7") and ledger.attempts[order.id] == 1:  # 1 in 10, on a first try
            return web.Response(status=503, text="busy, try again")
        ledger.writes[order.id] += 1
        return web.Response(status=201, text="stored")

    async def write(order: Order) -> None:  # the client's side (session and site: set up below)
        async with session.post(f"{site.name}/orders", json=asdict(order)) as response:
            if response.status in ERROR_BY_STATUS:
                raise ERROR_BY_STATUS[response.status](f"{order.id}: {await response.text()}")
            response.raise_for_status()  # any other error status is a bug: it aborts the batch

    app = web.Application()
    app.router.add_post("/orders", take_order)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:  # one: it keeps connections
            yield write
    finally:
        await runner.cleanup()


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


async def send_orders(count: int, ledger: Ledger) -> BatchResult[Order]:
    """Send `count` orders to a store of their own, retrying the busy answers up to 3 times."""
    cancel_on_ctrl_c()
    click.echo(f"sending {count:,} orders, {CONCURRENCY} at a time", err=True)
    retrying = tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(ATTEMPTS), wait=WAIT)
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        orders = bar.track((make_order(n) for n in range(count)), count, description="orders")
        async with order_store(ledger) as write:
            poison = (InvalidOrderError, StoreFaultError)
            return await process_batch(
                orders, write, retrying, CONCURRENCY, transient=(StoreBusyError,), poison=poison
            )


def show(result: BatchResult[Order], ledger: Ledger) -> None:
    table = Table(show_header=False, title=f"{result.items:,} orders in {result.elapsed_s:.2f} s")
    table.add_row("succeeded", f"{len(result.succeeded):,}, {ledger.writes.total():,} writes")
    table.add_row("failed", f"{len(result.failed):,}, {result.failure_rate:.2%} of the orders")
    for kind, count in result.failed_by_kind().items():
        example = next(f.error for f in result.failed if type(f.error).__name__ == kind)
        table.add_row(f"  {kind}", f"{count:,}, e.g. {example}")
    table.add_row("retries", f"{result.retries:,}")
    Console().print(table)


# --- CLI -----------------------------------------------------------------------------------------
def finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """A callback for a FloatRange, which lets nan through: it compares false with both bounds."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--items", type=click.IntRange(1, 10_000), default=10_000, help="Orders to send.")
@click.option(
    "--max-failure-rate",
    type=click.FloatRange(0, 1),
    callback=finite,
    default=0.05,
    help="Exit 1 when more than this share of the orders failed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(items: int, max_failure_rate: float, as_json: bool) -> None:
    """Write orders to a store that fails some of them; say what failed, by kind."""
    ledger = Ledger()
    try:
        result = asyncio.run(send_orders(items, ledger))
    except asyncio.CancelledError as err:  # by Ctrl-C
        raise click.Abort(f"interrupted: {ledger.writes.total():,} of {items:,} written") from err
    if as_json:
        figures = {
            "items": result.items,
            "succeeded": len(result.succeeded),
            "failed": len(result.failed),
            "failed_by_kind": result.failed_by_kind(),
            "retries": result.retries,
            "elapsed_s": round(result.elapsed_s, 3),
            "writes": ledger.writes.total(),
        }
        click.echo(json.dumps(figures))
    else:
        show(result, ledger)
    if result.failure_rate > max_failure_rate:
        rate = f"{result.failure_rate:.2%} of the orders failed"
        raise click.ClickException(f"{rate}, above --max-failure-rate {max_failure_rate:.2%}")


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
