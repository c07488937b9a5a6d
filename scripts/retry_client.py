# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Retry an HTTP call only on failures worth retrying, within an attempt and a time budget.

Pattern:       `retrying(policy)` says the policy in tenacity's words: retry transient failures
               (no answer, or 429/502/503/504) after a full-jitter backoff; stop after N attempts or
               before a wait that would pass the deadline. `fetch()` repeats only idempotent
               requests, and re-raises the last real error with a note on why it gave up. An answer
               with a Retry-After is final here: never retry sooner than a server asks.
When to use:   Calls that fail for a moment: dropped connections, 502/503/504 with no Retry-After.
When not to:   Callers that retry too; 4xx; outages (a breaker); a Retry-After: retry_after.py waits
               it. asyncio: tenacity.AsyncRetrying (retries(async_fn) gets a coroutine, no retry).
Run:           uv run scripts/retry_client.py
               uv run scripts/retry_client.py --url https://example.com/ --attempts 3 --json
Try it:        --attempts 2: the dropped connection is the last straw; it re-raises it, saying why.
               --method POST: the 503 is not retried; add --idempotency-key k1 and it is.
               --url http://127.0.0.1:9/: nobody listens there: every attempt fails to connect.
"""

import json
import sys
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

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


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. The defaults suit an interactive call to a nearby service."""

    attempts: int = 5  # the first try included
    deadline_s: float = 15.0  # no wait may end past it; the client's timeout bounds each attempt
    backoff_s: float = 0.2  # first backoff window, doubling per attempt; small, as it is jittered
    max_wait_s: float = 5.0  # the widest backoff window: a longer wait looks like an outage


def is_transient(error: BaseException) -> bool:
    """Worth another try: no answer at all, or an answer that says "try again later"."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in TRANSIENT_STATUSES
    return isinstance(error, TRANSIENT_ERRORS)


def last_error(retry_state: tenacity.RetryCallState) -> BaseException | None:
    """What the attempt that just ended raised; None if it returned."""
    return retry_state.outcome.exception() if retry_state.outcome else None


class stop_on_retry_after(tenacity.stop.stop_base):  # noqa: N801 - named as tenacity's stops are
    """Give up on an answer that says when to come back: a backoff might retry sooner than that."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        error = last_error(retry_state)
        return isinstance(error, httpx.HTTPStatusError) and "Retry-After" in error.response.headers


def retrying(policy: RetryPolicy) -> tenacity.Retrying:
    """The policy as a tenacity.Retrying for calls from any thread; `.copy()` adds hooks."""
    on_retry_after = stop_on_retry_after()

    def give_up(retry_state: tenacity.RetryCallState) -> NoReturn:
        """Re-raise the last real error, not tenacity's RetryError, with a note on why."""
        error = last_error(retry_state)
        assert error is not None  # noqa: S101 - we retry only after a failure, so stop after one
        if retry_state.attempt_number >= policy.attempts:
            note = f"gave up after attempt {retry_state.attempt_number} of {policy.attempts}"
        elif on_retry_after(retry_state):
            note = "gave up: the server said when to come back (Retry-After); never retry sooner"
        else:
            wait_s = retry_state.upcoming_sleep
            note = f"gave up: a {wait_s:.2f} s wait would pass the {policy.deadline_s:g} s deadline"
        error.add_note(note)
        raise error

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        # Full jitter: uniform in [0, backoff * 2^n], so clients that failed together spread out.
        wait=tenacity.wait_random_exponential(multiplier=policy.backoff_s, max=policy.max_wait_s),
        stop=(
            tenacity.stop_after_attempt(policy.attempts)
            | tenacity.stop_before_delay(policy.deadline_s)
            | on_retry_after
        ),
        retry_error_callback=give_up,
    )


