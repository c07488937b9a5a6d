# /// script
# requires-python = ">=3.11"
# dependencies = ["aiohttp", "click", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Report a batch of independent failures at once, each with its kind, cause and context.

Pattern:       Each way a partner feed can fail is its own exception class, raised `from` the
               library's error so the cause survives; add_note() says which feed and URL. Every
               feed is fetched at once in an asyncio.TaskGroup whose tasks catch their own
               FeedError, because the first error out of a task cancels its siblings; the batch then
               raises one ExceptionGroup of them all, and the caller handles each kind with except*.
When to use:   All-or-nothing batches of independent calls (nightly imports, fan-out checks) where
               a person fixes what failed and needs the whole list, not the first item of it.
When not to:   Partial success as the result (batch_result.py returns it as a value); bad rows
               of one input (validation.py lists them); a single call: raise one exception.
Run:           uv run scripts/error_groups.py
               uv run scripts/error_groups.py --missing 2 --slow 0 --json
Try it:        --missing 0 --malformed 0 --slow 0 --down 0: every feed imports; it exits 0.
               --slow 3 --timeout-ms 300: three timeouts in one group, in 0.3 s, not 0.9 s.
               --good 40: the failures cancel none of the 40 good feeds' downloads.
"""

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import click
from aiohttp import web
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
TIMEOUT_S = 1.0  # per feed: a partner's JSON arrives in well under a second, or it is stuck


class FeedError(Exception):
    """A partner feed that could not be imported."""

    kind = "unavailable"  # the server answered with an error, or could not be reached

    def __init__(self, feed: str, message: str) -> None:
        super().__init__(message)
        self.feed = feed


class FeedMissingError(FeedError):
    kind = "missing"  # 404: the partner moved or removed it; retrying will not help


class FeedFormatError(FeedError):
    kind = "format"  # an answer that is not JSON: an error page, a half-written file


class FeedTimeoutError(FeedError):
    kind = "timeout"  # no complete answer in time: often transient


@dataclass(frozen=True)
class Feed:
    name: str
    url: str


async def fetch_feed(session: aiohttp.ClientSession, feed: Feed, timeout_s: float) -> Any:
    """The items of one feed, or a FeedError of its kind raised from the library's error."""
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with session.get(feed.url, timeout=timeout, raise_for_status=True) as response:
            body = await response.read()
    except TimeoutError as err:  # first: aiohttp's connect and read timeouts are ClientErrors too
        raise FeedTimeoutError(feed.name, f"no answer in {timeout_s:g} s") from err
    except aiohttp.ClientResponseError as err:
        error = FeedMissingError if err.status == 404 else FeedError
        raise error(feed.name, f"HTTP {err.status} {err.message}") from err
    except aiohttp.ClientError as err:
        raise FeedError(feed.name, f"cannot reach the server: {err}") from err
    try:
        return json.loads(body)
    except ValueError as err:  # JSONDecodeError, or UnicodeDecodeError: bytes that are not text
        raise FeedFormatError(feed.name, f"not JSON: {body[:30]!r}") from err


async def import_feeds(
    session: aiohttp.ClientSession,
    feeds: Sequence[Feed],
    timeout_s: float = TIMEOUT_S,
    on_done: Callable[[Feed, FeedError | None], None] | None = None,
) -> dict[str, Any]:
    """Every feed's items by name, or an ExceptionGroup of every FeedError, in the feeds' order.

    Each task catches its own FeedError: out of a task, it would cancel the others, and the group
    would hold the first failures and lose the rest. A bug (any other exception) still escapes,
    cancels the batch, and comes out in the TaskGroup's own ExceptionGroup. `on_done(feed, error)`,
    if given, is called as each feed finishes (error None: imported). Each feed's name keys its
    result, so two feeds of one name are refused up front with a ValueError."""
    if len({feed.name for feed in feeds}) < len(feeds):
        raise ValueError("two feeds have the same name")
    imported: dict[str, Any] = {}
    failed: dict[str, FeedError] = {}

    async def fetch(feed: Feed) -> None:
        started = time.perf_counter()
        try:
            imported[feed.name] = await fetch_feed(session, feed, timeout_s)
        except FeedError as err:
            elapsed = time.perf_counter() - started
            err.add_note(f"feed {feed.name!r}: GET {feed.url}, failed after {elapsed:.2f} s")
            failed[feed.name] = err
        if on_done is not None:
            on_done(feed, failed.get(feed.name))

    async with asyncio.TaskGroup() as group:
        for feed in feeds:
            group.create_task(fetch(feed))
    if failed:
        errors = [failed[feed.name] for feed in feeds if feed.name in failed]
        raise ExceptionGroup(f"{len(errors)} of {len(feeds)} feeds failed", errors)
    return imported


def feed_errors(group: BaseExceptionGroup[FeedError]) -> list[FeedError]:
    """Every FeedError of `except* FeedError as group`, in order: groups may nest in groups."""
    errors: list[FeedError] = []
    for err in group.exceptions:
        errors += feed_errors(err) if isinstance(err, BaseExceptionGroup) else [err]
    return errors


# --- Demo plumbing -------------------------------------------------------------------------------
GOOD_LATENCY_S = 0.2  # a good feed answers after this: the failures come first, and cancel nothing


