# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Stack a timeout and a retry in the right order: outside bounds the call, inside each attempt.

Pattern:       @traced                  one log line per call: its outcome and time
               @with_timeout(s)         outside the retry: s bounds the whole call
               @retry(...)              inside it instead: s bounds each attempt
               def call(...): ...       sync or async alike
               A sync call's bound is a deadline its I/O and the retry read. Use both in production.
When to use:   A retried call that must answer within a budget: a handler's call to a dependency.
When not to:   Work that must finish (a payment, a migration): bound it by a lease, not a timeout.
               A sync callee that ignores time_left() is not bounded: run it in its own process.
Run:           uv run scripts/timeout_order.py
Try it:        Default: inside answers on attempt 2; outside fails at 0.2 s, its budget spent.
               --timeout-ms 1000: outside still fails, at 1 s; inside answers after about 1 s.
"""

import asyncio
import functools
import inspect
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ParamSpec, TypeVar, cast

import click
import httpx
import tenacity
from rich.console import Console
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


def traced(func: Callable[P, R], name: str = "") -> Callable[P, R]:
    """Wrap each call of a sync or async function in a span: `name`, or the function's own."""
    span_name = name or getattr(func, "__name__", repr(func))  # a callable object may have none
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def traced_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            with span(span_name):
                return await func(*args, **kwargs)

        return cast(Callable[P, R], traced_async)

    @functools.wraps(func)
    def traced_sync(*args: P.args, **kwargs: P.kwargs) -> R:
        with span(span_name):
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
    """Set a deadline `seconds` from now (never past an outer one); an I/O timeout at it, or an
    answer after it, is a TimeoutError. Any other error (a KeyError, a 503) passes through."""
    deadline = time.monotonic() + seconds
    outer = DEADLINE.get()
    if outer is not None:
        deadline = min(deadline, outer)
    token = DEADLINE.set(deadline)
    try:
        yield
    except (httpx.TimeoutException, TimeoutError) as error:  # httpx's, or asyncio.timeout's
        if time.monotonic() >= deadline:  # the I/O gave up at the deadline
            raise TimeoutError(f"no answer within {seconds:g} s") from error
        raise
    finally:
        DEADLINE.reset(token)
    if time.monotonic() > deadline:  # an answer that came too late is discarded
        raise TimeoutError(f"the answer came after {seconds:g} s")


def with_timeout(seconds: float) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Bound a call to `seconds`. A coroutine is cancelled (asyncio.timeout); a sync call cannot be
    stopped from outside, so its I/O reads (time_left()) and retries (stop_at_deadline) keep it. A
    trickling server can hold a sync read past the deadline: its late answer is then discarded."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def bounded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with deadline_in(seconds):  # names asyncio's message-less TimeoutError
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
ORDERS = ("timeout outside retry", "timeout inside retry")
ATTEMPTS = 3  # enough for the retry inside to get its answer on attempt 2
RETRY_WAIT_S = 0.05  # short, so the attempts, not the waits, make the elapsed time
CLIENT_TIMEOUT_S = 5.0  # the client's own cap per I/O; the decorators' bound is shorter


class FirstAttemptHangs(BaseHTTPRequestHandler):
    """GET /?attempt=1 hangs until the client gives up; a later attempt is answered at once."""

    timeout = 1.0  # a connection that never sends its request (a client cut short) is dropped

    def do_GET(self) -> None:
        if self.path == "/?attempt=1":
            self.connection.settimeout(None)
            self.rfile.read()  # waits for bytes that never come, until the client hangs up
            return
        self.send_response_only(204)  # No Content; and no access-log line: the table says it all
        self.end_headers()


@contextmanager
def dependency() -> Generator[str]:
    """Serve FirstAttemptHangs on a free loopback port; closing it joins every request's thread."""
    with ThreadingHTTPServer(("127.0.0.1", 0), FirstAttemptHangs) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/"
        finally:
            server.shutdown()
            thread.join()


