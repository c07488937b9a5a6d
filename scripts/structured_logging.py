# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "fastapi", "httpx", "rich", "structlog", "uvicorn"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Log a service in one format, JSON lines or a console form, with levels that mean something.

Pattern:       structlog renders every line through one processor chain (context, level, time,
               JSON); stdlib loggers (uvicorn's, httpx's) join it through ProcessorFormatter, so
               one grep or one log shipper reads them all. Levels carry meaning: DEBUG diagnoses,
               INFO records operations, WARNING a handled anomaly, ERROR a failure someone must
               look at; an expected outcome (a 404, a call retried then answered) is never ERROR.
When to use:   Any service whose logs are read by machines (a shipper, a query), or paged on.
When not to:   A script that logs a dozen lines (logging.basicConfig is enough); one ID across
               services (correlation_id.py); rates and error ratios (metrics.py).
Run:           uv run scripts/structured_logging.py
               uv run scripts/structured_logging.py serve --port 8000   (then the curl it prints)
Try it:        serve 2>&1 | cat: JSON lines, as stderr is no terminal (on one: console lines).
               LOG_FORMAT=console uv run scripts/structured_logging.py serve 2>&1 | cat: console.
               serve, then curl .../items/6: one ERROR line, its traceback plain (no locals).
               --requests 5000: the same level for each outcome over a longer run.

What the logging costs (measured in observability_overhead.py): each line runs the processors
(contextvars, level, time, json.dumps) and one write() with a flush: ~10 us on structlog's native
path (WriteLogger; a filtered level is a no-op call), ~50 us through stdlib's ProcessorFormatter
(a LogRecord, a formatter, a lock). So the app logs through structlog; uvicorn's access log is off.
"""

import asyncio
import json
import logging
import multiprocessing
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TextIO

import click
import httpx
import structlog
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from structlog.typing import EventDict, WrappedLogger

# --- The pattern: one logging pipeline for structlog and the standard library -------------------
log = structlog.get_logger()


def name_the_app(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """A processor: structlog's own lines are the app's; say so, as stdlib's name their logger."""
    event_dict.setdefault("logger", "app")
    return event_dict


def configure_logging(stream: TextIO, level: int = logging.INFO, console: bool = False) -> None:
    """Send structlog's lines and stdlib's (uvicorn's, httpx's) to `stream` in one format: JSON
    lines, or structlog's readable console form. Both merge the bound contextvars. Call it once,
    at start-up: a structlog logger keeps the configuration it was first used with."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Any] = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    if console:  # plain_traceback: the default (rich) prints every frame's locals, secrets too
        plain = structlog.dev.plain_traceback
        tail = [structlog.dev.ConsoleRenderer(exception_formatter=plain)]
    structlog.configure(
        processors=[*shared, name_the_app, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]  # the one way out for every stdlib logger that propagates
    root.setLevel(level)


# --- The pattern: one access line per request, at the level its outcome deserves ----------------
class AccessLogMiddleware:
    """Pure ASGI: binds the method and path for every line logged while a request is served,
    then logs one access line: INFO for an answer (a 404 too), WARNING for a 5xx the app chose
    (handled), ERROR with the traceback for a crash, which it turns into a 500."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with structlog.contextvars.bound_contextvars(method=scope["method"], path=scope["path"]):
            try:
                await self.app(scope, receive, send_noting_status)
            except Exception:
                took = round((time.perf_counter() - started) * 1000, 2)
                log.exception("request failed", status=500, duration_ms=took)
                if status:  # the answer has begun: too late for a 500; let the server close it
                    raise
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
            else:
                level = logging.WARNING if status >= 500 else logging.INFO
                took = round((time.perf_counter() - started) * 1000, 2)
                log.log(level, "request", status=status, duration_ms=took)


# --- The pattern: a service whose outcomes each log at their level -----------------------------
TIMEOUT_S = 5.0  # every call to another service; the demo's answer in ~1 ms


async def rate_or_fallback(client: httpx.AsyncClient, item: int) -> float:
    """Ask the rates service, retrying a 503 once (a WARNING: handled); if it is still busy,
    serve the list price (a WARNING too: the answer is degraded, nobody need be woken)."""
    response = await client.get(f"/rates/{item}")
    if response.status_code == 503:
        log.warning("rates busy, retrying", item=item)
        response = await client.get(f"/rates/{item}")
    if response.status_code == 503:
        log.warning("rates unavailable, list price used", item=item)
        return 1.0  # the list price
    response.raise_for_status()  # anything else unexpected is a crash: ERROR
    return response.json()["rate"]


