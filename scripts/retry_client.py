# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Retry an HTTP call only on failures worth retrying, within an attempt and a time budget.

Pattern:       `retrying(policy)` says the policy in tenacity's words: retry transient failures
               (no answer, or 429/502/503/504); wait what Retry-After asks, else exponential backoff
               with full jitter; stop after N attempts, before a wait that would pass the deadline,
               or when the server asks for a longer wait than we accept. `fetch()` runs a request
               under it, repeats only idempotent requests, and re-raises the last real error.
               Async: the same parts with tenacity.AsyncRetrying and httpx.AsyncClient.
When to use:   Calls to services that shed load or restart: rate limits, 503s during deploys.
When not to:   Under callers that retry too (pick one layer); for 4xx; long outages: use a breaker.
               Many clients failing at once: retry_jitter.py shows why the jitter matters.
Run:           uv run scripts/retry_client.py
               uv run scripts/retry_client.py --url https://example.com/ --attempts 3 --json
Try it:        --deadline 1: the 1 s Retry-After would pass the deadline, so it gives up at once.
               --max-wait 0.5: the server asks for 1 s, more than we accept: it gives up, saying so.
               --method POST: the 503 is not retried; add --idempotency-key k1 and it is.
"""

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

import click
import httpx
import tenacity

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
    max_wait_s: float = 5.0  # the longest wait we accept, a server's Retry-After included
    backoff_s: float = 0.2  # first backoff window, doubling per attempt; small, as it is jittered


def is_transient(error: BaseException) -> bool:
    """Worth another try: no answer at all, or an answer that says "try again later"."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in TRANSIENT_STATUSES
    return isinstance(error, TRANSIENT_ERRORS)


def retry_after_s(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delay or HTTP-date); None if absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # garbage: fall back to our own backoff
    if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def last_error(retry_state: tenacity.RetryCallState) -> BaseException | None:
    """What the attempt that just ended raised; None if it returned."""
    return retry_state.outcome.exception() if retry_state.outcome else None


def server_wait_s(retry_state: tenacity.RetryCallState) -> float | None:
    """The Retry-After of the answer that just failed, if it had one."""
    error = last_error(retry_state)
    if isinstance(error, httpx.HTTPStatusError):
        return retry_after_s(error.response)
    return None


class wait_retry_after(tenacity.wait.wait_base):  # noqa: N801 - named as tenacity names its waits
    """Wait what the server asked for, never less; without a Retry-After, the fallback wait."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        asked = server_wait_s(retry_state)
        return self.fallback(retry_state) if asked is None else asked


class stop_when_wait_exceeds(tenacity.stop.stop_base):  # noqa: N801 - as tenacity's stops
    """Give up rather than wait longer than we accept: never retry earlier than the server asked."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.upcoming_sleep > self.max_wait_s


def retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    before: Callable[[tenacity.RetryCallState], None] = tenacity.before_nothing,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> tenacity.Retrying:
    """The policy as a tenacity.Retrying; one serves any number of calls, from any thread."""

    def give_up(retry_state: tenacity.RetryCallState) -> NoReturn:
        """Re-raise the last real error, not tenacity's RetryError, with a note on why."""
        error = last_error(retry_state)
        assert error is not None  # noqa: S101 - we retry only after a failure, so stop after one
        wait_s = retry_state.upcoming_sleep
        if retry_state.attempt_number >= policy.attempts:
            note = f"gave up after attempt {retry_state.attempt_number} of {policy.attempts}"
        elif wait_s > policy.max_wait_s:
            note = f"gave up: asked to wait {wait_s:g} s, over the {policy.max_wait_s:g} s cap"
        else:
            note = f"gave up: a {wait_s:.2f} s wait would pass the {policy.deadline_s:g} s deadline"
        error.add_note(note)
        raise error

    # Full jitter: uniform in [0, backoff * 2^n], so clients that failed together spread out.
    backoff = tenacity.wait_random_exponential(multiplier=policy.backoff_s, max=policy.max_wait_s)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=wait_retry_after(fallback=backoff),
        stop=(
            tenacity.stop_after_attempt(policy.attempts)
            | tenacity.stop_before_delay(policy.deadline_s)
            | stop_when_wait_exceeds(policy.max_wait_s)
        ),
        sleep=sleep,
        before=before,
        before_sleep=before_sleep,
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
DEMO_STEPS = ((503, None), (429, 1), None, (200, None))  # (status, Retry-After); None: hang up


