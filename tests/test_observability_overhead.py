"""Tests for scripts/observability_overhead.py: the properties of each variant, not its speed."""

import asyncio
import io
import json
from collections.abc import Generator
from dataclasses import dataclass

import click
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp

import observability_overhead as overhead
from conftest import ScriptRunner


@dataclass
class Variants:
    apps: dict[str, ASGIApp]
    log: io.StringIO
    provider: TracerProvider
    spans: InMemorySpanExporter

    def log_lines(self) -> list[str]:
        return self.log.getvalue().splitlines()


@pytest.fixture
def variants() -> Generator[Variants]:
    """The four apps, in process, logging to a stream of this test's own."""
    spans = InMemorySpanExporter()
    provider = overhead.make_provider("test", 1.0, [spans])
    log = io.StringIO()
    yield Variants(overhead.build_apps(log, provider), log, provider, spans)
    provider.shutdown()


def get_all(app: ASGIApp, paths: list[str], headers: dict[str, str] | None = None) -> list:
    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x", timeout=5) as c:
            return [await c.get(path, headers=headers) for path in paths]

    return asyncio.run(scenario())


def test_every_variant_answers_the_same_body(variants: Variants) -> None:
    answers = [get_all(variants.apps[v], ["/ping"])[0] for v in overhead.VARIANTS]
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"ok": True})] * 4


def test_logging_writes_two_json_lines_per_request_with_its_id(variants: Variants) -> None:
    before = len(variants.log_lines())
    answers = get_all(variants.apps["logging"], ["/ping"] * 3, {"X-Correlation-ID": "abc-1"})
    answers += get_all(variants.apps["logging"], ["/ping"])  # no ID sent: one is made
    assert answers[0].headers["x-correlation-id"] == "abc-1"
    made = answers[3].headers["x-correlation-id"]
    lines = [json.loads(line) for line in variants.log_lines()[before:]]
    assert [line["event"] for line in lines] == ["pong", "request"] * 4
    assert [line["correlation_id"] for line in lines] == ["abc-1"] * 6 + [made] * 2
    assert {line["level"] for line in lines} == {"info"}


def test_the_asgi_caller_counts_n_answers(variants: Variants) -> None:
    before = len(variants.log_lines())
    statuses = asyncio.run(overhead.call(variants.apps["logging"], 37))
    assert statuses == [200] * 37
    lines = [json.loads(line) for line in variants.log_lines()[before:]]
    assert len(lines) == 2 * 37
    assert len({line["correlation_id"] for line in lines}) == 37  # one made per request
    assert asyncio.run(overhead.call(FastAPI(), 3)) == [404] * 3  # no /ping: counted, not 200


def requests_counted(app: ASGIApp) -> float:
    families = text_string_to_metric_families(get_all(app, ["/metrics"])[0].text)
    samples = [s for f in families for s in f.samples if s.name == "http_requests_total"]
    return sum(s.value for s in samples if s.labels["route"] == "/ping")


def test_metrics_count_exactly_the_requests_made(variants: Variants) -> None:
    metered = variants.apps["metrics"]
    before = requests_counted(metered)
    asyncio.run(overhead.call(metered, 7))
    asyncio.run(overhead.call(variants.apps["plain"], 2))
    assert requests_counted(metered) == before + 7


def test_tracing_records_one_server_span_per_request(variants: Variants) -> None:
    variants.provider.force_flush()
    before = len(variants.spans.get_finished_spans())
    asyncio.run(overhead.call(variants.apps["tracing"], 5))
    asyncio.run(overhead.call(variants.apps["metrics"], 2))
    variants.provider.force_flush()  # the batch processor's queue, exported now
    spans = variants.spans.get_finished_spans()[before:]
    assert [span.kind for span in spans] == [SpanKind.SERVER] * 5
    assert {span.name for span in spans} == {"GET /ping"}  # no http receive / http send spans
    assert len({span.context.trace_id for span in spans if span.context}) == 5


def test_measure_runs_alternating_rounds(variants: Variants) -> None:
    results = overhead.Results()
    asyncio.run(overhead.measure(variants.apps, 4, 2, results))
    assert len(results.rps["tracing"]) == 2
    assert all(len(results.rps[v]) == 2 and min(results.rps[v]) > 0 for v in overhead.VARIANTS)


def test_measure_refuses_answers_other_than_200() -> None:
    apps: dict[str, ASGIApp] = {v: FastAPI() for v in overhead.VARIANTS}  # no /ping: 404 each
    with pytest.raises(click.ClickException, match="plain: 3 of 3 answers not 200"):
        asyncio.run(overhead.measure(apps, 3, 1, overhead.Results()))


def test_microseconds_and_ratios_from_known_figures() -> None:
    rps = {"plain": 10000.0, "logging": 8000.0, "metrics": 9000.0, "tracing": 5000.0}
    rows = {row.variant: row for row in overhead.summarize(rps)}
    assert rows["plain"].us_per_request == 100.0
    assert rows["plain"].extra_us == 0.0
    assert rows["logging"].ratio == 0.8
    assert rows["logging"].extra_us == 25.0  # 125 us a request against 100
    assert rows["metrics"].extra_us == pytest.approx(11.1)
    assert rows["tracing"].extra_us == 100.0


def test_report_compares_the_extra_with_the_calibration(capsys: pytest.CaptureFixture) -> None:
    plain = 10000.0  # 100 us a request; the calibration: 86, 36 and 186 us more
    rps = {"plain": plain, "logging": 1e6 / 190, "metrics": 1e6 / 130, "tracing": 1e6 / 280}
    overhead.report(overhead.summarize(rps), as_json=True)
    figures = json.loads(capsys.readouterr().out)
    assert figures["rps_traced"] == 3571
    assert figures["extra_us"] == {"logging": 90.0, "metrics": 30.0, "tracing": 180.0}
    assert figures["within_calibration"] == {"logging": False, "metrics": True, "tracing": True}
    assert figures["us_per_request"]["plain"] == 100.0
    overhead.report(overhead.summarize(rps), as_json=False)
    out = capsys.readouterr().out
    assert "over" in out


@pytest.mark.parametrize("argument", ["--requests", "--rounds"])
def test_bad_arguments_are_usage_errors(invoke, argument: str) -> None:
    invoke(overhead.run, argument, "0").assert_usage_error(argument)


def test_two_runs_in_one_process_both_log_to_their_own_stream(invoke) -> None:
    """structlog caches a logger on first use: the second run's must not write to the first's
    closed file (a ValueError from every logged request)."""
    for _ in range(2):
        done = invoke(overhead.run, "--requests", "3", "--rounds", "1", "--json")
        assert done.code == 0, done.stderr
        assert json.loads(done.stdout)["rps_logging"] > 0


def test_json_run_end_to_end(runner: ScriptRunner) -> None:
    proc = runner.run("observability_overhead", "--json", "--requests", "50", "--rounds", "3")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert {"rps_plain", "rps_logging", "rps_metrics", "rps_traced"} <= figures.keys()
    assert figures["us_per_request"].keys() == set(overhead.VARIANTS)
    for key in ("ratios", "extra_us", "within_calibration"):
        assert figures[key].keys() == {"logging", "metrics", "tracing"}
    assert all(0 < ratio < 1.5 for ratio in figures["ratios"].values()), figures


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("observability_overhead", "--requests", "100000", ready="calling the")
    assert line.startswith("interrupted: 0 of 5 rounds")
