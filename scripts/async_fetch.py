# /// script
# requires-python = ">=3.11"
# dependencies = ["aiohttp", "click", "httpx", "httpx-aiohttp", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Fetch many URLs concurrently with a bounded number of requests in flight.

Pattern:       One long-lived httpx.AsyncClient and an asyncio.Semaphore(C) no bigger than its
               pool: requests wait in your code, never in the pool, so none fails with PoolTimeout.
               httpx.Timeout bounds each request and asyncio.timeout() the batch; gather() with
               return_exceptions=True keeps one failure from stopping the rest, and each request
               ends as a typed FetchResult. For all-or-nothing work use asyncio.TaskGroup instead.
When to use:   Many independent I/O-bound calls (fan-out, link checks) where partial success counts.
When not to:   CPU-bound work (process_pool.py); millions of URLs (C workers on a queue); choosing
               a client for hundreds of connections (http_client_pools.py measures them).
Run:           uv run scripts/async_fetch.py
               uv run scripts/async_fetch.py --url https://example.org/ --urls-file links.txt
               Given URLs, it is a link checker: it lists the URLs that failed and exits 1 if any
               did. The demo's 500s are deliberate: the demo exits 0.
Try it:        --requests 5000 --concurrency 500: elapsed/ideal grows as the client's CPU counts.
               --requests 2000 --deadline 2: partial results, the rest counted as "deadline".
               --url http://127.0.0.1:9/: a refused connection, listed as a failure; exit status 1.
               uv run scripts/http_client_pools.py: the same fan-out over three HTTP clients.
"""

import asyncio
import contextlib
import json
import math
import multiprocessing
import signal
import socket
import statistics
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import aiohttp
import click
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

# --- The pattern ---------------------------------------------------------------------------------
TIMEOUT_S = 5.0  # per request: 50x the demo's latency, yet quick to give up on a dead host
DEADLINE_S = 60.0  # per batch: about as long as anyone waits for a link check


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: httpx.URL
    status: int | None  # None when no response arrived
    size: int  # body bytes
    latency_s: float  # from sending to the end of the body; the wait for a slot is not included
    error: str | None = None  # "http 503", "timeout", "transport", "deadline"; None when ok
    detail: str = ""  # the server's reason phrase, or the network library's message


@dataclass(frozen=True)
class Batch:
    results: list[FetchResult]  # in the order of the URLs
    elapsed_s: float  # from the first request to the last answer


def make_fast_client(concurrency: int, timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    """httpx's API over aiohttp's connection pool, which stays fast with hundreds of connections."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = AiohttpTransport(limits=limits)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s))


def is_timeout(err: httpx.RequestError) -> bool:
    """Whether a request ran out of time.

    httpx-aiohttp 0.2 maps every aiohttp.ClientConnectionError to httpx.ConnectTimeout, even a
    refused connection, so where it wraps an aiohttp error, that error decides.
    """
    if isinstance(err.__cause__, aiohttp.ClientError):
        return isinstance(err.__cause__, TimeoutError)  # aiohttp's timeouts are TimeoutErrors
    return isinstance(err, httpx.TimeoutException)


async def fetch_one(
    client: httpx.AsyncClient, semaphore: asyncio.Semaphore, url: httpx.URL
) -> FetchResult:
    """GET one URL. Network and HTTP errors come back as a FetchResult, never raised."""
    async with semaphore:  # wait here, where waiting is free, not in the pool (PoolTimeout)
        started = time.perf_counter()
        try:
            response = await client.get(url)
        except httpx.RequestError as err:
            latency = time.perf_counter() - started
            kind = "timeout" if is_timeout(err) else "transport"
            return FetchResult(url, None, 0, latency, kind, str(err) or type(err).__name__)
    latency = time.perf_counter() - started
    status = response.status_code
    error = f"http {status}" if response.is_error else None
    size = len(response.content)
    return FetchResult(url, status, size, latency, error, response.reason_phrase)


