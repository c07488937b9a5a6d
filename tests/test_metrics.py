"""Tests for scripts/metrics.py: the pattern in-process over ASGITransport, then the script.

The properties, not the formatting: label values are route templates (so the number of series
does not grow with the ids clients send), counters and the histogram count every request, errors
are the 5xx answers, the in-flight gauge comes back to 0, the demo app counts the same requests
in both registries, and every scrape is read with prometheus_client's own parser. Nothing sleeps to
wait for something: the in-flight test waits on events.
"""

import asyncio
import json
import signal
from collections.abc import Generator
from pathlib import Path

import click
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, values
from prometheus_client.metrics import MetricWrapperBase
from starlette.types import ASGIApp, Receive, Scope, Send

import metrics
from conftest import Invocation, ScriptRunner

TEMPLATES = {"/items/{item_id}", "/checkout", metrics.UNMATCHED}


def instrumented(raw: bool = False) -> tuple[FastAPI, CollectorRegistry]:
    app = metrics.create_app()
    registry = CollectorRegistry()
    metrics.instrument(app, registry, metrics.raw_path if raw else metrics.route_template)
    return app, registry


async def send_all(app: ASGIApp, paths: list[str]) -> list[int]:
    """GET each path in turn, in-process; the statuses. A 500 comes back as a 500, not raised."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [(await client.get(path)).status_code for path in paths]


def scrape(app: FastAPI) -> str:
    async def get() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    return asyncio.run(get())


def routes_of(text: str) -> set[str]:
    return set(metrics.summed(metrics.parse(text), "http_requests_total", "route", ("/metrics",)))


# --- labels: route templates keep the series bounded ----------------------------------------------


def traffic_with(ids: int) -> list[str]:
    return metrics.plan(120, ids, slow_percent=0, seed=3)


def test_labels_are_route_templates_whatever_the_ids() -> None:
    series = []
    for ids in (14, 500):
        app, _ = instrumented()
        paths = [path.replace("work_ms=", "w=") for path in traffic_with(ids)]  # no sleeps
        asyncio.run(send_all(app, paths))
        text = scrape(app)
        assert routes_of(text) == TEMPLATES
        series.append(len(metrics.parse(text)))
    assert series[0] == series[1]  # as many series for 500 ids as for 14


def test_raw_path_labels_grow_with_the_ids() -> None:
    counts = []
    for ids in (5, 500):
        app, _ = instrumented(raw=True)
        paths = [path.replace("work_ms=", "w=") for path in traffic_with(ids)]
        asyncio.run(send_all(app, paths))
        counts.append(len(routes_of(scrape(app))))
    assert counts[0] <= 5 + 5 + 1  # items and nowhere paths for 5 ids, and /checkout
    assert counts[1] > 50  # one label value per distinct URL


def test_an_unknown_method_is_one_label() -> None:
    app, registry = instrumented()

    async def brew() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.request("BREW", "/items/1")).status_code

    assert asyncio.run(brew()) == 405
    labels = {"method": "OTHER", "route": "/items/{item_id}", "status": "405"}
    assert registry.get_sample_value("http_requests_total", labels) == 1


# --- counts: every request, every error, nothing left in flight -----------------------------------


def test_counters_and_histogram_count_every_request() -> None:
    app, registry = instrumented()
    paths = ["/items/1", "/items/7", "/checkout", "/nowhere/3", "/items/2?work_ms=x"]
    statuses = asyncio.run(send_all(app, paths * 3))
    assert statuses == [200, 404, 503, 404, 422] * 3
    samples = metrics.parse(scrape(app))
    assert sum(metrics.summed(samples, "http_requests_total", "", ("/metrics",)).values()) == 15
    counts = metrics.summed(samples, "http_request_duration_seconds_count", "route", ("/metrics",))
    assert counts == {"/items/{item_id}": 9, "/checkout": 3, metrics.UNMATCHED: 3}
    errors = metrics.summed(samples, "http_request_errors_total", "route", ())
    assert errors == {"/checkout": 3}  # a 404 or a 422 is the client's, not an error
    assert registry.get_sample_value("http_requests_in_flight") == 0


def test_the_docstring_counts_the_labels_lookups_a_request_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The overhead the docstring lists: two labels() lookups for an answer, three for a 5xx."""
    app, _ = instrumented()
    lookups: list[str] = []
    labels = MetricWrapperBase.labels

    def counted(self: MetricWrapperBase, *values: str) -> MetricWrapperBase:
        lookups.append(type(self).__name__)
        return labels(self, *values)

    monkeypatch.setattr(MetricWrapperBase, "labels", counted)
    asyncio.run(send_all(app, ["/items/1"]))
    answered = len(lookups)
    asyncio.run(send_all(app, ["/checkout"]))
    assert (answered, len(lookups) - answered) == (2, 3)
    assert "two labels() lookups" in " ".join((metrics.__doc__ or "").split())
    assert "a 5xx, three" in (metrics.__doc__ or "")


