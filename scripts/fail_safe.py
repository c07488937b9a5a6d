# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Serve a fallback, or the last good value, when an optional dependency fails.

Pattern:       @fail_safe(default=...) wraps a sync or async call to a dependency the caller can
               do without. It catches only the errors in swallow= (OSError and httpx's by default,
               never Exception itself), logs each with its type, and serves the last good value
               while fresh, else the default. CancelledError, KeyboardInterrupt, SystemExit and
               PROGRAMMING_ERRORS (TypeError, AttributeError, NameError, ...) always propagate.
               Typed (ParamSpec): the result is the function's return type or the default's.
When to use:   Optional data (an exchange rate, recommendations, a banner) where a stale or default
               answer beats an error page, and a caller that cannot wait long for it.
When not to:   Critical data (payments, auth, stock levels): fail loudly. Answers that depend on
               the arguments: this keeps one last value per function; use a cache keyed by them.
               A dependency down for long: stop calling it (circuit_breaker.py).
               A method: its one last good value is shared by every instance of the class.
               A malformed answer (a 200 that is not JSON) is not swallowed by default: list it.
Run:           uv run scripts/fail_safe.py
               uv run scripts/fail_safe.py --max-age 0 --json
Try it:        --max-age 0: no last good value is fresh enough, so every failure serves the default.
               --timeout 0.05: the elapsed time drops by the hang's cost; the fallback is the same.
               Read the warnings on stderr: one per swallowed failure, with its type.
"""

import functools
import inspect
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, ParamSpec, TypeVar, overload

import click
import httpx
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
P = ParamSpec("P")
R = TypeVar("R")  # what the wrapped function returns
D = TypeVar("D")  # the default's type: the decorated function returns R | D
log = logging.getLogger(__name__)

# An optional dependency failing: the network (OSError includes ConnectionError, and the
# TimeoutError that asyncio.timeout raises) or httpx (no answer, or a 4xx/5xx raised for status).
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (OSError, httpx.HTTPError)
# Bugs, never swallowed, even by a fail_safe told to swallow every Exception.
PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, AssertionError, NotImplementedError)


class fail_safe(Generic[D]):  # noqa: N801 - a decorator, named as one
    """Serve the last good value younger than max_age_s, else `default`, when a call fails.

    Only the `swallow` errors are caught: Exception subclasses, but not Exception itself. So
    CancelledError, KeyboardInterrupt and SystemExit always propagate, and PROGRAMMING_ERRORS do
    even when a listed class covers them; any other error a listed class covers is swallowed
    (a KeyError, if LookupError is listed). Each decorated function keeps one last good value,
    whatever its arguments.
    """

    def __init__(
        self,
        default: D,
        *,
        swallow: tuple[type[Exception], ...] = DEPENDENCY_ERRORS,
        max_age_s: float = math.inf,
        on_fallback: Callable[[str], None] | None = None,  # told "last good" or "default"
    ) -> None:
        for kind in swallow:
            if kind is Exception or not issubclass(kind, Exception):  # it would catch bugs too
                raise TypeError(f"fail_safe swallows Exception subclasses only, not {kind}")
        self.default = default
        self.swallow = swallow
        self.max_age_s = max_age_s
        self.on_fallback = on_fallback

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R | D]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R | D]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        name = getattr(func, "__name__", repr(func))  # a callable object may have none
        good: tuple[Any, float] | None = None  # the last good answer and when it came

        def keep(value: Any) -> Any:
            nonlocal good
            good = (value, time.monotonic())  # one assignment: safe from any thread
            return value

        def fall_back(error: Exception) -> Any:
            last = good
            served = "default"
            value = self.default
            if last is not None and time.monotonic() - last[1] < self.max_age_s:
                served = "last good"
                value = last[0]
            reason = type(error).__name__
            detail = str(error).partition("\n")[0]
            if detail:  # a bare TimeoutError() has none: its type says it all
                reason = f"{reason}: {detail}"
            log.warning("%s failed, %s; serving the %s value", name, reason, served)
            if self.on_fallback is not None:
                self.on_fallback(served)
            return value

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    value = await func(*args, **kwargs)
                except self.swallow as error:
                    if isinstance(error, PROGRAMMING_ERRORS):
                        raise
                    return fall_back(error)
                return keep(value)

            return guarded_async

        @functools.wraps(func)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                value = func(*args, **kwargs)
            except self.swallow as error:
                if isinstance(error, PROGRAMMING_ERRORS):
                    raise
                return fall_back(error)
            return keep(value)

        return guarded


# --- Demo plumbing -------------------------------------------------------------------------------
# What the dependency does at each call: answer a rate, fail with a 503, or hang (a timeout).
SCRIPT = ("fail", "ok/1.07", "ok/1.09", "fail", "hang", "ok/1.08", "fail")
DEFAULT_RATE = 1.0  # what a caller can live with when no rate came: no conversion


class Dependency(BaseHTTPRequestHandler):
    """GET /ok/<rate> answers {"rate": rate}; /hang waits until the server stops; else 503."""

    timeout = 1.0  # a connection that never sends its request (a client cut short) is dropped

    def __init__(self, *args: Any, stopping: threading.Event, **kwargs: Any) -> None:
        self.stopping = stopping
        super().__init__(*args, **kwargs)  # this handles the request, so it comes last

    def do_GET(self) -> None:
        if self.path == "/hang":
            self.stopping.wait()
            return  # hang up without a word
        if not self.path.startswith("/ok/"):
            self.send_error(503)
            return
        body = json.dumps({"rate": float(self.path.removeprefix("/ok/"))}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the table says what happened."""


