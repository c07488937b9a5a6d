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
               httpx.Timeout bounds each request and asyncio.timeout() the batch; every request
               ends as a typed FetchResult, a failure too, so one never stops the rest. For
               all-or-nothing work use asyncio.TaskGroup instead.
When to use:   Many independent I/O-bound calls (fan-out, crawls) where partial success counts.
When not to:   CPU-bound work (process_pool.py); millions of URLs (C workers on a queue); checking
               links (link_check.py); choosing among HTTP clients (http_client_pools.py).
Run:           uv run scripts/async_fetch.py        (its 500s are deliberate results: it exits 0)
               uv run scripts/async_fetch.py --concurrency 5 --latency-ms 200
Try it:        --requests 5000 --concurrency 500: elapsed/ideal grows as the client's CPU counts.
               --requests 2000 --deadline 2: partial results, the rest counted as "deadline".
"""

import asyncio
import contextlib
import json
import math
import multiprocessing
import signal
import socket
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass

import aiohttp
import click
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
TIMEOUT_S = 5.0  # per request: 50x the demo's latency, yet quick to give up on a dead host
DEADLINE_S = 60.0  # per batch: past a minute, report what finished rather than wait


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: httpx.URL
    status: int | None  # None when no response arrived
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
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeout_s)


def is_timeout(err: httpx.RequestError) -> bool:
    """Whether a request ran out of time. httpx-aiohttp 0.2 maps every aiohttp connection error,
    a refused connection too, to httpx.ConnectTimeout: where it wraps one, that error decides."""
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
            kind = "timeout" if is_timeout(err) else "transport"
            detail = str(err) or type(err).__name__
            return FetchResult(url, None, time.perf_counter() - started, kind, detail)
    latency = time.perf_counter() - started
    error = f"http {response.status_code}" if response.is_error else None
    return FetchResult(url, response.status_code, latency, error, response.reason_phrase)


async def fetch_all(
    client: httpx.AsyncClient,
    urls: Sequence[str | httpx.URL],
    concurrency: int,
    *,
    deadline_s: float = DEADLINE_S,
    on_result: Callable[[FetchResult], None] | None = None,
) -> Batch:
    """GET every URL, at most `concurrency` (no more than the pool holds) at a time.

    The bound is per call: callers sharing a client at once need a pool for all of them. What
    the deadline cuts is a "deadline" result; a URL httpx cannot parse raises httpx.InvalidURL.
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
        return FetchResult(url, None, 0.0, "deadline")
    return task.result()  # re-raises a bug (never a network error), once the rest have finished


# --- Demo plumbing: a server in a process of its own, and the numbers ---------------------------
BACKLOG = 1024  # the default, 128, refuses connections when hundreds open at once
WARMUP_LATENCY_S = 0.05  # slow enough that the warm-up requests overlap, one connection each


async def answer(request: web.Request) -> web.Response:
    """GET /<path>?latency=S&fail=P: "ok" after S seconds, or a 500 for a share P of the paths."""
    await asyncio.sleep(float(request.query.get("latency", 0)))
    failed = zlib.crc32(request.path.encode()) / 2**32 < float(request.query.get("fail", 0))
    return web.Response(status=500 if failed else 200, text="ok")


def serve(sock: socket.socket) -> None:
    """The child process: serve the demo, Ctrl-C ignored, until the parent kills it."""
    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    web.run_app(app, sock=sock, handle_signals=False, access_log=None, print=None)


@contextlib.contextmanager
def server_process() -> Generator[str]:
    """Serve the demo from a child process, so it takes no CPU from the client; yield its URL."""
    # The socket listens before the child starts: no "ready" message to wait for, no race.
    with socket.create_server(("127.0.0.1", 0), backlog=BACKLOG) as sock:
        child = multiprocessing.get_context("fork").Process(target=serve, args=(sock,))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child inherits this
        child.start()  # fork: a copy of this process in milliseconds, safe with no thread started
        try:  # Ctrl-C is the parent's to handle; whatever happens, the child is stopped
            signal.signal(signal.SIGINT, previous)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            child.kill()  # SIGKILL: the server keeps nothing worth a graceful shutdown
            child.join()


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


