"""Tests for scripts/error_groups.py: the exception classes, the batch, except* routing, the CLI."""

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncGenerator, Callable
from json import JSONDecodeError
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import error_groups
from conftest import Invocation, ScriptRunner
from error_groups import Feed, FeedError, FeedFormatError, FeedMissingError, FeedTimeoutError

Invoke = Callable[..., Invocation]
TIMEOUT_S = 0.5  # past a good feed's latency (GOOD_LATENCY_S), even on a loaded machine


async def latin1(_request: web.Request) -> web.Response:
    """A partner's encoding bug: JSON in Latin-1, which is not UTF-8."""
    return web.Response(body=b'["caf\xe9"]', content_type="application/json")


@contextlib.asynccontextmanager
async def feed_server() -> AsyncGenerator[str]:
    """The demo's feed server (and /latin1/<name>.json) on a free loopback port, stopped after."""
    app = web.Application()
    app.router.add_get("/latin1/{name}.json", latin1)  # first: the demo's route matches it too
    app.router.add_get("/{kind}/{name}.json", error_groups.answer)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield site.name
    finally:
        await runner.cleanup()


def feeds_on(base: str, *kinds: str) -> list[Feed]:
    return [Feed(f"{kind}-{n}", f"{base}/{kind}/{kind}-{n}.json") for n, kind in enumerate(kinds)]


async def fetch_kinds(*kinds: str, timeout_s: float = 2.0) -> list[Any]:
    """fetch_feed() on one feed of each kind: its items, or the exception it raised."""
    async with feed_server() as base, aiohttp.ClientSession() as session:
        coros = [error_groups.fetch_feed(session, f, timeout_s) for f in feeds_on(base, *kinds)]
        return await asyncio.gather(*coros, return_exceptions=True)


# --- the pattern ---------------------------------------------------------------------------------


def test_each_way_to_fail_is_its_own_class_raised_from_the_cause() -> None:
    good, missing, malformed, down = asyncio.run(
        fetch_kinds("good", "missing", "malformed", "down")
    )
    assert len(good) == 20
    assert type(missing) is FeedMissingError
    assert isinstance(missing.__cause__, aiohttp.ClientResponseError)
    assert missing.__cause__.status == 404
    assert type(malformed) is FeedFormatError
    assert isinstance(malformed.__cause__, JSONDecodeError)
    assert str(malformed) == "not JSON: b'<html><h1>Back soon</h1></html'"
    assert str(missing) == "HTTP 404 Not Found"
    assert type(down) is FeedError
    assert (down.kind, str(down)) == ("unavailable", "HTTP 503 Service Unavailable")
    assert [err.feed for err in (missing, malformed, down)] == [
        "missing-1",
        "malformed-2",
        "down-3",
    ]


def test_a_body_that_is_not_utf8_is_a_format_error_and_cancels_nothing() -> None:
    """Regression: a UnicodeDecodeError escaped as a bug and cancelled every other feed."""
    feeds, group, finished = asyncio.run(import_kinds("latin1", "good", "good"))
    assert isinstance(group, ExceptionGroup)
    (err,) = group.exceptions
    assert type(err) is FeedFormatError
    assert isinstance(err.__cause__, UnicodeDecodeError)
    assert str(err) == """not JSON: b'["caf\\xe9"]'"""
    assert sorted(finished) == sorted(feed.name for feed in feeds)


def test_two_feeds_of_one_name_are_refused_up_front() -> None:
    """Regression: results keyed by name lost one feed's result and reported a failure twice."""

    async def scenario() -> None:
        session = aiohttp.ClientSession()
        await session.close()  # up front: a fetch would fail on the closed session
        feeds = [Feed("acme", "http://127.0.0.1:9/a.json"), Feed("acme", "http://127.0.0.1:9/b")]
        await error_groups.import_feeds(session, feeds)

    with pytest.raises(ValueError, match="same name"):
        asyncio.run(scenario())


def test_a_feed_that_never_answers_is_a_timeout_from_the_timeout() -> None:
    (slow,) = asyncio.run(fetch_kinds("slow", timeout_s=0.05))
    assert type(slow) is FeedTimeoutError
    assert isinstance(slow.__cause__, TimeoutError)
    assert str(slow) == "no answer in 0.05 s"


