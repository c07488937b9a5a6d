# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "fastapi", "httpx", "rich", "structlog", "uvicorn"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Give every request one correlation ID, on every log line of every service it passes through.

Pattern:       A pure ASGI middleware takes the ID from X-Correlation-ID (or X-Request-ID), keeps it
               only if short and plain (else makes one), binds it with structlog.contextvars,
               echoes it on every response (a 500 too) and logs the access line. Every line then
               carries it: asyncio.to_thread copies the context, an httpx hook forwards it to the
               next service, and stdlib logging (uvicorn, httpx) joins structlog's JSON pipeline.
When to use:   Any service whose logs are read by machines, more so when one request spans several.
When not to:   Timing across services (tracing.py); rates and error ratios (metrics.py); the log
               format and levels themselves (structured_logging.py).
Run:           uv run scripts/correlation_id.py
               uv run scripts/correlation_id.py serve --port 8000   (then the curl it prints)
Try it:        serve, then curl with -H 'X-Correlation-ID: mine': both services log "mine".
               curl with -H 'X-Correlation-ID: two words': refused (a WARNING), a new ID instead.
               --requests 5000: a longer run, 20 requests in flight, still no line without its ID.

What the ID costs: a header lookup, a regex, a uuid4, a contextvar set and reset per request.
"""

import asyncio
import json
import logging
import multiprocessing
import re
import signal
import socket
import sys
import threading
import time
import uuid
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
from fastapi import BackgroundTasks, FastAPI, Request
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

# --- The pattern: JSON lines for structlog and stdlib alike (structured_logging.py has more) ----
log = structlog.get_logger()


def configure_logging(stream: TextIO, level: int = logging.INFO) -> None:
    """JSON lines to `stream` from structlog and stdlib (uvicorn, httpx) alike, each with the
    contextvars bound where it was logged. Call it once, at start-up: loggers cache it."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=[*shared, *tail],
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


# --- The pattern: the correlation ID, in, bound, echoed and passed on ---------------------------
ID_HEADER = "X-Correlation-ID"
# Bounded and plain: a client's ID cannot forge a log line or flood one (64: a UUID with room).
VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


