# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "fastapi", "opentelemetry-instrumentation-fastapi", "opentelemetry-sdk",
#                 "prometheus-client", "rich", "starlette", "structlog"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""What logging, metrics and tracing each cost a request: one plain app, three instrumented twins.

Pattern:       Each instrumentation as its lesson writes it (correlation_id.py's JSON
               pipeline and pure ASGI correlation-ID middleware, metrics.py's RED middleware,
               tracing.py's provider and FastAPI instrumentation) wraps the same bare endpoint.
               Each app is called in-process as uvicorn calls it (scope, receive, send), in
               alternating rounds; the median round gives the microseconds each one adds.
When to use:   Before turning instrumentation on for a hot path, or to check an upgrade's cost.
When not to:   To judge a real endpoint: with database work each costs under 20% (measure that
               endpoint); comparing machines (the figures are bounded by this one's cores).
Run:           uv run scripts/observability_overhead.py
               uv run scripts/observability_overhead.py --requests 5000 --rounds 9
Try it:        --rounds 9: the median of more rounds; tracing adds the most, by far.
               --json: extra_us, what each adds to a request; within_calibration: at most issue
               10's figure (uvicorn, wrk -c 50: 86 µs logging, 36 metrics, 186 tracing).

The extra µs compare across servers: the same work, whatever serves it. The ratio to plain is
lower here than the calibration's (0.70, 0.85, 0.52): uvicorn's own cost a request (the socket,
HTTP parsing) is not in its denominator. For that figure, run a lesson's `serve` under wrk -c 50.

What the overhead is made of (cProfile, one variant at a time):
logging: the middleware (a header dict, a regex, a uuid4, contextvars bound and reset, a wrapped
  send), then two lines, each through the processors (contextvars, level, ISO time), json.dumps
  and a write() + flush() to a file in a temporary directory: a syscall a line, as in a service.
metrics: a wrapped send, two perf_counter() calls, the gauge's inc/dec, two labels() lookups
  (a lock and a dict each), a counter increment, a histogram bucket search (a 5xx: one more each).
tracing: OpenTelemetry's ASGI middleware: a second route match (the span's name), the sampler,
  a span with ids and 12 attributes (each checked and copied), context attach/detach, the span
  queued for the BatchSpanProcessor's thread (exported to memory), duration histograms.
"""

import asyncio
import json
import logging
import re
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Literal, TextIO

import click
import structlog
from fastapi import FastAPI, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --- The pattern: (a) JSON logs with a correlation ID, from correlation_id.py --------------------
# Its JSON path only: the console renderer and the stdlib half of configure_logging are left
# out, as no stdlib line is written while a request is served.
log = structlog.get_logger()
ID_HEADER = "X-Correlation-ID"
VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")  # a client's ID cannot forge or flood a line


def configure_logging(stream: TextIO, level: int = logging.INFO) -> None:
    """structlog's lines to `stream` as JSON, each with the bound contextvars (the ID)."""
    global log  # a new logger: one used before cached its configuration, and the old stream
    log = structlog.get_logger()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )


class CorrelationIdMiddleware:
    """Pure ASGI: one ID per request, from the caller or made here, bound for every line logged
    while it is served, echoed on the response, and one access line at the end."""

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
        try:  # the lesson's `except Exception:` branch (log it, answer 500) is left out here
            await self.app(scope, receive, send_with_id)
            level = logging.WARNING if status >= 500 else logging.INFO  # a 5xx the app chose
            took = round((time.perf_counter() - started) * 1000, 2)
            log.log(level, "request", **where, status=status, duration_ms=took)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


