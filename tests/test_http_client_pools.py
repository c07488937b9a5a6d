"""Tests for scripts/http_client_pools.py: the pattern against real loopback servers, then the CLI.

The pattern tests run on the test's own event loop against aiohttp.web apps on 127.0.0.1: a
counting app here that records requests in flight and client connections (a real measurement of
what the semaphore and each pool allow, not a mock), and the lesson's own demo_app. Nothing sleeps
to wait for something, and no test asserts on timing beyond the physical floor of the ideal time.
"""

import asyncio
import functools
import json
import math
import re
import resource
import subprocess
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from rich.console import Console
from rich.progress import Progress

import http_client_pools as lesson
from conftest import INTERRUPT_DEADLINE_S, ROOT, Invocation, ScriptRunner

CLIENTS = ["httpx", "httpx-aiohttp", "aiohttp"]
STATUS_ERRORS = {"httpx": httpx.HTTPStatusError, "aiohttp": aiohttp.ClientResponseError}

# --- real loopback servers -----------------------------------------------------------------------


@dataclass
class Seen:
    """What a counting app saw: requests, the most in flight at once, and client connections."""

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    peers: set[Any] = field(default_factory=set)  # (host, port) of each client connection


def counting_app(seen: Seen, latency_s: float, fail: str | None = None) -> web.Application:
    """GET /item/<n> answers n after latency_s; /item/<fail> answers 500 at once."""

    async def item(request: web.Request) -> web.Response:
        seen.requests += 1
        assert request.transport is not None
        seen.peers.add(request.transport.get_extra_info("peername"))
        if request.match_info["n"] == fail:
            return web.Response(status=500)
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        try:
            await asyncio.sleep(latency_s)
        finally:
            seen.in_flight -= 1
        return web.Response(text=request.match_info["n"])

    app = web.Application()
    app.add_routes([web.get("/item/{n}", item)])
    return app


@asynccontextmanager
async def serving(app: web.Application) -> AsyncGenerator[str]:
    """Serve `app` on 127.0.0.1 from this event loop; yield the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def built(client: str, concurrency: int) -> AsyncGenerator[lesson.Fetch]:
    """The lesson's builder for `client`, held as a service would, as a fetch(url) function."""
    if client == "aiohttp":
        async with lesson.aiohttp_session(concurrency) as session:
            yield functools.partial(lesson.get_with_aiohttp, session)
    elif client == "httpx":
        async with lesson.stock_httpx_client(concurrency) as http:
            yield functools.partial(lesson.get_with_httpx, http)
    else:
        async with lesson.httpx_aiohttp_client(concurrency) as http:
            yield functools.partial(lesson.get_with_httpx, http)


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(scenario())


# --- the pattern ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_fan_out_keeps_at_most_c_in_flight_and_returns_bodies_in_order(client: str) -> None:
    seen = Seen()
    done: list[None] = []

    async def scenario() -> list[bytes]:
        # A pool of 10: what keeps it to 5 in flight is the semaphore, not the pool.
        async with serving(counting_app(seen, 0.05)) as base, built(client, 10) as fetch:
            urls = [f"{base}/item/{i}" for i in range(30)]
            return await lesson.fan_out(fetch, urls, 5, lambda: done.append(None))

    bodies = run(scenario)
    assert bodies == [str(i).encode() for i in range(30)]
    assert seen.max_in_flight == 5  # the semaphore filled, and never let a sixth through
    assert (seen.requests, len(done)) == (30, 30)


@pytest.mark.parametrize("client", CLIENTS)
def test_the_first_error_cancels_the_rest(client: str) -> None:
    seen = Seen()

    async def scenario() -> None:
        async with serving(counting_app(seen, 0.2, fail="3")) as base, built(client, 4) as fetch:
            await lesson.fan_out(fetch, [f"{base}/item/{i}" for i in range(40)], 4)

    with pytest.raises(ExceptionGroup) as caught:
        run(scenario)
    expected = STATUS_ERRORS["aiohttp" if client == "aiohttp" else "httpx"]
    assert [type(err) for err in caught.value.exceptions] == [expected]
    assert seen.requests <= 5  # the first four, and at most the one that took /item/3's slot


