# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Retry an HTTP call only on failures worth retrying, within an attempt and a time budget.

Pattern:       `fetch()` runs a request under tenacity's `Retrying` and retries only transient
               failures (connection errors, timeouts, dropped connections, 429/502/503/504),
               waiting what Retry-After asks (capped), else exponential backoff with full jitter.
               It stops after N attempts or before a wait that would pass the deadline, repeats
               only idempotent requests, and re-raises the last real error, not RetryError.
               Async: the same parts with tenacity.AsyncRetrying and httpx.AsyncClient.
When to use:   Calls to services that shed load or restart: rate limits, 503s during deploys.
When not to:   Under callers that retry too (pick one layer); for 4xx; long outages: use a breaker.
Run:           uv run scripts/retry_client.py
               uv run scripts/retry_client.py --url https://example.com/ --attempts 3 --json
Try it:        --deadline 1: the 1 s Retry-After would pass the deadline, so it gives up at once.
               --clients 20: jitter widens the spread of send times; Retry-After keeps it as is.
               --method POST: the 503 is not retried; add --idempotency-key k1 and it is.
"""

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import click
import httpx
import tenacity
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
# "Try again later": rate limited, or a gateway while its backend restarts. A 500 is likely a bug.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
# No answer at all: a refused or reset connection, a timeout, a connection closed early.
TRANSIENT_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
# RFC 9110 9.2.2: sending one of these twice has the same effect as once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
LOG = logging.getLogger("retry_client")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. The defaults suit an interactive call to a nearby service."""

    attempts: int = 5  # the first try included
    deadline_s: float = 15.0  # for everything: requests, waits and timeouts together
    max_wait_s: float = 5.0  # cap on one wait, a server's Retry-After included
    backoff_s: float = 0.2  # first backoff window, doubling per attempt; small, as it is jittered
    timeout_s: float = 5.0  # per request, cut to what is left of the deadline


@dataclass
class Attempt:
    """One try, added to the caller's timeline as it starts: a caller has it even after Ctrl-C."""

    number: int
    at_s: float  # seconds after the call began
    outcome: str = "no answer yet"
    status: int | None = None
    retry_after_s: float | None = None  # what the server asked for, if it did
    decision: str = ""


class TransientHTTPError(httpx.HTTPStatusError):
    """A 429/502/503/504 answer, raised so that tenacity can decide on exceptions alone."""


def retry_after_s(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delay or HTTP-date); None if absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # garbage: fall back to our own backoff
    when = when if when.tzinfo else when.replace(tzinfo=UTC)  # "-0000": UTC, says RFC 5322
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def fetch(client: httpx.Client, method: str, url: str, policy: RetryPolicy, timeline: list[Attempt],
          headers: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> httpx.Response:  # fmt: skip
    """Send a request, retrying transient failures; if all fail, re-raise the last real error."""
    sent, start = httpx.Headers(headers), clock()
    repeatable = method.upper() in IDEMPOTENT_METHODS or "Idempotency-Key" in sent
    retryable = (TransientHTTPError, *TRANSIENT_ERRORS)
    # Full jitter: uniform in [0, backoff * 2^n], so clients that failed together spread out.
    backoff = tenacity.wait_random_exponential(multiplier=policy.backoff_s, max=policy.max_wait_s)

    def attempt() -> httpx.Response:
        timeline.append(record := Attempt(len(timeline) + 1, clock() - start))
        # A hung server must not hold us past the deadline, so each timeout is cut to fit.
        timeout = max(0.01, min(policy.timeout_s, policy.deadline_s - record.at_s))
        try:
            response = client.request(method, url, headers=sent, timeout=timeout)
        except httpx.TransportError as err:
            record.outcome = type(err).__name__
            raise
        record.status = response.status_code
        record.outcome = f"{response.status_code} {response.reason_phrase}".strip()
        if response.status_code in TRANSIENT_STATUSES:
            record.retry_after_s = retry_after_s(response)
            raise TransientHTTPError(record.outcome, request=response.request, response=response)
        record.decision = "done" if response.is_success else ""
        return response.raise_for_status()

    def wait(state: tenacity.RetryCallState) -> float:  # the server's wish, if it said one
        hint = timeline[-1].retry_after_s
        return backoff(state) if hint is None else min(hint, policy.max_wait_s)

    def stop(state: tenacity.RetryCallState) -> bool:
        # stop_after_attempt(n) | stop_before_delay(s), in tenacity's words, on our own clock
        late = clock() - start + state.upcoming_sleep >= policy.deadline_s
        return late or state.attempt_number >= policy.attempts

    def before_sleep(state: tenacity.RetryCallState) -> None:
        last, why = timeline[-1], "backoff" if timeline[-1].retry_after_s is None else "Retry-After"
        last.decision = f"retrying in {state.upcoming_sleep:.2f} s ({why})"
        LOG.info("attempt %d failed (%s); %s", last.number, last.outcome, last.decision)

    retrying = tenacity.Retrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception_type(retryable) if repeatable else tenacity.retry_never,
        before_sleep=before_sleep,
        reraise=True,  # the caller gets the real 503 or ConnectError, not tenacity's RetryError
    )
    try:
        return retrying(attempt)
    except httpx.HTTPError as err:
        last, n, gave_up = timeline[-1], len(timeline), repeatable and isinstance(err, retryable)
        why = f"after {n} attempts" if n >= policy.attempts else "to keep the deadline"
        last.decision = f"gave up {why}" if gave_up else "not retried"
        err.add_note(f"{last.decision}: {', '.join(a.outcome for a in timeline)}")
        raise


