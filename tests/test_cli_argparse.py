"""Tests for scripts/cli_argparse.py: run() in-process, then the script as a user runs it.

The log core it shares with cli_click.py is tested against both lessons in test_cli_click.py,
which also holds `independent_stats`, the oracle for what `stats --json` must report.
"""

import argparse
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import cli_argparse
from conftest import ROOT, RUN_TIMEOUT_S, Invocation, ScriptRunner
from test_cli_click import independent_stats

Invoke = Callable[..., Invocation]
EXCLUDE_ENV = "ACCESSLOG_EXCLUDE"

# Every kind of bad argument, with what the one-line message must name ("LOG" is a real log file).
BAD_ARGUMENTS = [
    pytest.param(["top", "LOG", "--limit", "abc"], "--limit", id="wrong type"),
    pytest.param(["top", "LOG", "--limit", "0"], "--limit", id="out of range"),
    pytest.param(["stats", "no-such.log"], "FILE", id="missing file"),
    pytest.param(["stats", "."], "FILE", id="directory"),
    pytest.param(["top", "LOG", "--by", "referrer"], "--by", id="unknown choice"),
    pytest.param(["--status", "6xx", "stats", "LOG"], "--status", id="unknown status class"),
    pytest.param(["stats", "LOG", "--status", "6xx"], "--status", id="unknown status class after"),
    pytest.param(["--colour", "stats", "LOG"], "--colour", id="unknown option"),
    pytest.param(["stats", "LOG", "--colour"], "--colour", id="unknown option after"),
    pytest.param(["top"], "FILE", id="missing argument"),
    pytest.param(["-o"], "--output", id="option without its value"),
    pytest.param(["stats", "LOG", "-o"], "--output", id="option without its value after"),
    pytest.param(["tail", "LOG"], "COMMAND", id="unknown command"),
]


@pytest.fixture(autouse=True)
def no_exclude_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXCLUDE_ENV, raising=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "access.log"
    cli_argparse.write_atomically(path, cli_argparse.sample_lines(1_000))
    return path


def with_log(args: list[str], log: Path) -> list[str]:
    return [str(log) if arg == "LOG" else arg for arg in args]


def json_of(result: Invocation) -> dict:
    assert result.code == 0, result.stderr
    assert result.stdout.count("\n") == 1  # one object, one line, nothing else on stdout
    return json.loads(result.stdout)


# --- run(), in-process ---------------------------------------------------------------------------


def test_json_is_one_object_on_stdout(invoke: Invoke, log: Path) -> None:
    assert json_of(invoke(cli_argparse.run, "--json", "stats", str(log))) == independent_stats(log)


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "-o", "OUT", "--status", "5xx", "stats", "LOG"],
        ["stats", "LOG", "--json", "-o", "OUT", "--status", "5xx"],
        ["--json", "stats", "LOG", "--output", "OUT", "--status", "5xx"],
        ["-o", "OUT", "--status", "5xx", "stats", "LOG", "--json"],
    ],
    ids=["before", "after", "json before", "json after"],
)
def test_shared_options_work_before_and_after_the_command(
    invoke: Invoke, tmp_path: Path, log: Path, args: list[str]
) -> None:
    out = tmp_path / "stats.json"
    result = invoke(
        cli_argparse.run, *(str(out) if arg == "OUT" else arg for arg in with_log(args, log))
    )
    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    assert json.loads(out.read_text(encoding="utf-8")) == independent_stats(log, "5xx")


def test_an_option_after_the_command_overrides_the_one_before(invoke: Invoke, log: Path) -> None:
    args = ["--json", "--status", "2xx", "stats", str(log), "--status", "5xx"]
    assert json_of(invoke(cli_argparse.run, *args)) == independent_stats(log, "5xx")


def test_top_by_status_with_a_limit(invoke: Invoke, log: Path) -> None:
    args = ["top", str(log), "--by", "status", "--limit", "2", "--json"]
    result = json_of(invoke(cli_argparse.run, *args))
    counts = [row["requests"] for row in result["top"]]
    assert result["by"] == "status"
    assert result["top"][0]["key"] == "200"
    assert len(counts) == 2
    assert counts == sorted(counts, reverse=True)


def test_plain_text_table_for_people(invoke: Invoke, log: Path) -> None:
    result = invoke(cli_argparse.run, "top", str(log), "--limit", "3")
    title, header, *rows = result.stdout.splitlines()
    assert title == "Top 3 by path"
    assert header.split() == ["path", "requests", "share"]
    assert len(rows) == 3
    assert len({len(row) for row in [header, *rows]}) == 1  # columns line up


def test_exclude_falls_back_to_the_environment(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, log: Path
) -> None:
    def requests(*args: str) -> int:
        return json_of(invoke(cli_argparse.run, "--json", *args))["requests"]

    everything = requests("stats", str(log))
    from_flags = requests("--exclude", "/healthz", "--exclude", "/static", "stats", str(log))
    after = requests("stats", str(log), "--exclude", "/healthz", "--exclude", "/static")
    monkeypatch.setenv(EXCLUDE_ENV, "/healthz /static")
    assert requests("stats", str(log)) == from_flags == after < everything
    monkeypatch.setenv(EXCLUDE_ENV, "/healthz")
    assert requests("--exclude", "/nothing", "stats", str(log)) == everything  # the flag wins
    assert requests("stats", str(log), "--exclude", "/nothing") == everything


