"""Tests for scripts/cli_argparse.py: the log core in both CLI lessons, run() in-process, then the
script as a user runs it.

The log core it shares with cli_click.py is tested here against both lessons (test_cli_click.py
imports no other lesson, so that graduate.py can package it alone). test_cli_click.py holds the
helpers both modules use: `write_sample_log` writes a log to analyse, and `independent_stats` is
the oracle for what `stats --json` must report of it.
"""

import argparse
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import cli_argparse
import cli_click
from conftest import ROOT, RUN_TIMEOUT_S, Invocation, ScriptRunner
from test_cli_click import COMBINED, COMMON, independent_stats, json_of, write_sample_log

Invoke = Callable[..., Invocation]
EXCLUDE_ENV = "ACCESSLOG_EXCLUDE"

# --- the log core, in both lessons ---------------------------------------------------------------


@pytest.fixture(params=[cli_click, cli_argparse], ids=["click", "argparse"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    return request.param


def entries(core: ModuleType) -> list:
    return [
        core.LogEntry("/", 200),
        core.LogEntry("/", 503),
        core.LogEntry("/x", 404),
        core.LogEntry("/", 200),
    ]


def test_read_log_reads_combined_and_common_format(core: ModuleType) -> None:
    log = core.read_log([COMBINED, COMMON], "log")
    assert log == core.AccessLog(
        [core.LogEntry("/api?id=3", 503), core.LogEntry("/healthz", 204)], 0
    )


@pytest.mark.parametrize("text", ["hello", '1.2.3.4 - - [t] "GET / HTTP/1.1" ok 12', "{}"])
def test_read_log_skips_other_text(core: ModuleType, text: str) -> None:
    assert core.read_log([COMBINED, text], "log").skipped == 1


def test_read_log_skips_blank_lines_and_excluded_paths(core: ModuleType) -> None:
    lines = [COMBINED, "\n", COMMON]
    assert [entry.path for entry in core.read_log(lines, "log").entries] == [
        "/api?id=3",
        "/healthz",
    ]
    skipping = core.read_log(lines, "log", skip=("/health",))
    assert [entry.path for entry in skipping.entries] == ["/api?id=3"]
    assert skipping.skipped == 0  # neither a blank line nor an excluded request is unparsable


def test_read_log_counts_and_skips_lines_that_are_not_requests(core: ModuleType) -> None:
    """Regression: one nginx `"-" 400 0` line, or TLS bytes on port 80, failed the whole log."""
    no_request = '10.0.0.9 - - [01/Jan/2026:00:00:03 +0000] "-" 400 0\n'
    tls = '10.0.0.9 - - [01/Jan/2026:00:00:04 +0000] "\\x16\\x03\\x01" 400 157\n'
    log = core.read_log([COMBINED, no_request, tls, COMMON], "access.log")
    assert [entry.path for entry in log.entries] == ["/api?id=3", "/healthz"]
    assert log.skipped == 2


def test_read_log_reads_an_open_file(core: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(COMBINED + COMMON, encoding="utf-8")
    with path.open(encoding="utf-8") as lines:
        assert len(core.read_log(lines, str(path)).entries) == 2


def test_read_log_refuses_what_is_not_a_log(core: ModuleType) -> None:
    problem = r"access.log: not an access log \(no line is in the log format\)"
    with pytest.raises(core.BadLogError, match=problem):
        core.read_log(["not a request\n", "\n", "{}\n"], "access.log")


def test_summarise_a_known_sample(core: ModuleType) -> None:
    classes = {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1}
    assert core.summarise(entries(core)) == core.LogStats(requests=4, status_classes=classes)


def test_the_status_classes_add_up_to_the_requests(core: ModuleType) -> None:
    """Regression: a 101 (a WebSocket upgrade) counted as a request but in no status class."""
    lines = [COMMON.replace(" 204 ", f" {status} ") for status in (101, 200, 301, 404, 503, 599)]
    stats = core.summarise(core.read_log(lines, "log").entries)
    assert stats.status_classes == {"1xx": 1, "2xx": 1, "3xx": 1, "4xx": 1, "5xx": 2}
    assert sum(stats.status_classes.values()) == stats.requests == 6
    not_a_status = COMMON.replace(" 204 ", " 000 ")
    assert core.read_log([COMMON, not_a_status], "log").skipped == 1


def test_top_counts_most_requests_first(core: ModuleType) -> None:
    assert core.top_counts(entries(core), "path", 1) == [core.Count("/", 3)]
    by_status = core.top_counts(entries(core), "status", 10)
    assert by_status == [core.Count("200", 2), core.Count("503", 1), core.Count("404", 1)]


def test_the_demo_log_is_a_log(core: ModuleType) -> None:
    """Every line of the built-in demo parses, in both lessons alike."""
    assert core.DEMO_LOG == cli_click.DEMO_LOG
    log = core.read_log(core.DEMO_LOG, "the demo")
    assert (len(log.entries), log.skipped) == (len(core.DEMO_LOG), 0)


# --- run(), in-process ---------------------------------------------------------------------------

# Every kind of bad argument, with what the one-line message must name ("LOG" is a real log file).
BAD_ARGUMENTS = [
    pytest.param(["top", "LOG", "--limit", "abc"], "--limit", id="wrong type"),
    pytest.param(["top", "LOG", "--limit", "0"], "--limit", id="out of range"),
    pytest.param(["stats", "no-such.log"], "FILE", id="missing file"),
    pytest.param(["stats", "."], "FILE", id="directory"),
    pytest.param(["top", "LOG", "--by", "referrer"], "--by", id="unknown choice"),
    pytest.param(["--colour", "stats", "LOG"], "--colour", id="unknown option"),
    pytest.param(["stats", "LOG", "--colour"], "--colour", id="unknown option after"),
    pytest.param(["top"], "FILE", id="missing argument"),
    pytest.param(["--exclude"], "--exclude", id="option without its value"),
    pytest.param(["stats", "LOG", "--exclude"], "--exclude", id="option without its value after"),
    pytest.param(["stats", "LOG", "--by", "status"], "--by", id="option of another command"),
    pytest.param(["tail", "LOG"], "COMMAND", id="unknown command"),
]


@pytest.fixture(autouse=True)
def no_exclude_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXCLUDE_ENV, raising=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write_sample_log(tmp_path / "access.log", 1_000)


def with_log(args: list[str], log: Path) -> list[str]:
    return [str(log) if arg == "LOG" else arg for arg in args]


def test_json_is_one_object_on_stdout(invoke: Invoke, log: Path) -> None:
    assert json_of(invoke(cli_argparse.run, "--json", "stats", str(log))) == independent_stats(log)


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "--exclude", "/healthz", "stats", "LOG"],
        ["stats", "LOG", "--json", "--exclude", "/healthz"],
        ["--json", "stats", "LOG", "--exclude", "/healthz"],
        ["--exclude", "/healthz", "stats", "LOG", "--json"],
    ],
    ids=["before", "after", "json before", "json after"],
)
def test_shared_options_work_before_and_after_the_command(
    invoke: Invoke, log: Path, args: list[str]
) -> None:
    result = invoke(cli_argparse.run, *with_log(args, log))
    assert json_of(result) == independent_stats(log, "/healthz")


