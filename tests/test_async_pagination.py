"""Tests for scripts/async_pagination.py: the pattern against the lesson's real loopback API.

Each pattern test serves the demo's aiohttp app on 127.0.0.1 in the test's own event loop and walks
it with paginate() through an httpx client whose transport counts open responses. The API counts
the page requests it receives. Nothing sleeps to synchronise; no timing is asserted.
"""

import asyncio
import contextlib
import json
import math
import re
import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

import async_pagination
from async_pagination import CountingTransport, Outcome, PageError, Settings, paginate
from conftest import Invocation, ScriptRunner


def settings(total: int = 100, limit: int = 10, fail_page: int | None = None) -> Settings:
    return Settings(total, limit, total, 0.0, 0.0, False, fail_page)


@asynccontextmanager
async def api(
    config: Settings, outcome: Outcome, arrivals: asyncio.Queue[str] | None = None
) -> AsyncGenerator[tuple[httpx.AsyncClient, CountingTransport, str]]:
    """The lesson's API on a free loopback port, and a client that counts open responses.

    `arrivals` receives the query string of each request as it reaches the API."""
    app = async_pagination.make_api(config, outcome)

    @web.middleware
    async def announce(request: web.Request, handler: Callable) -> web.StreamResponse:
        if arrivals is not None:
            arrivals.put_nowait(request.query_string)
        return await handler(request)

    app.middlewares.append(announce)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    with socket.create_server(("127.0.0.1", 0)) as sock:
        try:
            await web.SockSite(runner, sock).start()
            transport = CountingTransport()
            async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
                yield client, transport, f"http://127.0.0.1:{sock.getsockname()[1]}/items"
        finally:
            await runner.cleanup()


async def take(items: AsyncGenerator[int], count: int) -> list[int]:
    taken: list[int] = []
    async with contextlib.aclosing(items) as stream:
        async for item in stream:
            taken.append(item)
            if len(taken) == count:
                break
    return taken


@pytest.mark.parametrize(("count", "limit"), [(1, 10), (10, 10), (25, 10), (7, 3), (100, 10)])
def test_pages_are_fetched_lazily(count: int, limit: int) -> None:
    async def scenario() -> None:
        outcome = Outcome()
        async with api(settings(limit=limit), outcome) as (client, transport, url):
            taken = await take(paginate(client, url, limit), count)
            assert taken == list(range(count))
            assert outcome.pages_fetched == math.ceil(count / limit)
            assert transport.open == 0

    asyncio.run(scenario())


def test_a_generator_that_is_not_started_fetches_nothing() -> None:
    async def scenario() -> None:
        outcome = Outcome()
        async with api(settings(), outcome) as (client, _transport, url):
            await paginate(client, url, 10).aclose()
            assert outcome.pages_fetched == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("count", [1, 15, 95, 100])
def test_prefetch_fetches_at_most_one_page_ahead_and_closes_it(count: int) -> None:
    async def scenario() -> None:
        outcome = Outcome()
        config = Settings(100, 10, 100, 0.05, 0.0, True, None)  # a page in flight at the break
        async with api(config, outcome) as (client, transport, url):
            taken = await take(paginate(client, url, 10, prefetch=True), count)
            assert taken == list(range(count))
            consumed = math.ceil(count / 10)
            assert consumed <= outcome.pages_fetched <= min(consumed + 1, 10)
            assert transport.open == 0  # aclosing() cancelled the page in flight

    asyncio.run(scenario())


def test_aclosing_closes_the_response_of_a_page_in_flight() -> None:
    async def scenario() -> None:
        outcome = Outcome()
        arrivals: asyncio.Queue[str] = asyncio.Queue()
        config = Settings(100, 10, 100, 1.0, 0.0, True, None)  # page 2 still loading at the break
        async with api(config, outcome, arrivals) as (client, transport, url):
            pages = paginate(client, url, 10, prefetch=True)
            assert await anext(pages) == 0
            assert await arrivals.get() == "limit=10"
            assert await arrivals.get() == "limit=10&cursor=10"  # the prefetch reached the API
            assert transport.open == 1  # the prefetched page's response is open
            await pages.aclose()
            assert transport.open == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("fail_page", [1, 3])
