"""Tests for scripts/async_fetch.py: the pattern against real loopback servers, then the script.

The pattern tests run fetch_all() on the test's own event loop against servers on 127.0.0.1: the
script's DemoServer, and a CountingServer here that also counts open connections and requests in
flight (a real measurement of what the semaphore allows, not a mock). Nothing sleeps to wait for
something: the tests wait on events and futures. No test asserts on timing beyond a sanity bound.
"""

import asyncio
import json
import multiprocessing
import re
import socket
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import async_fetch
from conftest import ScriptRunner

TRANSPORTS = ["aiohttp", "httpx"]

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
        self.counts, self.latency_s, self.buffer = counts, latency_s, b""
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
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            self.counts.in_flight += 1
            self.counts.max_in_flight = max(self.counts.max_in_flight, self.counts.in_flight)
            self.pending.append(asyncio.get_running_loop().call_later(self.latency_s, self.reply))

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


def demo_urls(base: str, n: int, latency: float = 0.0, fail: float = 0.0) -> list[str]:
    return [f"{base}/item/{i}?latency={latency}&fail={fail}" for i in range(n)]


def run(coroutine_function: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine_function())


# --- the pattern ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_all_ok_with_no_failures(transport: str) -> None:
    async def scenario() -> async_fetch.Batch:
        async with serving(async_fetch.DemoServer) as base:
            return await async_fetch.fetch_all(demo_urls(base, 30), 5, transport=transport)

    batch = run(scenario)
    assert [r.error for r in batch.results] == [None] * 30
    assert {(r.status, r.size) for r in batch.results} == {(200, 2)}
    assert [r.url.path for r in batch.results] == [f"/item/{i}" for i in range(30)]  # in order


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_failures_are_classified_by_kind(transport: str) -> None:
    unused = socket.socket()  # bound, never listening: connecting is refused
    unused.bind(("127.0.0.1", 0))

    async def scenario() -> async_fetch.Batch:
        async with serving(async_fetch.DemoServer) as base, serving(HangUp) as rude:
            urls = [
                f"{base}/item/1?fail=1",  # a 500
                f"{base}/item/2?latency=5",  # slower than the timeout
                f"http://127.0.0.1:{unused.getsockname()[1]}/",  # refused
                f"{rude}/item/3",  # closed without an answer
                f"{base}/item/4",  # fine
            ]
            return await async_fetch.fetch_all(urls, 5, timeout_s=0.3, transport=transport)

    with closing(unused):
        batch = run(scenario)
    assert [r.error for r in batch.results] == [
        "http 500",
        "timeout",
        "transport",
        "transport",
        None,
    ]
    assert [r.status for r in batch.results] == [500, None, None, None, 200]
    assert all(r.detail for r in batch.results[1:4]), batch.results


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_never_more_requests_in_flight_than_the_concurrency(transport: str) -> None:
    counts = Counts()

    async def scenario() -> async_fetch.Batch:
        async with serving(lambda: CountingServer(counts, 0.05)) as base:
            return await async_fetch.fetch_all(demo_urls(base, 40), 8, transport=transport)

    batch = run(scenario)
    assert all(r.error is None for r in batch.results)
    assert counts.max_in_flight == 8  # the cap, reached: the requests did overlap


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ten_times_more_requests_than_connections_never_time_out_waiting(transport: str) -> None:
    """50 requests, 5 connections, 0.05 s each: the last waits ~0.45 s, the timeout is 0.2 s."""
    counts = Counts()

    async def scenario() -> async_fetch.Batch:
        async with serving(lambda: CountingServer(counts, 0.05)) as base:
            urls = demo_urls(base, 50)
            return await async_fetch.fetch_all(urls, 5, timeout_s=0.2, transport=transport)

    batch = run(scenario)
    assert [r.error for r in batch.results] == [None] * 50
    assert counts.max_in_flight == 5