# --- The pattern: (b) RED metrics by route template, from metrics.py ------------------------------
# Buckets dense around the 250 ms latency target (metrics.py says why). Its multi-process parts
# (the gauge's multiprocess_mode, /metrics reading every worker's files) are left out: one process;
# so is its `label` argument (the raw-path mistake): the route template is always the label.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5)
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RedMetrics:
    """Rate, errors, duration and in-flight, in the registry given (never the global one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route")
        self.requests = Counter(
            "http_requests", "Requests answered.", (*labels, "status"), registry=registry
        )
        self.errors = Counter("http_request_errors", "5xx answers.", labels, registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds", "Latency.", labels, buckets=BUCKETS, registry=registry
        )
        self.in_flight = Gauge("http_requests_in_flight", "In progress.", registry=registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        if status >= 500:
            self.errors.labels(method, route).inc()
        self.duration.labels(method, route).observe(seconds)


def route_template(scope: Scope) -> str:
    """The matched route's template, which Starlette's router leaves in scope["route"]."""
    route = scope.get("route")
    if isinstance(route, Route | Mount):
        return route.path_format
    return UNMATCHED


class RedMiddleware:
    """Pure ASGI: time each HTTP request, note its status, record it once the answer is sent."""

    def __init__(self, app: ASGIApp, metrics: RedMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers if the app raises before it starts an answer

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            self.metrics.observe(method, route_template(scope), status, seconds)


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    """Add the middleware and GET /metrics, Prometheus's text format, to `app`."""
    app.add_middleware(RedMiddleware, metrics=RedMetrics(registry))

    @app.get("/metrics", include_in_schema=False)
    def scrape() -> Response:  # a plain def: FastAPI runs it in a thread, off the event loop
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# --- The pattern: (c) OpenTelemetry spans, from tracing.py ---
EXCLUDE_SPANS: list[Literal["receive", "send"]] = ["receive", "send"]  # two spans less a request


def make_provider(service: str, ratio: float, exporters: Sequence[SpanExporter]) -> TracerProvider:
    """One service's provider: ParentBased keeps a caller's decision; a new trace is kept with
    probability `ratio`; spans are exported in batches, in a thread of their own."""
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(ratio)),
        resource=Resource.create({SERVICE_NAME: service}),
    )
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def traced(app: FastAPI, provider: TracerProvider) -> FastAPI:
    """A server span for every request to this app (not every app: no global patching)."""
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=EXCLUDE_SPANS)
    return app


# --- Demo plumbing: four apps, called as uvicorn calls them ---------------------------------------
VARIANTS = ("plain", "logging", "metrics", "tracing")
RPS_KEYS = {"plain": "rps_plain", "logging": "rps_logging", "metrics": "rps_metrics"}
RPS_KEYS["tracing"] = "rps_traced"  # the JSON key issue 10 names
# Issue 10's calibration, uvicorn + wrk: the extra microseconds a request over the bare endpoint.
CALIBRATION_US = {"logging": 86.0, "metrics": 36.0, "tracing": 186.0}
WARM_UP = 50  # calls a variant before the rounds: the middleware stacks are built on first use


def bare_app(log_a_line: bool = False) -> FastAPI:
    """The same bare endpoint for every variant: GET /ping -> {"ok": true}."""
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        if log_a_line:
            log.info("pong")  # the app's line; the middleware writes the access line
        return {"ok": True}

    return app


def build_apps(log_stream: TextIO, provider: TracerProvider) -> dict[str, ASGIApp]:
    """The four variants: plain, and each instrumentation as its lesson writes it."""
    configure_logging(log_stream)
    logged = bare_app(log_a_line=True)
    logged.add_middleware(CorrelationIdMiddleware, service="overhead")
    metered = bare_app()
    instrument(metered, CollectorRegistry())
    return {
        "plain": bare_app(),
        "logging": logged,
        "metrics": metered,
        "tracing": traced(bare_app(), provider),
    }


# What uvicorn hands an app for `GET /ping HTTP/1.1`; each call gets a copy, as apps write into it.
PING_SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/ping",
    "raw_path": b"/ping",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"overhead")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def call(app: ASGIApp, requests: int) -> list[int]:
    """Call `app` for GET /ping `requests` times, one after another, as uvicorn would: a receive
    that gives the empty body, a send that notes the status. The status of each answer."""
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(requests):
        await app(dict(PING_SCOPE), receive, send)
        await asyncio.sleep(0)  # back to the event loop between requests, as a server is: Ctrl-C
    return statuses


@dataclass
class Results:
    """Per variant, each round's req/s."""

    rps: dict[str, list[float]] = field(default_factory=lambda: {v: [] for v in VARIANTS})


