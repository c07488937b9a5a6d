"""Tests for scripts/async_fetch.py: the pattern against real loopback servers, then the script.

The pattern tests run fetch_all() on the test's own event loop against servers on 127.0.0.1: the
lesson's demo app, and a CountingServer here that also counts open connections and requests in
flight (a real measurement of what the semaphore allows, not a mock). Each runs with a plain
httpx.AsyncClient and with the lesson's fast client: the pattern must not care which. Nothing
sleeps to wait for something: the tests wait on events and futures. No test asserts on timing
beyond a sanity bound.
"""

import asyncio
import json
import multiprocessing
import re
import signal
import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

import async_fetch
from async_fetch import Batch, FetchResult
from conftest import Invocation, ScriptRunner


def plain_client(concurrency: int, timeout_s: float = async_fetch.TIMEOUT_S) -> httpx.AsyncClient:
    """Stock httpx, as a service might already hold it: its own pool, sized to the semaphore."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s))


CLIENTS = {"plain httpx": plain_client, "fast": async_fetch.make_fast_client}

# --- real loopback servers -----------------------------------------------------------------------


@dataclass
class Counts:
    """What a CountingServer saw. `idle` is set whenever its last open connection closes."""

    open_connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class CountingServer(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every GET gets "200 ok" after `latency_s`; counts what it sees."""

    def __init__(self, counts: Counts, latency_s: float) -> None:
        self.counts = counts
        self.latency_s = latency_s
        self.buffer = b""
        self.pending: list[asyncio.TimerHandle] = []  # answers due, oldest first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counts.open_connections += 1
        self.counts.idle.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in self.pending:  # requests the client gave up on are no longer in flight
            handle.cancel()
        self.counts.in_flight -= len(self.pending)
        self.counts.open_connections -= 1
        if self.counts.open_connections == 0:
            self.counts.idle.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        while end >= 0:  # one request head each; a GET has no body
            self.buffer = self.buffer[end + 4 :]
            self.counts.in_flight += 1
            self.counts.max_in_flight = max(self.counts.max_in_flight, self.counts.in_flight)
            self.pending.append(asyncio.get_running_loop().call_later(self.latency_s, self.reply))
            end = self.buffer.find(b"\r\n\r\n")

    def reply(self) -> None:
        self.pending.pop(0)
        self.counts.in_flight -= 1
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class HangUp(asyncio.Protocol):
    """Reads a request, then closes the connection without answering."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.close()


@asynccontextmanager
async def serving(factory: Callable[[], asyncio.Protocol]) -> AsyncGenerator[str]:
    """Serve `factory`'s protocol on 127.0.0.1 from this event loop; yield the base URL."""
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def demo_server() -> AsyncGenerator[str]:
    """The lesson's own demo app, served from this event loop; yield the base URL."""
    app = web.Application()
    app.router.add_get("/{path:.*}", async_fetch.answer)  # the route the lesson's server has
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site.name
    finally:
        await runner.cleanup()


def demo_urls(base: str, n: int, latency: float = 0.0, fail: float = 0.0) -> list[str]:
    return [f"{base}/item/{i}?latency={latency}&fail={fail}" for i in range(n)]


def refused_url() -> tuple[socket.socket, str]:
    """A port that is bound but not listening, so connecting to it is refused; close it after."""
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    return unused, f"http://127.0.0.1:{unused.getsockname()[1]}/"


def run(coroutine_function: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine_function())


@pytest.fixture(params=list(CLIENTS))
def make_client(request: pytest.FixtureRequest) -> Callable[..., httpx.AsyncClient]:
    return CLIENTS[request.param]


# --- the pattern ---------------------------------------------------------------------------------


def test_all_ok_in_the_order_of_the_urls(make_client: Callable[..., httpx.AsyncClient]) -> None:
    seen: list[FetchResult] = []

    async def scenario() -> Batch:
        async with demo_server() as base, make_client(5) as client:
            return await async_fetch.fetch_all(
                client, demo_urls(base, 30), 5, on_result=seen.append
            )

    batch = run(scenario)
    assert [r.error for r in batch.results] == [None] * 30
    assert {(r.status, r.detail) for r in batch.results} == {(200, "OK")}
    assert [r.url.path for r in batch.results] == [f"/item/{i}" for i in range(30)]
    assert sorted(seen, key=lambda r: r.url.path) == sorted(batch.results, key=lambda r: r.url.path)


def test_a_default_client_works_unchanged() -> None:
    async def scenario() -> Batch:
        async with demo_server() as base, httpx.AsyncClient() as client:
            return await async_fetch.fetch_all(client, demo_urls(base, 30), 10)

    assert [r.status for r in run(scenario).results] == [200] * 30


