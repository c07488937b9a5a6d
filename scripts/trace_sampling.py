# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "fastapi", "httpx", "opentelemetry-exporter-otlp-proto-http",
#                 "opentelemetry-instrumentation-fastapi", "opentelemetry-instrumentation-httpx",
#                 "opentelemetry-sdk", "rich", "uvicorn"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Keep a share of traces, whole: ParentBased ratio sampling across two services, batch export.

Pattern:       Each service's TracerProvider samples with ParentBased(TraceIdRatioBased(ratio)):
               A, where a trace starts, keeps it with probability `ratio`; B follows the decision
               that arrives in `traceparent` (its sampled flag), whatever B's own ratio, so a
               trace is kept whole or not at all. A BatchSpanProcessor exports off the request
               path: to memory here, and over OTLP/HTTP to a collector with --otlp-endpoint.
When to use:   Traffic too heavy to trace every request, where a representative share will do.
When not to:   Rare events you must never miss (errors, slow requests): decide after the trace
               ends, with tail sampling in a collector. Traces, trees and links: tracing.py.
Run:           uv run scripts/trace_sampling.py
               uv run scripts/trace_sampling.py --sample-ratio 0.1 --requests 500
               uv run scripts/trace_sampling.py --otlp-endpoint http://localhost:4318
Try it:        --sample-ratio 0: traces 0, and ok stays true (every request still answered).
               --sample-ratio 1: traces equals requests, spans_per_trace 3.
               --sample-ratio 0.3 --requests 1000: kept near 0.3, and partial stays 0.
               --otlp-endpoint http://127.0.0.1:9 (nothing listens): ok stays true; the
               exporter logs each lost batch on stderr, off the request path.
"""

import asyncio
import json
import math
import signal
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import click
import httpx
import uvicorn
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from rich.console import Console
from rich.table import Table

# --- The pattern: a sampling provider per service, batch export ----------------------------------
TIMEOUT_S = 5.0  # A's calls to B, and the demo's: 50x a loopback answer, quick on a dead host
OTLP_TIMEOUT_S = 1.0  # a collector silent for 1 s loses that batch: a shutdown waits no longer
OTLP_TRACES_PATH = "/v1/traces"  # where an OTLP/HTTP collector takes spans


def make_provider(service: str, ratio: float, exporters: Sequence[SpanExporter]) -> TracerProvider:
    """One service's provider. ParentBased: a request that arrives with a trace keeps its caller's
    decision, so a trace is whole or absent; a new one is kept with probability `ratio`."""
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(ratio)),
        resource=Resource.create({SERVICE_NAME: service}),
    )
    for exporter in exporters:  # a batch: exported in a thread of its own, off the request path
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def otlp_exporter(endpoint: str) -> SpanExporter:
    """Spans to a collector over OTLP/HTTP (protobuf), e.g. http://localhost:4318/v1/traces."""
    return OTLPSpanExporter(endpoint=endpoint, timeout=OTLP_TIMEOUT_S)


def traced(app: FastAPI, provider: TracerProvider) -> FastAPI:
    """A server span for every sampled request to this app (no global patching)."""
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    return app


def traced_client(client: httpx.AsyncClient, provider: TracerProvider) -> httpx.AsyncClient:
    """A client span for every call, and a `traceparent` header that carries the decision on."""
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    return client


def create_service_b() -> FastAPI:
    """B: answers A. It makes no sampling decision of its own for A's requests."""
    app = FastAPI(title="B: stock")

    @app.get("/stock")
    async def stock() -> dict[str, Any]:
        return {"apples": 12}

    return app


def create_service_a(client: httpx.AsyncClient) -> FastAPI:
    """A: asks B through `client` (its base_url is B), which it holds and closes as it stops."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="A: shop", lifespan=lifespan)

    @app.get("/shop")
    async def shop() -> dict[str, Any]:
        answer = await client.get("/stock")
        answer.raise_for_status()
        return answer.json()

    return app


# --- Demo plumbing: both services in this process, each a uvicorn server in a thread --------------
SPANS_PER_TRACE = 3  # A's server span, its client span, B's server span
IN_FLIGHT = 8  # requests at once: enough for concurrent traces to interleave in both services


def provider_for(
    service: str, ratio: float, endpoint: str | None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A service's provider, and the in-memory exporter the demo reads (a collector too)."""
    memory = InMemorySpanExporter()
    exporters: list[SpanExporter] = [memory]
    if endpoint:
        exporters.append(otlp_exporter(endpoint))
    return make_provider(service, ratio, exporters), memory


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


@dataclass
class Run:
    """What the demo has done so far."""

    statuses: list[int] = field(default_factory=list)  # A's answers
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