@pytest.mark.parametrize("as_json", [False, True])
def test_output_option_writes_the_file_not_stdout(
    invoke: Invoke, tmp_path: Path, log: Path, as_json: bool
) -> None:
    out = tmp_path / "report.txt"
    args = ["-o", str(out), "stats", str(log)]
    if as_json:
        args.append("--json")
    assert invoke(cli_argparse.run, *args) == Invocation(0, "", "")
    text = out.read_text(encoding="utf-8")
    if as_json:
        assert json.loads(text) == independent_stats(log)
    else:
        assert text.startswith("1,000 requests in access.log\n")


def test_generate_writes_the_sample(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "sample.log"
    result = json_of(invoke(cli_argparse.run, "generate", str(path), "--lines", "300", "--json"))
    assert result == {"file": str(path), "requests": 300, "bytes": path.stat().st_size}
    assert path.read_text(encoding="utf-8") == "".join(cli_argparse.sample_lines(300))


def test_one_request_is_not_requests(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "one.log"
    generated = invoke(cli_argparse.run, "generate", str(path), "--lines", "1")
    assert generated.stderr == f"writing 1 request to {path}\n"
    assert generated.stdout.startswith("wrote 1 request (")
    assert invoke(cli_argparse.run, "stats", str(path)).stdout.startswith("1 request in one.log\n")


def test_no_command_runs_the_demo(invoke: Invoke) -> None:
    result = invoke(cli_argparse.run)
    assert result.code == 0
    assert result.stdout.startswith("2,000 requests in the demo\n")
    assert "Top 5 by path" in result.stdout
    assert "no command" in result.stderr


def test_version(invoke: Invoke) -> None:
    assert invoke(cli_argparse.run, "--version") == Invocation(0, "cli_argparse 1.0.0\n", "")


def test_help_lists_the_shared_options_after_a_command(invoke: Invoke) -> None:
    result = invoke(cli_argparse.run, "stats", "--help")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: cli_argparse stats")
    for option in ["--json", "--output", "--exclude", "--status"]:
        assert option in result.stdout


def test_every_option_is_explained() -> None:
    """argparse has no public list of a parser's arguments: its own _actions it is."""
    parser = cli_argparse.build_parser()
    subparsers = [
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ]
    parsers = [parser, *(command for action in subparsers for command in action.choices.values())]
    for each in parsers:
        for action in each._actions:
            if action.option_strings:
                assert (action.help or "").strip(), f"{each.prog} {action.option_strings[0]}"


@pytest.mark.parametrize(("args", "argument"), BAD_ARGUMENTS)
def test_bad_arguments_are_usage_errors(
    invoke: Invoke, log: Path, args: list[str], argument: str
) -> None:
    message = invoke(cli_argparse.run, *with_log(args, log)).assert_usage_error(argument)
    assert message.startswith("error: ")


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"hello\n", "line 1: not an access-log line"), (b"\xff\xfe", "not a text file")],
)
def test_a_file_that_is_not_a_log_is_a_runtime_error(
    invoke: Invoke, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    result = invoke(cli_argparse.run, "stats", str(path))
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"error: {path}")
    assert problem in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_unreadable_file_is_a_runtime_error(invoke: Invoke) -> None:
    result = invoke(cli_argparse.run, "stats", "/proc/self/mem")  # exists, but reading it fails
    assert result == Invocation(1, "", "error: cannot read /proc/self/mem: Input/output error\n")


@pytest.mark.parametrize("where", ["before", "after"])
def test_unwritable_output_is_a_runtime_error(
    invoke: Invoke, tmp_path: Path, log: Path, where: str
) -> None:
    out = tmp_path / "missing" / "report.txt"
    args = ["-o", str(out), "stats", str(log)]
    if where == "after":
        args = ["stats", str(log), "-o", str(out)]
    result = invoke(cli_argparse.run, *args)
    assert result == Invocation(1, "", f"error: cannot write {out}: No such file or directory\n")
    assert not out.parent.exists()


def test_an_unwritable_sample_is_a_runtime_error(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "missing" / "sample.log"
    result = invoke(cli_argparse.run, "generate", str(path), "--lines", "10")
    assert result.code == 1
    assert result.stderr.endswith(f"error: cannot write {path}: No such file or directory\n")


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("cli_argparse", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["stats"]["requests"] == 2_000
    assert len(result["top"]) == 5


def test_runtime_error_is_one_line_and_exit_1(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n", encoding="utf-8")
    proc = runner.run("cli_argparse", "stats", str(path), "--json")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: {path}, line 1: not an access-log line\n"


@pytest.mark.parametrize(
    "unbuffered", [True, False], ids=["the write fails", "the flush at the end fails"]
)
def test_a_closed_stdout_ends_quietly(runner: ScriptRunner, log: Path, unbuffered: bool) -> None:
    """`cli_argparse.py top access.log | head -1`: head has gone, so the output goes nowhere."""
    env = dict(runner.env)
    if not unbuffered:
        env.pop("PYTHONUNBUFFERED", None)  # the output waits in Python's buffer until exit
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        proc = subprocess.run(
            runner.command("cli_argparse", ["top", str(log), "--by", "ip", "--limit", "100"]),
            cwd=ROOT,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (1, "")


def test_ctrl_c_exits_130_and_leaves_no_half_file(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    args = ["generate", str(path), "--lines", "10000000"]
    assert runner.ctrl_c("cli_argparse", *args, ready="writing") == "interrupted"
    assert list(tmp_path.iterdir()) == []  # neither big.log nor big.log.partial
