# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Spread the retries of many clients with jitter, so a recovering service is not hit at once.

Pattern:       Clients that fail together and back off by the same rule come back together, round
               after round: a thundering herd. Full jitter (tenacity's `wait_random_exponential`)
               draws each wait at random from a window that doubles per attempt, so the herd
               spreads out. A Retry-After must be honoured, never undercut, but the same value for
               everyone re-forms the herd: `retry_after_then_jitter` (a `wait_retry_after` plus
               full jitter) waits what the server asked, then spreads the clients out after it.
When to use:   Many clients or workers retrying one dependency: a fleet after a deploy, job workers.
When not to:   One caller, one call: jitter buys nothing there (retry_client.py has the policy).
Run:           uv run scripts/retry_jitter.py
               uv run scripts/retry_jitter.py --mode none --json
Try it:        --mode none: each round leaves within a few hundredths of a second: still a herd.
               --mode retry-after: the same 1 s Retry-After for all brings the herd back together.
               --mode retry-after-jitter: never earlier than the server asked, and spread out again.
"""

import json
import signal
import sys
import threading
import time
from collections.abc import Generator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import click
import httpx
import tenacity
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
CAP_S = 5.0  # the widest jitter window; a Retry-After is waited in full, however long it is


def retry_after_s(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delay or HTTP-date); None if absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class wait_retry_after(tenacity.wait.wait_base):  # noqa: N801 - named as tenacity names its waits
    """Wait what the failed answer's Retry-After asked for; without one, the fallback wait."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, httpx.HTTPStatusError):
            asked = retry_after_s(error.response)
            if asked is not None:
                return asked
        return self.fallback(retry_state)


def retry_after_then_jitter(first_s: float, cap_s: float = CAP_S) -> tenacity.wait.wait_base:
    """The Retry-After's wait, if any, then full jitter: uniform in [0, min(first_s*2^n, cap_s)]."""
    full_jitter = tenacity.wait_random_exponential(multiplier=first_s, max=cap_s)
    return wait_retry_after(fallback=tenacity.wait_none()) + full_jitter


# --- Demo plumbing -------------------------------------------------------------------------------
MODES = ("none", "full", "retry-after", "retry-after-jitter")
SLOTS = 30  # the width of the timeline strip: the whole table fits 80 columns (a pipe, CI logs)


def wait_for(mode: str, first_s: float) -> tenacity.wait.wait_base:
    """The wait each demo mode uses; "none" is the plain exponential backoff, no jitter."""
    if mode == "none":
        return tenacity.wait_exponential(multiplier=first_s, max=CAP_S)
    full_jitter = tenacity.wait_random_exponential(multiplier=first_s, max=CAP_S)
    if mode == "full":
        return full_jitter
    if mode == "retry-after":
        return wait_retry_after(fallback=full_jitter)
    return retry_after_then_jitter(first_s)


@dataclass
class Service:
    """A service recovering from an outage: it turns each client away, then lets it in."""

    turn_away: int  # 503s per client before its request succeeds
    retry_after: int | None  # what each 503 asks for, in whole seconds, if anything
    visits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def visit(self, path: str) -> int:
        with self.lock:
            self.visits[path] = self.visits.get(path, 0) + 1
            return self.visits[path]


class ServiceHandler(BaseHTTPRequestHandler):
    def __init__(self, *args: Any, service: Service, **kwargs: Any) -> None:
        self.service = service
        super().__init__(*args, **kwargs)  # this handles the request, so it comes last

    def do_GET(self) -> None:
        if self.service.visit(self.path) > self.service.turn_away:
            self.send_response(200)
        else:
            self.send_response(503)
            if self.service.retry_after is not None:
                self.send_header("Retry-After", str(self.service.retry_after))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the table says what happened."""


class HerdServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the whole herd connects at once; a backlog of 5 would drop SYNs


@contextmanager
def service_on_loopback(service: Service) -> Generator[str]:
    """Serve `service` on a free loopback port; stopped on the way out, Ctrl-C too."""
    server = HerdServer(("127.0.0.1", 0), partial(ServiceHandler, service=service))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()  # shutdown() has waited for serve_forever() to return


class HerdStopped(Exception):  # noqa: N818 - not an error: Ctrl-C told the herd to stop
    """Raised instead of a client's next request once the herd is told to stop."""


@dataclass(frozen=True)
class Round:
    """When the requests of one attempt round went out, in seconds after the herd started."""

    round: int
    sent: int
    first_s: float
    spread_s: float


class Herd:
    """Send times per attempt round, recorded by tenacity's `before` hook from every client."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.sent: dict[int, list[float]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # set on Ctrl-C: wakes every waiting client

    def start(self) -> None:  # the start barrier's action: the clock starts when all are ready
        self.started = time.monotonic()

    def before(self, retry_state: tenacity.RetryCallState) -> None:
        # tenacity checks `stop` before its sleep: a client woken by Ctrl-C learns of it only here
        if self.stopping.is_set():
            raise HerdStopped
        at_s = time.monotonic() - self.started
        with self.lock:
            self.sent.setdefault(retry_state.attempt_number, []).append(at_s)

    def rounds(self) -> list[Round]:
        rounds = []
        for number, times in sorted(self.sent.items()):
            spread_s = max(times) - min(times)
            rounds.append(Round(number, len(times), round(min(times), 4), round(spread_s, 4)))
        return rounds


def run_herd(
    base: str, clients: int, attempts: int, wait: tenacity.wait.wait_base, herd: Herd
) -> None:
    """Release `clients` threads at once on `base`; setting `herd.stopping` ends them early."""
    start = threading.Barrier(clients, action=herd.start)
    retries = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(httpx.HTTPError),
        wait=wait,
        stop=tenacity.stop_after_attempt(attempts),
        sleep=tenacity.sleep_using_event(herd.stopping),
        before=herd.before,
        reraise=True,
    )
    with httpx.Client(timeout=5.0, limits=httpx.Limits(max_connections=clients)) as client:

        def one_client(url: str) -> None:
            start.wait()
            with suppress(HerdStopped, httpx.HTTPError):  # it gave up, or Ctrl-C stopped it
                retries(lambda: client.get(url).raise_for_status())

        urls = [f"{base}/client/{n}" for n in range(1, clients + 1)]
        threads = [threading.Thread(target=one_client, args=(url,)) for url in urls]
        for thread in threads:
            thread.start()
        for thread in threads:  # every client ends before the client and the server close
            thread.join()


def render(herd: Herd, title: str) -> Table:
    """A row per attempt round, with a strip of SLOTS marking when its requests went out."""
    end_s = max(max(times) for times in herd.sent.values())
    slot_s = max(end_s, 0.001) / SLOTS
    table = Table("round", "sent", "first t+ s", "spread s", f"sent between 0 and {end_s:.2f} s")
    table.title = title
    for r in herd.rounds():
        slots = {min(SLOTS - 1, int(at_s / slot_s)) for at_s in herd.sent[r.round]}
        strip = "".join("|" if slot in slots else "." for slot in range(SLOTS))
        table.add_row(str(r.round), str(r.sent), f"{r.first_s:.3f}", f"{r.spread_s:.3f}", strip)
    return table


# --- CLI -----------------------------------------------------------------------------------------


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--mode", type=click.Choice(MODES), default="full", help="How clients wait to retry.")
@click.option("--clients", type=click.IntRange(2, 100), default=20, help="Clients in the herd.")
@click.option("--attempts", type=click.IntRange(2, 10), default=4, help="Tries per client.")
@click.option("--backoff-ms", type=click.IntRange(10, 5000), default=200, help="First backoff, ms.")
@click.option(
    "--retry-after",
    type=click.IntRange(0, 10),
    default=1,
    help="Seconds each 503 asks clients to wait (Retry-After); in the retry-after modes only.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(
    mode: str, clients: int, attempts: int, backoff_ms: int, retry_after: int, as_json: bool
) -> None:
    """Release a herd of clients on a recovering service and measure how their retries spread."""
    service = Service(attempts - 1, retry_after if mode.startswith("retry-after") else None)
    title = f"{clients} clients, mode {mode}: each turned away {attempts - 1} times, then let in"
    herd = Herd()
    # Ctrl-C stops the herd, not KeyboardInterrupt mid-clean-up: a second one (uv's) changes nothing
    previous = signal.signal(signal.SIGINT, lambda signum, frame: herd.stopping.set())
    with service_on_loopback(service) as base:
        if not as_json:
            click.echo(title, err=True)
        run_herd(base, clients, attempts, wait_for(mode, backoff_ms / 1000), herd)
    if herd.stopping.is_set():  # one line with what happened so far, for run()
        sent = sum(len(times) for times in herd.sent.values())
        raise click.Abort(f"interrupted with {sent} of {clients * attempts} requests sent")
    signal.signal(signal.SIGINT, previous)  # after a Ctrl-C, the next one is still ignored
    rounds = herd.rounds()
    result = {
        "mode": mode,
        "clients": clients,
        "rounds": [asdict(r) for r in rounds],
        "second_round_spread_s": rounds[1].spread_s,
        "elapsed_s": round(time.monotonic() - herd.started, 3),
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    Console().print(render(herd, title))
    click.echo(f"second round spread {rounds[1].spread_s:.3f} s; elapsed {result['elapsed_s']} s")


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