# --- Demo plumbing -------------------------------------------------------------------------------
DEMO_STEPS = ((503, None), (429, 1), None, (200, None))  # (status, Retry-After); None: hang up


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers by path: /flaky/<client> walks DEMO_STEPS, /always/<status>[/<retry-after>]."""

    served: dict[str, int]  # per client, fresh per server; a client asks one at a time: no lock

    def answer(self) -> None:
        kind, _, rest = urlsplit(self.path).path.strip("/").partition("/")
        status, _, after = rest.partition("/")
        seen = self.served[rest] = self.served.get(rest, 0) + 1
        step = DEMO_STEPS[min(seen, len(DEMO_STEPS)) - 1] if kind == "flaky" else (404, None)
        if kind == "always" and status.isdigit():
            step = int(status), int(after) if after.isdigit() else None
        if step is None:
            return  # close without a word: the client sees httpx.RemoteProtocolError
        self.send_response(step[0])
        if step[1] is not None:
            self.send_header("Retry-After", str(step[1]))
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = answer  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: object) -> None: ...  # quiet: see the timeline


class DemoServer(ThreadingHTTPServer):
    request_queue_size = 64  # a herd of 50 connects at once; a backlog of 5 would drop SYNs


@contextmanager
def demo_server() -> Generator[str]:
    """Serve the scripted answers on a free loopback port; stopped on the way out, Ctrl-C too."""
    server = DemoServer(("127.0.0.1", 0), type("Handler", (ScriptedHandler,), {"served": {}}))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()  # shutdown() has waited for serve_forever() to return


def run_clients(urls: list[str], method: str, policy: RetryPolicy, headers: dict[str, str],
                timelines: list[list[Attempt]]) -> None:  # fmt: skip
    """One daemon thread per client, sharing a thread-safe httpx.Client; Ctrl-C ends join()."""

    def client(url: str, timeline: list[Attempt]) -> None:
        with suppress(httpx.HTTPError):  # the timeline says how it ended
            fetch(http, method, url, policy, timeline, headers)

    http = httpx.Client(follow_redirects=True)
    threads = [threading.Thread(target=client, args=job, name=f"client {n}", daemon=True)
               for n, job in enumerate(zip(urls, timelines, strict=True), start=1)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    http.close()  # not on Ctrl-C: closing it under a running thread makes that thread fail


def render(timelines: list[list[Attempt]], title: str) -> Table:
    """One client's timeline; for several, when each attempt went out and how spread out."""
    if len(timelines) == 1:
        table = Table("attempt", "t+ s", "outcome", "decision", title=title)
        for a in timelines[0]:
            table.add_row(str(a.number), f"{a.at_s:.2f}", a.outcome, a.decision)
        return table
    rounds = [[a.at_s for t in timelines for a in t if a.number == n] for n in range(1, 21)]
    end = max(0.1, *(a.at_s for t in timelines for a in t))
    table = Table("attempt", "clients", "spread s", f"sent at t+ 0 to {end:.2f} s", title=title)
    for n, times in enumerate(filter(None, rounds), start=1):
        hits = {int(t / end * 39) for t in times}  # one character per 1/40 of the run
        strip = "".join("|" if b in hits else "." for b in range(40))
        table.add_row(str(n), str(len(times)), f"{max(times) - min(times):.2f}", strip)
    return table


