"""Tests for scripts/latency_histograms.py: Prometheus's histogram_quantile, the scrape read back
with prometheus_client's parser, the two bucket layouts against the true percentiles, the CLI.

The properties, not the formatting: the interpolation is Prometheus's, its error is bounded by
the width of the bucket the quantile falls in, and a quantile in a wide bucket drifts.
"""

import itertools
import json
import math
import random

import pytest

import latency_histograms as lh
from conftest import ScriptRunner


def test_the_target_buckets_are_dense_around_the_target_and_hold_it_exactly() -> None:
    """The SLO's "share answered within 250 ms" is then a bucket read, not an estimate."""
    buckets = lh.TARGET_BUCKETS
    assert 0.25 in buckets
    index = buckets.index(0.25)
    near = buckets[index - 2 : index + 2]  # 150 ms to 300 ms
    widths = [high - low for low, high in itertools.pairwise(near)]
    assert widths == pytest.approx([0.05, 0.05, 0.05])  # a p95 near the target is off < 50 ms
    assert list(buckets) == sorted(buckets)


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    buckets = [(1.0, 10.0), (2.0, 20.0), (4.0, 20.0), (math.inf, 20.0)]
    assert lh.histogram_quantile(0.5, buckets) == 1.0  # rank 10: the end of the first bucket
    assert lh.histogram_quantile(0.75, buckets) == 1.5  # rank 15: halfway through (1, 2]
    assert lh.histogram_quantile(0.25, buckets) == 0.5  # the first bucket starts at 0
    assert lh.histogram_quantile(1.0, buckets) == 2.0  # empty buckets above are skipped


def test_histogram_quantile_edges() -> None:
    assert lh.histogram_quantile(0.9, [(1.0, 5.0), (math.inf, 10.0)]) == 1.0  # in +Inf
    assert lh.histogram_quantile(0.0, [(1.0, 0.0), (2.0, 4.0), (math.inf, 4.0)]) == 1.0
    assert math.isnan(lh.histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))
    with pytest.raises(ValueError, match="q must be"):
        lh.histogram_quantile(1.5, [(math.inf, 1.0)])
    with pytest.raises(ValueError, match=r"\+Inf"):
        lh.histogram_quantile(0.5, [(1.0, 1.0)])


def test_histogram_quantile_with_only_the_inf_bucket_is_nan() -> None:
    """As Prometheus answers: no finite bound, so nothing to say where the observations are (not
    0, which would read as "every request instant")."""
    assert math.isnan(lh.histogram_quantile(0.5, [(math.inf, 10.0)]))


def test_histogram_quantile_matches_the_truth_on_even_data() -> None:
    """Uniform data fills each bucket evenly, which is what the interpolation assumes."""
    rng = random.Random(5)  # noqa: S311 - test data
    values = [rng.uniform(0, 0.25) for _ in range(20_000)]
    buckets = lh.scraped_buckets(lh.exposition(values, lh.TARGET_BUCKETS), lh.METRIC)
    assert buckets[-1] == (math.inf, 20_000)
    assert len(buckets) == len(lh.TARGET_BUCKETS) + 1
    for q in (0.5, 0.95, 0.99):
        assert lh.histogram_quantile(q, buckets) == pytest.approx(0.25 * q, abs=0.004)


def test_scraped_buckets_sum_over_other_labels() -> None:
    text = """# TYPE d_seconds histogram
d_seconds_bucket{route="/a",le="0.1"} 2.0
d_seconds_bucket{route="/a",le="+Inf"} 3.0
d_seconds_bucket{route="/b",le="0.1"} 1.0
d_seconds_bucket{route="/b",le="+Inf"} 4.0
d_seconds_count{route="/a"} 3.0
"""
    assert lh.scraped_buckets(text, "d_seconds") == [(0.1, 3.0), (math.inf, 7.0)]


def test_true_quantiles_are_the_collections_method() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert lh.true_quantiles(values) == pytest.approx(
        {"p50": 0.0505, "p95": 0.09505, "p99": 0.09901}
    )
    assert lh.true_quantiles([0.2]) == {"p50": 0.2, "p95": 0.2, "p99": 0.2}


def test_every_estimate_is_within_its_buckets_width_of_the_truth() -> None:
    """The interpolation's bound: the estimate and the truth share the bucket the rank falls in."""
    values = lh.latencies(5000, slow_percent=5, seed=3)
    for result in lh.compare(values):
        bounds = (0.0, *[b for b in lh.LAYOUTS[result.name] if not math.isinf(b)])
        widest = max(high - low for low, high in itertools.pairwise(bounds)) * 1000
        for quantile in lh.QUANTILES:
            assert abs(result.error_ms(quantile)) <= widest


def test_the_target_layout_reads_p95_near_the_target_better_than_the_default() -> None:
    [target, default] = lh.compare(lh.latencies(20_000, slow_percent=5, seed=7))
    assert (target.name, default.name) == ("target", "default")
    assert (target.buckets, default.buckets) == (14, 14)
    assert abs(target.error_ms("p95")) < 10 < abs(default.error_ms("p95"))


def test_a_quantile_in_a_wide_bucket_drifts() -> None:
    """With 30% slow, p95 lands in the target layout's 0.5-1 s bucket: tens of ms off."""
    [target, _] = lh.compare(lh.latencies(20_000, slow_percent=30, seed=7))
    assert 500 < target.true_ms["p95"] < 1000
    assert abs(target.error_ms("p95")) > 20


def test_latencies_are_seeded_and_slow_as_asked() -> None:
    values = lh.latencies(1000, slow_percent=100, seed=1)
    assert values == lh.latencies(1000, slow_percent=100, seed=1)
    assert min(values) >= 0.15
    assert max(lh.latencies(1000, slow_percent=0, seed=1)) <= 0.15


def test_json_figures(invoke) -> None:
    done = invoke(lh.run, "--samples", "2000", "--json")
    assert done.code == 0
    figures = json.loads(done.stdout)
    assert {"p95_hist_ms", "p95_true_ms"} <= figures.keys()
    assert figures["p95_true_ms"] == figures["true_ms"]["p95"]
    assert figures["p95_hist_ms"] == figures["layouts"]["target"]["estimated_ms"]["p95"]
    assert figures["layouts"].keys() == {"target", "default"}


def test_table_run(invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    done = invoke(lh.run, "--samples", "1")
    assert done.code == 0
    assert "default" in done.stdout
    assert "p99" in done.stdout


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--samples", "0"], "--samples"),
        (["--slow-percent", "101"], "--slow-percent"),
        (["--slow-percent", "nan"], "--slow-percent"),
        (["--seed", "x"], "--seed"),
    ],
)
def test_bad_arguments_are_usage_errors(invoke, args: list[str], argument: str) -> None:
    invoke(lh.run, *args).assert_usage_error(argument)


def test_json_run_end_to_end(runner: ScriptRunner) -> None:
    proc = runner.run("latency_histograms", "--json", "--samples", "3000")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["p95_hist_ms"] > 0
    assert figures["p95_true_ms"] > 0


def test_ctrl_c_exits_130(invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run is too short for partial results: click's own Abort, turned into 130 by run()."""

    def interrupted(values: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(lh, "compare", interrupted)
    done = invoke(lh.run)
    assert done.code == 130
    assert done.stderr.strip().splitlines()[-1] == "interrupted"