@pytest.mark.parametrize(("transport", "latency_s"), [("aiohttp", 0.05), ("httpx", 0.5)])
def test_without_the_semaphore_queued_requests_time_out(transport: str, latency_s: float) -> None:
    """The trap the semaphore avoids: gather() straight on a client, 50 requests, 5 connections.

    Stock httpx restarts a queued request's pool wait whenever a connection frees (it churns
    instead), so it shows the PoolTimeout with answers slower than the pool timeout.
    """

    async def scenario() -> list[BaseException | httpx.Response]:
        async with (
            serving(lambda: CountingServer(Counts(), latency_s)) as base,
            async_fetch.make_client(transport, 5, 2.0) as client,
        ):
            client.timeout = httpx.Timeout(2.0, pool=0.2)  # as above: 0.2 s to get a connection
            calls = [client.get(url) for url in demo_urls(base, 50)]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run(scenario)
    timeouts = [o for o in outcomes if isinstance(o, httpx.TimeoutException)]
    assert timeouts, outcomes  # PoolTimeout (stock httpx) or ConnectTimeout (aiohttp's pool)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_deadline_keeps_the_results_that_finished(transport: str) -> None:
    async def scenario() -> async_fetch.Batch:
        async with serving(async_fetch.DemoServer) as base:
            urls = demo_urls(base, 4) + demo_urls(base, 3, latency=30)
            return await async_fetch.fetch_all(urls, 7, deadline_s=0.5, transport=transport)

    batch = run(scenario)
    assert [r.error for r in batch.results] == [None] * 4 + ["deadline"] * 3
    assert batch.elapsed_s < 30  # sanity: the deadline ended it, not the slow answers


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancelling_mid_run_closes_every_connection(transport: str) -> None:
    counts = Counts()

    async def scenario() -> None:
        async with serving(lambda: CountingServer(counts, 0.05)) as base:
            first_done = asyncio.Event()
            batch = asyncio.create_task(
                async_fetch.fetch_all(
                    demo_urls(base, 200),
                    10,
                    transport=transport,
                    on_done=lambda _: first_done.set(),
                )
            )
            await first_done.wait()  # one answered, the others in flight
            assert counts.open_connections > 0
            batch.cancel()
            with pytest.raises(asyncio.CancelledError):
                await batch
            async with asyncio.timeout(5):
                await counts.idle.wait()

    run(scenario)
    assert counts.open_connections == 0
    assert counts.in_flight == 0


def test_a_bad_url_fails_before_any_request() -> None:
    with pytest.raises(httpx.InvalidURL):
        run(lambda: async_fetch.fetch_all(["http://[::1/"], 1))


@pytest.mark.parametrize(
    ("latency", "expected_ideal", "expected_sequential"),
    [(0.1, 0.3, 1.0), (None, 0.6, 2.0)],  # None: real URLs, the median stands in for latency
)
def test_summary_ideal_and_sequential(
    latency: float | None, expected_ideal: float, expected_sequential: float
) -> None:
    url = httpx.URL("http://127.0.0.1/")
    results = [async_fetch.FetchResult(url, 200, 2, 0.2) for _ in range(9)]
    results.append(async_fetch.FetchResult(url, 500, 2, 0.4, "http 500"))
    summary = async_fetch.summarise(async_fetch.Batch(results, 0.5), 4, "aiohttp", latency)
    assert summary["ideal_s"] == pytest.approx(expected_ideal)  # ceil(10 / 4) = 3 rounds
    assert summary["sequential_s"] == pytest.approx(expected_sequential)
    assert (summary["ok"], summary["failed"], summary["failed_by_kind"]) == (9, 1, {"http 500": 1})
    assert (summary["p50_s"], summary["p95_s"]) == (0.2, 0.4)
    assert summary["ratio"] == pytest.approx(0.5 / expected_ideal, abs=1e-3)


def test_summary_leaves_out_what_the_deadline_cut_and_knows_latency_zero() -> None:
    url = httpx.URL("http://127.0.0.1/")
    results = [async_fetch.FetchResult(url, 200, 2, 0.1) for _ in range(4)]
    results += [async_fetch.FetchResult(url, None, 0, 0.0, "deadline") for _ in range(96)]
    summary = async_fetch.summarise(async_fetch.Batch(results, 0.2), 2, "aiohttp", 0.1)
    assert (summary["ideal_s"], summary["sequential_s"]) == (0.2, 0.4)  # 4 ran, not 100
    assert summary["ratio"] == pytest.approx(1.0)
    at_zero = async_fetch.summarise(async_fetch.Batch(results, 0.2), 2, "aiohttp", 0.0)
    assert (at_zero["ideal_s"], at_zero["ratio"], at_zero["speedup"]) == (0.0, None, 0.0)


def test_server_process_serves_and_is_always_stopped() -> None:
    before = set(multiprocessing.active_children())
    with async_fetch.server_process() as base:
        (child,) = set(multiprocessing.active_children()) - before
        response = httpx.get(f"{base}/item/7?fail=1", timeout=5)
    assert response.status_code == 500
    assert not child.is_alive()


# --- the script, as a user runs it ---------------------------------------------------------------

