# /// script
# requires-python = ">=3.11"
# dependencies = ["aiohttp", "click", "httpx", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Walk a cursor-paginated API lazily with an async generator that closes cleanly.

Pattern:       An `async def` generator asks for the next page only when the caller wants its
               first item, so a caller that stops early fetches no more pages. The caller wraps it
               in contextlib.aclosing(): a `break` then runs the generator's `finally` at once,
               which cancels a page still in flight and frees its connection. prefetch=True loads
               the next page while this one is consumed (one ahead: at most one fetched for nothing
               on a stop); a failed page raises at the item where it would have started.
When to use:   Streaming the results of a paginated API (search hits, audit logs, list endpoints)
               into a consumer that may stop early or that does real work per item.
When not to:   Every page is needed as fast as possible and offsets are computable: fetch
               them concurrently (async_fetch.py). A result that fits one page: one GET.
Run:           uv run scripts/async_pagination.py
               uv run scripts/async_pagination.py --prefetch
Try it:        --take 1000: every page is fetched once, and none beyond the last.
               --prefetch: elapsed drops below the no-overlap bound towards max(latency, work).
               --fail-page 3: the items of pages 1 and 2 arrive, then the error, exit 1.
"""

import asyncio
import contextlib
import json
import math
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import click
import httpx
from aiohttp import web
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
TIMEOUT_S = 5.0  # per page: far above a healthy API's page time, quick to give up on a dead one


class PageError(Exception):
    """A page could not be fetched or read; raised where its first item would have been."""


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next: str | None  # the cursor of the following page; None on the last page


async def fetch_page(client: httpx.AsyncClient, url: str, cursor: str | None, limit: int) -> Page:
    """GET one page: `?limit=N`, plus `&cursor=C` after the first."""
    params: dict[str, str | int] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    where = "the first page" if cursor is None else f"the page at cursor {cursor!r}"
    try:
        response = await client.get(url, params=params)
        if response.is_error:
            raise PageError(f"{where}: HTTP {response.status_code} {response.reason_phrase}")
        body = response.json()
        return Page(list(body["items"]), body["next"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
        raise PageError(f"{where}: {type(err).__name__}: {err}") from err


async def paginate(
    client: httpx.AsyncClient, url: str, limit: int, *, prefetch: bool = False
) -> AsyncGenerator[Any]:
    """Yield every item of a cursor-paginated JSON API, fetching pages as they are needed.

    Use it inside `contextlib.aclosing(...)` so that leaving the loop early closes it at once.
    """
    ahead: asyncio.Task[Page] | None = None  # the prefetched next page, while it loads
    try:
        page = await fetch_page(client, url, None, limit)
        while True:
            if prefetch and page.next is not None:
                ahead = asyncio.create_task(fetch_page(client, url, page.next, limit))
            for item in page.items:
                yield item
            if page.next is None:
                return
            if ahead is None:
                page = await fetch_page(client, url, page.next, limit)
            else:
                page = await ahead  # a failed page raises here, after the items before it
                ahead = None
    finally:  # runs on exhaustion, on error, and on aclose() after the caller's break
        if ahead is not None:  # cancel the page nobody will read, and wait until it has ended
            ahead.cancel()
            await asyncio.wait([ahead])
            if not ahead.cancelled():
                ahead.exception()  # mark a failure as seen, or asyncio logs "never retrieved"


# --- Demo plumbing: a paginated API on loopback, a transport that counts open responses ---------
SHUTDOWN_S = 0.5  # a handler still sleeping at the end gets this long before it is cancelled


@dataclass(frozen=True)
class Settings:
    total: int  # items the API holds
    limit: int  # items per page
    take: int  # items the consumer wants before it breaks
    latency_s: float  # the API's wait per page
    cost_s: float  # the consumer's work per item
    prefetch: bool
    fail_page: int | None


@dataclass
class Outcome:
    items: int = 0  # consumed
    pages_fetched: int = 0  # page requests the API received
    prefetch: bool = False
    elapsed_s: float = 0.0
    serial_s: float = 0.0  # pages consumed x latency + items x cost: no overlap at all
    open_after_break: int = 0  # responses still open once the loop has been left


def make_api(settings: Settings, outcome: Outcome) -> web.Application:
    """GET /items?cursor=C&limit=N: {"items": [...], "next": C2 or null}, counted in outcome."""

    async def items(request: web.Request) -> web.Response:
        outcome.pages_fetched += 1
        start = int(request.query.get("cursor", "0"))  # opaque to clients: here an offset
        limit = int(request.query["limit"])
        await asyncio.sleep(settings.latency_s)
        if start // limit + 1 == settings.fail_page:
            raise web.HTTPInternalServerError(text="this page fails, as asked")
        end = min(start + limit, settings.total)
        next_cursor = str(end) if end < settings.total else None
        return web.json_response({"items": list(range(start, end)), "next": next_cursor})

    app = web.Application()
    app.router.add_get("/items", items)
    return app


class CountedStream(httpx.AsyncByteStream):
    """A response body that tells its transport when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, transport: "CountingTransport") -> None:
        self.inner = inner
        self.transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk

    async def aclose(self) -> None:  # httpx calls it once, when the response closes
        self.transport.open -= 1
        await self.inner.aclose()


class CountingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, counting the requests sent whose responses are not closed yet."""

    open = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.open += 1
        try:
            response = await super().handle_async_request(request)
        except BaseException:  # cancelled or failed: no response is left open
            self.open -= 1
            raise
        stream = CountedStream(cast(httpx.AsyncByteStream, response.stream), self)
        return httpx.Response(response.status_code, headers=response.headers, stream=stream)


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


async def consume(settings: Settings, outcome: Outcome) -> None:
    """Serve the API; take items from paginate() in aclosing(), spending cost_s on each."""
    cancel_on_ctrl_c()
    app = make_api(settings, outcome)
    runner = web.AppRunner(
        app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_S
    )
    await runner.setup()
    with socket.create_server(("127.0.0.1", 0)) as sock:  # a free port, known before serving
        try:
            await web.SockSite(runner, sock).start()
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/items"
            transport = CountingTransport()
            async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT_S) as client:
                click.echo(f"target: local API on {url}", err=True)
                started = time.perf_counter()
                pages = paginate(client, url, settings.limit, prefetch=settings.prefetch)
                async with contextlib.aclosing(pages) as items:
                    async for _item in items:
                        await asyncio.sleep(settings.cost_s)  # the consumer's work on it
                        outcome.items += 1
                        if outcome.items == settings.take:
                            break
                outcome.elapsed_s = round(time.perf_counter() - started, 4)
                outcome.open_after_break = transport.open
        finally:  # the server stops on every path, before its socket closes
            await runner.cleanup()
    pages_consumed = math.ceil(outcome.items / settings.limit)
    serial = pages_consumed * settings.latency_s + outcome.items * settings.cost_s
    outcome.serial_s = round(serial, 4)


def plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def show(outcome: Outcome, settings: Settings) -> None:
    """The figures as a table, on stdout."""
    mode = "with prefetch" if outcome.prefetch else "without prefetch"
    table = Table(show_header=False, title=f"{settings.limit} items a page, {mode}")
    pages = f"{outcome.pages_fetched} {plural(outcome.pages_fetched, 'page')}"
    table.add_row("items consumed / pages fetched", f"{outcome.items} / {pages}")
    table.add_row("responses open after the loop", str(outcome.open_after_break))
    table.add_row("elapsed", f"{outcome.elapsed_s:.2f} s")
    table.add_row("no-overlap bound: pages x latency + items x cost", f"{outcome.serial_s:.2f} s")
    Console().print(table)


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--items", type=click.IntRange(1, 100_000), default=200, help="Items the API holds.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, help="Items per page.")
@click.option("--take", type=click.IntRange(1), default=50, help="Items to consume, then stop.")
@click.option("--latency-ms", type=click.IntRange(0, 10_000), default=100, help="API's page wait.")
@click.option("--cost-ms", type=click.IntRange(0, 10_000), default=5, help="Work per item.")
@click.option("--prefetch", is_flag=True, help="Load the next page while this one is consumed.")
@click.option("--fail-page", type=click.IntRange(1), default=None, help="Page the API fails.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(
    items: int,
    limit: int,
    take: int,
    latency_ms: int,
    cost_ms: int,
    prefetch: bool,
    fail_page: int | None,
    as_json: bool,
) -> None:
    """Consume items from a local paginated API, stop early, and count pages and connections."""
    settings = Settings(items, limit, take, latency_ms / 1000, cost_ms / 1000, prefetch, fail_page)
    outcome = Outcome(prefetch=prefetch)
    try:
        asyncio.run(consume(settings, outcome))
    except asyncio.CancelledError as err:  # by Ctrl-C
        pages = f"{outcome.pages_fetched} {plural(outcome.pages_fetched, 'page')}"
        message = f"interrupted: {outcome.items} {plural(outcome.items, 'item')} from {pages}"
        raise click.Abort(message) from err
    except PageError as err:  # raised after the items before the failed page
        consumed = f"{outcome.items} {plural(outcome.items, 'item')}"
        raise click.ClickException(f"{err}, after {consumed}") from err
    if as_json:
        click.echo(json.dumps(asdict(outcome)))
    else:
        show(outcome, settings)


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
