"""Tests for scripts/link_check.py: the pattern against the lesson's own demo site, then the script.

The pattern tests run check_all() on the test's own event loop against the demo site (a real
http.server on 127.0.0.1, with pages that fail in every way the lesson names) and against an
aiohttp server here that counts the requests in flight. Bad arguments run in-process through
`invoke`; a subprocess only for what needs one: the default run's exit status and JSON, and
Ctrl-C. Nothing sleeps to wait for something, and no test asserts on timing beyond a sanity bound.
"""

import asyncio
import json
import re
import signal
import socket
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

import link_check
from conftest import Invocation, ScriptRunner
from link_check import LinkResult


@pytest.fixture
def site() -> Iterator[list[str]]:
    """The demo site's links, served from this process for the length of one test."""
    with link_check.demo_site() as links:
        yield links


def base_of(links: list[str]) -> str:
    return links[0].rstrip("/")  # the first link is the site's front page


def check(
    urls: list[str],
    timeout_s: float = 1.0,
    on_result: Callable[[LinkResult], None] | None = None,
) -> list[LinkResult]:
    """check_all(), ten at a time, with a stock httpx client as a service would hold one. The
    demo's own 1 s timeout: the site answers one page at a time, and 0.3 s timed out pages queued
    behind others in a CI run busy with Celery workers."""

    async def scenario() -> list[LinkResult]:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            return await link_check.check_all(client, urls, 10, on_result=on_result)

    return asyncio.run(scenario())


# --- the pattern ---------------------------------------------------------------------------------


def test_every_kind_of_broken_link_is_found_in_the_order_given(site: list[str]) -> None:
    seen: list[LinkResult] = []
    results = check(site, on_result=seen.append)
    assert [r.url for r in results] == site
    paths = [r.url.removeprefix(base_of(site)) for r in results[:5]]
    assert paths == ["/", "/docs", "/blog", "/missing", "/error"]
    kinds = [None, None, None, "http 404", "http 500", "timeout", "transport"]
    assert [r.broken for r in results] == kinds  # then a port that never answers, one refused
    assert sorted(r.url for r in seen) == sorted(site)  # on_result saw each link once


def test_a_working_link_and_a_followed_redirect_are_ok(site: list[str]) -> None:
    async def scenario() -> list[LinkResult]:
        async with redirecting_site(base_of(site)) as moved, httpx.AsyncClient() as client:
            return await link_check.check_all(client, [site[0], moved, f"{moved}?to=/missing"], 2)

    results = asyncio.run(scenario())
    assert [(r.status, r.broken) for r in results] == [(200, None), (200, None), (404, "http 404")]


@asynccontextmanager
async def redirecting_site(target: str) -> AsyncGenerator[str]:
    """A page that answers 301 to `target` + its ?to= path (the front page by default)."""

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(target + request.query.get("to", "/"))

    app = web.Application()
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"{site.name}/moved"
    finally:
        await runner.cleanup()


def test_failures_say_why(site: list[str]) -> None:
    base = base_of(site)
    error, slow, refused = check([f"{base}/error", site[-2], site[-1]])
    assert (error.status, error.detail) == (500, "Internal Server Error")
    assert (slow.status, slow.detail) == (None, "ReadTimeout")
    assert refused.status is None
    assert refused.detail.startswith("ConnectError: ")


@dataclass
class InFlight:
    now: int = 0
    most: int = 0


@asynccontextmanager
async def counting_site(counts: InFlight, started: asyncio.Event) -> AsyncGenerator[str]:
    """Every GET waits until `started` is set, so requests pile up to what the caller allows."""

    async def page(request: web.Request) -> web.Response:
        counts.now += 1
        counts.most = max(counts.most, counts.now)
        if counts.now == 4:
            started.set()  # as many in flight as the bound allows: let them all finish
        await started.wait()
        counts.now -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{n}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site.name
    finally:
        await runner.cleanup()


