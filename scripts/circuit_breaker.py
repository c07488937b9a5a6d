# /// script
# requires-python = ">=3.11"
# dependencies = ["aiohttp", "click", "httpx", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Stop calling a dependency that is down: a circuit breaker for async calls.

Pattern:       CircuitBreaker counts the failures you name, in a row; at the threshold it opens:
               calls fail at once (CircuitOpenError) instead of waiting out a timeout. After the
               cool-down one trial goes through (half-open: others still fail fast); success closes
               it, failure reopens it. fn needs its own timeout (the client's): a cancellation
               (asyncio.timeout around call()) never counts, and a hung trial holds it half-open.
When to use:   Many callers of one remote dependency whose outages last longer than a timeout.
When not to:   A single call's blip (retry_client.py). State shared by processes: purgatory (Redis).
               A small typed class, as pybreaker 1.4 does async only through Tornado, circuitbreaker
               2.1 lets every caller through half-open, and aiobreaker's last release is 2021.
Run:           uv run scripts/circuit_breaker.py [--json]   (with the breaker, then without)
               Reached in the outage: without it, rate x outage (150); with it, the threshold (5)
               + rate x timeout in flight as it trips (5, more if busy) + a trial a cool-down: ~12.
Try it:        --threshold 50: the breaker opens late; more requests reach the dead dependency.
               --cool-down-ms 100: more trials reach it, and it closes sooner after recovery.
               --timeout-ms 500: the ratio drops (50 calls in flight as it trips); waits grow 10x.
"""

import asyncio
import enum
import json
import logging
import signal
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import click
import httpx
from aiohttp import web
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
log = logging.getLogger("circuit_breaker")
P = ParamSpec("P")
T = TypeVar("T")


class State(enum.StrEnum):
    CLOSED = "closed"  # calls go through; counted failures in a row are counted
    OPEN = "open"  # calls fail at once until the cool-down has passed
    HALF_OPEN = "half-open"  # one trial call is in flight; the others fail at once


class CircuitOpenError(Exception):
    """Raised instead of calling: the breaker is open, or its one trial call is in flight."""


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5  # failures in a row that open it: rides out a blip, not an outage
    cool_down_s: float = 30.0  # open this long before a trial: about what a restart takes
    counted: tuple[type[Exception], ...] = (OSError,)  # timeouts, refused connections: a bug never


class CircuitBreaker:
    """One dependency's breaker, shared by all its callers, from any thread. An outcome counts
    only if the state is still the one the call started in: a slow call from before it opened
    never closes it. on_change runs under the lock: keep it quick; do not call the breaker."""

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State, State], None] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.clock = clock  # monotonic seconds
        self.on_change = on_change
        self.state = State.CLOSED  # read it; only the breaker sets it
        self._lock = threading.Lock()
        self._failures = 0  # counted failures in a row, in this state
        self._opened_at = 0.0
        self._epoch = 0  # one more at every change of state

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await fn(*args, **kwargs) if the breaker lets it through; else raise CircuitOpenError."""
        epoch = self._admit()
        try:
            result = await fn(*args, **kwargs)
        except Exception as err:  # an error not counted (a 404): it answered, so it is up
            self._settle(epoch, failed=isinstance(err, self.policy.counted))
            raise
        except BaseException:  # CancelledError, KeyboardInterrupt: the caller stopped, not it
            with self._lock:  # a cancelled trial hands its turn on: the cool-down has passed
                if epoch == self._epoch and self.state is State.HALF_OPEN:
                    self._change(State.OPEN)
            raise
        self._settle(epoch, failed=False)
        return result

    def _admit(self) -> int:
        with self._lock:
            if self.state is State.CLOSED:
                return self._epoch
            waited = self.clock() - self._opened_at
            if self.state is State.OPEN and waited >= self.policy.cool_down_s:
                self._change(State.HALF_OPEN)  # this call is the trial
                return self._epoch
            raise CircuitOpenError(f"circuit {self.name} is {self.state}")  # half-open: in trial

    def _settle(self, epoch: int, *, failed: bool) -> None:
        with self._lock:
            if epoch != self._epoch:
                return  # started before the last change: the breaker has moved on
            if not failed:
                self._failures = 0
                if self.state is State.HALF_OPEN:
                    self._change(State.CLOSED)
                return
            self._failures += 1
            if self.state is State.HALF_OPEN or self._failures >= self.policy.failure_threshold:
                self._opened_at = self.clock()
                self._change(State.OPEN)

    def _change(self, new: State) -> None:
        old = self.state
        self.state = new
        self._failures = 0
        self._epoch += 1
        level = logging.WARNING if new is State.OPEN else logging.INFO
        log.log(level, "circuit %s: %s -> %s", self.name, old, new)
        if self.on_change is not None:
            self.on_change(old, new)


# --- Demo plumbing -------------------------------------------------------------------------------
RATE = 100  # calls a second: 150 in the default outage, against about 12 with the breaker
AFTER_S = 0.7  # after recovery and one cool-down: time to see it close, even on a busy machine
MS = click.IntRange(1, 60_000)  # the CLI's durations
OUTAGE_MS = click.IntRange(100, 60_000)  # 10 calls or more reach it without the breaker


@dataclass
class Tally:
    """What one run's callers and its dependency saw."""

    t0: float = float("inf")  # time.monotonic() when the outage starts; before it, all is well
    short_circuited: int = 0
    reached_during_outage: int = 0  # requests that arrived at the dependency while it was down
    outage_ms: list[float] = field(default_factory=list)  # its median is the (inclusive) p50
    recovery_s: float | None = None  # recovery to the breaker closing; None: it never closed

    def now(self) -> float:
        return time.monotonic() - self.t0


async def outage_run(
    policy: BreakerPolicy | None, outage_s: float, timeout_s: float, bar: Progress
) -> dict[str, Any]:  # a JSON object, under the keys
    """One run's figures. A fresh client calls a fresh dependency every 1/RATE seconds, a task a
    call, through a breaker if given a policy; for outage_s, each request stalls until it ends.
    Without a breaker, nothing closes: the run ends at recovery."""
    cancel_on_ctrl_c()
    tally = Tally()

    def on_change(_old: State, new: State) -> None:
        if new is State.CLOSED and tally.recovery_s is None:  # it only closes after the outage
            tally.recovery_s = round(tally.now() - outage_s, 3)

    calls = round(outage_s * RATE)
    breaker = CircuitBreaker("dependency", policy, on_change=on_change) if policy else None
    if policy is not None:
        calls += round((policy.cool_down_s + AFTER_S) * RATE)

    async def answer(_request: web.Request) -> web.Response:
        now = tally.now()
        if 0 <= now < outage_s:
            tally.reached_during_outage += 1
            await asyncio.sleep(outage_s - now)  # answered once it recovers
        return web.Response(text="ok")

    async def call_once(client: httpx.AsyncClient, url: str) -> None:
        started = tally.now()
        try:
            if breaker is None:
                await client.get(url)
            else:
                await breaker.call(client.get, url)
        except CircuitOpenError:
            tally.short_circuited += 1
        except httpx.HTTPError:
            pass  # a timeout: the caller waited it out, which the latency shows
        if started < outage_s:
            tally.outage_ms.append((tally.now() - started) * 1000)

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    task = bar.add_task("with the breaker" if policy else "without", total=calls)
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client, asyncio.TaskGroup() as group:
            await client.get(site.name)  # a warm-up: the first call pays for imports, a connection
            tally.t0 = time.monotonic()  # the calls and the outage start now
            for i in range(calls):
                await asyncio.sleep(tally.t0 + i / RATE - time.monotonic())  # no drift
                group.create_task(call_once(client, site.name))
                bar.advance(task)
    finally:
        await runner.cleanup()
    return {
        "breaker": breaker is not None,
        "calls": calls,  # the task group has waited for every one
        "short_circuited": tally.short_circuited,
        "reached_dependency_during_outage": tally.reached_during_outage,
        "p50_outage_ms": round(statistics.median(tally.outage_ms), 3) if tally.outage_ms else None,
        "recovery_s": tally.recovery_s,
    }


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


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--outage-ms", type=OUTAGE_MS, default=1500, help="How long the dependency is down.")
@click.option("--timeout-ms", type=MS, default=50, help="Each call's timeout.")
@click.option("--threshold", type=click.IntRange(1, 1000), default=5, help="Failures to open.")
@click.option("--cool-down-ms", type=MS, default=1000, help="Time open before a trial call.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(outage_ms: int, timeout_ms: int, threshold: int, cool_down_ms: int, as_json: bool) -> None:
    """Call a dependency that goes down for a while, with a circuit breaker and without."""
    policy = BreakerPolicy(threshold, cool_down_ms / 1000, counted=(httpx.TransportError,))
    outage_s = outage_ms / 1000
    timeout_s = timeout_ms / 1000
    console = Console(stderr=True)
    handler = RichHandler(console=console, show_path=False)  # logs above the progress bar
    logging.basicConfig(format="%(message)s", handlers=[handler])  # the breaker's changes
    log.setLevel(logging.INFO)
    policies = [policy, None]  # with the breaker, then without
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        try:
            results = [asyncio.run(outage_run(each, outage_s, timeout_s, bar)) for each in policies]
        except (asyncio.CancelledError, KeyboardInterrupt) as err:  # Ctrl-C, at any moment
            made = [f"{task.completed:g} {task.description}" for task in bar.tasks]
            raise click.Abort(f"interrupted: calls made: {', '.join(made) or 'none'}") from err
    reached = [result["reached_dependency_during_outage"] for result in results]
    ratio = round(reached[1] / max(1, reached[0]), 1)
    if as_json:
        click.echo(json.dumps({"fewer_reached": ratio, "timeout_ms": timeout_ms, "runs": results}))
        return
    table = Table("", "with the breaker", "without")
    for key in list(results[0])[1:]:  # all but "breaker"
        table.add_row(key, *[str(result[key]) for result in results])
    Console().print(table)
    click.echo(f"{ratio:g}x fewer requests reached the dependency in its outage with the breaker")


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