class CorrelationIdMiddleware:
    """Pure ASGI: one ID per request, from the caller or made here, bound for every line logged
    while it is served, echoed on every response (a 500 too), and one access line at the end:
    INFO for an answer, WARNING for a 5xx the app chose (handled), ERROR for a crash."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        received = headers.get(b"x-correlation-id") or headers.get(b"x-request-id")
        valid = received is not None and VALID_ID.fullmatch(received) is not None
        correlation_id = received.decode() if received and valid else uuid.uuid4().hex
        tokens = structlog.contextvars.bind_contextvars(
            correlation_id=correlation_id, service=self.service
        )
        if received is not None and not valid:
            log.warning("correlation id refused", length=len(received))  # never the value
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                echo = (ID_HEADER.lower().encode(), correlation_id.encode())
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        where = {"method": scope["method"], "path": scope["path"]}
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            took = round((time.perf_counter() - started) * 1000, 2)
            log.exception("request failed", **where, status=500, duration_ms=took)
            if status:  # the answer has begun: too late for a 500; let the server close it
                raise
            await send_with_id({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
        else:
            level = logging.WARNING if status >= 500 else logging.INFO
            took = round((time.perf_counter() - started) * 1000, 2)
            log.log(level, "request", **where, status=status, duration_ms=took)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


async def forward_correlation_id(request: httpx.Request) -> None:
    """An httpx request hook: an outgoing call carries the ID of the request being served."""
    correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
    if correlation_id is not None:
        request.headers[ID_HEADER] = correlation_id


# --- The pattern: service B (stock), and service A (items) which calls B -----------------------
TIMEOUT_S = 5.0  # every call to another service; the demo's answer in ~1 ms


def create_service_b() -> FastAPI:
    """Service B: the stock of an item."""
    app = FastAPI(title="stock (B)")
    app.add_middleware(CorrelationIdMiddleware, service="b")

    @app.get("/stock/{item}")
    async def stock(item: int) -> dict[str, int]:
        log.info("stock looked up", item=item)
        return {"stock": item * 3 % 17}

    return app


def price_of(item: int) -> float:
    """Blocking work, run in a thread: its line carries the ID because to_thread copies the
    context (loop.run_in_executor does not: there the line would have no ID)."""
    log.info("priced in a thread", item=item, thread=threading.current_thread().name)
    return round(item * 1.25, 2)


async def record_view(item: int) -> None:
    log.info("view recorded", item=item)  # a background task: after the answer, still bound


def create_service_a(b_url: str, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Service A, with one long-lived client for B (at `b_url`) that forwards the ID."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        hooks: dict[str, list[Callable[..., Any]]] = {"request": [forward_correlation_id]}
        async with httpx.AsyncClient(
            base_url=b_url, timeout=TIMEOUT_S, event_hooks=hooks, transport=transport
        ) as client:
            app.state.b = client
            yield

    app = FastAPI(title="items (A)", lifespan=lifespan)
    app.add_middleware(CorrelationIdMiddleware, service="a")

    @app.get("/items/{item}")
    async def get_item(item: int, request: Request, background: BackgroundTasks) -> dict:
        log.info("item requested", item=item)
        price = await asyncio.to_thread(price_of, item)
        answer = await request.app.state.b.get(f"/stock/{item}")
        answer.raise_for_status()
        background.add_task(record_view, item)
        return {"item": item, "price": price, "stock": answer.json()["stock"]}

    return app


# --- Demo plumbing: both services in child processes, logging to files ----------------------------
class Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:  # a second signal (uv passes Ctrl-C on) would skip the shutdown
            super().handle_exit(sig, frame)


def serve_child(sock: socket.socket, app: Any, log_path: Path | None) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # uvicorn handles these, then re-raises them:
        signal.signal(signum, signal.SIG_IGN)  # ignored then, so the child exits 0
    stream = sys.stderr if log_path is None else log_path.open("a", encoding="utf-8")
    configure_logging(stream)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # start/stop: in no request
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
    Server(config).run(sockets=[sock])


@contextmanager
def server(app: Any, log_path: Path | None = None) -> Generator[str]:
    """Serve `app` from a child process, logging to `log_path` (else stderr); yield its URL
    once it answers; stop it on the way out."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say TCP (else 40 ms per answer).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        args = (sock, app, log_path)
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


@dataclass
class Sent:
    item: int
    echoed: str  # the ID the service answered with: the caller's, or one it made


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)  # in the order the answers came


HEADERS = [ID_HEADER, "X-Request-ID", ""]  # request i sends HEADERS[i % 3]; "" sends none
IN_FLIGHT = 20  # requests at once: their lines interleave in both services' logs


async def session(
    client: httpx.AsyncClient, requests: int, run: Run, on_answer: Callable[[], None]
) -> None:
    """The demo's traffic through A, IN_FLIGHT at a time, `on_answer` called after each answer:
    items 0, 1, 2..., sending X-Correlation-ID, X-Request-ID and no ID in turn."""
    todo = iter(range(requests))  # shared: each item is taken by one of the callers

    async def caller() -> None:
        for item in todo:
            header = HEADERS[item % 3]
            headers = {header: f"req-{item}"} if header else {}
            response = await client.get(f"/items/{item}", headers=headers)
            echoed = response.headers.get(ID_HEADER, "")
            run.sent.append(Sent(item, echoed))
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
    click.echo(f"requests: {requests} through A -> B, {IN_FLIGHT} at a time", err=True)
    with Progress(console=Console(stderr=True), transient=True, disable=not show) as progress:
        bar = progress.add_task("requests", total=requests)
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S) as client:
            try:
                await session(client, requests, run, on_answer=lambda: progress.advance(bar))
            except httpx.HTTPError as err:
                raise click.ClickException(f"a request through A failed: {err!r}") from err


# --- Demo plumbing: reading both services' lines back ---------------------------------------------
def read_lines(path: Path) -> list[dict[str, Any]]:
    """A file's JSON lines; a line that is not JSON counts as one without an ID."""
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            lines.append({"event": text})
    return lines


def named_item(line: dict[str, Any]) -> int | None:
    """The item a line names itself (its `item`, or its path's last part), not from context."""
    if "item" in line:
        return line["item"]
    last = str(line.get("path", "")).rsplit("/", 1)[-1]
    return int(last) if last.isdecimal() else None


