# /// script
# requires-python = ">=3.11"
# dependencies = ["aiohttp", "click", "httpx", "httpx-aiohttp", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Run one bounded fan-out through several HTTP clients and see what each connection pool costs.

Pattern:       The same fan-out (Semaphore(C), a warm pool of C connections) costs each client very
               different CPU. httpcore, stock httpx's pool, walks all its connections each time a
               request starts or ends; once a round of C requests costs more CPU than the server's
               latency, the client falls behind, more connections sit idle, each walk costs more.
               aiohttp's pool hands out a connection in O(1), also under httpx (AiohttpTransport).
               cProfile a --client httpx run: httpcore's _assign_requests_to_connections dominates.
When to use:   Picking an async HTTP client for 50+ requests in flight; re-checking after upgrades.
When not to:   A few requests in flight: every client keeps up there, so choose by API instead.
Run:           uv run scripts/http_client_pools.py
               uv run scripts/http_client_pools.py --client aiohttp --client httpx --json
Try it:        --latency-ms 1000: the same 50 in flight keep up; stock httpx is near ideal.
               --concurrency 10 --requests 100: all three keep up, yet CPU per request differs.
               --requests 5000 --concurrency 500 --client httpx-aiohttp --client aiohttp: httpx's
               own work per request (its models, on aiohttp's pool) shows beside raw aiohttp.
"""

import asyncio
import contextlib
import functools
import json
import logging
import math
import multiprocessing
import resource
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import click
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
TIMEOUT_S = 10.0  # per request: 100x the demo's latency, and room for the stock pool at C=500
Fetch = Callable[[str], Awaitable[bytes]]  # GET a URL, return its body


def stock_httpx_client(concurrency: int, timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    """httpx with its own pool (httpcore): C connections, all kept alive between requests."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s))


def httpx_aiohttp_client(concurrency: int, timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    """httpx's API over aiohttp's pool: the same calls, a different connection pool."""
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=concurrency))
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s))