async def fetch_all(
    client: httpx.AsyncClient,
    urls: Sequence[str | httpx.URL],
    concurrency: int,
    *,
    deadline_s: float = DEADLINE_S,
    on_result: Callable[[FetchResult], None] | None = None,
) -> Batch:
    """GET every URL, at most `concurrency` (no more than the pool holds) at a time.

    Requests the deadline cuts are "deadline" results. A URL httpx cannot parse raises
    httpx.InvalidURL before any request is sent.
    """
    parsed = [httpx.URL(url) for url in urls]
    semaphore = asyncio.Semaphore(concurrency)

    async def fetch(url: httpx.URL) -> FetchResult:
        result = await fetch_one(client, semaphore, url)
        if on_result is not None:
            on_result(result)
        return result

    started = time.perf_counter()
    # Tasks, not bare coroutines: the deadline cancels gather() and its list, not their results.
    tasks = [asyncio.create_task(fetch(url)) for url in parsed]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline_s):
            await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - started
    return Batch([outcome(task, url) for task, url in zip(tasks, parsed, strict=True)], elapsed)


def outcome(task: asyncio.Task[FetchResult], url: httpx.URL) -> FetchResult:
    if task.cancelled():
        return FetchResult(url, None, 0, 0.0, "deadline")
    return task.result()  # re-raises a bug (never a network error), once the rest have finished


# --- Demo plumbing: a server in a process of its own, a progress bar, the numbers ----------------
BACKLOG = 1024  # the default, 128, refuses connections when hundreds open at once
WARMUP_LATENCY_S = 0.05  # slow enough that the warm-up requests overlap, one connection each


async def answer(request: web.Request) -> web.Response:
    """GET /<path>?latency=S&fail=P: "ok" after S seconds, or a 500 for a share P of the paths."""
    latency = float(request.query.get("latency", 0))
    fail_rate = float(request.query.get("fail", 0))
    await asyncio.sleep(latency)
    failed = zlib.crc32(request.path.encode()) / 2**32 < fail_rate
    return web.Response(status=500 if failed else 200, text="ok")


def demo_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    return app


def serve(sock: socket.socket) -> None:
    """The child process: serve the demo until SIGTERM or Ctrl-C, then shut down cleanly."""
    web.run_app(demo_app(), sock=sock, shutdown_timeout=0.1, access_log=None, print=None)


@contextlib.contextmanager
def server_process() -> Generator[str]:
    """Serve the demo from a child process, so it takes no CPU from the client; yield its URL."""
    # The socket listens before the child starts: no "ready" message to wait for, no race.
    with socket.create_server(("127.0.0.1", 0), backlog=BACKLOG) as sock:
        child = multiprocessing.get_context("fork").Process(target=serve, args=(sock,))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # until run_app() handles it
        child.start()  # fork: a copy of this process in milliseconds, safe with no thread started
        try:  # from here on, whatever happens stops the child
            signal.signal(signal.SIGINT, previous)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            child.terminate()  # SIGTERM: run_app() shuts the server down, and the child exits
            child.join()


@dataclass(frozen=True)
class Settings:
    """How the CLI fetches, whichever URLs it is given."""

    concurrency: int
    timeout_s: float
    deadline_s: float
    quiet: bool  # no progress bar (--json)


