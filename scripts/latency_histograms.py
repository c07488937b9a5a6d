# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "prometheus-client", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Read latency percentiles from a Prometheus histogram, and know how far off they are.

Pattern:       A histogram keeps counts per bucket, not the latencies: Prometheus's
               histogram_quantile finds the bucket holding the q-th observation and interpolates
               linearly inside it, so its error is bounded by that bucket's width. Buckets chosen
               for the latency target (narrow around 250 ms) keep p95 close to the truth; the
               library's default buckets, or a quantile landing in a wide bucket, do not.
When to use:   Choosing buckets for a service's latency histogram; reading a dashboard's p95/p99.
When not to:   When you need exact percentiles of one run (keep the samples, as here); when the
               quantile of interest is far past your buckets (add buckets, or use a native
               histogram); per-request detail (logs, traces).
Run:           uv run scripts/latency_histograms.py
               uv run scripts/latency_histograms.py --slow-percent 30 --json
Try it:        --slow-percent 30: p95 (~520 ms) falls in the target layout's wide 0.5-1 s bucket
               and is off by ~100 ms, more than in the default's 0.5-0.75 s one: buckets are
               dense only where the target is.
               --slow-percent 1: p99 (~170 ms) is off ~1 ms in a 50 ms target bucket, ~30 ms in
               the default layout's 100-250 ms bucket.

The latencies are a seeded sample (no server): ~12 ms queries, log-normal, with a share of slow
ones spread over 150-600 ms, the mix scripts/metrics.py sends. They are observed by a real
prometheus_client Histogram, exposed with generate_latest and read back with its own parser, as a
scrape would be. The true percentiles use statistics.quantiles(method="inclusive").
"""

import json
import math
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

# --- The pattern: buckets for the target, and Prometheus's estimate from them ------------------
# The latency target: 95% of requests within 250 ms. The estimate's error is at most the width of
# the bucket the quantile falls in, so the buckets are narrow (25-50 ms) from 100 ms to 300 ms,
# and the target is a bound itself: "the share within 250 ms" is then a count, not an estimate.
# Past 0.5 s the buckets widen: they still say how bad things are. 14 buckets: each is a series.
TARGET_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus's estimate: find the bucket holding the q-th observation, then interpolate
    linearly inside it, as if its observations were spread evenly. `buckets` are (upper bound,
    cumulative count), ascending, the last +Inf. Observations are taken as >= 0, so the first
    bucket starts at 0."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], not {q}")
    if not buckets or not math.isinf(buckets[-1][0]):
        raise ValueError("the last bucket must be +Inf")
    total = buckets[-1][1]
    if total == 0 or len(buckets) < 2:  # no observation, or no finite bound to say where they are
        return math.nan
    rank = q * total
    lower = 0.0
    below = 0.0
    for upper, count in buckets[:-1]:
        if count >= rank and count > below:  # the first non-empty bucket that reaches the rank
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower = upper
        below = count
    return lower  # the rank is in the +Inf bucket: its lower bound is all Prometheus can say


def scraped_buckets(exposition: str, name: str) -> list[tuple[float, float]]:
    """The (upper bound, cumulative count) pairs of histogram `name` in a scrape, read with
    prometheus_client's own parser, summed over every other label: PromQL's `sum by (le)`."""
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                upper = float(sample.labels["le"])  # "+Inf" parses to math.inf
                counts[upper] = counts.get(upper, 0.0) + sample.value
    return sorted(counts.items())


# --- Demo plumbing: a seeded sample, two bucket layouts, the table ------------------------------
DEFAULT_BUCKETS = Histogram.DEFAULT_BUCKETS  # what prometheus_client uses when given none
LAYOUTS = {"target": TARGET_BUCKETS, "default": DEFAULT_BUCKETS}
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
METRIC = "request_duration_seconds"


def latencies(samples: int, slow_percent: float, seed: int) -> list[float]:
    """A seeded latency sample, in seconds: typical queries around 12 ms (log-normal, capped at
    150 ms), and `slow_percent` of them slow, spread evenly over 150-600 ms."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    values = []
    for _ in range(samples):
        seconds = min(rng.lognormvariate(math.log(0.012), 0.6), 0.15)
        if rng.uniform(0, 100) < slow_percent:
            seconds = rng.uniform(0.15, 0.6)  # a cold cache, a lock, a big page
        values.append(seconds)
    return values