def test_a_server_that_is_not_there_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # free, and nobody listens once it closes

    async def scenario() -> Any:
        async with aiohttp.ClientSession() as session:
            return await error_groups.fetch_feed(
                session, Feed("gone", f"http://127.0.0.1:{port}/"), 2
            )

    with pytest.raises(FeedError) as caught:
        asyncio.run(scenario())
    assert caught.value.kind == "unavailable"
    assert str(caught.value).startswith("cannot reach the server")
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def import_kinds(
    *kinds: str, timeout_s: float = TIMEOUT_S
) -> tuple[list[Feed], Any, list[str]]:
    """import_feeds() on one feed of each kind: the feeds, what it returned or raised, and on_done's
    record of every feed as it finished."""
    finished: list[str] = []
    async with feed_server() as base, aiohttp.ClientSession() as session:
        feeds = feeds_on(base, *kinds)
        try:
            outcome = await error_groups.import_feeds(
                session, feeds, timeout_s, lambda feed, _err: finished.append(feed.name)
            )
        except ExceptionGroup as group:
            outcome = group
    return feeds, outcome, finished


def test_one_group_holds_every_failure_in_order_and_the_good_feeds_finish() -> None:
    kinds = ("missing", "good", "malformed", "slow", "down", "good")
    feeds, group, finished = asyncio.run(import_kinds(*kinds))
    assert isinstance(group, ExceptionGroup)
    assert group.message == "4 of 6 feeds failed"
    assert [err.feed for err in group.exceptions] == [
        "missing-0",
        "malformed-2",
        "slow-3",
        "down-4",
    ]
    assert [type(err) for err in group.exceptions] == [
        FeedMissingError,
        FeedFormatError,
        FeedTimeoutError,
        FeedError,
    ]
    assert sorted(finished) == sorted(feed.name for feed in feeds)  # none lost, none cancelled
    for feed, err in zip([feeds[0], feeds[2], feeds[3], feeds[4]], group.exceptions, strict=True):
        (note,) = err.__notes__
        assert re.fullmatch(rf"feed '{feed.name}': GET {feed.url}, failed after \d\.\d\d s", note)


def test_the_good_feeds_arrive_when_the_failures_came_first() -> None:
    """The failures answer at once, the good feeds after GOOD_LATENCY_S: nothing was cancelled."""
    _feeds, group, finished = asyncio.run(import_kinds("missing", "down", "good", "good"))
    assert len(group.exceptions) == 2
    assert finished[-2:] == ["good-2", "good-3"]


def test_a_plain_task_group_cancels_the_siblings_of_the_first_failure() -> None:
    """Why import_feeds() catches in each task: left to the TaskGroup, a 404 cancels the rest."""

    async def scenario() -> tuple[ExceptionGroup, list[asyncio.Task[Any]]]:
        async with feed_server() as base, aiohttp.ClientSession() as session:
            feeds = feeds_on(base, "missing", "good", "good")
            tasks: list[asyncio.Task[Any]] = []
            try:
                async with asyncio.TaskGroup() as group:
                    tasks += [
                        group.create_task(error_groups.fetch_feed(session, f, 2)) for f in feeds
                    ]
            except ExceptionGroup as raised:  # the TaskGroup makes one of its own
                return raised, tasks
        raise AssertionError("the 404 did not fail the group")

    group, tasks = asyncio.run(scenario())
    assert [type(err) for err in group.exceptions] == [FeedMissingError]
    assert [task.cancelled() for task in tasks] == [False, True, True]  # the good feeds, lost


def test_all_good_returns_the_items_by_feed() -> None:
    feeds, imported, finished = asyncio.run(import_kinds("good", "good"))
    assert sorted(imported) == sorted(finished) == [feed.name for feed in feeds]
    assert all(len(items) == 20 for items in imported.values())


def test_a_bug_is_not_a_feed_failure_and_escapes_in_the_task_groups_own_group() -> None:
    async def scenario() -> None:
        session = aiohttp.ClientSession()
        await session.close()  # using a closed session is a programming error: RuntimeError
        await error_groups.import_feeds(session, [Feed("a", "http://127.0.0.1:9/")])

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(scenario())
    assert caught.value.subgroup(FeedError) is None
    assert caught.value.subgroup(RuntimeError) is not None


