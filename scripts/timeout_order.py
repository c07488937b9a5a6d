# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Stack a timeout and a retry in the right order: outside bounds the call, inside each attempt.

Pattern:       @traced @with_timeout(s) @retry(...) on sync and async functions alike. The order is
               the lesson: a timeout outside the retry bounds the whole call (a hung first attempt
               uses it all up); inside, each attempt gets s, so the call may take attempts x s. A
               sync call cannot be stopped from outside (no killing a thread; SIGALRM is main-thread
               only), so its timeout is a deadline the I/O reads (time_left()) and the retry stops
               at. Production stacks use both: a per-attempt bound inside, a total one outside.
When to use:   A retried call that must answer within a budget: a handler's call to a dependency.
When not to:   Work that must finish (a payment, a migration): bound it by a lease, not a timeout.
               A sync callee that ignores time_left() is not bounded: run it in its own process.
Run:           uv run scripts/timeout_order.py
               uv run scripts/timeout_order.py --timeout-ms 500 --attempts 4 --json
Try it:        --attempts 1: both orders make one attempt and take the same time.
               --timeout-ms 1000: outside stays at 1 s; inside grows to attempts x 1 s.
"""

import asyncio
import functools
import inspect
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, ParamSpec, TypeVar, cast

import click
import httpx
import tenacity
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)

# Worth another attempt: no answer in time (TimeoutError is an OSError), or none at all.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OSError, httpx.TransportError)
DEADLINE: ContextVar[float | None] = ContextVar("deadline", default=None)  # on time.monotonic()


@contextmanager
def span(name: str) -> Generator[None]:
    """Log the block's outcome and duration at INFO: a trace span's worth, in one log line."""
    started = time.monotonic()
    outcome = "ok"
    try:
        yield
    except BaseException as error:  # a cancellation or a Ctrl-C too: logged, then re-raised
        outcome = type(error).__name__
        raise
    finally:
        log.info("%s: %s after %.2f s", name, outcome, time.monotonic() - started)


def traced(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap each call of a sync or async function in a span named after it."""
    name = getattr(func, "__name__", repr(func))  # a callable object may have none
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def traced_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            with span(name):
                return await func(*args, **kwargs)

        return cast(Callable[P, R], traced_async)

    @functools.wraps(func)
    def traced_sync(*args: P.args, **kwargs: P.kwargs) -> R:
        with span(name):
            return func(*args, **kwargs)

    return traced_sync


def time_left(cap_s: float) -> float:
    """The next I/O's timeout: cap_s, or less if a deadline is nearer; TimeoutError once past."""
    deadline = DEADLINE.get()
    if deadline is None:
        return cap_s
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline has passed")
    return min(cap_s, left)


@contextmanager
def deadline_in(seconds: float) -> Generator[None]:
    """Set a deadline `seconds` from now (never past an outer one); a failure after it times out."""
    deadline = time.monotonic() + seconds
    outer = DEADLINE.get()
    if outer is not None:
        deadline = min(deadline, outer)
    token = DEADLINE.set(deadline)
    try:
        yield
    except Exception as error:
        if time.monotonic() >= deadline and not isinstance(error, TimeoutError):
            raise TimeoutError(f"no answer within {seconds:g} s") from error
        raise
    finally:
        DEADLINE.reset(token)


def with_timeout(seconds: float) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Bound a call to `seconds`. A coroutine is cancelled (asyncio.timeout). A sync call cannot be
    stopped from outside: no killing a thread (a worker would be orphaned), and SIGALRM works in
    the main thread only. So its bound is a deadline that the I/O reads (time_left()) and the
    retry stops at (stop_at_deadline); a callee that ignores it is not bounded.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def bounded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with deadline_in(seconds):
                    async with asyncio.timeout(seconds):
                        return await func(*args, **kwargs)

            return cast(Callable[P, R], bounded_async)

        @functools.wraps(func)
        def bounded(*args: P.args, **kwargs: P.kwargs) -> R:
            with deadline_in(seconds):
                return func(*args, **kwargs)

        return bounded

    return decorate


class stop_at_deadline(tenacity.stop.stop_base):  # noqa: N801 - named as tenacity's stops are
    """Give up if the wait before the next attempt would reach an outer with_timeout's deadline."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        deadline = DEADLINE.get()
        return deadline is not None and time.monotonic() + retry_state.upcoming_sleep >= deadline


# --- Demo plumbing -------------------------------------------------------------------------------
RETRY_WAIT_S = 0.05  # short, so the attempts, not the waits, make the elapsed time
CLIENT_TIMEOUT_S = 5.0  # the client's own cap per I/O; the decorators' bound is shorter


class Counted:
    """The call to the dependency, sync and async, counting every attempt."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.attempts = 0

    def get(self, client: httpx.Client) -> httpx.Response:
        self.attempts += 1
        return client.get(self.url, timeout=time_left(CLIENT_TIMEOUT_S))

    async def aget(self, client: httpx.AsyncClient) -> httpx.Response:
        self.attempts += 1  # asyncio.timeout cancels it in time: the client's cap is a backstop
        return await client.get(self.url, timeout=CLIENT_TIMEOUT_S)


