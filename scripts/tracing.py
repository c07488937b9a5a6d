# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "fastapi", "httpx", "opentelemetry-api",
#                 "opentelemetry-instrumentation-fastapi", "opentelemetry-instrumentation-httpx",
#                 "opentelemetry-sdk", "rich", "uvicorn"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""One trace across two services: OpenTelemetry spans from A's request, through httpx, into B.

Pattern:       A TracerProvider per service (its name, a batch exporter) is passed to the FastAPI
               and httpx instrumentations of one app and one client: no globals. httpx writes a
               W3C `traceparent` header, B's middleware reads it, so B's spans join A's trace.
               Business logic gets a span of its own, with attributes, an event, and a failure
               recorded (exception event + ERROR status).
When to use:   Requests that cross services, where "where did the time go" spans processes.
               Sampling and a real collector: trace_sampling.py.
When not to:   One process (a profiler answers better); counting things (metrics.py); a hot,
               trivial endpoint: a bare one here, traced, serves about half its untraced req/s
               (the middleware's ASGI layers, header extraction, then the recorded span: ids, a
               dozen HTTP attributes, context attach/detach, export). observability_overhead.py
               measures it, next to logging's and Prometheus' cost.
Run:           uv run scripts/tracing.py
               uv run scripts/tracing.py --requests 20
               uv run scripts/tracing.py serve --port 8000   (spans print on stderr; then the curl)
Try it:        --requests 1: one trace, A's server span at the root, B's compute_price a leaf.
               serve, then the curl it prints: its spans as JSON on stderr, within 5 s (a batch).
               --json: the figures as one object, e.g. for jq '.spans_per_trace'.
"""

import asyncio
import json
import signal
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import click
import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Path, Query
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

# --- The pattern: a provider per service, instrumented app and client ---------------------------
TIMEOUT_S = 5.0  # A's calls to B, and the demo's: 50x a loopback answer, quick on a dead host
# ASGI receive/send spans: two more spans per request (~110 us) that say little on a small body.
EXCLUDE_SPANS: list[Literal["receive", "send"]] = ["receive", "send"]
PRICES = {"apple": 120, "pear": 95, "plum": 60}  # B's catalogue, in cents


def make_provider(service: str, exporters: Sequence[SpanExporter]) -> TracerProvider:
    """One service's provider: its name on every span, which goes to each of `exporters`."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    for exporter in exporters:  # a batch: exported in a thread of its own, off the request path
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def traced(app: FastAPI, provider: TracerProvider) -> FastAPI:
    """A server span for every request to this app (not every app: no global patching).
    Called in-process while a span is current (ASGITransport in a test), it makes an INTERNAL
    span under that one and ignores `traceparent`: run such a call in a fresh context."""
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=EXCLUDE_SPANS)
    return app


def traced_client(client: httpx.AsyncClient, provider: TracerProvider) -> httpx.AsyncClient:
    """A client span for every call, and a `traceparent` header that carries it to the callee."""
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    return client


class UnknownItemError(LookupError):
    """No price for an item: B answers 404."""


def price_of(item: str, quantity: int, tracer: trace.Tracer) -> int:
    """The business logic, in a span of its own. Its failure is recorded by hand, to show how:
    the exception as an event, then the ERROR status (the span's own flags turned off)."""
    attributes = {"shop.item": item, "shop.quantity": quantity}
    with tracer.start_as_current_span(
        "compute_price",
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            unit = PRICES[item]
        except KeyError as err:
            span.record_exception(err)
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"no price for {item}"))
            raise UnknownItemError(item) from err
        span.add_event("price found", {"shop.unit_cents": unit})
        return unit * quantity


def create_service_b(tracer: trace.Tracer) -> FastAPI:
    """B: prices an order. Its spans join the caller's trace through the instrumentation."""
    app = FastAPI(title="B: prices")

    @app.get("/price/{item}")
    async def price(item: str, quantity: int = Query(1, ge=1, le=1000)) -> dict[str, Any]:
        try:
            total = price_of(item, quantity, tracer)
        except UnknownItemError as err:
            raise HTTPException(404, f"no price for {err}") from err
        return {"item": item, "quantity": quantity, "total_cents": total}

    return app


def create_service_a(client: httpx.AsyncClient) -> FastAPI:
    """A: quotes an order by asking B, through `client` (its base_url is B). A holds the client
    for its lifetime and closes it as it stops, on its own event loop."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="A: quotes", lifespan=lifespan)

    @app.get("/quote/{item}")
    async def quote(
        item: str = Path(pattern="^[a-z]{1,30}$"),  # safe to put in B's URL as it is
        quantity: int = Query(1, ge=1, le=1000),
    ) -> dict[str, Any]:
        answer = await client.get(f"/price/{item}", params={"quantity": quantity})
        if answer.status_code == 404:
            raise HTTPException(404, answer.json()["detail"])
        answer.raise_for_status()  # anything else B failed with is A's 500
        return answer.json()

    return app


# --- Demo plumbing: both services in this process, each a uvicorn server in a thread --------------
# Tracing has no load phase here (observability_overhead.py measures the cost), so the services
# need no process of their own. The hop from A to B is still real HTTP over loopback, and the
# demo reads each provider's in-memory exporter directly.
def provider_for(service: str, console: bool) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A service's provider, and the in-memory exporter the checks read (stderr too if asked)."""
    memory = InMemorySpanExporter()
    exporters: list[SpanExporter] = [memory]
    if console:
        exporters.append(ConsoleSpanExporter(out=sys.stderr))  # stdout is --json's
    return make_provider(service, exporters), memory