def fetch_demo(base: str, urls: list[str], concurrency: int, deadline_s: float) -> Batch:
    """Warm the fast client's pool, then fetch_all(); on Ctrl-C, say how far it got."""
    done: list[FetchResult] = []

    async def fetch() -> Batch:
        cancel_on_ctrl_c()
        async with make_fast_client(concurrency) as client:
            # Open every connection of the pool before the clock starts.
            warmup_url = f"{base}/warmup?latency={WARMUP_LATENCY_S}"
            await asyncio.gather(*[client.get(warmup_url) for _ in range(concurrency)])
            click.echo(f"target: local server on {base} (own process), pool warm", err=True)
            return await fetch_all(
                client, urls, concurrency, deadline_s=deadline_s, on_result=done.append
            )

    try:
        return asyncio.run(fetch())
    except asyncio.CancelledError as err:  # by Ctrl-C
        ok = sum(result.error is None for result in done)
        raise click.Abort(f"interrupted: {len(done)} of {len(urls)} done, {ok} ok") from err


@dataclass(frozen=True)
class Summary:
    ok: int
    failed: int
    failed_by_kind: dict[str, int]
    elapsed_s: float
    ideal_s: float  # ceil(N / C) rounds of one latency each
    ratio: float | None  # elapsed / ideal; None when the deadline cut every request
    sequential_s: float  # N x latency: one request at a time
    speedup: float  # sequential / elapsed


def summarise(batch: Batch, concurrency: int, latency: float) -> Summary:
    """Every request's outcome; ideal and sequential time for those that ran (not cut off)."""
    ran = [result for result in batch.results if result.error != "deadline"]
    failed = Counter(result.error for result in batch.results if result.error is not None)
    ideal = math.ceil(len(ran) / concurrency) * latency
    sequential = len(ran) * latency
    return Summary(
        ok=len(batch.results) - failed.total(),
        failed=failed.total(),
        failed_by_kind=dict(failed.most_common()),
        elapsed_s=round(batch.elapsed_s, 4),
        ideal_s=round(ideal, 4),
        ratio=round(batch.elapsed_s / ideal, 4) if ideal else None,
        sequential_s=round(sequential, 4),
        speedup=round(sequential / batch.elapsed_s, 4),
    )


def show(summary: Summary, concurrency: int) -> None:
    """The figures as a table, on stdout."""
    title = f"{summary.ok + summary.failed} GETs, {concurrency} at a time"
    table = Table(show_header=False, title=title)
    kinds = "".join(f", {count} {kind}" for kind, count in summary.failed_by_kind.items())
    table.add_row("ok / failed", f"{summary.ok} / {summary.failed}{kinds}")
    table.add_row("elapsed (pool warmed up first)", f"{summary.elapsed_s:.2f} s")
    ratio = "no request ran" if summary.ratio is None else f"elapsed is {summary.ratio:.2f}x this"
    table.add_row("ideal: ceil(N/C) x latency", f"{summary.ideal_s:.2f} s: {ratio}")
    sequential = f"{summary.sequential_s:.1f} s, {summary.speedup:.1f}x elapsed"
    table.add_row("sequential: N x latency", sequential)
    Console().print(table)


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--requests", type=click.IntRange(1, 100_000), default=200, help="GETs to send.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=20, help="GETs in flight.")
@click.option("--latency-ms", type=click.IntRange(1, 10_000), default=100, help="Server's wait.")
@click.option("--fail-percent", type=click.IntRange(0, 100), default=5, help="GETs answered 500.")
@click.option("--deadline", type=click.IntRange(1, 3600), default=60, help="Seconds for them all.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(
    requests: int,
    concurrency: int,
    latency_ms: int,
    fail_percent: int,
    deadline: int,
    as_json: bool,
) -> None:
    """GET many URLs from a local server, a bounded number at a time, against the ideal time."""
    latency = latency_ms / 1000
    with server_process() as base:
        query = f"latency={latency}&fail={fail_percent / 100}"
        urls = [f"{base}/item/{i}?{query}" for i in range(requests)]
        batch = fetch_demo(base, urls, concurrency, deadline)
    summary = summarise(batch, concurrency, latency)
    figures = {"requests": requests, "concurrency": concurrency, **asdict(summary)}
    if as_json:
        click.echo(json.dumps(figures))
    else:
        show(summary, concurrency)


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