def test_failures_are_classified_by_kind(make_client: Callable[..., httpx.AsyncClient]) -> None:
    """A refused connection is "transport" with either client: httpx-aiohttp calls it a timeout."""
    unused, refused = refused_url()

    async def scenario() -> Batch:
        # A 1.5 s timeout: 0.3 s timed out even the quick answers once, on a loaded CI machine.
        async with demo_server() as base, serving(HangUp) as rude, make_client(5, 1.5) as client:
            urls = [
                f"{base}/item/1?fail=1",  # a 500
                f"{base}/item/2?latency=5",  # slower than the timeout
                refused,
                f"{rude}/item/3",  # closed without an answer
                f"{base}/item/4",  # fine
            ]
            return await async_fetch.fetch_all(client, urls, 5)

    with closing(unused):
        batch = run(scenario)
    kinds = ["http 500", "timeout", "transport", "transport", None]
    assert [r.error for r in batch.results] == kinds
    assert [r.status for r in batch.results] == [500, None, None, None, 200]
    assert batch.results[0].detail == "Internal Server Error"
    assert all(r.detail for r in batch.results[1:4]), batch.results


def test_never_more_requests_in_flight_than_the_concurrency(
    make_client: Callable[..., httpx.AsyncClient],
) -> None:
    counts = Counts()

    async def scenario() -> Batch:
        async with serving(lambda: CountingServer(counts, 0.05)) as base, make_client(8) as client:
            return await async_fetch.fetch_all(client, demo_urls(base, 40), 8)

    batch = run(scenario)
    assert all(r.error is None for r in batch.results)
    assert counts.max_in_flight == 8  # the cap, reached: the requests did overlap


def test_ten_times_more_requests_than_connections_never_time_out_waiting(
    make_client: Callable[..., httpx.AsyncClient],
) -> None:
    """50 requests, 5 connections, 0.05 s each: the last waits ~0.45 s, the timeout is 0.2 s."""
    counts = Counts()

    async def scenario() -> Batch:
        async with (
            serving(lambda: CountingServer(counts, 0.05)) as base,
            make_client(5, 0.2) as client,
        ):
            return await async_fetch.fetch_all(client, demo_urls(base, 50), 5)

    batch = run(scenario)
    assert [r.error for r in batch.results] == [None] * 50
    assert counts.max_in_flight == 5


def test_without_the_semaphore_queued_requests_time_out() -> None:
    """The trap the semaphore avoids: gather() straight on a client, 50 requests, 5 connections."""

    async def scenario() -> list[BaseException | httpx.Response]:
        async with (
            serving(lambda: CountingServer(Counts(), 0.05)) as base,
            async_fetch.make_fast_client(5, 0.2) as client,
        ):
            calls = [client.get(url) for url in demo_urls(base, 50)]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run(scenario)
    timeouts = [
        o for o in outcomes if isinstance(o, httpx.RequestError) and async_fetch.is_timeout(o)
    ]
    assert timeouts, outcomes  # waiting for a connection counts against the timeout


def test_the_deadline_keeps_the_results_that_finished(
    make_client: Callable[..., httpx.AsyncClient],
) -> None:
    async def scenario() -> Batch:
        async with demo_server() as base, make_client(7) as client:
            urls = demo_urls(base, 4) + demo_urls(base, 3, latency=30)
            return await async_fetch.fetch_all(client, urls, 7, deadline_s=0.5)

    batch = run(scenario)
    assert [r.error for r in batch.results] == [None] * 4 + ["deadline"] * 3
    assert batch.elapsed_s < 30  # sanity: the deadline ended it, not the slow answers


def test_cancelling_mid_run_closes_every_connection(
    make_client: Callable[..., httpx.AsyncClient],
) -> None:
    counts = Counts()

    async def scenario() -> None:
        async with serving(lambda: CountingServer(counts, 0.05)) as base:
            first_done = asyncio.Event()
            async with make_client(10) as client:
                urls = demo_urls(base, 200)
                fetching = async_fetch.fetch_all(
                    client, urls, 10, on_result=lambda _: first_done.set()
                )
                batch = asyncio.create_task(fetching)
                await first_done.wait()  # one answered, the others in flight
                assert counts.open_connections > 0
                batch.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await batch
            async with asyncio.timeout(5):  # the client is closed: so is every connection
                await counts.idle.wait()

    run(scenario)
    assert counts.open_connections == 0
    assert counts.in_flight == 0


def test_a_bad_url_fails_before_any_request() -> None:
    async def scenario() -> Batch:
        async with httpx.AsyncClient() as client:
            return await async_fetch.fetch_all(client, ["http://[::1/"], 1)

    with pytest.raises(httpx.InvalidURL):
        run(scenario)


# --- the demo server -----------------------------------------------------------------------------


def test_the_demo_app_answers_late_and_fails_a_share_of_the_paths() -> None:
    async def scenario() -> list[int]:
        async with demo_server() as base, httpx.AsyncClient(timeout=5) as client:
            slow = await client.get(f"{base}/slow?latency=0.2")
            assert slow.elapsed.total_seconds() > 0.15  # it waited, as asked
            urls = demo_urls(base, 100, fail=0.25)
            return [(await client.get(url)).status_code for url in urls]

    statuses = run(scenario)
    assert set(statuses) == {200, 500}
    assert 10 < statuses.count(500) < 40  # a quarter of the paths, give or take


