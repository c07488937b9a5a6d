"""Tests for scripts/starter.py: the pattern, the CLI in-process, the real script."""

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

import starter
from conftest import Invocation, ScriptRunner

Invoke = Callable[..., Invocation]

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


@pytest.mark.parametrize(
    ("sample", "value"),
    [([math.nan, 1.0], "nan"), ([0.1, math.inf], "inf"), ([0.2, -0.1], "-0.1"), ([-1.0], "-1.0")],
)
def test_summarise_refuses_what_is_not_a_duration(sample: list[float], value: str) -> None:
    """Regression: [nan, 1.0] gave an all-nan summary, and negatives passed unnoticed."""
    with pytest.raises(ValueError, match=f"^{value} is not a duration"):
        starter.summarise(sample)


def test_read_latencies_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "timings.txt"
    path.write_text("0.1\n\n0.2\n", encoding="utf-8")
    assert starter.read_latencies(path) == [0.1, 0.2]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"0.1\nslow\n", "line 2: 'slow' is not a number"),
        (b"-1\n", "line 1: -1.0 is negative"),
        (b"nan\n", "line 1: 'nan' is not a finite number"),
        (b"\xff\xfe", "not a text file"),
    ],
)
def test_read_latencies_names_the_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "timings.txt"
    path.write_bytes(content)
    with pytest.raises(starter.BadSampleError, match=problem):
        starter.read_latencies(path)


# --- the command line, in-process ----------------------------------------------------------------


def test_json_is_one_object_on_stdout(invoke: Invoke) -> None:
    result = invoke(starter.run, "--samples", "500", "--json")
    assert (result.code, result.stderr) == (0, "")
    summary = json.loads(result.stdout)
    assert set(summary) == {"count", "mean_s", "p50_s", "p95_s", "p99_s", "max_s"}
    assert summary["count"] == 500


def test_the_seed_decides_the_demo_data(invoke: Invoke) -> None:
    first = invoke(starter.run, "--seed", "1", "--json").stdout
    assert invoke(starter.run, "--seed", "1", "--json").stdout == first
    assert invoke(starter.run, "--seed", "2", "--json").stdout != first


def words(text: str) -> str:
    """Text with every run of whitespace made one space: rich wraps a title to its table."""
    return " ".join(text.split())


def test_a_table_for_people(invoke: Invoke) -> None:
    result = invoke(starter.run)
    assert result.code == 0, result.stderr
    assert "Latency of 1,000 requests (synthetic)" in words(result.stdout)
    assert "p99" in result.stdout


def test_one_sample_is_one_request(invoke: Invoke) -> None:
    result = invoke(starter.run, "--samples", "1")
    assert result.code == 0, result.stderr
    assert "Latency of 1 request (synthetic)" in words(result.stdout)


def test_reads_a_file(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "timings.txt"
    path.write_text("\n".join(str(n / 100) for n in range(1, 102)), encoding="utf-8")
    result = json.loads(invoke(starter.run, "--input", str(path), "--json").stdout)
    assert result["count"] == 101
    assert result["p50_s"] == pytest.approx(0.51)


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--samples", "0"], "--samples"),
        (["--samples", "abc"], "--samples"),
        (["--slow-rate", "2"], "--slow-rate"),
        (["--slow-rate", "nan"], "--slow-rate"),
        (["--slow-rate", "inf"], "--slow-rate"),
        (["--slow-rate", "-inf"], "--slow-rate"),
        (["--input", "no-such-file.txt"], "--input"),
        (["--input", "."], "--input"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_usage_errors(invoke: Invoke, args: list[str], argument: str) -> None:
    invoke(starter.run, *args).assert_usage_error(argument)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"0.1\nfast\n", "line 2: 'fast' is not a number"),
        (b"\n\n", "holds no latencies"),
        (b"\xff\xfe", "not a text file (invalid start byte)"),
    ],
)
def test_bad_file_content_is_a_runtime_error(
    invoke: Invoke, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "timings.txt"
    path.write_bytes(content)
    result = invoke(starter.run, "--input", str(path))
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"error: {path}")
    assert result.stderr.endswith(f"{message}\n")
    assert result.stderr.count("\n") == 1


def test_an_unreadable_file_is_a_runtime_error(invoke: Invoke) -> None:
    # /proc/self/mem exists, but reading it from the start fails with EIO.
    result = invoke(starter.run, "--input", "/proc/self/mem")
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == "error: cannot read /proc/self/mem: Input/output error\n"


def test_ctrl_c_is_one_line_and_exit_130(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo takes no time to interrupt, so Ctrl-C arrives here as the KeyboardInterrupt it is.

    A lesson with long-running work presses Ctrl-C for real: runner.ctrl_c(name, ready=...).
    """

    def interrupted(samples: int, slow_rate: float, seed: int) -> list[float]:
        raise KeyboardInterrupt

    monkeypatch.setattr(starter, "demo_latencies", interrupted)
    result = invoke(starter.run)
    assert (result.code, result.stdout) == (130, "")
    assert result.stderr.strip() == "interrupted"


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("starter", "--json")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert json.loads(proc.stdout)["count"] == 1_000


def test_exit_code_and_message_reach_the_shell(runner: ScriptRunner) -> None:
    proc = runner.run("starter", "--input", "/proc/self/mem")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "error: cannot read /proc/self/mem: Input/output error\n"