# --- CLI -----------------------------------------------------------------------------------------


def check_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    parts = urlsplit(value or "http://default")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"expected an http(s):// URL with a host, got {value!r}")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--url", callback=check_url, help="Call this URL instead of the embedded server.")
@click.option("--attempts", type=click.IntRange(1, 20), default=5, help="The first one included.")
@click.option("--deadline", type=click.FloatRange(0, 3600, min_open=True), default=15.0)
@click.option("--max-wait", type=click.FloatRange(0, 600), default=5.0, help="Cap on one wait.")
@click.option("--method", type=click.Choice(sorted(IDEMPOTENT_METHODS | {"POST"})), default="GET")
@click.option("--idempotency-key", help="Sent as Idempotency-Key: makes a POST retryable.")
@click.option("--clients", type=click.IntRange(1, 50), default=1, help="Clients at once.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(url: str | None, attempts: int, deadline: float, max_wait: float, method: str,
        idempotency_key: str | None, clients: int, as_json: bool) -> None:  # fmt: skip
    """Call a flaky HTTP service, retrying only what is worth retrying."""
    logging.basicConfig(format="%(threadName)s: %(message)s", stream=sys.stderr)
    LOG.setLevel(logging.INFO)  # our retry lines, not httpx's per-request ones
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    timelines, started = [list[Attempt]() for _ in range(clients)], time.monotonic()
    with demo_server() if url is None else nullcontext(url) as base:
        title = f"{method} {url or base + '/flaky/<n>'}, {clients} client(s)"
        click.echo(f"{title}: up to {attempts} attempts within {deadline:g} s", err=True)
        urls = [url or f"{base}/flaky/{n}" for n in range(1, clients + 1)]
        try:
            run_clients(urls, method, RetryPolicy(attempts, deadline, max_wait), headers, timelines)
        except KeyboardInterrupt as err:  # one line with what happened so far, for main()
            for handler in logging.root.handlers:  # held for good: no client logs after this
                handler.acquire()
            done = [a.outcome for t in timelines for a in t]
            so_far = f"after {len(done)} attempts: {', '.join(dict.fromkeys(done))}"  # each once
            raise click.Abort(f"interrupted {so_far}" if done else "") from err
    finals = [t[-1] for t in timelines]
    failed = [f"{a.decision}: {a.outcome}" for a in finals if a.decision != "done"]
    result = {
        "succeeded": not failed,
        "attempts": sum(map(len, timelines)),
        "elapsed_s": round(time.monotonic() - started, 3),
        "status": finals[0].status if len({a.status for a in finals}) == 1 else None,
    }
    if as_json:
        click.echo(json.dumps(result))
    else:
        Console(markup=False).print(render(timelines, title))  # URLs are not markup
        click.echo(", ".join(f"{key} {value}" for key, value in result.items()))
    if failed:  # with several clients, the first failure stands for the rest
        raise click.ClickException(failed[0])


def main() -> None:
    """Run the CLI with the collection's exit codes: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        cli.main(standalone_mode=False)
    except click.ClickException as err:  # bad usage (a UsageError, 2) or a runtime failure (1)
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except click.Abort as err:  # Ctrl-C: click's own, bare, or ours with the partial results
        click.echo(str(err) or "interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
