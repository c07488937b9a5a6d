"""tracing: one trace per request across A and B, linked by the traceparent header.

The property tests run the apps over ASGITransport (B behind A's instrumented client), so every
property is checked on real spans from the real instrumentations, with no server to start.
"""

import asyncio
import json
import re
import socket
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import click
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracing
from asgi_elsewhere import ElsewhereTransport
from conftest import Invocation, ScriptRunner


def quotes(
    items: list[str], instrument_client: bool = True, elsewhere: bool = True
) -> tuple[list[int], list[ReadableSpan]]:
    """Ask A (which asks B) for a quote of each item, all at once; the answers and the spans.
    With `elsewhere` False, B runs in A's context, as plain ASGITransport runs it."""
    memory_a = InMemorySpanExporter()
    memory_b = InMemorySpanExporter()
    provider_a = tracing.make_provider("A", [memory_a])
    provider_b = tracing.make_provider("B", [memory_b])
    app_b = tracing.create_service_b(provider_b.get_tracer("test"))
    traced_b = tracing.traced(app_b, provider_b)
    transport_b = ElsewhereTransport(traced_b) if elsewhere else httpx.ASGITransport(traced_b)
    to_b = httpx.AsyncClient(transport=transport_b, base_url="http://b")
    if instrument_client:
        tracing.traced_client(to_b, provider_a)
    app_a = tracing.traced(tracing.create_service_a(to_b), provider_a)

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app_a)
        async with to_b, httpx.AsyncClient(transport=transport, base_url="http://a") as caller:
            return await asyncio.gather(*[caller.get(f"/quote/{item}") for item in items])

    answers = asyncio.run(ask())
    for provider in (provider_a, provider_b):
        provider.shutdown()  # flushes the batch processor into the memory exporter
    spans = [*memory_a.get_finished_spans(), *memory_b.get_finished_spans()]
    return [answer.status_code for answer in answers], spans


def named(spans: list[ReadableSpan], service: str, kind: str) -> ReadableSpan:
    (span,) = [s for s in spans if (tracing.service_of(s), s.kind.name) == (service, kind)]
    return span


def span_id(span: ReadableSpan) -> int:
    return tracing.ids(span).span_id


def test_a_quote_is_one_trace_of_four_linked_spans() -> None:
    statuses, spans = quotes(["apple"])
    assert statuses == [200]
    assert len({tracing.ids(span).trace_id for span in spans}) == 1
    assert tracing.is_chain(spans)
    server_a = named(spans, "A", "SERVER")
    client_a = named(spans, "A", "CLIENT")
    logic = named(spans, "B", "INTERNAL")
    assert tracing.parent_id(server_a) is None
    assert tracing.parent_id(client_a) == span_id(server_a)
    assert tracing.parent_id(logic) == span_id(named(spans, "B", "SERVER"))
    assert logic.name == "compute_price"
    (event,) = [event for span in spans if span.name == "compute_price" for event in span.events]
    assert event.name == "price found"
    assert (event.attributes or {})["shop.unit_cents"] == 120


def test_the_context_crosses_the_http_hop() -> None:
    """B's server span is the child of A's client span, read from the request's header."""
    _, spans = quotes(["pear"])
    server_b = named(spans, "B", "SERVER")
    assert tracing.parent_id(server_b) == span_id(named(spans, "A", "CLIENT"))
    assert server_b.parent is not None
    assert server_b.parent.is_remote


def test_without_the_client_instrumentation_b_starts_a_trace_of_its_own() -> None:
    """The control: no traceparent header, no link. So the link above is the header's doing."""
    statuses, spans = quotes(["pear"], instrument_client=False)
    assert statuses == [200]
    server_b = named(spans, "B", "SERVER")
    assert tracing.parent_id(server_b) is None
    assert tracing.ids(server_b).trace_id != tracing.ids(named(spans, "A", "SERVER")).trace_id
    assert not tracing.is_chain(spans)


def test_in_a_s_context_b_joins_the_current_span_and_ignores_the_header() -> None:
    """What traced()'s docstring warns of: no traceparent sent, yet B is linked, as INTERNAL."""
    _, spans = quotes(["pear"], instrument_client=False, elsewhere=False)
    server_a = named(spans, "A", "SERVER")
    joined = [span for span in spans if span.name == "GET /price/{item}"]
    assert [span.kind.name for span in joined] == ["INTERNAL"]
    assert tracing.parent_id(joined[0]) == span_id(server_a)
    assert joined[0].parent is not None
    assert not joined[0].parent.is_remote


def test_concurrent_quotes_never_mix_and_leave_no_orphans() -> None:
    items = ["apple", "pear", "plum", "durian"] * 5
    statuses, spans = quotes(items)
    traces = tracing.traces_of(spans)
    assert statuses.count(404) == 5
    assert len(traces) == len(items)
    assert all(tracing.is_chain(trace) for trace in traces)
    assert tracing.orphans(spans) == []


def test_an_unknown_item_is_recorded_as_an_error_on_its_span() -> None:
    statuses, spans = quotes(["durian"])
    assert statuses == [404]
    (logic,) = [span for span in spans if span.name == "compute_price"]
    assert logic.status.status_code.name == "ERROR"
    assert logic.status.description == "no price for durian"
    (event,) = logic.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "KeyError"
    client_a = named(spans, "A", "CLIENT")
    assert client_a.status.status_code.name == "ERROR"  # a 4xx fails the caller's call
    server_b = named(spans, "B", "SERVER")
    assert server_b.status.status_code.name == "UNSET"  # but it is not the server's fault