def test_never_more_links_in_flight_than_the_concurrency() -> None:
    counts = InFlight()

    async def scenario() -> list[LinkResult]:
        async with counting_site(counts, asyncio.Event()) as base, httpx.AsyncClient() as client:
            urls = [f"{base}/{n}" for n in range(20)]
            return await link_check.check_all(client, urls, 4)

    results = asyncio.run(scenario())
    assert [r.broken for r in results] == [None] * 20
    assert counts.most == 4  # the bound, reached and never passed


def test_a_url_httpx_cannot_parse_is_raised_not_reported(site: list[str]) -> None:
    with pytest.raises(httpx.InvalidURL):
        check([site[0], "http://[::1/"])


def test_the_demo_site_stops_and_leaves_no_thread_behind() -> None:
    before = threading.active_count()
    with link_check.demo_site() as links:
        check([links[0], links[-2]], timeout_s=0.05)  # the silent port holds a connection open
    assert threading.active_count() == before
    for link in (links[0], links[-2]):  # the site and the silent port are closed
        port = httpx.URL(link).port
        assert port is not None
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass


def test_a_client_that_never_sends_its_request_cannot_hold_the_demo_site() -> None:
    """The site answers one connection at a time: a client cut short after connecting (a Ctrl-C)
    would block it, and its shutdown, for ever; it is dropped after the handler's timeout."""
    with link_check.demo_site() as links:
        port = httpx.URL(links[0]).port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port)):  # accepted first, and says nothing
            assert httpx.get(links[0], timeout=5.0).status_code == 200


def test_only_the_first_ctrl_c_cancels() -> None:
    """uv passes a second Ctrl-C on: it must not interrupt the clean-up the first one started."""
    cancels: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: cancels.append(signum))
    try:
        with link_check.first_ctrl_c_only():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cancels == [signal.SIGINT]


# --- the command line, in-process ----------------------------------------------------------------


