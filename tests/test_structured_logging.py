"""Tests for scripts/structured_logging.py: the pipeline's shape and the levels, not the formatting.

The app runs in-process (httpx.ASGITransport, lifespan run), its client for rates looped back to
the app itself, and the pipeline writes to a StringIO the tests parse. The script runs three times
as a process: --json, Ctrl-C on the default run, and Ctrl-C on `serve`.
"""

import asyncio
import io
import json
import logging
import re
import signal
import socket
from collections.abc import Callable, Generator
from typing import Any

import httpx
import pytest
import structlog
import uvicorn

import structured_logging as lesson
from conftest import INTERRUPT_DEADLINE_S, Invocation, ScriptRunner
from structlog_capture import structlog_into

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def stream() -> Generator[io.StringIO]:
    """One stream for the module: the lesson's module-level logger is cached on first use."""
    with structlog_into(lesson.configure_logging) as sink:
        yield sink


@pytest.fixture
def lines(stream: io.StringIO) -> Lines:
    stream.seek(0)
    stream.truncate()
    return lambda: [json.loads(text) for text in stream.getvalue().splitlines()]


def demo_traffic(requests: int) -> lesson.Run:
    """The demo's session against the app in-process; its rates calls loop back to itself."""
    run = lesson.Run()
    target: dict[str, Any] = {}

    async def itself(scope: Any, receive: Any, send: Any) -> None:
        await target["app"](scope, receive, send)

    app = lesson.create_app("http://app", transport=httpx.ASGITransport(app=itself))
    target["app"] = app

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                await lesson.session(client, requests, run, on_answer=lambda: None)

    asyncio.run(scenario())
    return run


def test_every_outcome_logs_at_its_level_and_no_expected_one_at_error(lines: Lines) -> None:
    run = demo_traffic(50)  # more than the default's 20: the Try-it's longer run, scaled down
    found = lesson.audit(lines(), run)
    failed = [c for c in found.checks if c.result != c.expected and "uvicorn" not in c.shows]
    assert failed == []  # uvicorn's lines come only from a real server (the --json run)
    assert found.figures["errors_for_expected"] == 0
    assert found.figures["lines_by_level"]["error"] == 10  # the ten crashes, one line each
    statuses = sorted(run.statuses.values())
    assert statuses == [200] * 30 + [404] * 10 + [500] * 10


def test_a_crash_is_one_error_line_with_a_plain_traceback(lines: Lines) -> None:
    async def crash() -> httpx.Response:
        app = lesson.create_app("http://app")
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await client.get("/items/6")

    assert asyncio.run(crash()).status_code == 500
    errors = [line for line in lines() if line["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["path"] == "/items/6"
    trace = errors[0]["exception"]
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.rstrip().endswith("RuntimeError: a deliberate bug")
    assert "request =" not in trace  # frames' locals are not printed


def test_the_audit_finds_an_error_for_an_expected_outcome_and_a_bad_line() -> None:
    logged = [
        {
            "timestamp": "t",
            "level": "error",
            "event": "request",
            "logger": "app",
            "path": "/items/9",
        },
        {"level": "info", "event": "no time, no logger"},
        {"not_json": "torn"},
    ]
    found = lesson.audit(logged, lesson.Run(statuses={9: 404}))
    assert found.figures["errors_for_expected"] == 1
    assert found.figures["lines_malformed"] == 2
    assert lesson.report(found, as_json=True) == 1


def test_stdlib_loggers_go_through_the_same_pipeline(lines: Lines) -> None:
    with structlog.contextvars.bound_contextvars(path="/items/1"):
        logging.getLogger("uvicorn.error").warning("from uvicorn")
        logging.getLogger("httpx").debug("below the level")
        lesson.log.info("from the app")
    found = lines()
    assert [(line["logger"], line["level"]) for line in found] == [
        ("uvicorn.error", "warning"),
        ("app", "info"),
    ]
    assert all(line.keys() >= lesson.SHARED_KEYS and line["path"] == "/items/1" for line in found)


def test_the_console_format_is_not_json_and_prints_no_locals(stream: io.StringIO) -> None:
    console = io.StringIO()
    lesson.configure_logging(console, console=True)
    marker = "hunter2"  # a local the traceback must not print
    try:
        with structlog.contextvars.bound_contextvars(path="/tty"):
            structlog.get_logger().info("readable")
            logging.getLogger("uvicorn.error").info("also readable")
            try:
                raise RuntimeError(f"failed after {len(marker)} tries")
            except RuntimeError:
                structlog.get_logger().exception("it failed")
    finally:
        lesson.configure_logging(stream)
    said = console.getvalue()
    first = said.splitlines()[:3]
    assert all("/tty" in line and not line.startswith("{") for line in first)
    assert "RuntimeError: failed after 7 tries" in said
    assert marker not in said


def test_a_crash_after_the_answer_began_is_raised_and_logged(lines: Lines) -> None:
    async def streams_then_fails(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("half an answer")

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    middleware = lesson.AccessLogMiddleware(streams_then_fails)
    with pytest.raises(RuntimeError, match="half an answer"):
        asyncio.run(middleware(scope, None, send))
    assert [(line["level"], line["path"]) for line in lines()] == [("error", "/x")]


def test_a_second_signal_does_not_force_the_exit() -> None:
    """uv passes a Ctrl-C on to the script: a second SIGINT. With uvicorn's own Server it forces
    the exit, which skips the app's shutdown and logs the lifespan's cancellation as an ERROR."""
    server = lesson.Server(uvicorn.Config(lesson.create_app("http://x"), log_config=None))
    server.handle_exit(signal.SIGINT, None)
    server.handle_exit(signal.SIGINT, None)
    assert server.should_exit
    assert not server.force_exit


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--requests", "4"], "--requests"),
        (["--requests", "x"], "--requests"),
        (["serve", "--port", "0"], "--port"),
        (["serve", "--log-format", "xml"], "--log-format"),
    ],
)
def test_bad_arguments(args: list[str], named: str, invoke: Callable[..., Invocation]) -> None:
    invoke(lesson.run, *args).assert_usage_error(named)


def test_default_run_as_json(runner: ScriptRunner) -> None:
    proc = runner.run("structured_logging", "--requests", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["requests"] == 5
    assert result["errors_for_expected"] == 0
    assert result["stdlib_lines"] > 0
    assert all(check["result"] == check["expected"] for check in result["checks"])


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("structured_logging", "--requests", "10000", ready="requests: ")
    assert re.search(r"interrupted: \d+ of 10000 requests answered; server stopped", line)


def test_serve_logs_json_when_not_a_tty_and_stops_on_ctrl_c(runner: ScriptRunner) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = runner.interrupt("structured_logging", "serve", "--port", port, ready="startup complete")
    assert done.returncode == 130, done.stderr
    assert done.seconds_to_exit < INTERRUPT_DEADLINE_S
    assert not done.survivors
    logged = [json.loads(text) for text in done.stderr.splitlines() if text.startswith("{")]
    assert any(line.get("logger") == "uvicorn.error" for line in logged)
    assert done.stderr.rstrip().endswith("interrupted")
