# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich", "tenacity"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Honour Retry-After: wait what the server asks, never less, and give up when it asks too much.

Pattern:       A 429 or 503 may say when to come back: Retry-After, in seconds or an HTTP-date.
               `wait_retry_after(fallback)` waits exactly that (the fallback backoff without one),
               and `stop_when_wait_exceeds(max_wait_s)` gives up rather than wait longer than we
               accept, beside `stop_after_attempt | stop_before_delay`. Never sooner than asked.
When to use:   Rate-limited APIs (429), services that announce overload or maintenance (503).
When not to:   Requests that are not safe to repeat (retry_client.py guards those). Many clients
               given one Retry-After come back at once: retry_jitter.py spreads them after it.
Run:           uv run scripts/retry_after.py
               uv run scripts/retry_after.py --retry-after 3 --json
Try it:        --retry-after 120: more than the 5 s we accept: it gives up at once, saying so.
               --deadline 2: the HTTP-date's wait would end past the deadline: it gives up before.
               --max-wait 0: it accepts no wait at all, so the first 429 is final: exit 1.
"""

import json
import sys
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NoReturn

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
        return None  # garbage: the fallback wait applies
    if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class wait_retry_after(tenacity.wait.wait_base):  # noqa: N801 - named as tenacity names its waits
    """Wait what the server asked for, never less; without a Retry-After, the fallback wait."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, httpx.HTTPStatusError):
            asked = retry_after_s(error.response)
            if asked is not None:
                return asked
        return self.fallback(retry_state)


class stop_when_wait_exceeds(tenacity.stop.stop_base):  # noqa: N801 - as tenacity's stops
    """Give up rather than wait longer than we accept: never retry earlier than the server asked."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.upcoming_sleep > self.max_wait_s


def retrying(
    *,
    attempts: int = 5,  # the first try included
    deadline_s: float = 15.0,  # no wait may end past it; the client's timeout bounds each attempt
    max_wait_s: float = 5.0,  # the longest wait we accept, a server's Retry-After included
    backoff_s: float = 0.2,  # the first backoff window without a Retry-After, doubling per attempt
) -> tenacity.Retrying:
    """The policy as a tenacity.Retrying for calls from any thread; `.copy()` adds hooks."""

    def give_up(retry_state: tenacity.RetryCallState) -> NoReturn:
        """Re-raise the last real error, not tenacity's RetryError, with a note on why."""
        error = retry_state.outcome.exception() if retry_state.outcome else None
        assert error is not None  # noqa: S101 - we retry only after a failure, so stop after one
        wait_s = retry_state.upcoming_sleep
        if retry_state.attempt_number >= attempts:
            note = f"gave up after attempt {retry_state.attempt_number} of {attempts}"
        elif wait_s > max_wait_s:
            note = f"gave up: asked to wait {wait_s:.2f} s, over the {max_wait_s:g} s cap"
        else:
            note = f"gave up: a {wait_s:.2f} s wait would pass the {deadline_s:g} s deadline"
        error.add_note(note)
        raise error

    # Full jitter when the server says nothing: uniform in [0, backoff * 2^n], at most the cap.
    backoff = tenacity.wait_random_exponential(multiplier=backoff_s, max=max_wait_s)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=wait_retry_after(fallback=backoff),
        stop=(
            tenacity.stop_after_attempt(attempts)
            | tenacity.stop_before_delay(deadline_s)
            | stop_when_wait_exceeds(max_wait_s)
        ),
        retry_error_callback=give_up,
    )


def get(client: httpx.Client, url: str, retries: tenacity.Retrying) -> httpx.Response:
    """GET `url` under `retries`; a 4xx/5xx raises, a 304 or a redirect is an answer."""

    def attempt() -> httpx.Response:
        response = client.get(url)
        if response.is_error:
            response.raise_for_status()
        return response

    return retries(attempt)


# --- Demo plumbing -------------------------------------------------------------------------------