def test_help_explains_the_exit_status(invoke: Callable[..., Invocation]) -> None:
    done = invoke(link_check.run, "--help")
    assert done.code == 0
    assert re.search(r"exit 1 if any link\s+is\s+broken", done.stdout), done.stdout
    for option in ("--url", "--urls-file", "--timeout", "--json"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "0.5"], "--timeout"),  # whole seconds
        (["--timeout", "nan"], "--timeout"),
        (["--timeout", "inf"], "--timeout"),
        (["--deadline", "5"], "--deadline"),  # gone: the timeout bounds each link
        (["--url", "not-a-url"], "--url"),
        (["--url", "ftp://example.com/"], "--url"),
        (["--url", "http://[::1/"], "--url"),
        (["--url", "http://user:pw@127.0.0.1/"], "--url"),  # credentials belong in headers
        (["--url", "http://xn--zz/"], "--url"),  # not valid IDNA
        (["--urls-file", "no-such-file.txt"], "--urls-file"),
        (["--requests", "10"], "--requests"),  # async_fetch's: this lesson checks links
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(link_check.run, *args).assert_usage_error(argument)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"http://ok.example/\nnope\n", "'nope' is not a plain http(s) URL"),
        (b"# none\n\n", "no URLs"),
        (b"\xff\xfe", "decode"),
    ],
)
def test_a_bad_urls_file_is_a_usage_error(
    invoke: Callable[..., Invocation], tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "urls.txt"
    path.write_bytes(content)
    message = invoke(link_check.run, "--urls-file", str(path)).assert_usage_error("--urls-file")
    assert problem in message


def test_a_password_in_a_url_is_never_echoed(invoke: Callable[..., Invocation]) -> None:
    """The error goes to logs: it says why the URL is refused and leaves the password out."""
    message = invoke(
        link_check.run, "--url", "https://user:s3cret@example.org/"
    ).assert_usage_error("--url")
    assert "s3cret" not in message
    assert "https://example.org/ has credentials in it" in message


def test_an_unreadable_urls_file_is_one_line(invoke: Callable[..., Invocation]) -> None:
    done = invoke(link_check.run, "--urls-file", "/proc/self/mem")
    assert "cannot read /proc/self/mem" in done.assert_usage_error("--urls-file")


def test_every_broken_link_is_listed_and_the_check_exits_1(
    invoke: Callable[..., Invocation],
    site: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row a line
    base = base_of(site)
    path = tmp_path / "urls.txt"
    path.write_text(f"# two links\n\n  {base}/docs  \n{base}/missing\n", encoding="utf-8")
    done = invoke(link_check.run, "--urls-file", str(path), "--url", site[-1])
    assert done.code == 1, done.stderr  # a broken link fails the check
    assert "checking 3 links, 10 at a time" in done.stderr
    assert "2 broken links" in done.stdout
    assert re.search(rf"{re.escape(base)}/missing +│ http 404 +│ Not Found", done.stdout)
    assert re.search(rf"{re.escape(site[-1])} +│ transport +│ ConnectError: ", done.stdout)
    assert re.search(r"3 links checked in [\d.]+ s: 1 ok, 2 broken ", done.stdout)
    assert "(1 transport, 1 http 404)" in done.stdout  # --url first, then the file


def test_links_that_all_work_exit_0_and_read_as_one(
    invoke: Callable[..., Invocation], site: list[str]
) -> None:
    done = invoke(link_check.run, "--url", site[0])
    assert done.code == 0, done.stderr
    assert "checking 1 link, 10 at a time" in done.stderr
    assert re.fullmatch(r"1 link checked in [\d.]+ s: 1 ok, 0 broken\n", done.stdout)


def test_urls_and_details_are_never_read_as_markup(
    invoke: Callable[..., Invocation], site: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    url = f"{base_of(site)}/missing?tag=[red]x[/red]"
    done = invoke(link_check.run, "--url", url)
    assert done.code == 1
    assert url in done.stdout


def test_json_lists_the_failures(invoke: Callable[..., Invocation], site: list[str]) -> None:
    base = base_of(site)
    done = invoke(link_check.run, "--url", f"{base}/", "--url", f"{base}/error", "--json")
    assert done.code == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["checked"], report["ok"], report["broken"]) == (2, 1, 1)
    assert report["failed_by_kind"] == {"http 500": 1}
    assert report["failures"] == [
        {"url": f"{base}/error", "kind": "http 500", "detail": "Internal Server Error"}
    ]


def test_the_demo_in_process_lists_its_broken_links(
    invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the demo's own 1 s timeout: 0.2 s timed out all six
    # pages once, in a CI run busy with Celery workers (the site answers one page at a time)
    done = invoke(link_check.run)
    assert done.code == 1, done.stderr  # its links are broken on purpose, and it says so
    assert "4 broken links" in done.stdout
    assert "7 links checked" in done.stdout
    assert "3 ok, 4 broken (1 http 404, 1 http 500, 1 timeout, 1 transport)" in done.stdout


# --- the script, as a user runs it ---------------------------------------------------------------


def test_the_default_run_exits_1_with_its_json(runner: ScriptRunner) -> None:
    proc = runner.run("link_check", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report.keys() >= {"checked", "ok", "broken", "failed_by_kind", "elapsed_s", "failures"}
    assert (report["checked"], report["ok"], report["broken"]) == (7, 3, 4)
    assert report["failed_by_kind"] == {"http 404": 1, "http 500": 1, "timeout": 1, "transport": 1}
    paths = [re.sub(r"^http://127\.0\.0\.1:\d+", "", f["url"]) for f in report["failures"]]
    assert paths == ["/missing", "/error", "/silent", "/"]
    assert report["elapsed_s"] < 30  # sanity: the silent link cost one short timeout
    assert "checking 7 links" in proc.stderr


def test_ctrl_c_exits_130_with_one_line(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("link_check", "--timeout", "30", ready="checking ")
    assert line == "interrupted"  # with --timeout 30 the silent link is still being checked