@pytest.mark.parametrize("client", CLIENTS)
def test_each_builder_caps_its_pool_at_c_and_keeps_every_connection(client: str) -> None:
    # 22: above the 20 connections httpx keeps alive when it is given no limits at all.
    seen = Seen()

    async def scenario() -> None:
        async with serving(counting_app(seen, 0.05)) as base, built(client, 22) as fetch:
            for _ in range(2):  # no semaphore here: 44 at once, so only the pool holds them back
                await asyncio.gather(*(fetch(f"{base}/item/{i}") for i in range(44)))

    run(scenario)
    assert seen.max_in_flight == 22
    assert len(seen.peers) == 22  # the second burst reused the first burst's connections


@pytest.mark.parametrize("client", CLIENTS)
def test_measure_warms_exactly_c_connections_then_reuses_them(client: str) -> None:
    peers: dict[str, set[Any]] = {"/warmup": set(), "/item": set()}

    async def record(request: web.BaseRequest, response: web.StreamResponse) -> None:
        assert request.transport is not None
        route = "/warmup" if request.path == "/warmup" else "/item"
        peers[route].add(request.transport.get_extra_info("peername"))

    ideal = math.ceil(20 / 8) * 0.05

    async def scenario() -> lesson.ClientRow:
        app = lesson.demo_app(0.05, 8)
        app.on_response_prepare.append(record)
        async with serving(app) as base:
            with Progress(console=Console(quiet=True)) as bar:
                row = await lesson.measure(client, base, 20, 8, ideal, bar)
                assert bar.tasks[0].completed == 20
            return row

    row = run(scenario)
    assert row.client == client
    assert len(peers["/warmup"]) == 8  # the warm-up opened all 8 connections
    assert peers["/item"] <= peers["/warmup"]  # and the timed run opened none of its own
    assert row.elapsed_s >= 0.99 * ideal  # nothing beats the ideal
    assert row.ratio == pytest.approx(row.elapsed_s / ideal)
    assert row.cpu_ms_per_request > 0


# --- the command line, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--requests", "0"], "--requests"),
        (["--concurrency", "1001"], "--concurrency"),
        (["--latency-ms", "nan"], "--latency-ms"),
        (["--latency-ms", "9"], "--latency-ms"),
        (["--latency", "0.1"], "--latency"),  # the option is in milliseconds, as an integer
        (["--client", "curl"], "--client"),
        (["--clients", "httpx"], "--clients"),
    ],
)
def test_bad_arguments_are_usage_errors(invoke: Any, args: list[str], argument: str) -> None:
    invoke(lesson.run, *args).assert_usage_error(argument)


def test_each_client_runs_once_in_the_order_given(invoke: Any) -> None:
    # No stock httpx in this process: on Python 3.11, after anyio's cancellations, coverage.py
    # misses the lines that follow asyncio.run (cpython#106749). The default run below has it.
    args = ["--requests", "20", "--concurrency", "5", "--latency-ms", "20", "--json"]
    clients = ["--client", "aiohttp", "--client", "httpx-aiohttp", "--client", "aiohttp"]
    done: Invocation = invoke(lesson.run, *args, *clients)
    assert done.code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["requests"], summary["concurrency"], summary["latency_s"]) == (20, 5, 0.02)
    assert summary["ideal_s"] == pytest.approx(4 * 0.02)  # four rounds of the server's latency
    assert [row["client"] for row in summary["clients"]] == ["aiohttp", "httpx-aiohttp"]
    for row in summary["clients"]:
        assert row["ratio"] == pytest.approx(row["elapsed_s"] / summary["ideal_s"])
        assert row["ratio"] >= 0.99  # the physical floor: no client beats the ideal
        assert row["cpu_ms_per_request"] > 0
    assert re.search(r"(?m)^aiohttp: \d+\.\d\d s$", done.stderr)


