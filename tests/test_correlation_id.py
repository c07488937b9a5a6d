"""Tests for scripts/correlation_id.py: properties of the log lines, never their formatting.

Both services run in-process: A's client reaches B through httpx.ASGITransport, A's lifespan runs,
and the logging pipeline writes JSON lines to a StringIO that the tests parse. The demo's own
traffic (`session`) is replayed here. The script runs three times as a process: --json, Ctrl-C
on the default run, and Ctrl-C on `serve`.
"""

import asyncio
import io
import json
import logging
import re
import signal
import socket
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import structlog
import uvicorn

import correlation_id as lesson
from conftest import INTERRUPT_DEADLINE_S, Invocation, ScriptRunner
from structlog_capture import structlog_into

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def stream() -> Generator[io.StringIO]:
    """One stream for the module: the lesson's module-level logger is cached on first use."""
    with structlog_into(lesson.configure_logging) as sink:
        yield sink


FORGED = 'x", "level": "error", "event": "forged'  # an attempt to inject a log line
TESTS_OWN = "HTTP Request: GET http://a/"  # httpx's line for the test's client, not a service's


@pytest.fixture
def lines(stream: io.StringIO) -> Lines:
    """The services' JSON lines logged since the test began, parsed (one not JSON fails)."""
    stream.seek(0)
    stream.truncate()

    def parsed() -> list[dict[str, Any]]:
        found = [json.loads(text) for text in stream.getvalue().splitlines()]
        return [line for line in found if not line["event"].startswith(TESTS_OWN)]

    return parsed


@asynccontextmanager
async def service_a() -> AsyncGenerator[httpx.AsyncClient]:
    """A client of service A, whose own client reaches service B in-process; lifespan run."""
    b = lesson.create_service_b()
    a = lesson.create_service_a("http://b", transport=httpx.ASGITransport(app=b))
    async with a.router.lifespan_context(a):
        transport = httpx.ASGITransport(app=a)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            yield client


def demo_traffic(requests: int) -> lesson.Run:
    run = lesson.Run()

    async def scenario() -> None:
        async with service_a() as client:
            await lesson.session(client, requests, run, on_answer=lambda: None)

    asyncio.run(scenario())
    return run


def test_every_line_carries_its_requests_id_and_none_mix(lines: Lines) -> None:
    run = demo_traffic(60)  # 20 requests at once: their lines interleave in one stream
    found = lines()
    checks = lesson.audit(found, run)
    assert {n: (c.result, c.expected) for n, c in checks.items() if c.result != c.expected} == {}
    assert checks["traced"].result == 60
    assert checks["ids_mixed"].result == 0
    assert checks["lines_without_id"].result == 0
    assert len({line["correlation_id"] for line in found}) == 60  # one per request
    assert {line["service"] for line in found} == {"a", "b"}
    assert any(line.get("logger") == "httpx" for line in found)  # stdlib lines are checked too


def test_the_audit_finds_mixed_ids_and_lines_without_one(tmp_path: Path) -> None:
    """The checks can fail: a line of request "one" naming item 2, a line with no ID, and a
    line torn by a bad write (not JSON) are each counted."""
    logged = [
        {"correlation_id": "one", "service": "a", "event": "item requested", "item": 1},
        {"correlation_id": "one", "service": "b", "event": "request", "path": "/stock/2"},
        {"service": "a", "event": "item requested", "item": 2},
    ]
    log_file = tmp_path / "a.log"
    texts = [json.dumps({**line, "level": "info"}) for line in logged]
    log_file.write_text("\n".join([*texts, '{"correlation_id": "two", "ev']) + "\n")
    run = lesson.Run(sent=[lesson.Sent(1, "one"), lesson.Sent(2, "two")])
    checks = lesson.audit(lesson.read_lines(log_file), run)
    assert checks["ids_mixed"].result == 1
    assert checks["lines_without_id"].result == 2
    assert checks["traced"].result == 0  # neither has all its lines on both sides


async def get(path: str, headers: dict[str, Any] | None = None) -> httpx.Response:
    async with service_a() as client:
        return await client.get(path, headers=headers)


def test_one_request_leaves_its_id_on_every_line_in_a_and_b(lines: Lines) -> None:
    response = asyncio.run(get("/items/3", {"X-Correlation-ID": "mine"}))
    assert response.status_code == 200
    assert response.headers["X-Correlation-ID"] == "mine"
    found = lines()
    assert {line["correlation_id"] for line in found} == {"mine"}
    events = {(line["service"], line["event"]) for line in found}
    assert ("a", "priced in a thread") in events  # asyncio.to_thread
    assert ("a", "view recorded") in events  # the background task, after the answer
    assert ("b", "stock looked up") in events  # B, reached with the ID the hook forwarded
    threaded = next(line for line in found if line["event"] == "priced in a thread")
    assert threaded["thread"] != "MainThread"


@pytest.mark.parametrize("headers", [{}, {"X-Correlation-ID": ""}], ids=["none", "empty"])
def test_a_new_id_is_made_when_none_is_sent(headers: dict[str, str], lines: Lines) -> None:
    response = asyncio.run(get("/items/1", headers))
    made = response.headers["X-Correlation-ID"]
    assert lesson.VALID_ID.fullmatch(made.encode())
    assert {line["correlation_id"] for line in lines()} == {made}