@dataclass
class Check:
    shows: str
    result: int
    expected: int


def audit(lines: list[dict[str, Any]], run: Run) -> dict[str, Check]:
    """Check both services' lines against the requests that were sent."""
    item_of = {s.echoed: s.item for s in run.sent}
    events: dict[str, set[tuple[str, str]]] = {}  # by ID: (service, event) of its lines
    mixed = 0
    for line in lines:
        owner = str(line.get("correlation_id"))
        events.setdefault(owner, set()).add((line.get("service", ""), line["event"]))
        if owner in item_of and named_item(line) not in (None, item_of[owner]):
            mixed += 1

    def having(wanted: set[tuple[str, str]], requests: list[Sent]) -> int:
        return sum(1 for s in requests if wanted <= events.get(s.echoed, set()))

    items = len(run.sent)
    trail = {("a", "item requested"), ("a", "request"), ("b", "stock looked up"), ("b", "request")}
    traced = having(trail, run.sent)
    in_thread = having({("a", "priced in a thread")}, run.sent)
    in_background = having({("a", "view recorded")}, run.sent)
    without_id = sum(1 for line in lines if not line.get("correlation_id"))
    return {
        "traced": Check("its ID on its lines in A and in B", traced, items),
        "in_thread": Check("its ID on the asyncio.to_thread line", in_thread, items),
        "in_background": Check("its ID on the background task's line", in_background, items),
        "lines_without_id": Check("lines without an ID", without_id, 0),
        "ids_mixed": Check("lines naming another request's item", mixed, 0),
    }


def report(run: Run, lines: int, checks: dict[str, Check], as_json: bool) -> int:
    """Print the checks and the figures; return the exit code (0 only if every check passed)."""
    failed = [check for check in checks.values() if check.result != check.expected]
    figures = {
        "requests": len(run.sent),
        "lines": lines,
        "lines_without_id": checks["lines_without_id"].result,
        "ids_mixed": checks["ids_mixed"].result,
    }
    if as_json:
        verdicts = {name: asdict(check) for name, check in checks.items()}
        click.echo(json.dumps({**figures, "checks": verdicts}))
        return 1 if failed else 0
    table = Table("what is checked (per request, or over all lines)", "result", "expected")
    for check in checks.values():
        mark = "  FAILED" if check in failed else ""
        table.add_row(check.shows, str(check.result), f"{check.expected}{mark}")
    said = f"{lines} lines checked, from {len(run.sent)} requests through A and B"
    Console().print(table, said)
    return 1 if failed else 0


# --- CLI ------------------------------------------------------------------------------------------
@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option(
    "--requests",
    type=click.IntRange(2, 10_000),
    default=30,
    help="Item requests sent through A (to B), 20 at a time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(ctx: click.Context, requests: int, as_json: bool) -> None:
    """Send requests through two services and check every log line of both for its ID."""
    if ctx.invoked_subcommand is not None:
        return
    run = Run()
    with TemporaryDirectory(prefix="correlation_id-") as directory:
        a_log = Path(directory) / "a.log"
        b_log = Path(directory) / "b.log"
        with (  # B, then A (told B's URL), each logging JSON lines to its own file
            server(create_service_b(), b_log) as b_url,
            server(create_service_a(b_url), a_log) as a_url,
        ):
            try:
                asyncio.run(drive(a_url, requests, run, show=not as_json))
            except asyncio.CancelledError as err:  # by Ctrl-C; the servers stop on the way out
                done = f"{len(run.sent)} of {requests} requests answered"
                raise click.Abort(f"interrupted: {done}; servers stopped") from err
        lines = read_lines(a_log) + read_lines(b_log)
    ctx.exit(report(run, len(lines), audit(lines, run), as_json))


@cli.command()
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run service A until Ctrl-C, with B on a free port; both log JSON lines to stderr."""
    with server(create_service_b()) as b_url:
        click.echo(f"curl -i -H '{ID_HEADER}: mine' http://{host}:{port}/items/7", err=True)
        configure_logging(sys.stderr)
        app = create_service_a(b_url)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # uvicorn takes Ctrl-C; later ones: ignored
        Server(config).run()  # returns once a signal stopped it (its re-raise is ignored)
    raise click.Abort


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
