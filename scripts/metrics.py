# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "fastapi", "httpx", "prometheus-client", "rich", "starlette", "uvicorn"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""RED metrics for a FastAPI service: rate, errors and duration, labelled by route template.

Pattern:       A pure ASGI middleware counts each request, its 5xx errors and its duration into
               prometheus_client metrics in a registry passed in, served on /metrics. Labels are
               the matched route's template (`/items/{item_id}`), never the raw path, so the series
               stay few however many ids clients send. Histogram buckets are dense around the
               250 ms latency target, and one bound is the target itself.
When to use:   Any HTTP service Prometheus scrapes: dashboards of rate, error ratio and p95.
When not to:   Per-user or per-id figures (logs and traces carry those, never labels); a job
               too short-lived to be scraped (a Pushgateway); events you need one by one.
Run:           uv run scripts/metrics.py
               uv run scripts/metrics.py --raw-path-labels     (the service makes the mistake)
               uv run scripts/metrics.py serve --port 8000     (then curl .../metrics)
Try it:        --ids 3000: templates keep the same series; raw paths grow with every new id.
               --raw-path-labels --ids 3000: the service's own /metrics now holds thousands of
               series, and the "route label values" check fails: what a dashboard would pay.

Overhead: two perf_counter() calls, a wrapper around `send`, two labels() lookups (a lock and a
dict each; a 5xx, three), the bucket search and the gauge's inc/dec: tens of µs a request, measured
by scripts/observability_overhead.py. Percentiles estimated from the histogram next to the true
ones, and how the bucket layout decides their error: scripts/latency_histograms.py.
Several worker processes (uvicorn --workers, gunicorn) each count alone, and a scrape reaches
one. Set PROMETHEUS_MULTIPROC_DIR, emptied at every start (stale files would be summed in), before
prometheus_client is imported: /metrics then sums all workers' files through a MultiProcessCollector
(below); gauges need a multiprocess_mode ("livesum" for in-flight); a dead worker's files go via
mark_process_dead. Not run here (one process counts both ways); the tests sum two workers' files.
"""

import asyncio
import json
import math
import multiprocessing
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Container, Generator, Iterable, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Annotated
from urllib.request import urlopen

import click
import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Query, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from rich.console import Console
from rich.table import Table
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --- The pattern: RED metrics, labelled by route template ---------------------------------------
# The service's latency target: 95% of requests answered within 250 ms. histogram_quantile
# interpolates inside a bucket, so its error is at most the width of the bucket the quantile falls
# in: the buckets are narrow around the target, and one bound is the target itself, so the SLO's
# "share answered within 250 ms" is read from a bucket, not estimated. Past 1 s, wide buckets still
# say how bad things are. Each bucket is a series per label set: 14 is a budget, not a default.
LATENCY_TARGET_S = 0.25
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5)
UNMATCHED = "<unmatched>"  # every path no route matched: 404 probes of random paths are one series
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others: OTHER
Label = Callable[[Scope], str]


class RedMetrics:
    """Rate, errors, duration and in-flight, in the registry given: never the global default
    one, so two apps (or two tests) in one process each count their own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route")
        self.requests = Counter(
            "http_requests", "Requests answered.", (*labels, "status"), registry=registry
        )
        self.errors = Counter("http_request_errors", "5xx answers.", labels, registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds", "Latency.", labels, buckets=BUCKETS, registry=registry
        )
        self.in_flight = Gauge(  # livesum: with several worker processes, the live ones added
            "http_requests_in_flight",
            "In progress.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        if status >= 500:  # a 4xx is the client's doing: counted, not an error of the service
            self.errors.labels(method, route).inc()
        self.duration.labels(method, route).observe(seconds)


def route_template(scope: Scope) -> str:
    """The matched route's template: Starlette's router puts the route it matched in
    scope["route"] (FastAPI's APIRoute is a Route), which the middleware reads once the app has
    answered. A mounted sub-app's routes give their own template, without the mount's prefix."""
    route = scope.get("route")
    if isinstance(route, Route | Mount):
        return route.path_format
    return UNMATCHED


def raw_path(scope: Scope) -> str:
    """The mistake: one label value, so one set of series, per distinct URL, ids and all."""
    return scope["path"]


class RedMiddleware:
    """Pure ASGI: time each HTTP request, note its status, record it once the answer is sent."""

    def __init__(self, app: ASGIApp, metrics: RedMetrics, label: Label = route_template) -> None:
        self.app = app
        self.metrics = metrics
        self.label = label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan, websockets: not requests
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
            self.metrics.observe(method, self.label(scope), status, time.perf_counter() - started)


def instrument(
    app: FastAPI, registry: CollectorRegistry, label: Label = route_template, path: str = "/metrics"
) -> None:
    """Add the middleware, and GET `path` in Prometheus's text format, to `app`."""
    app.add_middleware(RedMiddleware, metrics=RedMetrics(registry), label=label)

    @app.get(path, include_in_schema=False)
    def scrape() -> Response:  # a plain def: FastAPI runs it in a thread, off the event loop
        source = registry
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # several workers: read all their files
            source = CollectorRegistry()
            MultiProcessCollector(source)
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)