def create_app(rates_url: str, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Items priced by a rates service at `rates_url`. The demo serves rates from this same app
    (the /rates route), standing in for another service: items ending in 4 find it busy once,
    those ending in 8 always; items ending in 9 do not exist; those ending in 6 hit a bug."""
    busy_once: set[int] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        async with httpx.AsyncClient(
            base_url=rates_url, timeout=TIMEOUT_S, transport=transport
        ) as client:
            app.state.rates = client
            yield

    app = FastAPI(title="items", lifespan=lifespan)
    app.add_middleware(AccessLogMiddleware)

    @app.get("/rates/{item}")
    async def rate(item: int) -> dict[str, float]:
        first_time = item not in busy_once
        busy_once.add(item)
        if item % 10 == 8 or (item % 10 == 4 and first_time):
            raise HTTPException(503, "busy, try again")  # chosen: the access line at WARNING
        return {"rate": 1 + item % 7 / 10}

    @app.get("/items/{item}")
    async def get_item(item: int, request: Request) -> dict[str, float | int]:
        log.info("item requested", item=item)
        if item % 10 == 9:
            raise HTTPException(404, f"no item {item}")  # expected: the access line at INFO
        if item % 10 == 6:
            raise RuntimeError("a deliberate bug")  # a crash: one ERROR line, a 500
        log.debug("asking rates", item=item)  # a diagnostic: below INFO it costs one no-op call
        rate = await rate_or_fallback(request.app.state.rates, item)
        return {"item": item, "price": round(item * rate, 2)}

    return app


# --- Demo plumbing: the app in a child process, logging to a file ---------------------------------
class Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:  # a second signal (uv passes Ctrl-C on) would skip the shutdown
            super().handle_exit(sig, frame)


def serve_child(sock: socket.socket, app: Any, log_path: Path) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # uvicorn handles these, then re-raises them:
        signal.signal(signum, signal.SIG_IGN)  # ignored then, so the child exits 0
    configure_logging(log_path.open("a", encoding="utf-8"))
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
    Server(config).run(sockets=[sock])


@contextmanager
def server(make_app: Callable[[str], FastAPI], log_path: Path) -> Generator[str]:
    """Serve `make_app(url)` (given the URL it will answer at) from a child process logging to
    `log_path`; yield the URL once it answers; stop it on the way out."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say TCP (else 40 ms per answer).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        args = (sock, make_app(url), log_path)
        child = multiprocessing.get_context("fork").Process(target=serve_child, args=args)
        child.start()
    # Only the child holds the socket now: a first request waits in its backlog until uvicorn
    # accepts it, and is refused at once if the child has died.
    try:
        try:
            httpx.get(f"{url}/openapi.json", timeout=TIMEOUT_S).raise_for_status()
        except httpx.HTTPError as err:
            raise click.ClickException(f"the server at {url} did not start: {err}") from err
        yield url
    finally:
        child.terminate()
        child.join(timeout=1.5)
        child.kill()  # only if it is still there: the 2 s rule beats a hung shutdown
        child.join()


# Each outcome, by the item's last digit, and the level its worst line should have.
OUTCOMES = {
    1: ("answered", "info"),
    9: ("not found (404)", "info"),
    4: ("retried, then answered", "warning"),
    8: ("rates down, list price used", "warning"),
    6: ("crashed (500)", "error"),
}
IN_FLIGHT = 5  # requests at once: the bound path keeps each line with its request


@dataclass
class Run:
    statuses: dict[int, int] = field(default_factory=dict)  # item -> the status it got


async def session(
    client: httpx.AsyncClient, requests: int, run: Run, on_answer: Callable[[], None]
) -> None:
    """The demo's traffic, IN_FLIGHT at a time: request i asks for item 10 * (i // 5) + a last
    digit taken in turn from OUTCOMES, so every outcome comes up once in five requests."""
    digits = list(OUTCOMES)
    todo = iter([10 * (i // 5) + digits[i % 5] for i in range(requests)])

    async def caller() -> None:
        for item in todo:  # shared: each item is taken by one of the callers
            response = await client.get(f"/items/{item}")
            run.statuses[item] = response.status_code
            on_answer()

    await asyncio.gather(*[caller() for _ in range(IN_FLIGHT)])


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


async def drive(url: str, requests: int, run: Run, show: bool) -> None:
    cancel_on_ctrl_c()
    click.echo(f"requests: {requests}, {IN_FLIGHT} at a time", err=True)
    with Progress(console=Console(stderr=True), transient=True, disable=not show) as progress:
        bar = progress.add_task("requests", total=requests)
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S) as client:
            try:
                await session(client, requests, run, on_answer=lambda: progress.advance(bar))
            except httpx.HTTPError as err:
                raise click.ClickException(f"a request failed: {err!r}") from err


# --- Demo plumbing: reading the lines back and checking them ------------------------------------
SHARED_KEYS = {"timestamp", "level", "event", "logger"}
LEVELS = ["none", "debug", "info", "warning", "error", "critical"]  # "none": no line at all


def read_lines(path: Path) -> list[dict[str, Any]]:
    """A file's lines, each parsed; one that is not a JSON object is kept as {"not_json": text}."""
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            line = None
        lines.append(line if isinstance(line, dict) else {"not_json": text})
    return lines


def requested_item(line: dict[str, Any]) -> int | None:
    """The item of the /items request a line was logged in (by its bound path), if any."""
    number = str(line.get("path", "")).removeprefix("/items/")
    return int(number) if number.isdecimal() else None


@dataclass
class Check:
    shows: str
    result: str
    expected: str


@dataclass
class Audit:
    figures: dict[str, Any]  # the --json keys
    checks: list[Check]


def audit(lines: list[dict[str, Any]], run: Run) -> Audit:
    """Check every line's shape, where stdlib's lines went, and each outcome's level."""
    loggers = Counter(str(line.get("logger")) for line in lines)
    stdlib = {name: n for name, n in loggers.items() if name.startswith(("uvicorn", "httpx"))}
    errors_for_expected = 0
    worst: dict[int, str] = {}  # each /items request's worst level, by item
    for line in lines:
        item = requested_item(line)
        level = str(line.get("level", "none"))
        if level == "error" and (item is None or OUTCOMES[item % 10][1] != "error"):
            errors_for_expected += 1
        if item is not None and LEVELS.index(level) > LEVELS.index(worst.get(item, "none")):
            worst[item] = level
    figures = {
        "requests": len(run.statuses),
        "lines": len(lines),
        "lines_by_level": dict(Counter(str(line.get("level")) for line in lines)),
        "stdlib_lines": sum(stdlib.values()),
        "stdlib_lines_by_logger": stdlib,
        "errors_for_expected": errors_for_expected,
        "lines_malformed": sum(1 for line in lines if not line.keys() >= SHARED_KEYS),
    }
    checks = []
    for digit, (outcome, expected) in OUTCOMES.items():
        items = [item for item in run.statuses if item % 10 == digit]
        seen = sorted({worst.get(item, "none") for item in items}, key=LEVELS.index)
        shows = f"worst level: {outcome} (requests: {len(items)})"
        checks.append(Check(shows, ", ".join(seen), expected))
    checks += [
        Check("lines not JSON with the shared keys", str(figures["lines_malformed"]), "0"),
        Check("ERROR lines for expected outcomes", str(errors_for_expected), "0"),
        Check("uvicorn's lines, through the pipeline", str("uvicorn.error" in stdlib), "True"),
        Check("httpx's lines, through the pipeline", str("httpx" in stdlib), "True"),
    ]
    return Audit(figures, checks)


def report(found: Audit, as_json: bool) -> int:
    """Print the checks and the figures; return the exit code (0 only if every check passed)."""
    failed = [check for check in found.checks if check.result != check.expected]
    if as_json:
        verdicts = [asdict(check) for check in found.checks]
        click.echo(json.dumps({**found.figures, "checks": verdicts}))
        return 1 if failed else 0
    table = Table("what is checked (over every line the app wrote)", "result", "expected")
    for check in found.checks:
        mark = "  FAILED" if check in failed else ""
        table.add_row(check.shows, check.result, f"{check.expected}{mark}")
    levels = ", ".join(f"{n} {level}" for level, n in found.figures["lines_by_level"].items())
    said = f"{found.figures['lines']} lines ({levels}) from {found.figures['requests']} requests"
    Console().print(table, said)
    return 1 if failed else 0


# --- CLI ------------------------------------------------------------------------------------------
@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option(
    "--requests",
    type=click.IntRange(5, 10_000),
    default=20,
    help="Item requests sent, each of the five outcomes in turn, 5 at a time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(ctx: click.Context, requests: int, as_json: bool) -> None:
    """Drive a service through every outcome and check its log lines' format and levels."""
    if ctx.invoked_subcommand is not None:
        return
    run = Run()
    with TemporaryDirectory(prefix="structured_logging-") as directory:
        log_path = Path(directory) / "app.log"
        with server(create_app, log_path) as url:  # the app calls its own /rates route
            try:
                asyncio.run(drive(url, requests, run, show=not as_json))
            except asyncio.CancelledError as err:  # by Ctrl-C; the server stops on the way out
                done = f"{len(run.statuses)} of {requests} requests answered"
                raise click.Abort(f"interrupted: {done}; server stopped") from err
        found = audit(read_lines(log_path), run)
    ctx.exit(report(found, as_json))


@cli.command()
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="Port to listen on.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    default="auto",
    envvar="LOG_FORMAT",
    show_envvar=True,
    help="JSON lines, the readable console form, or auto: console on a terminal, else JSON.",
)
def serve(host: str, port: int, log_format: str) -> None:
    """Run the service until Ctrl-C, logging to stderr."""
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    configure_logging(sys.stderr, console=console)
    click.echo(f"curl -i http://{host}:{port}/items/4   (then 9, 8, 6)", err=True)
    app = create_app(f"http://{host}:{port}")  # its rates route, on itself
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    Server(config).run()  # not uvicorn.run(), which turns Ctrl-C into exit 0


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
