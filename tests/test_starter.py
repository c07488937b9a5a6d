"""Tests for scripts/starter.py: the pattern directly, then the script as a user runs it."""

import json
from pathlib import Path

import pytest

import starter
from conftest import ScriptRunner

# --- the pattern ---------------------------------------------------------------------------------


def test_percentiles_are_ordered_and_bounded() -> None:
    latencies = starter.demo_latencies(samples=2_000, slow_rate=0.05, seed=1)
    summary = starter.summarise(latencies)
    assert summary.count == 2_000
    assert min(latencies) <= summary.p50_s <= summary.p95_s <= summary.p99_s <= summary.max_s
    assert summary.max_s == max(latencies)


def test_percentiles_of_a_known_sample() -> None:
    summary = starter.summarise([float(ms) for ms in range(1, 102)])  # 1..101
    assert (summary.p50_s, summary.p95_s, summary.p99_s) == (51.0, 96.0, 100.0)
    assert summary.mean_s == 51.0


def test_a_slow_tail_moves_p99_but_hardly_the_median() -> None:
    fast = starter.summarise(starter.demo_latencies(5_000, slow_rate=0.0, seed=3))
    tail = starter.summarise(starter.demo_latencies(5_000, slow_rate=0.05, seed=3))
    assert tail.p99_s > 5 * fast.p99_s
    assert tail.p50_s < 1.2 * fast.p50_s


def test_single_sample() -> None:
    assert starter.summarise([0.25]) == starter.LatencySummary(1, 0.25, 0.25, 0.25, 0.25, 0.25)


def test_empty_sample_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        starter.summarise([])


def test_read_latencies_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "timings.txt"
    path.write_text("0.1\n\n0.2\n", encoding="utf-8")
    assert starter.read_latencies(path) == [0.1, 0.2]


@pytest.mark.parametrize(
    ("text", "problem"), [("0.1\nslow\n", "line 2"), ("-1\n", "negative"), ("nan\n", "finite")]
)
def test_read_latencies_names_the_bad_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "timings.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(starter.BadSampleError, match=problem):
        starter.read_latencies(path)


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_prints_a_table(runner: ScriptRunner) -> None:
    proc = runner.run("starter")
    assert proc.returncode == 0, proc.stderr
    assert "p99" in proc.stdout
    assert "1,000" in proc.stdout


def test_json_is_one_object_on_stdout(runner: ScriptRunner) -> None:
    proc = runner.run("starter", "--samples", "500", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["count"] == 500
    assert result["p50_s"] <= result["p99_s"]


def test_reads_a_file(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "timings.txt"
    path.write_text("\n".join(str(n / 100) for n in range(1, 102)), encoding="utf-8")
    result = json.loads(runner.run("starter", "--input", str(path), "--json").stdout)
    assert result["count"] == 101
    assert result["p50_s"] == pytest.approx(0.51)


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--samples", "0"], "--samples"),
        (["--samples", "abc"], "--samples"),
        (["--slow-rate", "2"], "--slow-rate"),
        (["--input", "no-such-file.txt"], "--input"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    runner: ScriptRunner, args: list[str], argument: str
) -> None:
    runner.usage_error("starter", *args, argument=argument)


def test_bad_file_content_is_a_runtime_error(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "timings.txt"
    path.write_text("0.1\nfast\n", encoding="utf-8")
    proc = runner.run("starter", "--input", str(path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {path}, line 2: 'fast' is not a number"