def test_an_exception_is_counted_as_a_500_error_and_leaves_nothing_in_flight() -> None:
    app, registry = instrumented()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    assert asyncio.run(send_all(app, ["/boom", "/boom"])) == [500, 500]
    labels = {"method": "GET", "route": "/boom"}
    assert registry.get_sample_value("http_request_errors_total", labels) == 2
    assert registry.get_sample_value("http_requests_total", {**labels, "status": "500"}) == 2
    assert registry.get_sample_value("http_requests_in_flight") == 0


def test_in_flight_counts_the_requests_being_handled_then_returns_to_zero() -> None:
    app, registry = instrumented()
    entered = asyncio.Event()
    release = asyncio.Event()
    seen: list[float | None] = []

    @app.get("/hold")
    async def hold() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"ok": True}

    async def scenario() -> None:
        request = asyncio.create_task(send_all(app, ["/hold"]))
        await entered.wait()
        seen.append(registry.get_sample_value("http_requests_in_flight"))
        release.set()
        assert await request == [200]
        seen.append(registry.get_sample_value("http_requests_in_flight"))

    asyncio.run(scenario())
    assert seen == [1, 0]


def test_the_demo_app_counts_the_same_requests_in_both_registries() -> None:
    app = metrics.demo_app(raw_path_labels=False)
    statuses = asyncio.run(send_all(app, ["/items/1", "/items/2", "/items/7", "/checkout"]))
    assert statuses == [200, 200, 404, 503]
    texts = asyncio.run(scrape_both(app))
    by_template = metrics.summed(metrics.parse(texts[0]), "http_requests_total", "route", [])
    by_path = metrics.summed(metrics.parse(texts[1]), "http_requests_total", "route", [])
    assert by_template == {"/items/{item_id}": 3, "/checkout": 1}
    assert by_path == {"/items/1": 1, "/items/2": 1, "/items/7": 1, "/checkout": 1, "/metrics": 1}
    assert sum(by_template.values()) == sum(by_path.values()) - 1  # the first scrape, seen by raw


async def scrape_both(app: ASGIApp) -> list[str]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [(await client.get(path)).text for path in ("/metrics", metrics.OTHER)]


def test_with_a_multiprocess_dir_one_scrape_sums_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers write to PROMETHEUS_MULTIPROC_DIR; a scrape of either reads both, summed.
    Each "worker" gets its own process id through MultiProcessValue, as the library's own tests
    do, so this needs no second process."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    apps = []
    for pid in (101, 102):
        monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda pid=pid: pid))
        app, _ = instrumented()
        asyncio.run(send_all(app, ["/items/1", "/checkout", "/items/2"]))
        apps.append(app)
    samples = metrics.parse(scrape(apps[0]))
    requests = metrics.summed(samples, "http_requests_total", "route", ("/metrics",))
    assert requests == {"/items/{item_id}": 4, "/checkout": 2}  # both workers' requests
    errors = metrics.summed(samples, "http_request_errors_total", "", ())
    assert errors == {"": 2}
    in_flight = metrics.summed(samples, "http_requests_in_flight", "", ())
    assert in_flight == {"": 1}  # livesum: the scrape in worker 101, plus 0 in worker 102
    assert {path.name.partition("_")[0] for path in tmp_path.iterdir()} == {
        "counter",
        "histogram",
        "gauge",
    }