def cancel_on_ctrl_c() -> None:
    """The first Ctrl-C cancels this task; later ones (uv passes one on) are ignored."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def cancel() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second cancel would cut the clean-up
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, cancel)


async def measure(apps: dict[str, ASGIApp], requests: int, rounds: int, results: Results) -> None:
    """A warm-up per variant, then `rounds` rounds: plain, logging, metrics, tracing, so machine
    noise hits all four alike. A Ctrl-C cancels it between two requests."""
    cancel_on_ctrl_c()
    click.echo(f"calling the four variants, {requests} requests a round", err=True)
    with Progress(console=Console(stderr=True), transient=True) as bar:
        for variant in VARIANTS:
            await call(apps[variant], WARM_UP)
        task = bar.add_task("rounds", total=rounds)
        for _ in range(rounds):
            for variant in VARIANTS:
                started = time.perf_counter()
                statuses = await call(apps[variant], requests)
                seconds = time.perf_counter() - started
                if statuses != [200] * requests:
                    failed = requests - statuses.count(200)
                    raise click.ClickException(f"{variant}: {failed} of {requests} answers not 200")
                results.rps[variant].append(requests / seconds)
            bar.advance(task)


@dataclass(frozen=True)
class Row:
    """One variant's figures from its median round, and how it compares with plain."""

    variant: str
    rps: float
    us_per_request: float  # 1e6 / rps: the time a request takes, one after another
    ratio: float  # rps / plain rps
    extra_us: float  # us_per_request - plain's: what the instrumentation adds to each request


def summarize(rps: Mapping[str, float]) -> list[Row]:
    """Rows from each variant's (median) req/s."""
    plain_us = 1e6 / rps["plain"]
    rows = []
    for variant, rate in rps.items():
        us = 1e6 / rate
        ratio = round(rate / rps["plain"], 3)
        extra = round(us - plain_us, 1)
        rows.append(Row(variant, round(rate), round(us, 1), ratio, extra))
    return rows


def report(rows: Sequence[Row], as_json: bool) -> None:
    """The table (or one JSON object): each variant's extra microseconds against the calibration."""
    measured = [row for row in rows if row.variant in CALIBRATION_US]
    within = {row.variant: row.extra_us <= CALIBRATION_US[row.variant] for row in measured}
    if as_json:
        figures: dict[str, Any] = {RPS_KEYS[row.variant]: row.rps for row in rows}
        figures["us_per_request"] = {row.variant: row.us_per_request for row in rows}
        figures["extra_us"] = {row.variant: row.extra_us for row in measured}
        figures["ratios"] = {row.variant: row.ratio for row in measured}
        figures["within_calibration"] = within
        click.echo(json.dumps(figures))
        return
    headings = ["variant", "req/s", "µs a request", "extra µs", "calibration", "", "ratio"]
    table = Table(*headings, title="A bare endpoint at the ASGI interface (median round)")
    for row in rows:
        cells = ["", "", ""]
        if row.variant in CALIBRATION_US:
            verdict = "within" if within[row.variant] else "over"
            cells = [f"{row.extra_us:.0f}", f"~{CALIBRATION_US[row.variant]:.0f}", verdict]
        table.add_row(
            row.variant, f"{row.rps:.0f}", f"{row.us_per_request:.1f}", *cells, f"{row.ratio:.2f}"
        )
    Console().print(table)


# --- CLI ------------------------------------------------------------------------------------------
@click.command(context_settings={"show_default": True})
@click.option("--requests", type=click.IntRange(1), default=500, help="Requests a variant a round.")
@click.option("--rounds", type=click.IntRange(1), default=5, help="Rounds of all four variants.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(requests: int, rounds: int, as_json: bool) -> None:
    """Measure what logging, metrics and tracing each add to a bare endpoint's requests."""
    results = Results()
    provider = make_provider("overhead", 1.0, [InMemorySpanExporter()])
    try:
        with TemporaryDirectory() as tmp, (Path(tmp) / "requests.log").open("w") as log_file:
            apps = build_apps(log_file, provider)
            asyncio.run(measure(apps, requests, rounds, results))
    except asyncio.CancelledError as err:
        medians = {v: round(statistics.median(r)) for v, r in results.rps.items() if r}
        rounds_done = len(results.rps[VARIANTS[-1]])  # a round is done once its last variant is
        done = f"{rounds_done} of {rounds} rounds, req/s so far {medians or 'none'}"
        raise click.Abort(f"interrupted: {done}") from err
    finally:
        provider.shutdown()  # the BatchSpanProcessor's thread ends here
    medians = {variant: statistics.median(each) for variant, each in results.rps.items()}
    report(summarize(medians), as_json)


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