async def ask(url: str, requests: int, run: Run) -> None:
    """Ask A `requests` times, IN_FLIGHT at a time, recording each answer as it comes."""
    cancel_on_ctrl_c()
    click.echo(f"requests: {requests} through A on {url} -> B", err=True)  # Ctrl-C now cancels
    todo = iter(range(requests))  # shared: each request is made by one caller

    async def caller(client: httpx.AsyncClient) -> None:
        for _ in todo:
            answer = await client.get("/shop")
            run.statuses.append(answer.status_code)

    async with (
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S) as client,
        asyncio.TaskGroup() as group,
    ):
        for _ in range(IN_FLIGHT):
            group.create_task(caller(client))


def traces_of(spans: Sequence[ReadableSpan]) -> list[list[ReadableSpan]]:
    """The spans grouped by trace id, one list a trace."""
    traces: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        context = span.get_span_context()
        if context is None:  # only a span never started has none
            raise ValueError(f"span {span.name!r} has no context")
        traces[context.trace_id].append(span)
    return list(traces.values())


def is_whole(spans: Sequence[ReadableSpan]) -> bool:
    """A kept trace holds all three spans, from both services: none was dropped by B."""
    services = {str(span.resource.attributes[SERVICE_NAME]) for span in spans}
    return len(spans) == SPANS_PER_TRACE and services == {"A", "B"}


def figures(run: Run, requests: int, ratio: float) -> dict[str, Any]:
    """Traces kept vs asked, and the checks: every answer ok, no partial trace."""
    traces = traces_of(run.spans)
    partial = sum(not is_whole(spans) for spans in traces)
    ok = run.statuses.count(200) == requests and partial == 0
    if ratio in (0, 1):  # none or all; between, about ratio x requests
        ok = ok and len(traces) == requests * ratio
    return {
        "requests": requests,
        "sample_ratio": ratio,
        "traces": len(traces),
        "kept": round(len(traces) / requests, 3),
        "spans": len(run.spans),
        "spans_per_trace": round(len(run.spans) / len(traces), 2) if traces else 0.0,
        "partial": partial,
        "ok": ok,
    }


def report(numbers: dict[str, Any], as_json: bool) -> int:
    """Print the figures; return the exit code (0 if the checks passed)."""
    code = 0 if numbers["ok"] else 1
    if as_json:
        click.echo(json.dumps(numbers))
        return code
    table = Table("figure", "value", title="Sampled traces")
    for name, value in numbers.items():
        table.add_row(name, str(value))
    Console().print(table)
    return code


# --- CLI ------------------------------------------------------------------------------------------
class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which slip past its bounds."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def parse_endpoint(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An http(s) URL with a host, or None. A bare collector address gets the traces path, as
    OTEL_EXPORTER_OTLP_ENDPOINT would: the exporter posts to the URL exactly as given."""
    if value is None:
        return None
    with suppress(httpx.InvalidURL):
        url = httpx.URL(value)
        if url.scheme in ("http", "https") and url.host:
            if url.path in ("", "/"):
                url = url.copy_with(path=OTLP_TRACES_PATH)
            return str(url)
    raise click.BadParameter(f"{value!r} is not an http(s) URL such as http://localhost:4318")


@click.command(context_settings={"show_default": True})
@click.option("--requests", type=click.IntRange(1, 10_000), default=200, help="Requests to A.")
@click.option(
    "--sample-ratio",
    type=FiniteFloat(0, 1),
    default=0.25,
    help="Share of requests to trace, from 0 to 1 (B follows A's decision).",
)
@click.option(
    "--otlp-endpoint",
    callback=parse_endpoint,
    help="Also send spans to this OTLP/HTTP collector, e.g. http://localhost:4318.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.pass_context
def cli(
    ctx: click.Context,
    requests: int,
    sample_ratio: float,
    otlp_endpoint: str | None,
    as_json: bool,
) -> None:
    """Sample traces through two services and count the traces kept, whole."""
    run = Run()
    provider_b, memory_b = provider_for("B", sample_ratio, otlp_endpoint)
    provider_a, memory_a = provider_for("A", sample_ratio, otlp_endpoint)
    try:
        with serving(traced(create_service_b(), provider_b)) as b_url:
            client = httpx.AsyncClient(base_url=b_url, timeout=TIMEOUT_S)
            app_a = traced(create_service_a(traced_client(client, provider_a)), provider_a)
            with serving(app_a) as url:
                asyncio.run(ask(url, requests, run))
    except asyncio.CancelledError as err:  # by Ctrl-C
        raise click.Abort(
            f"interrupted: {len(run.statuses)} of {requests} requests answered"
        ) from err
    finally:
        for provider in (provider_a, provider_b):
            provider.shutdown()  # exports what its batch still holds, stops its export thread
    run.spans = [*memory_a.get_finished_spans(), *memory_b.get_finished_spans()]
    ctx.exit(report(figures(run, requests, sample_ratio), as_json))


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