@contextlib.contextmanager
def first_ctrl_c_only() -> Generator[None]:
    """Let the first Ctrl-C cancel the batch and ignore the next: uv forwards a second one."""
    cancel = signal.getsignal(signal.SIGINT)  # asyncio.run()'s handler, which cancels the batch

    def once(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if callable(cancel):  # unless Ctrl-C was ignored from the start
            cancel(signum, frame)

    signal.signal(signal.SIGINT, once)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is once:  # no Ctrl-C came: hand the handler back
            signal.signal(signal.SIGINT, cancel)


def fetch_with_progress(
    urls: list[str], target: str, warmup_url: str | None, settings: Settings
) -> Batch:
    """fetch_all() with the fast client under a progress bar; on Ctrl-C, say how far it got."""
    done: list[FetchResult] = []

    async def fetch() -> Batch:
        with first_ctrl_c_only():
            click.echo(f"target: {target}", err=True)  # the work starts: Ctrl-C cancels it
            async with make_fast_client(settings.concurrency, settings.timeout_s) as client:
                if warmup_url is not None:  # open every connection of the pool before the clock
                    warm_up = [client.get(warmup_url) for _ in range(settings.concurrency)]
                    await asyncio.gather(*warm_up)
                with Progress(console=Console(stderr=True), disable=settings.quiet) as bar:
                    task = bar.add_task("fetching", total=len(urls))

                    def record(result: FetchResult) -> None:
                        done.append(result)
                        bar.advance(task)

                    return await fetch_all(
                        client,
                        urls,
                        settings.concurrency,
                        deadline_s=settings.deadline_s,
                        on_result=record,
                    )

    try:
        return asyncio.run(fetch())
    except KeyboardInterrupt as err:
        ok = sum(result.error is None for result in done)
        so_far = f"{len(done)}/{plural(len(urls), 'request')} ({ok} ok)"
        raise click.Abort(f"interrupted at {so_far}") from err


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(frozen=True)
class Summary:
    """The figures of a batch, as the table shows them and --json prints them."""

    requests: int
    concurrency: int
    ok: int
    failed: int
    failed_by_kind: dict[str, int]
    p50_s: float
    p95_s: float
    elapsed_s: float
    ideal_s: float  # ceil(N / C) rounds of one latency each
    ratio: float | None  # elapsed / ideal; None when there is no latency to compare with
    sequential_s: float  # N x latency: one request at a time
    speedup: float  # sequential / elapsed
    failures: list[dict[str, str]]  # url, kind and detail of each failed request


def p50_and_p95(latencies: list[float]) -> tuple[float, float]:
    """The collection's one percentile method. One sample is both; none, 0.0."""
    if len(latencies) < 2:
        only = latencies[0] if latencies else 0.0
        return only, only
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[94]


def summarise(batch: Batch, concurrency: int, latency: float | None) -> Summary:
    """The figures for the requests that ran (the deadline cut the rest).

    `latency` is the demo server's. For real URLs (None) the successful requests stand in: N is
    their number and the latency their median, as a failure takes no time or a whole timeout.
    """
    ran = [result for result in batch.results if result.error != "deadline"]
    ok = [result for result in batch.results if result.error is None]
    failures = [
        {"url": str(result.url), "kind": result.error, "detail": result.detail}
        for result in batch.results
        if result.error is not None
    ]
    p50, p95 = p50_and_p95([result.latency_s for result in ran])
    if latency is None:  # real URLs
        counted = len(ok)
        each = p50_and_p95([result.latency_s for result in ok])[0]
    else:
        counted = len(ran)
        each = latency
    ideal = math.ceil(counted / concurrency) * each
    sequential = counted * each
    return Summary(
        requests=len(batch.results),
        concurrency=concurrency,
        ok=len(ok),
        failed=len(failures),
        failed_by_kind=dict(Counter(failure["kind"] for failure in failures).most_common()),
        p50_s=p50,
        p95_s=p95,
        elapsed_s=batch.elapsed_s,
        ideal_s=ideal,
        ratio=batch.elapsed_s / ideal if ideal else None,
        sequential_s=sequential,
        speedup=sequential / batch.elapsed_s,
        failures=failures,
    )


def to_json(summary: Summary) -> str:
    fields = asdict(summary)
    rounded = {key: round(v, 4) if isinstance(v, float) else v for key, v in fields.items()}
    return json.dumps(rounded)


def show(summary: Summary, demo: bool) -> None:
    """The figures as a table, and for real URLs a table of the failures, on stdout."""
    title = f"{plural(summary.requests, 'GET')}, {summary.concurrency} at a time"
    table = Table(show_header=False, title=title)
    kinds = "".join(f", {count} {kind}" for kind, count in summary.failed_by_kind.items())
    table.add_row("ok / failed", f"{summary.ok} / {summary.failed}{kinds}")
    p50_ms = summary.p50_s * 1000
    p95_ms = summary.p95_s * 1000
    table.add_row("latency p50 / p95", f"{p50_ms:.0f} ms / {p95_ms:.0f} ms")
    elapsed_label = "elapsed (pool warmed up first)" if demo else "elapsed"
    table.add_row(elapsed_label, f"{summary.elapsed_s:.2f} s")
    comparison = "no latency to compare"
    if summary.ratio is not None:
        comparison = f"elapsed is {summary.ratio:.2f}x this"
    table.add_row("ideal: ceil(N/C) x latency", f"{summary.ideal_s:.2f} s: {comparison}")
    sequential = f"{summary.sequential_s:.1f} s, {summary.speedup:.1f}x elapsed"
    table.add_row("sequential: N x latency", sequential)
    console = Console()
    console.print(table)
    if not demo and summary.failures:  # a link check: which URLs failed, and why
        failures = Table("URL", "kind", "detail", title=plural(summary.failed, "failure"))
        for failure in summary.failures:  # URLs and messages are text, never rich markup
            failures.add_row(Text(failure["url"]), failure["kind"], Text(failure["detail"]))
        console.print(failures)


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


def plain_urls(texts: list[str]) -> list[str]:
    """The texts, once each is known to be a plain http(s) URL; else a click.BadParameter."""
    for text in texts:
        try:  # UnicodeError: a host that is not valid IDNA (httpx decodes it on demand)
            url = httpx.URL(text)
            plain = url.scheme in ("http", "https") and url.host != "" and url.userinfo == b""
        except (UnicodeError, httpx.InvalidURL) as err:
            raise click.BadParameter(f"{text!r}: {err}") from err
        if not plain:
            raise click.BadParameter(f"{text!r} is not a plain http(s) URL")
    return texts


def checked_urls(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    return plain_urls(list(value))


def urls_in_file(ctx: click.Context, param: click.Parameter, value: TextIO | None) -> list[str]:
    """The URLs in the file, one a line; blank lines and # comments are skipped."""
    if value is None:
        return []
    try:
        with value:  # read it all now, and close it (click would only after a good parse)
            lines = [line.strip() for line in value]
    except UnicodeError as err:  # not UTF-8 text
        raise click.BadParameter(str(err)) from err
    except OSError as err:  # opened, yet unreadable: a device, a failing disk
        raise click.BadParameter(f"cannot read {value.name}: {err.strerror}") from err
    texts = [line for line in lines if line and not line.startswith("#")]
    if not texts:
        raise click.BadParameter("no URLs")
    return plain_urls(texts)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--requests", type=click.IntRange(1, 100_000), default=200, help="How many GETs the demo sends."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=20,
    help="The most GETs in flight at once, and the connection pool's size.",
)
@click.option(
    "--latency", type=FiniteFloat(0, 10), default=0.1, help="Seconds the demo server waits."
)
@click.option(
    "--fail-rate", type=FiniteFloat(0, 1), default=0.05, help="Share of demo GETs that get a 500."
)
@click.option(
    "--url",
    "urls",
    multiple=True,
    callback=checked_urls,
    help="Check this URL instead of running the demo; repeat it for more.",
)
@click.option(
    "--urls-file",
    type=click.File(encoding="utf-8"),
    callback=urls_in_file,
    help="Check the URLs in this file, one a line; blank lines and # comments are skipped.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=FiniteFloat(0.001, 300),
    default=TIMEOUT_S,
    help="Seconds one GET may take before it fails as a timeout.",
)
@click.option(
    "--deadline",
    "deadline_s",
    type=FiniteFloat(0.001, 3600),
    default=DEADLINE_S,
    help="Seconds for the whole batch; GETs unanswered by then fail as a deadline.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.pass_context
def cli(
    ctx: click.Context,
    requests: int,
    latency: float,
    fail_rate: float,
    urls: list[str],
    urls_file: list[str],
    concurrency: int,
    timeout_s: float,
    deadline_s: float,
    as_json: bool,
) -> None:
    """Fetch many URLs, a bounded number at a time: a local demo, or the URLs you give.

    Given URLs, it lists those that failed and exits 1 if any did.
    """
    settings = Settings(concurrency, timeout_s, deadline_s, quiet=as_json)
    given = [*urls, *urls_file]
    if given:
        batch = fetch_with_progress(given, plural(len(given), "URL"), None, settings)
        summary = summarise(batch, concurrency, None)
    else:
        with server_process() as base:
            demo = [f"{base}/item/{i}?latency={latency}&fail={fail_rate}" for i in range(requests)]
            target = f"local server on {base} (own process)"
            warmup_url = f"{base}/warmup?latency={WARMUP_LATENCY_S}"
            batch = fetch_with_progress(demo, target, warmup_url, settings)
        summary = summarise(batch, concurrency, latency)
    if as_json:
        click.echo(to_json(summary))
    else:
        show(summary, demo=not given)
    if given and summary.failed:  # a broken link fails a link check
        ctx.exit(1)


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