def test_exclude_after_the_command_adds_to_the_ones_before(invoke: Invoke, log: Path) -> None:
    """Regression: --exclude after the command replaced those before it instead of adding."""
    args = ["--json", "--exclude", "/healthz", "stats", str(log), "--exclude", "/static"]
    expected = independent_stats(log, "/healthz", "/static")
    assert json_of(invoke(cli_argparse.run, *args)) == expected
    assert expected["requests"] < independent_stats(log, "/static")["requests"]


def test_unparsable_lines_are_skipped_and_counted(invoke: Invoke, log: Path) -> None:
    """Regression: one line not in the log format made the whole file an error."""
    expected = independent_stats(log)
    with log.open("a", encoding="utf-8") as out:
        out.write('10.0.0.9 - - [01/Jan/2026:00:00:03 +0000] "-" 400 0\n\x16\x03\x01\n')
    result = invoke(cli_argparse.run, "stats", str(log), "--json")
    assert json_of(result) == {**expected, "skipped": 2}
    assert result.stderr == "skipped 2 lines not in the log format\n"
    assert json_of(invoke(cli_argparse.run, "top", str(log), "--json"))["skipped"] == 2


def test_a_byte_that_is_not_utf8_costs_nothing_but_itself(invoke: Invoke, log: Path) -> None:
    """Regression: one Latin-1 byte anywhere made the whole log "not a text file"."""
    expected = independent_stats(log)
    with log.open("ab") as out:
        out.write(b'10.0.0.9 - - [01/Jan/2026:00:00:03 +0000] "GET /caf\xe9 HTTP/1.1" 200 5\n')
    result = json_of(invoke(cli_argparse.run, "stats", str(log), "--json"))
    assert result["requests"] == expected["requests"] + 1
    assert result["status_classes"]["2xx"] == expected["status_classes"]["2xx"] + 1


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
    assert header.split() == ["path", "requests"]
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