def test_a_refuses_an_item_it_could_not_pass_on_to_b_as_it_is() -> None:
    statuses, spans = quotes(["APPLE", "..."])  # capitals; dots (".." would climb B's path)
    assert statuses == [422, 422]
    assert [span.kind.name for span in spans] == ["SERVER", "SERVER"]  # B was never called


def test_orphans_finds_a_span_whose_parent_was_lost() -> None:
    _, spans = quotes(["apple"])
    found = [span for span in spans if span.kind.name != "CLIENT"]  # A's client span lost
    (orphan,) = tracing.orphans(found)
    assert (tracing.service_of(orphan), orphan.kind.name) == ("B", "SERVER")
    assert not tracing.is_chain(found)


def test_a_service_s_spans_reach_memory_and_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """What serve does: every span in the in-memory exporter, and as JSON on stderr."""
    provider, memory = tracing.provider_for("B", console=True)
    app = tracing.build_b(provider)

    async def ask() -> int:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            return (await client.get("/price/apple")).status_code

    assert asyncio.run(ask()) == 200
    provider.shutdown()
    assert [span.name for span in memory.get_finished_spans()] == [
        "compute_price",
        "GET /price/{item}",
    ]
    printed = capsys.readouterr().err
    assert '"name": "compute_price"' in printed
    assert '"name": "GET /price/{item}"' in printed


def test_a_call_to_a_dead_b_is_an_error_on_both_of_a_s_spans() -> None:
    with socket.socket() as probe:  # a port nothing listens on, for the moment
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    provider, memory = tracing.provider_for("A", console=False)
    app = tracing.build_a(provider, dead)

    async def ask() -> int:
        async with app.router.lifespan_context(app):  # A closes its client to B as it stops
            transport = httpx.ASGITransport(app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
                return (await client.get("/quote/apple")).status_code

    assert asyncio.run(ask()) == 500
    provider.shutdown()
    found = [(span.kind.name, span.status.status_code.name) for span in memory.get_finished_spans()]
    assert found == [("CLIENT", "ERROR"), ("SERVER", "ERROR")]


def test_a_span_without_a_context_is_refused() -> None:
    with pytest.raises(ValueError, match="no context"):
        tracing.ids(ReadableSpan(name="never started"))


def test_a_server_that_cannot_start_is_reported_and_its_thread_ends() -> None:
    @asynccontextmanager
    async def broken(_: FastAPI) -> AsyncGenerator[None]:
        raise RuntimeError("the app cannot start")
        yield

    before = threading.active_count()
    with (
        pytest.raises(click.ClickException, match="did not become ready"),
        tracing.serving(FastAPI(lifespan=broken)),
    ):
        pass
    assert threading.active_count() == before


def test_serving_answers_over_loopback_then_leaves_no_thread() -> None:
    provider, memory = tracing.provider_for("B", console=False)
    before = threading.active_count()
    with tracing.serving(tracing.build_b(provider)) as url:
        assert httpx.get(f"{url}/price/plum", timeout=5).json()["total_cents"] == 60
    assert threading.active_count() == before
    provider.shutdown()
    assert len(memory.get_finished_spans()) == 2


def test_the_default_run_draws_each_trace(invoke: Callable[..., Invocation]) -> None:
    """In-process: the services are real uvicorn servers in threads, a real HTTP hop apart."""
    done = invoke(tracing.run, "--requests", "3")
    assert done.code == 0, done.stderr
    assert done.stdout.count("GET /quote/{item}") == 3
    assert done.stdout.count("compute_price") == 3
    assert "FAILED" not in done.stdout


def test_the_report_flags_a_failed_check(capsys: pytest.CaptureFixture[str]) -> None:
    statuses, spans = quotes(tracing.ITEMS[:3])  # apple, pear, durian: as the demo asks
    run = tracing.Run(statuses=dict(enumerate(statuses)), spans=spans)
    assert tracing.report(run, 3, as_json=False) == 0
    run.spans = run.spans[1:]
    assert tracing.report(run, 3, as_json=False) == 1
    assert "FAILED" in capsys.readouterr().out


def test_the_checks_fail_on_a_lost_span() -> None:
    _, spans = quotes(["apple", "durian"])
    run = tracing.Run(statuses={0: 200}, spans=spans[1:])
    failed = {check.name for check in tracing.checks(run, 2) if not check.passed}
    assert failed == {"answers", "linked", "orphans"}  # the trace is still counted, but broken


def test_a_bad_request_count_is_refused(invoke: Callable[..., Invocation]) -> None:
    invoke(tracing.run, "--requests", "0").assert_usage_error("--requests")


def test_default_run_as_json(runner: ScriptRunner) -> None:
    proc = runner.run("tracing", "--json", "--requests", "4")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"traces", "spans", "orphans", "spans_per_trace"} <= result.keys()
    assert (result["traces"], result["spans"], result["orphans"]) == (4, 16, 0)
    assert result["spans_per_trace"] == 4
    assert all(result["checks"].values()), result["checks"]


def test_ctrl_c_during_the_quotes_stops_both_services(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("tracing", "--requests", "10000", ready="quotes:")
    assert re.search(r"interrupted: \d+ of 10000 quotes answered; servers stopped", line), line


def test_serve_on_a_taken_port_is_one_error_line(invoke: Callable[..., Invocation]) -> None:
    """It was uvicorn's own line after the curl one, then exit 3 (SystemExit, in-process)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = invoke(tracing.run, "serve", "--port", str(port))
    assert done.code == 1
    assert done.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert done.stdout == ""


def test_ctrl_c_stops_serve(runner: ScriptRunner) -> None:
    with socket.socket() as probe:  # a free port, for the moment
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner.ctrl_c("tracing", "serve", "--port", str(port), ready="curl")