def fetch(
    client: httpx.Client,
    method: str,
    url: str,
    retries: tenacity.Retrying,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send a request under `retries`, repeated only if idempotent; 4xx/5xx raise an error."""
    sent = httpx.Headers(headers)
    if method.upper() not in IDEMPOTENT_METHODS and "Idempotency-Key" not in sent:
        retries = retries.copy(retry=tenacity.retry_never)

    def attempt() -> httpx.Response:
        response = client.request(method, url, headers=sent)
        if response.is_error:  # 4xx and 5xx only: a 304 or a redirect is an answer, not a failure
            response.raise_for_status()
        return response

    return retries(attempt)


# --- Demo plumbing -------------------------------------------------------------------------------
DEMO_STEPS = (503, None, 200)  # the status of each answer to one path; None: hang up


class ScriptedHandler(BaseHTTPRequestHandler):
    """Walks DEMO_STEPS, a step per request to the same path, then stays on the last one."""

    def __init__(self, *args: Any, steps: dict[str, Iterator[int | None]], **kwargs: Any) -> None:
        self.steps = steps  # per server; one client at a time per path, so no lock
        super().__init__(*args, **kwargs)  # this handles the request, so it comes last

    def answer(self) -> None:
        steps = self.steps.setdefault(self.path, iter(DEMO_STEPS))
        status = next(steps, DEMO_STEPS[-1])
        if status is not None:  # None: close without a word, so the client gets no answer
            self.send_response(status)
            self.end_headers()

    # http.server's names: every method the CLI offers gets the same scripted answers.
    do_GET = do_HEAD = do_OPTIONS = do_TRACE = do_PUT = do_DELETE = do_POST = answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the timeline says what happened."""


@contextmanager
def demo_server() -> Generator[str]:
    """Serve the scripted answers on a free loopback port; stopped on the way out, Ctrl-C too."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(ScriptedHandler, steps={}))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()  # shutdown() has waited for serve_forever() to return


def attempts_text(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


@dataclass(frozen=True)
class Attempt:
    """A row of the summary: when an attempt's outcome came, what it was, what we did next."""

    attempt: int
    at_s: float
    outcome: str
    decision: str
    status: int | None  # None: no answer at all


class Timeline:
    """The demo's view of one call: a row per attempt, said on stderr as it happens."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.rows: list[Attempt] = []

    def before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        """tenacity's hook: an attempt failed, and another one follows after a wait."""
        self.record(last_error(retry_state), f"retry in {retry_state.upcoming_sleep:.2f} s")

    def record(self, result: httpx.Response | BaseException | None, decision: str) -> None:
        if isinstance(result, httpx.HTTPStatusError):
            result = result.response
        status = None
        if isinstance(result, httpx.Response):
            status = result.status_code
            outcome = f"{result.status_code} {result.reason_phrase}".strip()
        else:  # no answer at all: the kind of error and why, on one line
            outcome = f"{type(result).__name__}: {result}".splitlines()[0]
        at_s = round(time.monotonic() - self.started, 3)
        self.rows.append(Attempt(len(self.rows) + 1, at_s, outcome, decision, status))
        click.echo(f"t+{at_s:.2f} s  attempt {len(self.rows)}: {outcome}; {decision}", err=True)


# --- CLI -----------------------------------------------------------------------------------------


def check_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:  # not given: the demo server
        return None
    try:
        url = httpx.URL(value)
        host = url.host  # decoding an IDNA name ("xn--...") may fail too
    except (httpx.InvalidURL, UnicodeError) as err:  # e.g. "http://[::1/"
        raise click.BadParameter(f"{value!r} is not a valid URL: {err}") from err
    port_ok = url.port is None or 1 <= url.port <= 65535  # None: the scheme's own port
    if url.scheme not in ("http", "https") or not host or not port_ok:
        raise click.BadParameter(f"expected http(s)://host[:port 1-65535], got {value!r}")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--url", callback=check_url, help="Call this URL instead of the demo server.")
@click.option(
    "--attempts", type=click.IntRange(1, 20), default=5, help="Tries at most, the first included."
)
@click.option(
    "--method",
    type=click.Choice(sorted(IDEMPOTENT_METHODS | {"POST"})),
    default="GET",
    help="HTTP method; only idempotent ones are retried without a key.",
)
@click.option("--idempotency-key", help="Sent as Idempotency-Key, which makes a POST retryable.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(
    url: str | None, attempts: int, method: str, idempotency_key: str | None, as_json: bool
) -> None:
    """Call a flaky HTTP service, retrying only what is worth retrying."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    policy = RetryPolicy(attempts=attempts)
    with demo_server() if url is None else nullcontext(url) as base:
        target = url or f"{base}/flaky"
        title = f"{method} {target}"
        click.echo(f"{title}: up to {attempts_text(attempts)} in {policy.deadline_s:g} s", err=True)
        # The client's timeout bounds each attempt; the policy's deadline, the whole call.
        with httpx.Client(timeout=5.0, follow_redirects=True) as client:
            timeline = Timeline()  # its clock starts here, as the call does
            retries = retrying(policy).copy(before_sleep=timeline.before_sleep)
            try:
                timeline.record(fetch(client, method, target, retries, headers), "done")
            except httpx.HTTPError as err:  # fetch() notes why it gave up; no note: not retried
                timeline.record(err, getattr(err, "__notes__", ["not retried"])[-1])
            except KeyboardInterrupt as err:  # one line with what happened so far, for run()
                done = attempts_text(len(timeline.rows))
                so_far = ", ".join(row.outcome for row in timeline.rows) or "no answer yet"
                raise click.Abort(f"interrupted after {done}: {so_far}") from err
    last = timeline.rows[-1]
    if as_json:
        result = {
            "succeeded": last.decision == "done",
            "status": last.status,
            "attempts": last.attempt,
            "elapsed_s": last.at_s,
            "timeline": [asdict(row) for row in timeline.rows],
        }
        click.echo(json.dumps(result))
    else:
        caption = f"{attempts_text(last.attempt)} in {last.at_s:.2f} s"
        table = Table("attempt", "t+ s", "outcome", "decision", title=title, caption=caption)
        for row in timeline.rows:
            table.add_row(str(row.attempt), f"{row.at_s:.2f}", row.outcome, row.decision)
        Console(markup=False).print(table)  # a URL is not markup
    if last.decision != "done":
        raise click.ClickException(f"{last.outcome}; {last.decision}")


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