# --- The pattern: reading a scrape as Prometheus does -------------------------------------------
def parse(text: str) -> list[Sample]:
    """Every sample (one series each) of a scrape, through prometheus_client's own parser."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def summed(samples: Iterable[Sample], name: str, by: str, skip: Container[str]) -> dict[str, float]:
    """Samples named `name` added up by the label `by` (all into "" if none), leaving out the
    routes in `skip`: PromQL's `sum by (le) (...)`."""
    sums: dict[str, float] = {}
    for sample in samples:
        if sample.name == name and sample.labels.get("route", "") not in skip:
            key = sample.labels.get(by, "")
            sums[key] = sums.get(key, 0.0) + sample.value
    return sums


# --- Demo plumbing: the service, counted both ways; the server in a process of its own ----------
TIMEOUT_S = 10.0  # per request: far above any answer (600 ms at most), yet a hang fails the run
START_TIMEOUT_S = 10.0  # for the server to answer its first request: a loaded machine is slow
SLOW_PERCENT = 5  # of the requests: slow ones belong in mixed traffic, and in the histogram
MISSING_EVERY = 7  # the catalogue lacks every 7th id: a 404, the client's mistake, not an error
OTHER = "/metrics/other"  # the same requests, labelled the other way: the series count both ways
SCRAPES = ("/metrics", OTHER)  # the scrapes' own requests: left out of the figures
WorkMs = Annotated[float, Query(ge=0, le=5000)]


def create_app() -> FastAPI:
    """The demo service's routes alone, as a service has them before it is instrumented."""
    app = FastAPI(title="Catalogue")

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, work_ms: WorkMs = 0.0) -> dict[str, int]:
        await asyncio.sleep(work_ms / 1000)  # stands in for a query
        if item_id % MISSING_EVERY == 0:
            raise HTTPException(404, "no such item")
        return {"id": item_id}

    @app.get("/checkout")
    async def checkout(work_ms: WorkMs = 0.0) -> None:
        await asyncio.sleep(work_ms / 1000)
        raise HTTPException(503, "the payment provider does not answer")

    return app


def demo_app(raw_path_labels: bool) -> FastAPI:
    """The service counted twice over the same requests: on /metrics as it should be (or, with
    `raw_path_labels`, with the mistake), and on OTHER the other way."""
    app = create_app()
    labels = (raw_path, route_template) if raw_path_labels else (route_template, raw_path)
    instrument(app, CollectorRegistry(), labels[1], OTHER)
    instrument(app, CollectorRegistry(), labels[0])
    return app