async def answer(request: web.Request) -> web.Response:
    """GET /<kind>/<name>.json: items, a 404, an HTML page, a 503, or no answer at all."""
    kind = request.match_info["kind"]
    if kind == "missing":
        raise web.HTTPNotFound(text="no such feed")
    if kind == "malformed":  # a maintenance page where the JSON should be
        return web.Response(text="<html><h1>Back soon</h1></html>", content_type="text/html")
    if kind == "down":
        raise web.HTTPServiceUnavailable(text="down for maintenance")
    if kind == "slow":
        await asyncio.Event().wait()  # until the client gives up and the server stops
    await asyncio.sleep(GOOD_LATENCY_S)
    return web.json_response([{"sku": f"SKU-{number:04d}"} for number in range(20)])


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


async def import_demo(counts: dict[str, int], timeout_s: float) -> dict[str, Any]:
    """Serve the feeds on a loopback port and import them all; on Ctrl-C, say how far it got."""
    cancel_on_ctrl_c()
    total = plural(sum(counts.values()), "feed")
    done: list[FeedError | None] = []  # each finished feed's error, None if it imported
    app = web.Application()
    app.router.add_get("/{kind}/{name}.json", answer)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)  # port 0: a free one, which site.name shows
        await site.start()
        feeds: list[Feed] = []
        for kind, count in counts.items():  # in the order given: the failing kinds first
            for _ in range(count):
                name = f"partner-{len(feeds) + 1}"
                feeds.append(Feed(name, f"{site.name}/{kind}/{name}.json"))
        click.echo(f"importing {total} from a local server", err=True)
        async with aiohttp.ClientSession() as session:
            return await import_feeds(session, feeds, timeout_s, lambda _f, e: done.append(e))
    except asyncio.CancelledError as err:  # by Ctrl-C
        failed = len([error for error in done if error is not None])
        raise click.Abort(f"interrupted: {len(done)} of {total} finished, {failed} failed") from err
    finally:  # the server stops on every path
        await runner.cleanup()


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


@dataclass(frozen=True)
class Failure:  # one failed feed, as the report shows it
    feed: str
    kind: str
    message: str
    cause: str | None  # the library's error, type and message
    notes: list[str]
    action: str  # what a person does about this kind


def failures_in(group: BaseExceptionGroup[FeedError], action: str) -> list[Failure]:
    """The failures of one kind, as `except*` hands them over, with what to do about them."""
    failures = []
    for err in feed_errors(group):
        cause = err.__cause__
        said = None if cause is None else f"{type(cause).__name__}: {cause}".removesuffix(": ")
        notes = getattr(err, "__notes__", [])  # there only once add_note() was called
        failures.append(Failure(err.feed, err.kind, str(err), said, notes, action))
    return failures


def show(failures: list[Failure], feeds: int, seconds: float) -> None:
    console = Console()
    if failures:
        table = Table("feed", "kind", "message", "what to do", title="failures")
        for failure in failures:
            table.add_row(failure.feed, failure.kind, failure.message, failure.action)
        console.print(table)
        for failure in failures:  # its cause and notes, too long for the table
            lines = [f"{failure.feed}: {failure.cause}", *failure.notes]
            console.print("\n  ".join(lines), markup=False)
    summary = Table("feeds", "ok", "failed", "elapsed", title="summary")
    summary.add_row(str(feeds), str(feeds - len(failures)), str(len(failures)), f"{seconds:.2f} s")
    console.print(summary)


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--good", type=click.IntRange(1, 200), default=5, help="Feeds that import fine.")
@click.option("--missing", type=click.IntRange(0, 20), default=1, help="Feeds that are gone (404).")
@click.option("--malformed", type=click.IntRange(0, 20), default=1, help="Feeds sending HTML.")
@click.option("--slow", type=click.IntRange(0, 20), default=1, help="Feeds that never answer.")
@click.option("--down", type=click.IntRange(0, 20), default=1, help="Feeds answering HTTP 503.")
@click.option("--timeout-ms", type=click.IntRange(10, 60_000), default=1_000, help="Wait per feed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def cli(
    good: int, missing: int, malformed: int, slow: int, down: int, timeout_ms: int, as_json: bool
) -> None:
    """Import partner feeds from a local server at once; report every failure; exit 1 if any."""
    counts = {"missing": missing, "malformed": malformed, "slow": slow, "down": down, "good": good}
    feeds = sum(counts.values())
    failures: list[Failure] = []
    started = time.perf_counter()
    try:
        asyncio.run(import_demo(counts, timeout_ms / 1000))
    except* FeedMissingError as group:
        failures += failures_in(group, "ask the partner for the feed's new address")
    except* FeedFormatError as group:
        failures += failures_in(group, "send the partner the cause; keep yesterday's data")
    except* FeedTimeoutError as group:
        failures += failures_in(group, "transient: the next run retries it")
    except* FeedError as group:  # any other kind: an HTTP error, or no connection
        failures += failures_in(group, "check the partner's status page")
    elapsed = time.perf_counter() - started
    if as_json:
        report = {
            "feeds": feeds,
            "ok": feeds - len(failures),
            "failed": len(failures),
            "failures": [asdict(failure) for failure in failures],
            "elapsed_s": round(elapsed, 4),
        }
        click.echo(json.dumps(report))
    else:
        show(failures, feeds, elapsed)
    if failures:
        raise click.ClickException(f"{len(failures)} of {plural(feeds, 'feed')} failed")


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