def build_b(provider: TracerProvider) -> FastAPI:
    return traced(create_service_b(provider.get_tracer("tracing.prices")), provider)


def build_a(provider: TracerProvider, b_url: str) -> FastAPI:
    """A, with its traced client to B (closed by A's lifespan as it stops)."""
    client = traced_client(httpx.AsyncClient(base_url=b_url, timeout=TIMEOUT_S), provider)
    return traced(create_service_a(client), provider)


def run_server(server: uvicorn.Server, sock: socket.socket) -> None:
    with suppress(SystemExit):  # how uvicorn stops when the app cannot start: serving reports it
        server.run(sockets=[sock])


@contextmanager
def serving(app: FastAPI) -> Generator[str]:
    """Serve `app` from a thread of this process; yield its URL once uvicorn listens. On the way
    out, uvicorn lets the requests in flight end, runs the app's shutdown, and the thread ends.
    uvicorn listens for signals only on the main thread, so Ctrl-C stays the caller's."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP (no 40 ms Nagle).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=run_server, args=(server, sock), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not server.started:  # set once uvicorn has run the app's startup and listens
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise click.ClickException(f"the server did not become ready at {url}")
                time.sleep(0.01)  # the poll's interval
            yield url
        finally:
            server.should_exit = True  # uvicorn looks every 0.1 s
            thread.join(timeout=1.5)
            server.force_exit = True  # only if it is still there: the 2 s rule beats a hung stop
            thread.join()


# --- Demo plumbing: the session and the checks ----------------------------------------------------
ITEMS = ["apple", "pear", "durian", "plum"]  # durian is not in B's catalogue: a 404, an ERROR span
CHAIN = [("A", "SERVER"), ("A", "CLIENT"), ("B", "SERVER"), ("B", "INTERNAL")]  # a quote's trace
IN_FLIGHT = 8  # quotes asked at once: enough for concurrent traces to interleave in both services


@dataclass
class Run:
    """What the demo has done so far."""

    statuses: dict[int, int] = field(default_factory=dict)  # quote number -> A's answer
    spans: list[ReadableSpan] = field(default_factory=list)


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


def item_of(number: int) -> str:
    """The item of quote `number`: the demo cycles through ITEMS."""
    return ITEMS[number % len(ITEMS)]


async def ask_quotes(url: str, requests: int, run: Run) -> None:
    """Ask A for `requests` quotes, IN_FLIGHT at a time, recording each answer as it comes."""
    cancel_on_ctrl_c()
    click.echo(f"quotes: {requests} through A on {url} -> B", err=True)  # Ctrl-C now cancels
    todo = iter(range(requests))  # shared: each quote is asked by one caller

    async def caller(client: httpx.AsyncClient) -> None:
        for number in todo:
            answer = await client.get(f"/quote/{item_of(number)}", params={"quantity": 2})
            run.statuses[number] = answer.status_code

    async with (
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S) as client,
        asyncio.TaskGroup() as group,
    ):
        for _ in range(IN_FLIGHT):
            group.create_task(caller(client))


def ids(span: ReadableSpan) -> trace.SpanContext:
    """A finished span's trace id and span id (only a span never started has none)."""
    context = span.get_span_context()
    if context is None:
        raise ValueError(f"span {span.name!r} has no context")
    return context


def parent_id(span: ReadableSpan) -> int | None:
    """The span id of the span's parent; None for a trace's root."""
    return span.parent.span_id if span.parent else None


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes[SERVICE_NAME])


def traces_of(spans: Sequence[ReadableSpan]) -> list[list[ReadableSpan]]:
    """The spans grouped by trace id, one list a trace: a quote's trace should hold all four."""
    traces: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        traces[ids(span).trace_id].append(span)
    return list(traces.values())


def orphans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """Spans whose parent is not in their trace: a broken link, or a parent never exported."""
    known = {(ids(span).trace_id, ids(span).span_id) for span in spans}
    lost = []
    for span in spans:
        parent = parent_id(span)
        if parent is not None and (ids(span).trace_id, parent) not in known:
            lost.append(span)
    return lost