class ScriptedHandler(BaseHTTPRequestHandler):
    """Walks DEMO_STEPS, a step per request to the same path, then stays on the last one."""

    def __init__(self, *args: Any, visits: dict[str, int], **kwargs: Any) -> None:
        self.visits = visits  # per server; one client at a time per path, so no lock
        super().__init__(*args, **kwargs)  # this handles the request, so it comes last

    def answer(self) -> None:
        seen = self.visits.get(self.path, 0)
        self.visits[self.path] = seen + 1
        step = DEMO_STEPS[min(seen, len(DEMO_STEPS) - 1)]
        if step is None:
            return  # close without a word: the client sees httpx.RemoteProtocolError
        self.send_response(step[0])
        if step[1] is not None:
            self.send_header("Retry-After", str(step[1]))
        self.end_headers()

    # http.server's names: every method the CLI offers gets the same scripted answers.
    do_GET = do_HEAD = do_OPTIONS = do_TRACE = do_PUT = do_DELETE = do_POST = answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the timeline says what happened."""


@contextmanager
def demo_server() -> Generator[str]:
    """Serve the scripted answers on a free loopback port; stopped on the way out, Ctrl-C too."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(ScriptedHandler, visits={}))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()  # shutdown() has waited for serve_forever() to return


def attempts_text(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


class Timeline:
    """The demo's view of one call, through tenacity's hooks: a line per attempt, on stderr."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.sent_at_s = 0.0
        self.outcomes: list[str] = []
        self.status: int | None = None
        self.decision = ""

    def before(self, retry_state: tenacity.RetryCallState) -> None:
        self.sent_at_s = time.monotonic() - self.started

    def before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        why = "backoff" if server_wait_s(retry_state) is None else "Retry-After"
        wait = f"retrying in {retry_state.upcoming_sleep:.2f} s ({why})"
        self.record(last_error(retry_state), wait)

    def record(self, result: httpx.Response | BaseException | None, decision: str) -> None:
        if isinstance(result, httpx.HTTPStatusError):
            result = result.response
        if isinstance(result, httpx.Response):
            self.status = result.status_code
            outcome = f"{result.status_code} {result.reason_phrase}".strip()
        else:  # no answer at all
            self.status = None
            outcome = type(result).__name__
        self.outcomes.append(outcome)
        self.decision = decision
        line = f"attempt {len(self.outcomes)}: {outcome}; {decision}"
        click.echo(f"t+{self.sent_at_s:.2f} s  {line}", err=True)


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


def check_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    try:
        url = httpx.URL(value or "http://default")
        host = url.host  # decoding an IDNA name ("xn--...") may fail too
    except (httpx.InvalidURL, UnicodeError) as err:  # e.g. "http://[::1/"
        raise click.BadParameter(f"{value!r} is not a valid URL: {err}") from err
    if url.scheme not in ("http", "https") or not host:
        raise click.BadParameter(f"expected an http(s):// URL with a host, got {value!r}")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--url", callback=check_url, help="Call this URL instead of the demo server.")
@click.option(
    "--attempts",
    type=click.IntRange(1, 20),
    default=5,
    help="How many tries at most, the first one included.",
)
@click.option(
    "--deadline",
    type=FiniteFloat(0, 3600, min_open=True),
    default=15.0,
    help="Seconds for the whole call: no retry is planned past it.",
)
@click.option(
    "--max-wait",
    type=FiniteFloat(0, 600),
    default=5.0,
    help="Longest wait in seconds; a server asking for more gets no retry.",
)
@click.option(
    "--method",
    type=click.Choice(sorted(IDEMPOTENT_METHODS | {"POST"})),
    default="GET",
    help="HTTP method; only idempotent ones are retried without a key.",
)
@click.option("--idempotency-key", help="Sent as Idempotency-Key, which makes a POST retryable.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a summary.")
def cli(
    url: str | None,
    attempts: int,
    deadline: float,
    max_wait: float,
    method: str,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Call a flaky HTTP service, retrying only what is worth retrying."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    policy = RetryPolicy(attempts=attempts, deadline_s=deadline, max_wait_s=max_wait)
    with demo_server() if url is None else nullcontext(url) as base:
        target = url or f"{base}/flaky"
        click.echo(
            f"{method} {target}: up to {attempts_text(attempts)} in {deadline:g} s", err=True
        )
        # Each attempt is bounded by the client's timeout, cut to the deadline.
        with httpx.Client(timeout=min(5.0, deadline), follow_redirects=True) as client:
            timeline = Timeline()
            retries = retrying(policy, before=timeline.before, before_sleep=timeline.before_sleep)
            try:
                timeline.record(fetch(client, method, target, retries, headers), "done")
            except httpx.HTTPError as err:  # fetch() notes why it gave up; no note: not retried
                timeline.record(err, getattr(err, "__notes__", ["not retried"])[-1])
            except KeyboardInterrupt as err:  # one line with what happened so far, for run()
                done = attempts_text(len(timeline.outcomes))
                so_far = ", ".join(timeline.outcomes) or "no answer yet"
                raise click.Abort(f"interrupted after {done}: {so_far}") from err
    result = {
        "succeeded": timeline.decision == "done",
        "attempts": len(timeline.outcomes),
        "elapsed_s": round(time.monotonic() - timeline.started, 3),
        "status": timeline.status,
    }
    click.echo(json.dumps(result) if as_json else ", ".join(f"{k} {v}" for k, v in result.items()))
    if timeline.decision != "done":
        raise click.ClickException(f"{timeline.outcomes[-1]}; {timeline.decision}")


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