def exposition(values: Sequence[float], buckets: Sequence[float]) -> str:
    """Observe every value in a Histogram of its own registry; return the scrape's text."""
    registry = CollectorRegistry()
    histogram = Histogram(METRIC, "Request latency.", buckets=buckets, registry=registry)
    for value in values:
        histogram.observe(value)
    return generate_latest(registry).decode()


def true_quantiles(values: Sequence[float]) -> dict[str, float]:
    """The collection's one percentile method; one sample is its own every percentile."""
    if len(values) == 1:
        return dict.fromkeys(QUANTILES, values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {name: cuts[round(q * 100) - 1] for name, q in QUANTILES.items()}


@dataclass
class LayoutResult:
    """One bucket layout's estimates, in ms, next to the truth."""

    name: str
    buckets: int  # bounds, +Inf aside: each one is a series per label set
    estimated_ms: dict[str, float]
    true_ms: dict[str, float]

    def error_ms(self, quantile: str) -> float:
        return round(self.estimated_ms[quantile] - self.true_ms[quantile], 1)


def compare(values: Sequence[float]) -> list[LayoutResult]:
    """Each layout: observe, scrape, parse, estimate; next to the true percentiles."""
    truth = {name: ms(seconds) for name, seconds in true_quantiles(values).items()}
    results = []
    for name, bounds in LAYOUTS.items():
        buckets = scraped_buckets(exposition(values, bounds), METRIC)
        estimated = {q_name: ms(histogram_quantile(q, buckets)) for q_name, q in QUANTILES.items()}
        finite = [bound for bound in bounds if not math.isinf(bound)]  # the default ends in +Inf
        results.append(LayoutResult(name, len(finite), estimated, truth))
    return results


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def report(results: list[LayoutResult], samples: int, slow_percent: float) -> None:
    title = f"{samples} latencies, {slow_percent:g}% slow: histogram estimate vs the truth, ms"
    table = Table("layout", "buckets", "quantile", "estimated", "true", "error", title=title)
    for result in results:
        for quantile in QUANTILES:
            table.add_row(
                result.name,
                str(result.buckets),
                quantile,
                str(result.estimated_ms[quantile]),
                str(result.true_ms[quantile]),
                f"{result.error_ms(quantile):+.1f}",
            )
    Console().print(table)


def figures(results: list[LayoutResult]) -> dict[str, object]:
    """The --json object: the issue's p95 pair for the target layout, then every layout."""
    target = results[0]
    layouts = {}
    for result in results:
        layouts[result.name] = {
            "buckets": result.buckets,
            "estimated_ms": result.estimated_ms,
            "error_ms": {quantile: result.error_ms(quantile) for quantile in QUANTILES},
        }
    return {
        "p95_hist_ms": target.estimated_ms["p95"],
        "p95_true_ms": target.true_ms["p95"],
        "true_ms": target.true_ms,
        "layouts": layouts,
    }


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


@click.command(context_settings={"show_default": True})
@click.option(
    "--samples", type=click.IntRange(1, 1_000_000), default=20_000, help="Latencies to draw."
)
@click.option(
    "--slow-percent",
    type=FiniteFloat(0, 100),
    default=5.0,
    help="Percent of requests that are slow (150-600 ms).",
)
@click.option("--seed", type=int, default=7, help="Seed of the latency sample.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(samples: int, slow_percent: float, seed: int, as_json: bool) -> None:
    """Estimate p50/p95/p99 from two bucket layouts, as Prometheus does, next to the truth."""
    results = compare(latencies(samples, slow_percent, seed))
    if as_json:
        click.echo(json.dumps(figures(results)))
        return
    report(results, samples, slow_percent)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