def both_orders(
    call: Callable[P, R], timeout_s: float, attempts: int
) -> list[tuple[str, Callable[P, R]]]:
    """The same decorators both ways around `call`, sync or async. traced(timeout(policy(call)))
    is what `@traced @with_timeout(s) @retry(...)` over `def call` builds: nearest wraps first.
    """
    policy = tenacity.retry(  # for sync and async functions alike
        stop=tenacity.stop_after_attempt(attempts) | stop_at_deadline(),
        wait=tenacity.wait_fixed(RETRY_WAIT_S),
        retry=tenacity.retry_if_exception_type(TRANSIENT_ERRORS),
        before_sleep=tenacity.before_sleep_log(log, logging.INFO),
        reraise=True,  # the last error, not tenacity's RetryError
    )
    timeout = with_timeout(timeout_s)
    return [
        ("timeout outside retry", traced(timeout(policy(call)))),
        ("timeout inside retry", traced(policy(timeout(call)))),
    ]


@dataclass(frozen=True)
class OrderRun:
    order: str
    mode: str  # "sync" or "async"
    attempts: int
    elapsed_s: float
    outcome: str  # "ok", or the type of the error the call raised


@contextmanager
def timed(order: str, mode: str, dep: Counted, done: Callable[[OrderRun], None]) -> Generator[None]:
    """Report an OrderRun for the block; its error is kept, as the outcome the demo shows."""
    started = time.monotonic()
    first = dep.attempts
    outcome = "ok"
    try:
        yield
    except Exception as error:  # noqa: BLE001 - reported in the outcome column
        outcome = type(error).__name__
    done(OrderRun(order, mode, dep.attempts - first, round(time.monotonic() - started, 3), outcome))


def run_orders(url: str, timeout_s: float, attempts: int, done: Callable[[OrderRun], None]) -> None:
    """Both orders against the hanging dependency: sync here, then async on an event loop."""
    dep = Counted(url)
    with httpx.Client() as client:
        for order, stacked in both_orders(dep.get, timeout_s, attempts):
            with timed(order, "sync", dep, done):
                stacked(client)

    async def run_async() -> None:
        async with httpx.AsyncClient() as client:
            for order, stacked in both_orders(dep.aget, timeout_s, attempts):
                with timed(order, "async", dep, done):
                    await stacked(client)

    asyncio.run(run_async())


# --- CLI -----------------------------------------------------------------------------------------
def attempts_text(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--timeout-ms", type=click.IntRange(10, 10_000), default=200, help="The timeout (ms)."
)
@click.option(
    "--attempts", type=click.IntRange(1, 10), default=3, help="Tries at most, the first included."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(timeout_ms: int, attempts: int, as_json: bool) -> None:
    """Call a dependency that hangs through both stacks, sync and async; count attempts and time."""
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
    log.addHandler(handler)  # each retry and each call's outcome, on stderr
    log.setLevel(logging.INFO)
    timeout = timeout_ms / 1000  # seconds
    runs: list[OrderRun] = []
    limit = f"a {timeout:g} s timeout and up to {attempts_text(attempts)}"
    try:
        # A dependency that hangs: the kernel accepts connections, and nobody ever reads them.
        with socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
            try:
                click.echo(f"both orders of {limit}, against a dependency that hangs", err=True)
                run_orders(url, timeout, attempts, runs.append)
            except KeyboardInterrupt as err:  # asyncio.run cancels on Ctrl-C, then raises this
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # uv passes a second Ctrl-C on
                so_far = [f"{row.mode} {row.order}: {attempts_text(row.attempts)}" for row in runs]
                message = "; ".join([f"interrupted after {len(runs)} of 4 runs", *so_far])
                raise click.Abort(message) from err
    finally:
        log.removeHandler(handler)
    if as_json:
        orders = [asdict(row) for row in runs]
        click.echo(json.dumps({"timeout_s": timeout, "max_attempts": attempts, "orders": orders}))
        return
    table = Table("order", "mode", "attempts", "elapsed", "outcome", title=limit)
    for row in runs:
        table.add_row(row.order, row.mode, str(row.attempts), f"{row.elapsed_s:.2f} s", row.outcome)
    Console().print(table)


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