def serve_child(sock: socket.socket, app: ASGIApp) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # uvicorn handles these, then re-raises them:
        signal.signal(signum, signal.SIG_IGN)  # ignored then, so the child exits 0 (no traceback)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def server(app: ASGIApp) -> Generator[str]:
    """Serve `app` from a child process (a core of its own, not the client's); yield its URL once
    it answers. On the way out, SIGTERM: uvicorn ends the requests in flight, then exits."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and without it
    # every answer waits 40 ms for the client's delayed ACK (Nagle).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        child = multiprocessing.get_context("fork").Process(target=serve_child, args=(sock, app))
        child.start()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:  # the socket listens already: each try waits until uvicorn answers
                with suppress(OSError), urlopen(f"{url}/metrics", timeout=0.5):  # noqa: S310
                    break
                if not child.is_alive() or time.monotonic() > deadline:
                    raise click.ClickException(f"the server did not become ready at {url}")
            yield url
        finally:
            child.terminate()
            child.join(timeout=1.5)
            child.kill()  # only if it is still there: the 2 s rule beats a hung shutdown
            child.join()


# --- Demo plumbing: the traffic, the scrapes, the report --------------------------------------
def plan(requests: int, ids: int, slow_percent: int, seed: int = 7) -> list[str]:
    """Mixed traffic: items (~12 ms, every 7th missing, `slow_percent` of them slow), 5%
    checkouts that fail with a 503, 3% paths no route matches; ids drawn from 1..`ids`."""
    rng = random.Random(seed)  # noqa: S311 - demo traffic, not security
    paths = []
    for _ in range(requests):
        work_ms = min(rng.lognormvariate(math.log(12), 0.6), 150)  # a typical query
        if rng.uniform(0, 100) < slow_percent:
            work_ms = rng.uniform(150, 600)  # a cold cache, a lock, a big page
        roll = rng.random()
        if roll < 0.05:
            paths.append(f"/checkout?work_ms={work_ms:.1f}")
        elif roll < 0.08:
            paths.append(f"/nowhere/{rng.randint(1, ids)}")
        else:
            paths.append(f"/items/{rng.randint(1, ids)}?work_ms={work_ms:.1f}")
    return paths


@dataclass
class Run:
    """What the demo has done so far, and which signal stopped it, if one did."""

    answered: int = 0  # answers the client got
    server_errors: int = 0  # 5xx answers the client saw
    window_s: float = 0.0  # how long the traffic took
    scrapes: dict[str, str] = field(default_factory=dict)  # "service", "other": the scrapes' text
    stopped_by: str = ""


async def drive(url: str, paths: list[str], concurrency: int, run: Run) -> None:
    """Each path to the service, `concurrency` at a time; then a scrape of either count. The first
    Ctrl-C or SIGTERM cancels it; later ones are ignored, not to cut the clean-up short."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    todo = iter(paths)  # shared by the workers: each path is taken by one of them

    def on_signal(signum: signal.Signals) -> None:
        for each in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(each)
            signal.signal(each, signal.SIG_IGN)
        run.stopped_by = signum.name
        if task is not None:
            task.cancel()

    async def worker(client: httpx.AsyncClient) -> None:
        for path in todo:
            response = await client.get(path)
            run.answered += 1
            if response.status_code >= 500:
                run.server_errors += 1

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    click.echo(f"traffic: {len(paths)} requests, {concurrency} at a time", err=True)
    # No pool limit: the workers bound the connections. trust_env=False: loopback, never a proxy.
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(
        base_url=url, timeout=TIMEOUT_S, limits=limits, trust_env=False
    ) as client:
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker(client))
        run.window_s = time.monotonic() - started
        for name, path in {"service": "/metrics", "other": OTHER}.items():
            run.scrapes[name] = (await client.get(path)).text  # a scrape, as Prometheus makes one


def demo(paths: list[str], concurrency: int, raw_path_labels: bool) -> Run:
    """Serve the service, counted both ways; drive it."""
    run = Run()
    with server(demo_app(raw_path_labels)) as url:
        try:
            asyncio.run(drive(url, paths, concurrency, run))
        except (asyncio.CancelledError, ExceptionGroup) as err:
            if not run.stopped_by:  # a signal reaches the server too: a connection it closes
                raise click.ClickException(f"the run failed: {err!r}") from err  # may fail first
    return run