def test_the_table_shows_the_settings_and_a_row_per_client(invoke: Any) -> None:
    done: Invocation = invoke(lesson.run, "--requests", "10", "--client", "httpx-aiohttp")
    assert done.code == 0, done.stderr
    assert "GETs per client: 10, in flight: 50, latency: 0.1 s" in done.stdout
    (row,) = [line for line in done.stdout.splitlines() if "httpx-aiohttp" in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[2] == "0.10 s"  # the ideal: one round of the server's latency
    assert cells[3].endswith("x")


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
def test_a_failing_server_is_one_line_and_exit_1(
    invoke: Any, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """Regression: httpx's HTTPStatusError text has a second line of advice, which leaked."""
    real_app = lesson.demo_app

    @web.middleware
    async def unavailable(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/item/"):
            return web.Response(status=503)
        return await handler(request)

    def failing_app(latency_s: float, concurrency: int) -> web.Application:
        app = real_app(latency_s, concurrency)
        app.middlewares.append(unavailable)
        return app

    monkeypatch.setattr(lesson, "demo_app", failing_app)  # the target fails, the lesson does not
    done: Invocation = invoke(lesson.run, "--requests", "10", "--client", client, "--json")
    message = done.stderr.strip()
    assert (done.code, done.stdout) == (1, "")
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"error: {client}: ")
    assert "503" in message


# --- the script, as a user runs it ---------------------------------------------------------------


def test_the_default_run_measures_all_three() -> None:
    # Not measured for coverage: tracing multiplies stock httpx's millions of pool-scan calls
    # (15 s instead of 4), and every line this run takes is covered by the tests above.
    proc = ScriptRunner(isolated=True).run("http_client_pools", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["requests"], summary["concurrency"], summary["latency_s"]) == (200, 50, 0.1)
    assert [row["client"] for row in summary["clients"]] == CLIENTS
    for row in summary["clients"]:
        assert row["ratio"] >= 0.99
    assert "Traceback" not in proc.stderr


def test_a_low_soft_open_file_limit_is_raised_to_fit_the_pool(invoke: Any) -> None:
    """Regression: under macOS's default `ulimit -n 256`, C=500 ran out of open files and the
    server printed a traceback per refused connection. Now the soft limit is raised to fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        args = ["--requests", "600", "--concurrency", "300", "--latency-ms", "10", "--json"]
        done: Invocation = invoke(lesson.run, *args, "--client", "aiohttp")
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert done.code == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["clients"][0]["ratio"] >= 0.99
    assert raised == 300 + lesson.SPARE_FILES


def test_a_hard_open_file_limit_too_low_is_one_line_and_exit_2(runner: ScriptRunner) -> None:
    """Regression: with `ulimit -n 256` in bash (soft and hard), the same run printed ~2,100
    lines of tracebacks and exited 1. Now it refuses before it starts anything."""

    def low_limits() -> None:  # runs in the child, before uv starts
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    command = runner.command("http_client_pools", ["--concurrency", "500", "--client", "aiohttp"])
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=low_limits,
        check=False,
    )
    message = proc.stderr.strip()
    assert (proc.returncode, proc.stdout) == (2, "")
    assert len(message.splitlines()) == 1, message[-2000:]
    assert "--concurrency" in message
    assert f"needs {500 + lesson.SPARE_FILES} open files" in message


def test_ctrl_c_says_how_far_the_running_client_got_in_one_last_line(
    runner: ScriptRunner,
) -> None:
    """Regression: the line said only "unfinished: httpx", and where stderr is not a terminal a
    leftover "httpx 0%" progress line came with it."""
    args = ["--client", "aiohttp", "--client", "httpx", "--requests", "1000", "--latency-ms", "20"]
    done = runner.interrupt("http_client_pools", *args, ready="aiohttp: ")
    assert (done.returncode, done.stdout, done.survivors) == (130, "", False), done.stderr
    assert done.seconds_to_exit < INTERRUPT_DEADLINE_S
    measured, interrupted = done.stderr.splitlines()  # nothing else: no bar left behind
    assert re.fullmatch(r"aiohttp: \d+\.\d\d s", measured), measured
    pattern = r"interrupted; aiohttp took \d+\.\d\d s; httpx (\d+)/1000"
    progress = re.fullmatch(pattern, interrupted)
    assert progress is not None, interrupted
    assert int(progress[1]) < 1000