def demo_answers(first_wait_s: int) -> Iterator[tuple[int, str | None]]:
    """(status, Retry-After) for each request in turn, each made when the request comes."""
    yield 429, str(first_wait_s)
    in_two_s = datetime.now(UTC) + timedelta(seconds=2)  # whole seconds: it asks for 1 to 2 s
    yield 503, format_datetime(in_two_s, usegmt=True)
    while True:
        yield 200, None


@contextmanager
def demo_server(first_wait_s: int) -> Generator[str]:
    """Serve demo_answers() on a free loopback port; stopped on the way out, Ctrl-C too."""
    answers = demo_answers(first_wait_s)

    class ScriptedHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, retry_after = next(answers)  # one client at a time, so no lock
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the timeline says what happened."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
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


class Timeline:
    """The demo's view of one call: a row per attempt, said on stderr as it happens."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.rows: list[Attempt] = []

    def before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        """tenacity's hook: an attempt failed, and another one follows after a wait."""
        error = retry_state.outcome.exception() if retry_state.outcome else None
        self.record(error, f"retry in {retry_state.upcoming_sleep:.2f} s")

    def record(self, result: httpx.Response | BaseException | None, decision: str) -> None:
        if isinstance(result, httpx.HTTPStatusError):
            result = result.response
        if isinstance(result, httpx.Response):
            outcome = f"{result.status_code} {result.reason_phrase}"
            if "Retry-After" in result.headers:
                outcome += f", Retry-After: {result.headers['Retry-After']}"
        else:  # no answer at all
            outcome = type(result).__name__
        at_s = round(time.monotonic() - self.started, 3)
        self.rows.append(Attempt(len(self.rows) + 1, at_s, outcome, decision))
        click.echo(f"t+{at_s:.2f} s  attempt {len(self.rows)}: {outcome}; {decision}", err=True)


# --- CLI -----------------------------------------------------------------------------------------


# Options in whole seconds, the unit of Retry-After itself.
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--retry-after",
    "first_wait_s",
    type=click.IntRange(0, 86_400),
    default=1,
    help="Seconds the demo server's first answer, a 429, asks us to wait.",
)
@click.option(
    "--max-wait",
    type=click.IntRange(0, 600),
    default=5,
    help="The longest wait in seconds we accept; a server asking for more gets no retry.",
)
@click.option(
    "--deadline",
    type=click.IntRange(1, 3600),
    default=15,
    help="Seconds for the whole call: no wait may end past it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(first_wait_s: int, max_wait: int, deadline: int, as_json: bool) -> None:
    """Call a rate-limited HTTP service, waiting what it asks and never less."""
    retries = retrying(deadline_s=deadline, max_wait_s=max_wait)
    # The client's timeout bounds each attempt, cut to the deadline.
    with demo_server(first_wait_s) as base, httpx.Client(timeout=min(5, deadline)) as client:
        click.echo(f"GET {base}: within {deadline} s, and no wait over {max_wait} s", err=True)
        timeline = Timeline()  # its clock starts here, as the call does
        retries = retries.copy(before_sleep=timeline.before_sleep)
        try:
            timeline.record(get(client, base, retries), "done")
        except httpx.HTTPError as err:  # get() notes why it gave up; no note: not retried
            timeline.record(err, getattr(err, "__notes__", ["not retried"])[-1])
        except KeyboardInterrupt as err:  # one line with what happened so far, for run()
            done = attempts_text(len(timeline.rows))
            so_far = ", ".join(row.outcome for row in timeline.rows) or "no answer yet"
            raise click.Abort(f"interrupted after {done}: {so_far}") from err
    last = timeline.rows[-1]
    if as_json:
        result = {
            "succeeded": last.decision == "done",
            "attempts": last.attempt,
            "elapsed_s": last.at_s,
            "timeline": [asdict(row) for row in timeline.rows],
        }
        click.echo(json.dumps(result))
    else:
        caption = f"{attempts_text(last.attempt)} in {last.at_s:.2f} s"
        table = Table("attempt", "t+ s", "outcome", "decision", caption=caption)
        for row in timeline.rows:
            table.add_row(str(row.attempt), f"{row.at_s:.2f}", row.outcome, row.decision)
        Console().print(table)
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