def test_a_failed_page_raises_at_its_first_item(prefetch: bool, fail_page: int) -> None:
    async def scenario() -> None:
        outcome = Outcome()
        async with api(settings(fail_page=fail_page), outcome) as (client, transport, url):
            seen: list[int] = []

            async def consume_all() -> None:
                async with contextlib.aclosing(paginate(client, url, 10, prefetch=prefetch)) as s:
                    while True:
                        seen.append(await anext(s))

            with pytest.raises(PageError, match="HTTP 500"):
                await consume_all()
            assert seen == list(range((fail_page - 1) * 10))
            assert transport.open == 0

    asyncio.run(scenario())


def test_an_unreachable_api_is_a_page_error() -> None:
    async def scenario() -> None:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/items"
        async with httpx.AsyncClient(timeout=5.0) as client:
            with pytest.raises(PageError, match="the first page: ConnectError"):
                await anext(paginate(client, url, 10))

    asyncio.run(scenario())


# --- the command line, in-process -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--items", "0"], "--items"),
        (["--limit", "0"], "--limit"),
        (["--take", "0"], "--take"),
        (["--take", "nan"], "--take"),
        (["--latency-ms", "-1"], "--latency-ms"),
        (["--latency-ms", "inf"], "--latency-ms"),
        (["--cost-ms", "abc"], "--cost-ms"),
        (["--fail-page", "0"], "--fail-page"),
        (["--prefetch", "yes"], "yes"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(async_pagination.run, *args).assert_usage_error(argument)


def test_the_demo_prints_a_table(invoke: Callable[..., Invocation]) -> None:
    args = ["--items", "30", "--limit", "5", "--take", "12", "--latency-ms", "1", "--cost-ms", "0"]
    done = invoke(async_pagination.run, *args, "--prefetch")
    assert done.code == 0, done.stderr
    assert "5 items a page, with prefetch" in done.stdout
    assert re.search(r"items consumed / pages fetched +│ 12 / [34] pages", done.stdout)
    assert re.search(r"responses open after the loop +│ 0 ", done.stdout)


def test_a_failed_page_is_one_line_and_exit_1(invoke: Callable[..., Invocation]) -> None:
    args = ["--items", "30", "--limit", "5", "--latency-ms", "1", "--cost-ms", "0"]
    done = invoke(async_pagination.run, *args, "--fail-page", "3", "--json")
    assert done.code == 1
    assert done.stdout == ""
    message = done.stderr.strip().splitlines()[-1]
    expected = "error: the page at cursor '10': HTTP 500 Internal Server Error, after 10 items"
    assert message == expected


# --- the script, as a user runs it ---------------------------------------------------------------


def test_json_run_of_the_demo(runner: ScriptRunner) -> None:
    args = ["--items", "100", "--limit", "10", "--take", "25", "--latency-ms", "20"]
    proc = runner.run("async_pagination", *args, "--cost-ms", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures.keys() >= {"items", "pages_fetched", "prefetch", "elapsed_s", "open_after_break"}
    assert (figures["items"], figures["pages_fetched"], figures["prefetch"]) == (25, 3, False)
    assert figures["open_after_break"] == 0
    assert figures["serial_s"] == pytest.approx(3 * 0.02 + 25 * 0.001)
    assert 0 < figures["elapsed_s"] < 10  # sanity only: timing is the benchmark's job
    assert "target: local API on http://127.0.0.1:" in proc.stderr


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    args = ["--items", "100000", "--take", "100000", "--latency-ms", "50", "--cost-ms", "10"]
    line = runner.ctrl_c("async_pagination", *args, ready="target: ")
    assert re.fullmatch(r"interrupted: \d+ items? from \d+ pages?", line), line