def is_chain(spans: Sequence[ReadableSpan]) -> bool:
    """A quote's trace is a chain, each span the child of the one before: A's server span, its
    client span, B's server span (its parent read from the wire), then B's compute_price."""
    children = {parent_id(span): span for span in spans}  # in a chain, one child per parent
    ordered: list[ReadableSpan] = []
    parent = None
    while parent in children and len(ordered) < len(spans):
        ordered.append(children[parent])
        parent = ids(ordered[-1]).span_id
    shape = [(service_of(span), span.kind.name) for span in ordered]
    if shape != CHAIN or len(ordered) != len(spans):
        return False
    hop = ordered[2].parent  # B's server span: its parent came over the wire, in traceparent
    return hop is not None and hop.is_remote


@dataclass
class Check:
    name: str
    result: str
    passed: bool
    shows: str


def checks(run: Run, requests: int) -> list[Check]:
    """What the session's answers and spans prove."""
    quotes = traces_of(run.spans)
    answers = [run.statuses.get(number) for number in range(requests)]
    wanted = [200 if item_of(number) in PRICES else 404 for number in range(requests)]
    chains = sum(is_chain(group) for group in quotes)
    lost = len(orphans(run.spans))
    return [
        Check("answers", f"{answers.count(200)} ok", answers == wanted, "A asks B"),
        Check("traces", f"{len(quotes)} of {requests}", len(quotes) == requests, "one a request"),
        Check("linked", f"{chains} of {len(quotes)}", chains == len(quotes), "one tree a request"),
        Check("orphans", str(lost), lost == 0, "every parent exported"),
    ]


def tree(spans: Sequence[ReadableSpan]) -> Tree:
    """A trace as rich draws it: each span under its parent."""
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        children[parent_id(span)].append(span)
    top = Tree(f"trace {trace.format_trace_id(ids(spans[0]).trace_id)}")

    def add(node: Tree, parent: int | None) -> None:
        for span in children[parent]:
            status = span.status.status_code.name
            colour = "red" if status == "ERROR" else "green"
            duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            label = f"{service_of(span)}  {span.name}  {duration_ms:.2f} ms  "
            add(node.add(f"{label}[{colour}]{status}[/]"), ids(span).span_id)

    add(top, None)
    return top


def report(run: Run, requests: int, as_json: bool) -> int:
    """Print the traces, the checks and the figures; return the exit code (0 if all passed)."""
    done = checks(run, requests)
    quotes = traces_of(run.spans)
    spans = len(run.spans)
    figures = {
        "traces": len(quotes),
        "spans": spans,
        "spans_per_trace": round(spans / len(quotes), 2) if quotes else 0.0,
        "orphans": len(orphans(run.spans)),
    }
    code = 0 if all(check.passed for check in done) else 1
    if as_json:
        checked = {check.name: check.passed for check in done}
        click.echo(json.dumps({**figures, "checks": checked}))
        return code
    console = Console()
    for group in quotes:
        console.print(tree(group))
    table = Table("check", "result", "what it shows", title="Checks")
    for check in done:
        table.add_row(check.name, check.result + ("" if check.passed else "  FAILED"), check.shows)
    numbers = Table("figure", "value", title="Figures")
    for name, value in figures.items():
        numbers.add_row(name, f"{value:,}")
    console.print(table, numbers)
    return code


# --- CLI ------------------------------------------------------------------------------------------
@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option("--requests", type=click.IntRange(1, 10_000), default=8, help="Quotes to ask A for.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(ctx: click.Context, requests: int, as_json: bool) -> None:
    """Trace quotes through two services, draw each trace and check its links."""
    if ctx.invoked_subcommand is not None:
        return
    run = Run()
    provider_b, memory_b = provider_for("B", console=False)
    provider_a, memory_a = provider_for("A", console=False)
    try:
        with serving(build_b(provider_b)) as b_url, serving(build_a(provider_a, b_url)) as url:
            asyncio.run(ask_quotes(url, requests, run))
    except asyncio.CancelledError as err:  # by Ctrl-C
        quotes = f"{len(run.statuses)} of {requests} quotes answered"
        raise click.Abort(f"interrupted: {quotes}; servers stopped") from err
    finally:
        for provider in (provider_a, provider_b):
            provider.shutdown()  # exports what its batch still holds, stops its export thread
    run.spans = [*memory_a.get_finished_spans(), *memory_b.get_finished_spans()]
    ctx.exit(report(run, requests, as_json))


@cli.command()
@click.option("--host", default="127.0.0.1", help="Address A listens on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="Port A listens on.")
def serve(host: str, port: int) -> None:
    """Run A (B in a thread) until Ctrl-C; spans print as JSON on stderr."""
    provider_b, _ = provider_for("B", console=True)
    provider_a, _ = provider_for("A", console=True)  # both flushed at exit (their atexit hook)
    # Bound here, not by uvicorn, so that a taken port is one error line, before anything starts.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as err:
            raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror}") from err
        with serving(build_b(provider_b)) as b_url:
            click.echo(f"curl http://{host}:{port}/quote/apple   (B is on {b_url})", err=True)
            config = uvicorn.Config(build_a(provider_a, b_url), log_config=None)
            uvicorn.Server(config).run(sockets=[sock])  # not uvicorn.run(): Ctrl-C would exit 0


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
