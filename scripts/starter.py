# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "click",
#     "rich",
# ]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Summarise request latencies as the percentiles a latency SLO is written in.

Pattern:       Report latency as percentiles (p50, p95, p99) and the maximum, never as a mean
               alone: the one request in fifty that takes ten times longer hides inside an average,
               yet it is what users notice. `summarise()` turns any sequence of durations into a
               typed `LatencySummary`. The rest of the file is the anatomy every lesson shares
               (demo data, rich table, --json, exit codes), which is why `just new` copies it.
When to use:   Comparing benchmark runs, checking a batch of timings against an SLO, or summarising
               durations you collected yourself (one number per line in a file).
When not to:   Inside a long-running service: keep a histogram (Prometheus, HdrHistogram) rather
               than every sample. Never average percentiles across hosts; merge the histograms.
Run:           uv run scripts/starter.py
               uv run scripts/starter.py --samples 10000 --json
               uv run scripts/starter.py --input timings.txt
Try it:        --samples 20, then --samples 20000: a small sample can miss the slow tail.
               --slow-rate 0: p99 falls back towards p50, so the tail is the slow requests.
               --input a file with a word in it: a one-line error naming the line, exit 1.
"""

import json
import math
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of a latency sample, in seconds."""

    count: int
    mean_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float


class BadSampleError(ValueError):
    """A latency file holds something that is not a non-negative number of seconds."""


def summarise(latencies_s: Sequence[float]) -> LatencySummary:
    """Summarise durations in seconds.

    Raises ValueError on an empty sample, or one holding nan, inf or a negative duration
    (a single nan would otherwise make every percentile nan, without a word).
    """
    if not latencies_s:
        raise ValueError("cannot summarise an empty sample")
    for value in latencies_s:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value} is not a duration: latencies are finite and >= 0")
    if len(latencies_s) == 1:  # statistics.quantiles needs two points on Python 3.11
        only = latencies_s[0]
        return LatencySummary(count=1, mean_s=only, p50_s=only, p95_s=only, p99_s=only, max_s=only)
    # "inclusive" treats the sample as the whole population, so p100 is the observed maximum.
    cuts = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return LatencySummary(
        count=len(latencies_s),
        mean_s=statistics.fmean(latencies_s),
        p50_s=cuts[49],
        p95_s=cuts[94],
        p99_s=cuts[98],
        max_s=max(latencies_s),
    )


def read_latencies(path: Path) -> list[float]:
    """Read one duration in seconds per line; blank lines are skipped. OSError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BadSampleError(f"{path}: not a text file ({err.reason})") from err
    latencies: list[float] = []
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.strip()
        if not word:
            continue
        try:
            value = float(word)
        except ValueError as err:
            raise BadSampleError(f"{path}, line {number}: {word!r} is not a number") from err
        if not math.isfinite(value):  # float() also reads "nan" and "inf"
            raise BadSampleError(f"{path}, line {number}: {word!r} is not a finite number")
        if value < 0:
            raise BadSampleError(f"{path}, line {number}: {value} is negative")
        latencies.append(value)
    return latencies


# --- Demo plumbing -------------------------------------------------------------------------------

# A typical fast endpoint: most calls near 50 ms, and a slow path ten times longer.
TYPICAL_S = 0.050
SLOW_FACTOR = 10.0


def demo_latencies(samples: int, slow_rate: float, seed: int) -> list[float]:
    """Deterministic synthetic latencies: log-normal around TYPICAL_S, with a slow tail."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    latencies = []
    for _ in range(samples):
        latency = rng.lognormvariate(0.0, 0.25) * TYPICAL_S
        if rng.random() < slow_rate:
            latency *= SLOW_FACTOR
        latencies.append(latency)
    return latencies


def plural(count: int, noun: str) -> str:
    """'1 request', '1,000 requests': a count that reads as English."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def render(summary: LatencySummary, source: str) -> Table:
    """A table of the summary in milliseconds, the unit people read latencies in."""
    table = Table(title=f"Latency of {plural(summary.count, 'request')} ({source})")
    table.add_column("statistic")
    table.add_column("ms", justify="right")
    for label, seconds in [
        ("mean", summary.mean_s),
        ("p50", summary.p50_s),
        ("p95", summary.p95_s),
        ("p99", summary.p99_s),
        ("max", summary.max_s),
    ]:
        table.add_row(label, f"{seconds * 1000:.1f}")
    return table


# --- CLI -----------------------------------------------------------------------------------------


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which slip past its bounds."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def load(path: Path) -> list[float]:
    """The latencies in a file the user named; whatever goes wrong is one line, exit 1."""
    try:
        latencies = read_latencies(path)
    except OSError as err:  # unreadable: permissions, a device, a failing disk
        raise click.ClickException(f"cannot read {path}: {err.strerror}") from err
    except BadSampleError as err:
        raise click.ClickException(str(err)) from err
    if not latencies:
        raise click.ClickException(f"{path} holds no latencies")
    return latencies


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--samples",
    type=click.IntRange(min=1, max=1_000_000),
    default=1_000,
    show_default=True,
    help="How many synthetic latencies to generate.",
)
@click.option(
    "--slow-rate",
    type=FiniteFloat(min=0.0, max=1.0),
    default=0.02,
    show_default=True,
    help="Fraction of synthetic requests that take the slow path.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the demo data.")
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read latencies in seconds, one per line, instead of generating them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(samples: int, slow_rate: float, seed: int, input_path: Path | None, as_json: bool) -> None:
    """Summarise request latencies as p50/p95/p99."""
    if input_path is None:
        latencies = demo_latencies(samples, slow_rate, seed)
        source = "synthetic"
    else:
        latencies = load(input_path)
        source = input_path.name
    summary = summarise(latencies)
    if as_json:
        click.echo(json.dumps(asdict(summary)))
    else:
        Console().print(render(summary, source))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