def aiohttp_session(concurrency: int, timeout_s: float = TIMEOUT_S) -> aiohttp.ClientSession:
    """Raw aiohttp; build it inside a coroutine (its connector needs a running loop)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout)


async def get_with_httpx(client: httpx.AsyncClient, url: str) -> bytes:
    """GET url and return the body; an error status raises httpx.HTTPStatusError."""
    response = await client.get(url)
    response.raise_for_status()
    return response.content


async def get_with_aiohttp(session: aiohttp.ClientSession, url: str) -> bytes:
    """GET url and return the body; an error status raises aiohttp.ClientResponseError."""
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.read()


async def fan_out(
    fetch: Fetch, urls: Iterable[str], concurrency: int, on_done: Callable[[], None] = lambda: None
) -> list[bytes]:
    """fetch(url) for every URL, at most `concurrency` at a time; the bodies in URL order.
    All or nothing: the first error cancels the rest and comes out in an ExceptionGroup.
    A task per URL up front: memory grows with the URLs (for millions: C workers on a queue)."""
    semaphore = asyncio.Semaphore(concurrency)  # as many as the pool has connections

    async def bounded(url: str) -> bytes:
        async with semaphore:  # requests wait here, never inside the pool
            body = await fetch(url)
        on_done()
        return body

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(bounded(url)) for url in urls]
    return [task.result() for task in tasks]


# --- Demo plumbing: a target server in a process of its own, and the measurements ---------------
CLIENTS = ("httpx", "httpx-aiohttp", "aiohttp")
BACKLOG = 1024  # a whole pool connects at once: aiohttp's default of 128 drops SYNs (1 s retries)
SPARE_FILES = 64  # files a process holds besides its C sockets (measured: 12 at C=500)


def allow_open_files(concurrency: int) -> None:
    """Raise the soft limit on open files to fit C sockets, as load tools do (macOS starts at 256);
    the forked server inherits it. Refuse a C that the hard limit has no room for."""
    needed = concurrency + SPARE_FILES  # per process: the client's C sockets, or the server's
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:  # only root may raise a hard limit
        hint = f"needs {needed} open files, above this shell's hard limit (ulimit -Hn)"
        raise click.BadParameter(hint, param_hint="--concurrency")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def demo_app(latency_s: float, concurrency: int) -> web.Application:
    """GET /item/<n> answers "ok" after latency_s; GET /warmup once `concurrency` are waiting."""
    everyone = asyncio.Barrier(concurrency)  # cyclic: it lets each client's warm-up through

    async def item(request: web.Request) -> web.Response:
        await asyncio.sleep(latency_s)
        return web.Response(text="ok")

    async def warmup(request: web.Request) -> web.Response:
        await everyone.wait()  # C requests waiting at once hold C connections: the pool is warm
        return web.Response(text="warm")

    app = web.Application()
    app.add_routes([web.get("/item/{n}", item), web.get("/warmup", warmup)])
    return app


def serve(sock: socket.socket, latency_s: float, concurrency: int) -> None:
    """The child process: serve demo_app on `sock` until killed (no access log: it costs CPU)."""
    # Quiet: the client reports a failure in one line, not a traceback per refused connection.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    app = demo_app(latency_s, concurrency)
    web.run_app(app, sock=sock, backlog=BACKLOG, access_log=None, print=None, handle_signals=False)


@contextlib.contextmanager
def server_process(latency_s: float, concurrency: int) -> Generator[str]:
    """Serve the demo from a child process, yield its base URL, and always stop the child."""
    # The socket listens before the child starts: no "ready" message to wait for, no race.
    with socket.create_server(("127.0.0.1", 0), backlog=BACKLOG) as sock:
        context = multiprocessing.get_context("fork")  # ~5 ms, safe before any thread
        child = context.Process(target=serve, args=(sock, latency_s, concurrency))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child inherits this
        child.start()
        try:  # Ctrl-C is ours to handle; from here on, whatever happens stops the child
            signal.signal(signal.SIGINT, previous)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            child.kill()  # SIGKILL: the server keeps nothing worth a graceful exit
            child.join()


@contextlib.asynccontextmanager
async def fresh_pool(client: str, concurrency: int) -> AsyncGenerator[Fetch]:
    """A new client of the named kind, as a fetch(url) coroutine function; closed on exit."""
    if client == "aiohttp":
        async with aiohttp_session(concurrency) as session:
            yield functools.partial(get_with_aiohttp, session)
    else:
        build = stock_httpx_client if client == "httpx" else httpx_aiohttp_client
        async with build(concurrency) as http:
            yield functools.partial(get_with_httpx, http)


@dataclass(frozen=True)
class ClientRow:
    client: str
    elapsed_s: float  # from the first request to the last answer, the pool already warm
    ratio: float  # elapsed_s / the ideal: 1.0 is a client that costs nothing
    cpu_ms_per_request: float  # this process's CPU: the client's, not the server's


async def measure(
    client: str, base: str, requests: int, concurrency: int, ideal_s: float, bar: Progress
) -> ClientRow:
    """Warm a fresh pool (C connections), then time `requests` GETs on a new line of the bar."""
    task = bar.add_task(client, total=requests)
    urls = [f"{base}/item/{i}" for i in range(requests)]
    async with fresh_pool(client, concurrency) as fetch:
        await fan_out(fetch, [f"{base}/warmup"] * concurrency, concurrency)
        cpu_started = time.process_time()
        started = time.perf_counter()
        await fan_out(fetch, urls, concurrency, lambda: bar.advance(task))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    bar.console.print(f"{client}: {elapsed:.2f} s", highlight=False)
    return ClientRow(client, elapsed, elapsed / ideal_s, cpu * 1000 / requests)


def only_the_first_ctrl_c() -> None:
    """Let only the first Ctrl-C cancel the run: a second (uv passes one on) breaks the clean-up."""
    cancel = signal.getsignal(signal.SIGINT)

    def once(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if callable(cancel):
            cancel(signum, frame)

    signal.signal(signal.SIGINT, once)


def render(rows: list[ClientRow], ideal_s: float, title: str) -> Table:
    """One row per client: its time, against the ideal, and its CPU per request."""
    columns = ("client", "elapsed", "ideal", "elapsed/ideal", "CPU ms/request")
    table = Table(*columns, title=title, caption="warm pools, separate server")
    for row in rows:
        times = (f"{row.elapsed_s:.2f} s", f"{ideal_s:.2f} s", f"{row.ratio:.2f}x")
        table.add_row(row.client, *times, f"{row.cpu_ms_per_request:.2f}")
    return table


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--requests", type=click.IntRange(1, 100_000), default=200, help="GETs per client.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=50, help="GETs in flight.")
@click.option(
    "--latency-ms", type=click.IntRange(10, 10000), default=100, help="Server ms per GET."
)
@click.option(
    "--client",
    "clients",
    type=click.Choice(CLIENTS),
    multiple=True,
    default=CLIENTS,
    help="A client to measure (repeatable); stock httpx slows down as --concurrency grows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(
    requests: int, concurrency: int, latency_ms: int, clients: tuple[str, ...], as_json: bool
) -> None:
    """Time the same bounded fan-out of GETs with each HTTP client against one local server."""
    allow_open_files(concurrency)
    chosen = list(dict.fromkeys(clients))  # each client once, in the order given
    finished: list[ClientRow] = []
    latency = latency_ms / 1000  # seconds
    ideal = math.ceil(requests / concurrency) * latency
    bar = Progress(console=Console(stderr=True), disable=as_json or not sys.stderr.isatty())

    async def measure_each(base: str) -> None:
        only_the_first_ctrl_c()
        with bar:
            for client in chosen:
                result = await measure(client, base, requests, concurrency, ideal, bar)
                finished.append(result)

    with server_process(latency, concurrency) as base:
        try:
            asyncio.run(measure_each(base))
        except KeyboardInterrupt as err:  # one line, with the partial results
            done = [f"{m.client} took {m.elapsed_s:.2f} s" for m in finished]
            started = bar.tasks[len(finished) :]  # the client running, if any
            running = [f"{t.description} {t.completed:.0f}/{requests}" for t in started]
            raise click.Abort("; ".join(["interrupted", *done, *running])) from err
        except ExceptionGroup as group:  # a GET failed; the TaskGroup cancelled the rest
            first = group.exceptions[0]
            detail = str(first).partition("\n")[0]  # httpx adds a line of advice: one line here
            reason = f"{chosen[len(finished)]}: {type(first).__name__} {detail}".rstrip()
            raise click.ClickException(reason) from group
    if as_json:
        settings = {"requests": requests, "concurrency": concurrency, "latency_s": latency}
        rows = [asdict(row) for row in finished]
        click.echo(json.dumps({**settings, "ideal_s": ideal, "clients": rows}))
    else:
        title = f"GETs per client: {requests}, in flight: {concurrency}, latency: {latency} s"
        Console().print(render(finished, ideal, title))


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