def test_server_process_serves_and_stops_cleanly() -> None:
    before = set(multiprocessing.active_children())
    with async_fetch.server_process() as base:
        (child,) = set(multiprocessing.active_children()) - before
        response = httpx.get(f"{base}/item/7?fail=1", timeout=5)
    assert response.status_code == 500
    assert child.exitcode == -signal.SIGKILL  # stopped, whatever it was doing


# --- the figures ---------------------------------------------------------------------------------
URL = httpx.URL("http://127.0.0.1/")


def test_no_request_ran_means_no_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    """The deadline cut every request: the ideal is 0 s, and elapsed/ideal means nothing."""
    results = [FetchResult(URL, None, 0.0, "deadline") for _ in range(10)]
    summary = async_fetch.summarise(Batch(results, 1.0), 5, 0.1)
    assert (summary.ideal_s, summary.ratio, summary.sequential_s) == (0.0, None, 0.0)
    async_fetch.show(summary, 5)
    out = capsys.readouterr().out
    assert "no request ran" in out
    assert "10 GETs, 5 at a time" in out


def test_the_demo_figures_leave_out_what_the_deadline_cut() -> None:
    results = [FetchResult(URL, 200, 0.1) for _ in range(4)]
    results += [FetchResult(URL, None, 0.0, "deadline") for _ in range(96)]
    summary = async_fetch.summarise(Batch(results, 0.2), 2, 0.1)
    assert (summary.ideal_s, summary.sequential_s) == (0.2, 0.4)  # 4 ran, not 100
    assert summary.ratio == pytest.approx(1.0)
    assert summary.failed_by_kind == {"deadline": 96}


# --- the command line, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "1001"], "--concurrency"),
        (["--latency-ms", "0"], "--latency-ms"),
        (["--latency-ms", "nan"], "--latency-ms"),  # whole numbers: nan and inf cannot get in
        (["--latency-ms", "inf"], "--latency-ms"),
        (["--latency", "nan"], "--latency"),  # gone: --latency took seconds, nan included
        (["--fail-percent", "101"], "--fail-percent"),
        (["--fail-percent", "nan"], "--fail-percent"),
        (["--fail-rate", "0.5"], "--fail-rate"),  # gone: --fail-percent takes whole numbers
        (["--deadline", "-5"], "--deadline"),
        (["--deadline", "nan"], "--deadline"),
        (["--deadline", "inf"], "--deadline"),
        (["--requests", "abc"], "--requests"),
        (["--requests", "0"], "--requests"),
        (["--url", "http://127.0.0.1/"], "--url"),  # gone: link_check.py checks real URLs
        (["--transport", "httpx"], "--transport"),  # gone: http_client_pools.py compares clients
        (["--timeout", "1"], "--timeout"),  # gone: the client's TIMEOUT_S is the lesson's
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(async_fetch.run, *args).assert_usage_error(argument)


def test_help_speaks_to_users() -> None:
    for param in async_fetch.cli.params:
        assert "fetch_all" not in (getattr(param, "help", None) or ""), param.name
    assert "fetch_all" not in (async_fetch.cli.help or "")


def test_the_demo_prints_a_table_and_its_500s_do_not_fail_it(
    invoke: Callable[..., Invocation],
) -> None:
    args = ["--requests", "40", "--latency-ms", "10", "--fail-percent", "50"]
    done = invoke(async_fetch.run, *args)
    assert done.code == 0, done.stderr
    assert "40 GETs, 20 at a time" in done.stdout
    assert re.search(r"ok / failed +│ \d+ / \d+, \d+ http 500", done.stdout), done.stdout
    for row in ("elapsed (pool warmed up first)", "ideal", "sequential"):
        assert re.search(rf"│ {re.escape(row)}.* +│ .*\d", done.stdout), done.stdout


# --- the script, as a user runs it ---------------------------------------------------------------

JSON_KEYS = {
    "requests",
    "concurrency",
    "ok",
    "failed",
    "failed_by_kind",
    "elapsed_s",
    "ideal_s",
    "ratio",
    "sequential_s",
    "speedup",
}


def test_json_run_of_the_demo(runner: ScriptRunner) -> None:
    args = ["--requests", "60", "--concurrency", "10", "--latency-ms", "50", "--fail-percent", "20"]
    proc = runner.run("async_fetch", *args, "--json")
    assert proc.returncode == 0, proc.stderr  # the demo's deliberate 500s do not fail it
    summary = json.loads(proc.stdout)
    assert summary.keys() == JSON_KEYS
    assert (summary["requests"], summary["concurrency"]) == (60, 10)
    assert summary["ok"] + summary["failed"] == 60
    assert summary["failed_by_kind"] == {"http 500": summary["failed"]}
    assert summary["failed"] > 0
    assert summary["ideal_s"] == pytest.approx(0.3)  # ceil(60 / 10) x 0.05
    assert 0.5 < summary["ratio"] < 5  # sanity only: timing is the benchmark's job
    assert "target: local server on http://127.0.0.1:" in proc.stderr


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    args = ["--requests", "2000", "--latency-ms", "500"]
    line = runner.ctrl_c("async_fetch", *args, ready="target: ")
    assert re.fullmatch(r"interrupted: \d+ of 2000 done, \d+ ok", line), line