def report(run: Run, raw_path_labels: bool, as_json: bool) -> int:
    """Check the service's scrape against what the client saw; print it; return the exit code."""
    service = parse(run.scrapes["service"])
    other = parse(run.scrapes["other"])
    labelled = {"route templates": service, "raw paths": other}
    if raw_path_labels:  # the service's own /metrics makes the mistake
        labelled = {"route templates": other, "raw paths": service}
    series = {labels: len(samples) for labels, samples in labelled.items()}
    counted = round(sum(summed(service, "http_requests_total", "", SCRAPES).values()))
    errors = round(sum(summed(service, "http_request_errors_total", "", SCRAPES).values()))
    routes = summed(service, "http_requests_total", "route", SCRAPES)
    in_flight = summed(service, "http_requests_in_flight", "", ())[""]
    sent = run.answered
    durations = summed(service, "http_request_duration_seconds_count", "", SCRAPES)
    histogram_count = round(sum(durations.values()))
    budget = len(create_app().routes) + 1  # one per route, and UNMATCHED
    checks = [  # name, result, expected, what it shows, passed
        ("requests counted", counted, sent, "the counter saw every one", counted == sent),
        ("histogram count", histogram_count, sent, "so did the histogram", histogram_count == sent),
        ("errors counted", errors, run.server_errors, "5xx only", errors == run.server_errors),
        ("in flight at rest", round(in_flight), 1, "only the scrape itself", in_flight == 1),
        ("route label values", len(routes), f"<= {budget}", "bounded", len(routes) <= budget),
    ]
    failed = not all(passed for *_, passed in checks)
    if as_json:
        figures = {"requests": sent, "errors": errors, "series": series["route templates"]}
        figures["series_raw_path"] = series["raw paths"]
        click.echo(json.dumps(figures))
        return 1 if failed else 0
    table = Table("check", "result", "expected", "what it shows", title="What the scrape says")
    for name, result, expected, shows, passed in checks:
        table.add_row(name, str(result), f"{expected}{'' if passed else '  FAILED'}", shows)
    title = "The same traffic, counted by /metrics and by the client, over the client's time"
    numbers = Table("figure", "from /metrics", "from the client", title=title)
    numbers.add_row("rate, req/s", f"{counted / run.window_s:.1f}", f"{sent / run.window_s:.1f}")
    numbers.add_row("error ratio", f"{errors / counted:.3f}", f"{run.server_errors / sent:.3f}")
    for labels, count in series.items():
        numbers.add_row(f"series, labelled by {labels}", str(count), "")
    Console().print(table, numbers)
    return 1 if failed else 0


# --- CLI ------------------------------------------------------------------------------------------
@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option("--requests", type=click.IntRange(2), default=400, help="Requests to send.")
@click.option("--ids", type=click.IntRange(1), default=300, help="Distinct item ids asked for.")
@click.option("--concurrency", type=click.IntRange(1, 200), default=10, help="Requests at once.")
@click.option("--raw-path-labels", is_flag=True, help="Label the service by raw path: the mistake.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(
    ctx: click.Context,
    requests: int,
    ids: int,
    concurrency: int,
    raw_path_labels: bool,
    as_json: bool,
) -> None:
    """Drive mixed traffic through an instrumented service, then read its /metrics."""
    if ctx.invoked_subcommand is not None:
        return
    run = demo(plan(requests, ids, SLOW_PERCENT), concurrency, raw_path_labels)
    if run.stopped_by:  # Ctrl-C, or a SIGTERM: the server is stopped either way
        done = f"{run.answered} of {requests} requests answered"
        raise click.Abort(f"interrupted by {run.stopped_by}: {done}; server stopped")
    ctx.exit(report(run, raw_path_labels, as_json))


@cli.command()
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the instrumented service until Ctrl-C."""
    click.echo(f"curl http://{host}:{port}/items/1 http://{host}:{port}/metrics", err=True)
    app = create_app()
    instrument(app, CollectorRegistry())  # the service as it runs, with a registry of its own
    config = uvicorn.Config(app, host=host, port=port, log_config=None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # uvicorn handles Ctrl-C, then re-raises it:
    uvicorn.Server(config).run()  # ignored by then, not a KeyboardInterrupt in the shutdown
    raise click.Abort("interrupted: server stopped")  # it returns only once it was told to stop


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