@contextmanager
def dependency() -> Generator[str]:
    """Serve Dependency on a free loopback port; every thread it started ends on the way out."""
    stopping = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Dependency, stopping=stopping))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        stopping.set()  # the hanging requests end
        server.shutdown()
        thread.join()
        server.server_close()


@dataclass(frozen=True)
class Served:
    """A row of the table: what the dependency did, the rate the caller got, and from where."""

    step: str
    rate: float
    source: str  # "fresh", "last good" or "default"


def serve_rates(client: httpx.Client, base: str, max_age_s: float, served: list[Served]) -> None:
    """Call a fail-safe exchange rate once per SCRIPT step; note where each answer came from."""
    fallbacks: list[str] = []  # the hook's reports: "last good" or "default"

    @fail_safe(default=DEFAULT_RATE, max_age_s=max_age_s, on_fallback=fallbacks.append)
    def exchange_rate(step: str) -> float:
        response = client.get(f"{base}/{step}")  # the client's timeout bounds the hang
        response.raise_for_status()
        return float(response.json()["rate"])

    for step in SCRIPT:
        before = len(fallbacks)
        rate = exchange_rate(step)
        source = fallbacks[-1] if len(fallbacks) > before else "fresh"
        served.append(Served(step, rate, source))


# --- CLI -----------------------------------------------------------------------------------------
class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which slip past its bounds."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--timeout", type=FiniteFloat(0.01, 60), default=0.3, help="Seconds to wait for an answer."
)
@click.option(
    "--max-age",
    type=FiniteFloat(min=0),
    default=60.0,
    help="Serve the last good value only while it is younger than this many seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(timeout: float, max_age: float, as_json: bool) -> None:
    """Call a flaky exchange-rate service through @fail_safe and count what it served."""
    logging.basicConfig(format="%(levelname)s %(message)s")  # what fail_safe swallowed, on stderr
    log.setLevel(logging.INFO)
    served: list[Served] = []
    started = time.monotonic()
    with dependency() as base, httpx.Client(timeout=timeout) as client:
        try:
            serve_rates(client, base, max_age, served)
        except KeyboardInterrupt as err:  # fail_safe let it through, as it must
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # uv passes a second Ctrl-C on
            fell_back = sum(row.source != "fresh" for row in served)
            done = f"{len(served)} of {len(SCRIPT)} calls, {fell_back} served by the fallback"
            raise click.Abort(f"interrupted after {done}") from err
    sources = [row.source for row in served]
    figures = {
        "calls": len(served),
        "fallbacks": len(served) - sources.count("fresh"),
        "last_good_served": sources.count("last good"),
        "default_served": sources.count("default"),
        "elapsed_s": round(time.monotonic() - started, 2),
    }
    if as_json:
        click.echo(json.dumps(figures))
        return
    caption = (
        f"{figures['calls']} calls, {figures['fallbacks']} fallbacks "
        f"({figures['last_good_served']} last good, {figures['default_served']} default) "
        f"in {figures['elapsed_s']:.2f} s"
    )
    table = Table("call", "dependency", "rate served", "from", title="fail_safe", caption=caption)
    for number, row in enumerate(served, 1):
        table.add_row(str(number), row.step.replace("/", " "), f"{row.rate:.2f}", row.source)
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