JSON_KEYS = {"requests", "concurrency", "ok", "failed", "elapsed_s", "ideal_s", "ratio"}


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """The demo server in its own process, for --url and --urls-file runs."""
    with async_fetch.server_process() as base:
        yield base


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_json_run_of_the_demo(runner: ScriptRunner, transport: str) -> None:
    args = ["--requests", "60", "--concurrency", "10", "--latency", "0.05", "--json"]
    proc = runner.run("async_fetch", *args, "--transport", transport)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert JSON_KEYS | {"transport", "failed_by_kind", "p50_s", "p95_s"} <= summary.keys()
    assert (summary["requests"], summary["concurrency"]) == (60, 10)
    assert summary["transport"] == transport
    assert summary["ok"] + summary["failed"] == 60
    assert set(summary["failed_by_kind"]) <= {"http 500"}
    assert summary["ideal_s"] == pytest.approx(0.3)  # ceil(60 / 10) x 0.05
    assert 0.5 < summary["ratio"] < 5  # sanity only: timing is the benchmark's job
    assert "target: local server on http://127.0.0.1:" in proc.stderr


def test_no_failures_with_fail_rate_0(runner: ScriptRunner) -> None:
    proc = runner.run("async_fetch", "--requests", "100", "--fail-rate", "0", "--json")
    summary = json.loads(proc.stdout)
    assert (summary["ok"], summary["failed"], summary["failed_by_kind"]) == (100, 0, {})


def test_default_run_prints_a_table(runner: ScriptRunner) -> None:
    proc = runner.run("async_fetch", "--requests", "40", "--latency", "0.02")
    assert proc.returncode == 0, proc.stderr
    assert "40 GETs, 20 at a time" in proc.stdout
    for row in ("ok / failed", "latency p50 / p95", "ideal: ceil(N/C) x latency", "sequential"):
        assert re.search(rf"│ {re.escape(row)}.* +│ .*\d", proc.stdout), proc.stdout


def test_fetches_urls_given_on_the_command_line(runner: ScriptRunner, target: str) -> None:
    urls = [f"{target}/item/{i}?fail={1 if i == 2 else 0}" for i in range(3)]
    args = [arg for url in urls for arg in ("--url", url)]
    proc = runner.run("async_fetch", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["requests"], summary["ok"], summary["failed_by_kind"]) == (
        3,
        2,
        {"http 500": 1},
    )


def test_fetches_urls_from_a_file(runner: ScriptRunner, target: str, tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text(f"# three URLs\n{target}/a\n\n{target}/b\n  {target}/c  \n", encoding="utf-8")
    proc = runner.run("async_fetch", "--urls-file", str(path), "--concurrency", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["requests"], summary["ok"], summary["concurrency"]) == (3, 3, 2)


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "1001"], "--concurrency"),
        (["--latency", "-1"], "--latency"),
        (["--fail-rate", "2"], "--fail-rate"),
        (["--url", "not-a-url"], "--url"),
        (["--url", "ftp://example.com/"], "--url"),
        (["--url", "http://[::1/"], "--url"),
        (["--url", "http://user:pw@127.0.0.1/"], "--url"),  # credentials belong in headers
        (["--url", "http://xn--zz/"], "--url"),  # not valid IDNA
        (["--requests", "abc"], "--requests"),
        (["--requests", "0"], "--requests"),
        (["--timeout", "0"], "--timeout"),
        (["--deadline", "-5"], "--deadline"),
        (["--transport", "curl"], "--transport"),
        (["--urls-file", "no-such-file.txt"], "--urls-file"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    runner: ScriptRunner, args: list[str], argument: str
) -> None:
    runner.usage_error("async_fetch", *args, argument=argument)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"http://ok.example/\nnope\n", "'nope' is not a plain http(s) URL"),
        (b"# none\n\n", "no URLs"),
        (b"\xff\xfe", "decode"),
    ],
)
def test_bad_urls_file_is_a_usage_error(
    runner: ScriptRunner, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "urls.txt"
    path.write_bytes(content)
    message = runner.usage_error("async_fetch", "--urls-file", str(path), argument="--urls-file")
    assert problem in message


@pytest.mark.parametrize("args", [[], ["--transport", "httpx"], ["--json"]])
def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner, args: list[str]) -> None:
    line = runner.ctrl_c(
        "async_fetch", "--requests", "2000", "--latency", "0.5", *args, ready="target: "
    )
    assert re.fullmatch(r"interrupted( at \d+/2000 requests \(\d+ ok\))?", line), line
