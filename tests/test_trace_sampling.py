"""trace_sampling: ParentBased ratio sampling keeps whole traces; the batch exporter delivers them.

The sampling tests run A and B over ASGITransport (B behind A's instrumented client, in a fresh
context as if in another process), so every decision is made by the real samplers on real spans.
The export tests post to a small OTLP/HTTP collector on loopback and decode what it received.
"""

import asyncio
import gzip
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trace_sampling
from asgi_elsewhere import ElsewhereTransport
from conftest import Invocation, ScriptRunner


def through_a_and_b(
    requests: int, ratio_a: float, ratio_b: float, instrument_client: bool = True
) -> tuple[list[int], list[ReadableSpan]]:
    """Ask A (which asks B) `requests` times at once, each service sampling at its own ratio."""
    memory_a = InMemorySpanExporter()
    memory_b = InMemorySpanExporter()
    provider_a = trace_sampling.make_provider("A", ratio_a, [memory_a])
    provider_b = trace_sampling.make_provider("B", ratio_b, [memory_b])
    app_b = trace_sampling.traced(trace_sampling.create_service_b(), provider_b)
    to_b = httpx.AsyncClient(transport=ElsewhereTransport(app_b), base_url="http://b")
    if instrument_client:
        trace_sampling.traced_client(to_b, provider_a)
    app_a = trace_sampling.traced(trace_sampling.create_service_a(to_b), provider_a)

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app_a)
        async with to_b, httpx.AsyncClient(transport=transport, base_url="http://a") as caller:
            return await asyncio.gather(*[caller.get("/shop") for _ in range(requests)])

    answers = asyncio.run(ask())
    for provider in (provider_a, provider_b):
        provider.shutdown()  # flushes the batch processor into the memory exporter
    spans = [*memory_a.get_finished_spans(), *memory_b.get_finished_spans()]
    return [answer.status_code for answer in answers], spans


def trace_ids(spans: list[ReadableSpan], service: str) -> set[int]:
    """The trace ids of which `service` recorded at least one span."""
    found = set()
    for span in spans:
        context = span.get_span_context()
        assert context is not None
        if span.resource.attributes["service.name"] == service:
            found.add(context.trace_id)
    return found


def test_ratio_0_keeps_no_trace_and_every_request_is_answered() -> None:
    statuses, spans = through_a_and_b(20, 0.0, 0.0)
    assert statuses == [200] * 20
    assert spans == []


def test_ratio_1_keeps_every_trace_whole() -> None:
    statuses, spans = through_a_and_b(20, 1.0, 1.0)
    traces = trace_sampling.traces_of(spans)
    assert statuses == [200] * 20
    assert len(traces) == 20
    assert all(trace_sampling.is_whole(trace) for trace in traces)


def test_a_ratio_keeps_about_that_share_and_never_a_partial_trace() -> None:
    statuses, spans = through_a_and_b(100, 0.5, 0.5)
    traces = trace_sampling.traces_of(spans)
    assert statuses == [200] * 100
    assert all(trace_sampling.is_whole(trace) for trace in traces)
    # 100 coin flips: 50 +- 5 (one standard deviation); 20..80 is 6 of them either side.
    assert 20 <= len(traces) <= 80, len(traces)


@pytest.mark.parametrize("ratio_b", [0.0, 1.0], ids=["B keeps none", "B keeps all"])
def test_b_honours_a_s_decision_whatever_its_own_ratio(ratio_b: float) -> None:
    """Decided once, at A: B's spans exist for a trace if and only if A's do."""
    _, spans = through_a_and_b(100, 0.5, ratio_b)
    kept_by_a = trace_ids(spans, "A")
    assert 0 < len(kept_by_a) < 100
    assert trace_ids(spans, "B") == kept_by_a


def test_without_traceparent_b_decides_alone() -> None:
    """The control: no header, no decision passed on. B's own ratio applies, so B traces all."""
    _, spans = through_a_and_b(10, 0.0, 1.0, instrument_client=False)
    assert trace_ids(spans, "A") == set()
    assert len(trace_ids(spans, "B")) == 10


def test_the_figures_flag_a_partial_trace_and_a_missing_one() -> None:
    statuses, spans = through_a_and_b(4, 1.0, 1.0)
    run = trace_sampling.Run(statuses=statuses, spans=spans)
    whole = trace_sampling.figures(run, 4, 1.0)
    assert (whole["traces"], whole["spans_per_trace"], whole["partial"]) == (4, 3.0, 0)
    assert whole["ok"] is True
    run.spans = spans[1:]  # one span lost: its trace is partial
    partial = trace_sampling.figures(run, 4, 1.0)
    assert (partial["partial"], partial["ok"]) == (1, False)
    first = trace_sampling.traces_of(spans)[0]
    run.spans = [span for span in spans if span not in first]  # a whole trace lost, at ratio 1
    missing = trace_sampling.figures(run, 4, 1.0)
    assert (missing["traces"], missing["partial"], missing["ok"]) == (3, 0, False)