@dataclass
class OrderRun:
    """One call through one order: its attempts (the dependency hangs on the first), its time."""

    order: str
    mode: str  # "sync" or "async"
    attempts: int = 0
    elapsed_s: float = 0.0
    outcome: str = "answer"  # or the type of the error the call raised

    def get(self, client: httpx.Client, url: str) -> httpx.Response:
        self.attempts += 1
        params = {"attempt": self.attempts}
        return client.get(url, params=params, timeout=time_left(CLIENT_TIMEOUT_S))

    async def aget(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        self.attempts += 1  # asyncio.timeout cancels it in time: the client's cap is a backstop
        return await client.get(url, params={"attempt": self.attempts}, timeout=CLIENT_TIMEOUT_S)


def stack(order: str, call: Callable[P, R], timeout_s: float, attempts: int) -> Callable[P, R]:
    """`call` under both decorators in `order`: outside is @traced @with_timeout(s) @retry(...)."""
    policy = tenacity.retry(  # for sync and async functions alike
        stop=tenacity.stop_after_attempt(attempts) | stop_at_deadline(),
        wait=tenacity.wait_fixed(RETRY_WAIT_S),
        retry=tenacity.retry_if_exception_type(TRANSIENT_ERRORS),
        before_sleep=tenacity.before_sleep_log(log, logging.INFO),
        reraise=True,  # the last error, not tenacity's RetryError
    )
    timeout = with_timeout(timeout_s)
    name = f"{'async' if inspect.iscoroutinefunction(call) else 'sync'} {order}"
    if order == "timeout outside retry":
        return traced(timeout(policy(call)), name)
    return traced(policy(timeout(call)), name)


@contextmanager
def timed(order: str, mode: str, runs: list[OrderRun]) -> Generator[OrderRun]:
    """A run of `order` in `mode`, timed and added to `runs`; its error is kept as its outcome."""
    run = OrderRun(order, mode)
    started = time.monotonic()
    try:
        yield run
    except Exception as error:  # noqa: BLE001 - reported in the outcome column
        run.outcome = type(error).__name__
    run.elapsed_s = round(time.monotonic() - started, 3)
    runs.append(run)


def run_orders(url: str, timeout_s: float, runs: list[OrderRun]) -> None:
    """Each order, sync then async, as a fresh call whose first attempt hangs."""
    with httpx.Client() as client:
        for order in ORDERS:
            with timed(order, "sync", runs) as run:
                stack(order, run.get, timeout_s, ATTEMPTS)(client, url)

    async def run_async() -> None:
        async with httpx.AsyncClient() as client:
            for order in ORDERS:
                with timed(order, "async", runs) as run:
                    await stack(order, run.aget, timeout_s, ATTEMPTS)(client, url)

    asyncio.run(run_async())


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--timeout-ms", type=click.IntRange(10, 10_000), default=200, help="Timeout in ms.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(timeout_ms: int, as_json: bool) -> None:
    """Call a dependency that hangs on each call's first attempt, through both stacks."""
    logging.basicConfig(format="%(levelname)s %(message)s")  # retries and spans, on stderr
    log.setLevel(logging.INFO)
    timeout = timeout_ms / 1000  # seconds
    runs: list[OrderRun] = []
    limit = f"a {timeout:g} s timeout and up to {ATTEMPTS} attempts"
    with dependency() as url:
        try:
            click.echo(f"both orders of {limit}, against a dependency that hangs", err=True)
            run_orders(url, timeout, runs)
        except KeyboardInterrupt as err:  # asyncio.run cancels on Ctrl-C, then raises this
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # uv passes a second Ctrl-C on
            raise click.Abort(f"interrupted after {len(runs)} of 4 runs") from err
    if as_json:
        click.echo(json.dumps({"timeout_s": timeout, "orders": [asdict(row) for row in runs]}))
        return
    caption = f"outside: the whole call within {timeout:g} s; inside: {timeout:g} s per attempt"
    table = Table("order", "mode", "attempts", "elapsed", "outcome", title=limit, caption=caption)
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