@pytest.mark.parametrize("sent", [FORGED, "a" * 65, "two words", "semi;colon", "\t", "é"], ids=repr)
def test_a_bad_id_is_replaced_and_never_logged(sent: str, lines: Lines) -> None:
    response = asyncio.run(get("/items/1", {"X-Correlation-ID": sent.encode()}))  # raw bytes
    made = response.headers["X-Correlation-ID"]
    assert made != sent
    assert lesson.VALID_ID.fullmatch(made.encode())
    found = lines()
    assert {line["correlation_id"] for line in found} == {made}
    refused = [line for line in found if line["event"] == "correlation id refused"]
    assert [line["level"] for line in refused] == ["warning"]
    assert sent.strip() == "" or sent not in json.dumps(found, ensure_ascii=False)


def asgi_call(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """Call a middleware-wrapped ASGI app once; return the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": headers}
    asyncio.run(app(scope, None, send))
    return sent


def test_a_500_echoes_the_id_and_logs_one_error_with_it(lines: Lines) -> None:
    async def crashes(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a deliberate bug")

    middleware = lesson.CorrelationIdMiddleware(crashes, service="a")
    sent = asgi_call(middleware, [(b"x-correlation-id", b"crash-1")])
    assert sent[0]["status"] == 500
    assert (b"x-correlation-id", b"crash-1") in sent[0]["headers"]
    errors = [line for line in lines() if line["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["correlation_id"] == "crash-1"
    assert "RuntimeError: a deliberate bug" in errors[0]["exception"]


def test_a_crash_after_the_answer_began_is_raised_with_the_id_logged(lines: Lines) -> None:
    async def streams_then_fails(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("half an answer")

    middleware = lesson.CorrelationIdMiddleware(streams_then_fails, service="a")
    with pytest.raises(RuntimeError, match="half an answer"):
        asgi_call(middleware, [(b"x-correlation-id", b"s-1")])
    assert [(line["level"], line["correlation_id"]) for line in lines()] == [("error", "s-1")]


def test_lifespan_passes_through_unbound() -> None:
    app = lesson.create_service_a("http://b")

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            assert structlog.contextvars.get_contextvars() == {}

    asyncio.run(scenario())


def test_to_thread_copies_the_id_and_run_in_executor_does_not(lines: Lines) -> None:
    async def scenario() -> None:
        with structlog.contextvars.bound_contextvars(correlation_id="t-1"):
            await asyncio.to_thread(lesson.price_of, 1)
            await asyncio.get_running_loop().run_in_executor(None, lesson.price_of, 2)

    asyncio.run(scenario())
    ids = {line["item"]: line.get("correlation_id") for line in lines()}
    assert ids == {1: "t-1", 2: None}


def test_stdlib_loggers_go_through_the_same_pipeline(lines: Lines) -> None:
    with structlog.contextvars.bound_contextvars(correlation_id="std-1"):
        logging.getLogger("uvicorn.error").warning("from uvicorn")
        logging.getLogger("httpx").debug("below the level")
    [line] = lines()
    assert (line["correlation_id"], line["logger"], line["level"]) == (
        "std-1",
        "uvicorn.error",
        "warning",
    )


def test_a_failed_request_is_one_error_not_a_traceback() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(click.ClickException, match="a request through A failed: ConnectError"):
        asyncio.run(lesson.drive(url, 2, lesson.Run(), show=False))


def test_the_report_fails_on_any_failed_check(capsys: pytest.CaptureFixture[str]) -> None:
    run = lesson.Run(sent=[lesson.Sent(1, "one"), lesson.Sent(2, "two")])
    checks = {
        "lines_without_id": lesson.Check("lines without an ID", 0, 0),
        "ids_mixed": lesson.Check("lines naming another request's item", 1, 0),
    }
    assert lesson.report(run, 10, checks, as_json=False) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    assert "10 lines checked, from 2 requests" in out


def test_a_second_signal_does_not_force_the_exit() -> None:
    """uv passes a Ctrl-C on to the script: a second SIGINT. With uvicorn's own Server it forces
    the exit, which skips the app's shutdown and logs the lifespan's cancellation as an ERROR."""
    server = lesson.Server(uvicorn.Config(lesson.create_service_b(), log_config=None))
    server.handle_exit(signal.SIGINT, None)
    server.handle_exit(signal.SIGINT, None)
    assert server.should_exit
    assert not server.force_exit


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--requests", "1"], "--requests"),
        (["--requests", "x"], "--requests"),
        (["--requests", "10001"], "--requests"),
        (["serve", "--port", "0"], "--port"),
    ],
)
def test_bad_arguments(args: list[str], named: str, invoke: Callable[..., Invocation]) -> None:
    invoke(lesson.run, *args).assert_usage_error(named)


def test_default_run_as_json(runner: ScriptRunner) -> None:
    proc = runner.run("correlation_id", "--requests", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["requests"] == 6
    assert result["lines"] > 6 * 4
    assert (result["lines_without_id"], result["ids_mixed"]) == (0, 0)
    assert all(check["result"] == check["expected"] for check in result["checks"].values())


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("correlation_id", "--requests", "10000", ready="requests: ")
    assert re.search(r"interrupted: \d+ of 10000 requests answered; servers stopped", line)


def test_serve_logs_uvicorn_in_json_and_stops_on_ctrl_c(runner: ScriptRunner) -> None:
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = runner.interrupt("correlation_id", "serve", "--port", port, ready="startup complete")
    assert done.returncode == 130, done.stderr
    assert done.seconds_to_exit < INTERRUPT_DEADLINE_S
    assert not done.survivors
    assert "Traceback" not in done.stderr
    logged = [json.loads(text) for text in done.stderr.splitlines() if text.startswith("{")]
    assert any(line.get("logger") == "uvicorn.error" for line in logged)
    assert done.stderr.rstrip().endswith("interrupted")