def test_the_report_prints_a_table_and_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    statuses, spans = through_a_and_b(2, 1.0, 1.0)
    run = trace_sampling.Run(statuses=statuses, spans=spans)
    assert trace_sampling.report(trace_sampling.figures(run, 2, 1.0), as_json=False) == 0
    assert "Sampled traces" in capsys.readouterr().out
    run.statuses = [200, 500]
    assert trace_sampling.report(trace_sampling.figures(run, 2, 1.0), as_json=False) == 1


def test_a_span_without_a_context_is_refused() -> None:
    with pytest.raises(ValueError, match="no context"):
        trace_sampling.traces_of([ReadableSpan(name="never started")])


# --- export to a real OTLP/HTTP collector on loopback ---------------------------------------------


@dataclass
class Collector:
    """What a loopback OTLP/HTTP collector received: the paths posted to, and the spans decoded."""

    url: str
    paths: list[str] = field(default_factory=list)
    spans: list[tuple[str, bytes]] = field(default_factory=list)  # (service, trace id)


@contextmanager
def collector() -> Generator[Collector]:
    """An OTLP/HTTP collector in a thread: it decodes every POST as ExportTraceServiceRequest."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.paths.append(self.path)
            for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
                names = [a.value.string_value for a in resource.resource.attributes]
                keys = [a.key for a in resource.resource.attributes]
                service = names[keys.index("service.name")]
                for scope in resource.scope_spans:
                    received.spans.extend((service, span.trace_id) for span in scope.spans)
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        received = Collector(f"http://127.0.0.1:{server.server_address[1]}")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield received
        finally:
            server.shutdown()
            thread.join()


def test_the_batch_exporter_delivers_whole_traces_to_a_collector(
    invoke: Callable[..., Invocation],
) -> None:
    """A real run, in-process: both services export over OTLP/HTTP to a bare collector address."""
    with collector() as received:
        done = invoke(
            trace_sampling.run,
            *("--requests", "10", "--sample-ratio", "1", "--json"),
            *("--otlp-endpoint", received.url),  # no path: the lesson adds /v1/traces
        )
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["spans"] == 30
    assert set(received.paths) == {"/v1/traces"}
    assert Counter(service for service, _ in received.spans) == {"A": 20, "B": 10}
    per_trace = Counter(trace_id for _, trace_id in received.spans)
    assert sorted(per_trace.values()) == [3] * 10


def test_a_dead_collector_loses_batches_not_requests(
    invoke: Callable[..., Invocation], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on, for the moment
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        args = ("--requests", "4", "--sample-ratio", "1", "--json", "--otlp-endpoint", dead)
        done = invoke(trace_sampling.run, *args)
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    failed = [r for r in caplog.records if "Failed to export" in r.getMessage()]
    assert len(failed) == 2  # one batch a service, each given up after OTLP_TIMEOUT_S
    assert time.monotonic() - started < 30  # a sanity bound: no endless retrying


# --- the server plumbing --------------------------------------------------------------------------


def test_a_server_that_cannot_start_is_reported_and_its_thread_ends() -> None:
    @asynccontextmanager
    async def broken(_: FastAPI) -> AsyncGenerator[None]:
        raise RuntimeError("the app cannot start")
        yield

    before = threading.active_count()
    with (
        pytest.raises(click.ClickException, match="did not become ready"),
        trace_sampling.serving(FastAPI(lifespan=broken)),
    ):
        pass
    assert threading.active_count() == before


# --- the CLI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["localhost:4318", "ftp://collector/v1/traces", "http://"])
def test_a_bad_endpoint_is_refused(invoke: Callable[..., Invocation], value: str) -> None:
    invoke(trace_sampling.run, "--otlp-endpoint", value).assert_usage_error("--otlp-endpoint")


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_a_bad_ratio_is_refused(invoke: Callable[..., Invocation], value: str) -> None:
    invoke(trace_sampling.run, "--sample-ratio", value).assert_usage_error("--sample-ratio")


def test_default_run_as_json(runner: ScriptRunner) -> None:
    proc = runner.run("trace_sampling", "--json", "--requests", "40", "--sample-ratio", "0.5")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is True
    assert result["partial"] == 0
    assert result["spans"] == 3 * result["traces"]
    assert 0 < result["traces"] < 40


def test_ctrl_c_during_the_requests_stops_both_services(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("trace_sampling", "--requests", "10000", ready="requests:")
    assert re.search(r"interrupted: \d+ of 10000 requests answered", line), line