def test_the_stats_as_a_plain_text_table(invoke: Invoke, log: Path) -> None:
    result = invoke(cli_argparse.run, "stats", str(log))
    title, *rows = result.stdout.splitlines()
    assert title == "1,000 requests in access.log"
    assert [row.split()[0] for row in rows] == ["1xx", "2xx", "3xx", "4xx", "5xx"]
    assert len({len(row) for row in rows}) == 1  # values line up on the right


def test_one_request_is_not_requests(invoke: Invoke, tmp_path: Path) -> None:
    path = write_sample_log(tmp_path / "one.log", 1)
    assert invoke(cli_argparse.run, "stats", str(path)).stdout.startswith("1 request in one.log\n")


def test_no_command_runs_the_demo(invoke: Invoke) -> None:
    result = invoke(cli_argparse.run)
    assert result.code == 0
    assert result.stdout.startswith("8 requests in the demo\n")
    assert "\n\nTop 5 by path\n" in result.stdout
    assert result.stderr == "no command: a demo on 8 requests (see --help)\n"


def test_the_demo_takes_the_shared_options(invoke: Invoke) -> None:
    demo = json_of(invoke(cli_argparse.run, "--exclude", "/healthz", "--json"))
    assert demo["stats"]["requests"] == 5  # the demo log's 8, less its 3 health checks


def test_version(invoke: Invoke) -> None:
    assert invoke(cli_argparse.run, "--version") == Invocation(0, "cli_argparse 1.0.0\n", "")


def test_help_lists_the_shared_options_after_a_command(invoke: Invoke) -> None:
    result = invoke(cli_argparse.run, "stats", "--help")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: cli_argparse stats")
    for option in ["--json", "--exclude"]:
        assert option in result.stdout


def test_every_argument_is_explained() -> None:
    """Options and FILE alike (FILE had none). argparse has no public list: _actions it is."""
    parser = cli_argparse.build_parser()
    subparsers = [
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ]
    parsers = [parser, *(command for action in subparsers for command in action.choices.values())]
    for each in parsers:
        for action in each._actions:
            if action not in subparsers:
                name = [*action.option_strings, action.metavar][0]
                assert (action.help or "").strip(), f"{each.prog} {name}"


@pytest.mark.parametrize(("args", "argument"), BAD_ARGUMENTS)
def test_bad_arguments_are_usage_errors(
    invoke: Invoke, log: Path, args: list[str], argument: str
) -> None:
    message = invoke(cli_argparse.run, *with_log(args, log)).assert_usage_error(argument)
    assert message.startswith("error: ")


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"hello\n", ": not an access log (no line"), (b"\xff\xfe\n", ": not an access log (no")],
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


def test_ctrl_c_is_one_line_and_exit_130(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, log: Path
) -> None:
    """Reading a log takes no time to interrupt: Ctrl-C arrives as the KeyboardInterrupt it is."""

    def interrupted(entries: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_argparse, "summarise", interrupted)
    assert invoke(cli_argparse.run, "stats", str(log)) == Invocation(130, "", "interrupted\n")


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("cli_argparse", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["stats"]["requests"] == len(cli_argparse.DEMO_LOG)
    assert len(result["top"]) == 5


def test_runtime_error_is_one_line_and_exit_1(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n", encoding="utf-8")
    proc = runner.run("cli_argparse", "stats", str(path), "--json")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: {path}: not an access log (no line is in the log format)\n"


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
            runner.command("cli_argparse", ["top", str(log)]),
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
