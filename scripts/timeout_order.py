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
               A sync call cannot be stopped from outside, so its bound is a deadline its I/O
               reads (time_left()) and the retry stops at. Production stacks use both orders.
When to use:   A retried call that must answer within a budget: a handler's call to a dependency.
When not to:   Work that must finish (a payment, a migration): bound it by a lease, not a timeout.
               A sync callee that ignores time_left() is not bounded: run it in its own process.
Run:           uv run scripts/timeout_order.py
               uv run scripts/timeout_order.py --timeout-ms 500 --attempts 4 --json
Try it:        Default: inside answers on attempt 2; outside fails at 0.2 s, its budget spent.
               --attempts 1: no second attempt, so both orders fail after one timeout.
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
from functools import partial
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
    """Set a deadline `seconds` from now (never past an outer one). An I/O timeout at it, or an
    answer after it, raises TimeoutError; any other error passes through as it is.
    """
    deadline = time.monotonic() + seconds
    outer = DEADLINE.get()
    if outer is not None:
        deadline = min(deadline, outer)
    token = DEADLINE.set(deadline)
    try:
        yield
    except httpx.TimeoutException as error:  # the I/O gave up at the time_left() it was given
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no answer within {seconds:g} s") from error
        raise
    finally:
        DEADLINE.reset(token)
    if time.monotonic() > deadline:  # an answer that came too late is discarded
        raise TimeoutError(f"the answer came after {seconds:g} s")


def with_timeout(seconds: float) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Bound a call to `seconds`. A coroutine is cancelled (asyncio.timeout). A sync call cannot be
    stopped from outside: no killing a thread (a worker would be orphaned), and SIGALRM works in
    the main thread only. So its bound is a deadline that the I/O reads (time_left()) and the
    retry stops at (stop_at_deadline); a callee that ignores it is not bounded. The bound is
    enforced at I/O reads: httpx's timeout is per read, so a server that trickles bytes can keep a
    sync call running past the deadline; its late answer is then discarded (TimeoutError).
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def bounded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with deadline_in(seconds):
                    try:
                        async with asyncio.timeout(seconds) as timer:
                            return await func(*args, **kwargs)
                    except TimeoutError as error:
                        if timer.expired():  # ours, raised with no message: give it one
                            raise TimeoutError(f"no answer within {seconds:g} s") from error
                        raise

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
RETRY_WAIT_S = 0.05  # short, so the attempts, not the waits, make the elapsed time
CLIENT_TIMEOUT_S = 5.0  # the client's own cap per I/O; the decorators' bound is shorter


class FirstAttemptHangs(BaseHTTPRequestHandler):
    """GET /?attempt=1 hangs until the server stops; a later attempt is answered at once."""

    def __init__(self, *args: Any, stopping: threading.Event, **kwargs: Any) -> None:
        self.stopping = stopping
        super().__init__(*args, **kwargs)  # this handles the request, so it comes last

    def do_GET(self) -> None:
        if self.path == "/?attempt=1":
            self.stopping.wait()
            return  # hang up without a word
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the table says what happened."""


@contextmanager
def dependency() -> Generator[str]:
    """Serve FirstAttemptHangs on a free loopback port; every thread it started ends with it."""
    stopping = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(FirstAttemptHangs, stopping=stopping))
    server.daemon_threads = False  # so server_close() joins every request's thread
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        stopping.set()  # the hanging requests end
        server.shutdown()
        thread.join()
        server.server_close()


class Counted:
    """One call to the dependency, sync or async, numbering its attempts (the server hangs on 1)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.attempts = 0

    def get(self, client: httpx.Client) -> httpx.Response:
        self.attempts += 1
        params = {"attempt": self.attempts}
        return client.get(self.url, params=params, timeout=time_left(CLIENT_TIMEOUT_S))

    async def aget(self, client: httpx.AsyncClient) -> httpx.Response:
        self.attempts += 1  # asyncio.timeout cancels it in time: the client's cap is a backstop
        return await client.get(
            self.url, params={"attempt": self.attempts}, timeout=CLIENT_TIMEOUT_S
        )


def stack(order: str, call: Callable[P, R], timeout_s: float, attempts: int) -> Callable[P, R]:
    """`call` under the decorators in `order`, traced as "<sync or async> <order>". Outside,
    traced(timeout(policy(call))) is what @traced @with_timeout(s) @retry(...) on `call` builds.
    """
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


@dataclass(frozen=True)
class OrderRun:
    order: str
    mode: str  # "sync" or "async"
    attempts: int
    elapsed_s: float
    outcome: str  # "answer", or the type of the error the call raised


@contextmanager
def timed(order: str, mode: str, dep: Counted, done: Callable[[OrderRun], None]) -> Generator[None]:
    """Report an OrderRun for the block; its error is kept, as the outcome the demo shows."""
    started = time.monotonic()
    outcome = "answer"
    try:
        yield
    except Exception as error:  # noqa: BLE001 - reported in the outcome column
        outcome = type(error).__name__
    done(OrderRun(order, mode, dep.attempts, round(time.monotonic() - started, 3), outcome))


def run_orders(url: str, timeout_s: float, attempts: int, done: Callable[[OrderRun], None]) -> None:
    """Each order, sync then async, as a fresh call whose first attempt hangs."""
    with httpx.Client() as client:
        for order in ORDERS:
            dep = Counted(url)
            with timed(order, "sync", dep, done):
                stack(order, dep.get, timeout_s, attempts)(client)

    async def run_async() -> None:
        async with httpx.AsyncClient() as client:
            for order in ORDERS:
                dep = Counted(url)
                with timed(order, "async", dep, done):
                    await stack(order, dep.aget, timeout_s, attempts)(client)

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
    """Call a dependency that hangs on each call's first attempt, through both stacks."""
    logging.basicConfig(format="%(levelname)s %(message)s")  # retries and spans, on stderr
    log.setLevel(logging.INFO)
    timeout = timeout_ms / 1000  # seconds
    runs: list[OrderRun] = []
    limit = f"a {timeout:g} s timeout and up to {attempts_text(attempts)}"
    with dependency() as url:
        try:
            click.echo(f"both orders of {limit}, against a dependency that hangs", err=True)
            run_orders(url, timeout, attempts, runs.append)
        except KeyboardInterrupt as err:  # asyncio.run cancels on Ctrl-C, then raises this
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # uv passes a second Ctrl-C on
            so_far = [f"{row.mode} {row.order}: {attempts_text(row.attempts)}" for row in runs]
            message = "; ".join([f"interrupted after {len(runs)} of 4 runs", *so_far])
            raise click.Abort(message) from err
    if as_json:
        orders = [asdict(row) for row in runs]
        click.echo(json.dumps({"timeout_s": timeout, "max_attempts": attempts, "orders": orders}))
        return
    bounds = {ORDERS[0]: f"the call: {timeout:g} s", ORDERS[1]: f"each attempt: {timeout:g} s"}
    table = Table("order", "mode", "bounds", "attempts", "elapsed", "outcome", title=limit)
    for row in runs:
        elapsed = f"{row.elapsed_s:.2f} s"
        table.add_row(
            row.order, row.mode, bounds[row.order], str(row.attempts), elapsed, row.outcome
        )
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