def test_server_gives_up_on_a_child_that_never_serves() -> None:
    async def refuses(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(click.ClickException, match="did not become ready"), metrics.server(refuses):
        pass


def test_a_request_that_times_out_fails_the_run_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hung answer fails the run (a ClickException, one line), not waits forever."""
    monkeypatch.setattr(metrics, "TIMEOUT_S", 0.2)
    with pytest.raises(click.ClickException, match="the run failed: ExceptionGroup"):
        metrics.demo(["/items/1", "/items/2?work_ms=1500"], 1, raw_path_labels=False)


# --- reading a scrape as Prometheus does ----------------------------------------------------------


def test_parse_reads_templates_with_braces_through_the_official_parser() -> None:
    app, _ = instrumented()
    asyncio.run(send_all(app, ["/items/1"]))
    samples = metrics.parse(scrape(app))
    buckets = [s for s in samples if s.name == "http_request_duration_seconds_bucket"]
    assert {s.labels["route"] for s in buckets} == {"/items/{item_id}"}
    assert [s.labels["le"] for s in buckets][-1] == "+Inf"
    assert len(buckets) == len(metrics.BUCKETS) + 1


# --- the demo's pieces and the report -------------------------------------------------------------


def test_plan_mixes_errors_unmatched_and_slow_requests() -> None:
    paths = metrics.plan(1000, 50, slow_percent=100)
    assert paths == metrics.plan(1000, 50, slow_percent=100)  # seeded: the same traffic twice
    kinds = {
        kind: sum(p.startswith(kind) for p in paths)
        for kind in ("/items/", "/checkout", "/nowhere/")
    }
    assert sum(kinds.values()) == 1000
    assert 20 < kinds["/checkout"] < 80
    assert 10 < kinds["/nowhere/"] < 60
    works = [float(p.rpartition("=")[2]) for p in paths if "work_ms" in p]
    assert min(works) >= 150  # every one slow
    ids = {int(p.split("/")[2].partition("?")[0]) for p in paths if not p.startswith("/checkout")}
    assert ids <= set(range(1, 51))


def run_in_process(raw: bool, requests: int = 120) -> metrics.Run:
    """What demo() gathers, without the server: the traffic through the demo app in-process."""
    app = metrics.demo_app(raw)
    paths = [path.replace("work_ms=", "w=") for path in metrics.plan(requests, 300, 5)]  # no sleeps
    run = metrics.Run(window_s=1.0)
    statuses = asyncio.run(send_all(app, paths))
    run.answered = len(statuses)
    run.server_errors = len([status for status in statuses if status >= 500])
    texts = asyncio.run(scrape_both(app))
    run.scrapes = {"service": texts[0], "other": texts[1]}
    return run


def test_report_checks_pass_and_figures_agree(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_in_process(raw=False)
    assert metrics.report(run, raw_path_labels=False, as_json=True) == 0  # every check passed
    figures = json.loads(capsys.readouterr().out)
    assert figures["requests"] == 120
    assert figures["errors"] == run.server_errors > 0
    assert figures["series"] == 65 < figures["series_raw_path"]


def test_report_with_raw_path_labels_fails_the_bounded_labels_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    run = run_in_process(raw=True, requests=60)
    assert metrics.report(run, raw_path_labels=True, as_json=False) == 1
    out = capsys.readouterr().out
    [labels] = [line for line in out.splitlines() if "route label values" in line]
    assert "FAILED" in labels
    assert "series, labelled by raw paths" in out


# --- the CLI in-process, then the script as a user runs it ----------------------------------------


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--requests", "1"], "--requests"),
        (["--ids", "0"], "--ids"),
        (["--concurrency", "0"], "--concurrency"),
        (["serve", "--port", "0"], "--port"),
    ],
)
def test_bad_arguments_are_usage_errors(invoke, args: list[str], argument: str) -> None:
    invoke(metrics.run, *args).assert_usage_error(argument)


@pytest.fixture
def sigint_restored() -> Generator[None]:
    """serve ignores SIGINT while uvicorn runs (uvicorn handles it); give pytest its own back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_serve_runs_the_instrumented_service_until_stopped(
    invoke, monkeypatch: pytest.MonkeyPatch, sigint_restored: None
) -> None:
    served: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: served.append(self.config))
    done: Invocation = invoke(metrics.run, "serve", "--port", "8123")
    assert done.code == 130  # uvicorn.Server.run() returns once a signal stopped it
    assert "http://127.0.0.1:8123/metrics" in done.stderr
    assert done.stderr.splitlines()[-1] == "interrupted: server stopped"
    app = served[0].app
    assert isinstance(app, FastAPI)
    assert "http_requests_total" in scrape(app)


def test_json_run_end_to_end(runner: ScriptRunner) -> None:
    proc = runner.run("metrics", "--json", "--requests", "60", "--ids", "100")
    assert proc.returncode == 0, proc.stderr  # every check passed
    figures = json.loads(proc.stdout)
    keys = {"requests", "errors", "series", "series_raw_path"}
    assert figures.keys() == keys
    assert figures["requests"] == 60
    assert figures["series"] < figures["series_raw_path"]


def test_ctrl_c_exits_130_with_the_partial_results(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("metrics", "--requests", "20000", ready="traffic: ")
    assert "interrupted by SIGINT:" in line
    assert "of 20000 requests answered" in line
    assert "server stopped" in line