def test_feed_errors_walks_nested_groups_in_order() -> None:
    inner = ExceptionGroup("inner", [FeedMissingError("b", "gone"), FeedError("c", "down")])
    members: list[Any] = [FeedMissingError("a", "gone"), inner]  # typeshed: no nesting
    group: ExceptionGroup[FeedError] = ExceptionGroup("outer", members)
    assert [err.feed for err in error_groups.feed_errors(group)] == ["a", "b", "c"]


def test_except_star_hands_over_nested_groups_and_failures_with_no_notes() -> None:
    inner = ExceptionGroup("inner", [FeedMissingError("b", "gone")])
    members: list[Any] = [FeedMissingError("a", "gone"), inner]  # typeshed: no nesting
    group: ExceptionGroup[FeedError] = ExceptionGroup("outer", members)
    failures = error_groups.failures_in(group, "ask")
    assert [(f.feed, f.kind, f.notes, f.cause) for f in failures] == [
        ("a", "missing", [], None),
        ("b", "missing", [], None),
    ]


# --- the command line, in-process ----------------------------------------------------------------


def test_json_routes_each_kind_to_its_handler(invoke: Invoke) -> None:
    result = invoke(error_groups.run, "--json", "--timeout-ms", "500", "--slow", "2")
    assert result.code == 1
    report = json.loads(result.stdout)
    assert (report["feeds"], report["ok"], report["failed"]) == (10, 5, 5)
    kinds = [failure["kind"] for failure in report["failures"]]
    assert kinds == ["missing", "format", "timeout", "timeout", "unavailable"]
    for failure in report["failures"]:
        assert set(failure) >= {"feed", "kind", "message", "cause", "notes"}
        assert failure["cause"]
        assert failure["feed"] in failure["notes"][0]
    assert report["failures"][2]["action"] == "transient: the next run retries it"
    assert result.stderr.splitlines()[-1] == "error: 5 of 10 feeds failed"


def test_a_table_for_people_at_80_columns(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four columns that fit 80; each failure's cause and notes on lines of their own below."""
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(error_groups.run, "--slow", "0", "--good", "2")
    assert result.code == 1
    header = next(line for line in result.stdout.splitlines() if "what to do" in line)
    assert re.findall(r"\w[\w ]*\w", header) == ["feed", "kind", "message", "what to do"]
    assert "partner-2: JSONDecodeError: Expecting value" in result.stdout
    assert "  feed 'partner-2': GET http://127.0.0.1:" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert re.search(r"│ 5\s+│ 2\s+│ 3\s+│", result.stdout)


def test_every_feed_imported_exits_0(invoke: Invoke) -> None:
    args = ["--missing", "0", "--malformed", "0", "--slow", "0", "--down", "0", "--json"]
    result = invoke(error_groups.run, *args)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) | {"elapsed_s": 0} == {
        "feeds": 5,
        "ok": 5,
        "failed": 0,
        "failures": [],
        "elapsed_s": 0,
    }


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--good", "0"], "--good"),
        (["--slow", "-1"], "--slow"),
        (["--timeout-ms", "5"], "--timeout-ms"),
        (["--timeout-ms", "nan"], "--timeout-ms"),
        (["--down", "many"], "--down"),
    ],
)
def test_bad_arguments_are_usage_errors(invoke: Invoke, args: list[str], argument: str) -> None:
    invoke(error_groups.run, *args).assert_usage_error(argument)


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("error_groups", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["feeds"], report["ok"], report["failed"]) == (9, 5, 4)
    assert [f["kind"] for f in report["failures"]] == [
        "missing",
        "format",
        "timeout",
        "unavailable",
    ]
    assert 0.9 < report["elapsed_s"] < 10  # the timeout, once: the feeds ran at the same time
    assert proc.stderr.splitlines()[-1] == "error: 4 of 9 feeds failed"


def test_ctrl_c_while_importing(runner: ScriptRunner) -> None:
    message = runner.ctrl_c("error_groups", "--timeout-ms", "60000", ready="importing")
    assert re.fullmatch(r"interrupted: \d of 9 feeds finished, \d failed", message), message
