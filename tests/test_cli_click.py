"""Tests for scripts/cli_click.py: the commands in-process, then the script as users run it.

The log core is the same in cli_click.py and cli_argparse.py (so the two CLIs compare line by
line); tests/test_cli_argparse.py tests it in both. This module imports no other lesson, so
graduate.py can give it to a package made of cli_click alone. Both CLI test modules share its
helpers: `write_sample_log`, which writes a log of their own, and `independent_stats`, the oracle
that counts it without the lessons' regex.
"""

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import cli_click
from conftest import Invocation, ScriptRunner

Invoke = Callable[..., Invocation]
EXCLUDE_ENV = "ACCESSLOG_EXCLUDE"

COMBINED = '10.0.0.1 - - [01/Jan/2026:00:00:01 +0000] "GET /api?id=3 HTTP/1.1" 503 120 "-" "curl"\n'
COMMON = '10.0.0.2 - bob [01/Jan/2026:00:00:02 +0000] "POST /healthz HTTP/1.0" 204 -\n'

# --- shared by both CLI test modules -------------------------------------------------------------


def write_sample_log(path: Path, lines: int, seed: int = 7) -> Path:
    """A deterministic Common Log Format file: health checks, an API and static files."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    paths = {"/healthz": 30, "/api/orders": 25, "/api/users": 15, "/static/app.js": 20, "/": 10}
    statuses = {200: 86, 304: 6, 404: 5, 503: 3}
    with path.open("w", encoding="utf-8") as out:
        for number in range(lines):
            ip = f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 25)}"
            where = rng.choices(list(paths), weights=list(paths.values()))[0]
            status = rng.choices(list(statuses), weights=list(statuses.values()))[0]
            size = rng.randint(200, 5_000)
            time = f"01/Jan/2026:00:{number // 60 % 60:02d}:{number % 60:02d} +0000"
            out.write(f'{ip} - - [{time}] "GET {where} HTTP/1.1" {status} {size}\n')
    return path


def independent_stats(log: Path, *exclude: str) -> dict:
    """What `stats --json` must say of a sample log, counted with str.split, not the regex."""
    classes = {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
    for line in log.read_text(encoding="utf-8").splitlines():
        fields = line.split()  # IP - - [DAY:TIME ZONE] "GET PATH HTTP/1.1" STATUS SIZE
        if not fields[6].startswith(exclude):
            classes[f"{fields[8][0]}xx"] += 1
    return {"requests": sum(classes.values()), "status_classes": classes, "skipped": 0}


def json_of(result: Invocation) -> dict:
    assert result.code == 0, result.stderr
    assert result.stdout.count("\n") == 1  # one object, one line, nothing else on stdout
    return json.loads(result.stdout)


# --- the commands, in-process --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_exclude_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXCLUDE_ENV, raising=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write_sample_log(tmp_path / "access.log", 1_000)


def test_json_is_one_object_on_stdout(invoke: Invoke, log: Path) -> None:
    assert json_of(invoke(cli_click.run, "--json", "stats", str(log))) == independent_stats(log)


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
    args = [str(log) if arg == "LOG" else arg for arg in args]
    assert json_of(invoke(cli_click.run, *args)) == independent_stats(log, "/healthz")


def test_every_command_takes_json_after_its_name(invoke: Invoke, log: Path) -> None:
    top = json_of(invoke(cli_click.run, "top", str(log), "--by", "status", "--json"))
    assert top["by"] == "status"
    assert json_of(invoke(cli_click.run, "stats", str(log), "--json"))["requests"] == 1_000


def test_exclude_after_the_command_adds_to_the_ones_before(invoke: Invoke, log: Path) -> None:
    """Regression: --exclude after the command replaced those before it instead of adding."""
    args = ["--json", "--exclude", "/healthz", "stats", str(log), "--exclude", "/static"]
    expected = independent_stats(log, "/healthz", "/static")
    assert json_of(invoke(cli_click.run, *args)) == expected
    assert expected["requests"] < independent_stats(log, "/static")["requests"]


def test_unparsable_lines_are_skipped_and_counted(invoke: Invoke, log: Path) -> None:
    """Regression: one line not in the log format made the whole file an error."""
    expected = independent_stats(log)
    with log.open("a", encoding="utf-8") as out:
        out.write('10.0.0.9 - - [01/Jan/2026:00:00:03 +0000] "-" 400 0\n\x16\x03\x01\n')
    result = invoke(cli_click.run, "stats", str(log), "--json")
    assert json_of(result) == {**expected, "skipped": 2}
    assert result.stderr == "skipped 2 lines not in the log format\n"
    assert json_of(invoke(cli_click.run, "top", str(log), "--json"))["skipped"] == 2


def test_a_byte_that_is_not_utf8_costs_nothing_but_itself(invoke: Invoke, log: Path) -> None:
    """Regression: one Latin-1 byte anywhere made the whole log "not a text file"."""
    expected = independent_stats(log)
    with log.open("ab") as out:
        out.write(b'10.0.0.9 - - [01/Jan/2026:00:00:03 +0000] "GET /caf\xe9 HTTP/1.1" 200 5\n')
    result = json_of(invoke(cli_click.run, "stats", str(log), "--json"))
    assert result["requests"] == expected["requests"] + 1
    assert result["status_classes"]["2xx"] == expected["status_classes"]["2xx"] + 1


def test_top_by_status_with_a_limit(invoke: Invoke, log: Path) -> None:
    result = json_of(
        invoke(cli_click.run, "--json", "top", str(log), "--by", "status", "--limit", "2")
    )
    counts = [row["requests"] for row in result["top"]]
    assert result["by"] == "status"
    assert result["top"][0]["key"] == "200"
    assert len(counts) == 2
    assert counts == sorted(counts, reverse=True)


def test_exclude_reaches_top(invoke: Invoke, log: Path) -> None:
    top = json_of(invoke(cli_click.run, "top", str(log), "--exclude", "/healthz", "--json"))
    assert "/healthz" not in [row["key"] for row in top["top"]]
    assert len(top["top"]) == 4


def test_exclude_falls_back_to_the_environment(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, log: Path
) -> None:
    def requests(*args: str) -> int:
        return json_of(invoke(cli_click.run, "--json", *args))["requests"]

    everything = requests("stats", str(log))
    from_flags = requests("--exclude", "/healthz", "--exclude", "/static", "stats", str(log))
    after = requests("stats", str(log), "--exclude", "/healthz", "--exclude", "/static")
    monkeypatch.setenv(EXCLUDE_ENV, "/healthz /static")
    assert requests("stats", str(log)) == from_flags == after < everything
    monkeypatch.setenv(EXCLUDE_ENV, "/healthz")
    assert requests("--exclude", "/nothing", "stats", str(log)) == everything  # the flag wins
    assert requests("stats", str(log), "--exclude", "/nothing") == everything


def test_tables_for_people(invoke: Invoke, log: Path) -> None:
    result = invoke(cli_click.run, "top", str(log), "--limit", "3")
    assert result.code == 0, result.stderr
    assert "Top 3 by path" in result.stdout
    assert "/healthz" in result.stdout


def test_no_command_runs_the_demo(invoke: Invoke) -> None:
    result = invoke(cli_click.run)
    assert result.code == 0, result.stderr
    assert "8 requests in the demo" in result.stdout
    assert "Top 5 by path" in result.stdout
    assert result.stderr == "no command: a demo on 8 requests (see --help)\n"


def test_the_demo_takes_the_shared_options(invoke: Invoke) -> None:
    demo = json_of(invoke(cli_click.run, "--exclude", "/healthz", "--json"))
    assert demo["stats"]["requests"] == 5  # the demo log's 8, less its 3 health checks


def test_one_request_is_not_requests(invoke: Invoke, tmp_path: Path) -> None:
    path = write_sample_log(tmp_path / "one.log", 1)
    assert "1 request in one.log" in invoke(cli_click.run, "stats", str(path)).stdout


@pytest.mark.parametrize("command", ["stats", "top"])
def test_help_says_what_file_is(invoke: Invoke, command: str) -> None:
    """click arguments take no help=: the command's docstring explains FILE."""
    result = invoke(cli_click.run, command, "--help")
    assert "FILE, an access log" in " ".join(result.stdout.split())


def test_version(invoke: Invoke) -> None:
    """The program's name and version: the lesson's here, a graduated package's where graduate.py
    made one (test_graduate.py checks `logtool --version` from the wheel)."""
    result = invoke(cli_click.run, "--version")
    assert result.code == 0, result.stderr
    assert re.fullmatch(r"\w+, version \d+\.\d+\.\d+\n", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["top", "LOG", "--limit", "abc"], "'--limit'"),  # wrong type
        (["top", "LOG", "--limit", "0"], "'--limit'"),  # out of range
        (["stats", "missing.log"], "'FILE'"),  # missing file
        (["stats", "."], "'FILE'"),  # a directory
        (["top", "LOG", "--by", "referrer"], "'--by'"),  # unknown choice
        (["stats"], "'FILE'"),  # missing argument
        (["--exclude"], "'--exclude'"),  # an option without its value, before the command
        (["stats", "LOG", "--exclude"], "'--exclude'"),  # and after it
        (["stats", "LOG", "--colour"], "--colour"),  # unknown option
        (["--colour", "stats", "LOG"], "--colour"),
        (["stats", "LOG", "--by", "status"], "--by"),  # an option of another command
        (["tail", "LOG"], "tail"),  # unknown command
    ],
)
def test_bad_arguments_are_usage_errors(
    invoke: Invoke, log: Path, args: list[str], argument: str
) -> None:
    args = [str(log) if arg == "LOG" else arg for arg in args]
    message = invoke(cli_click.run, *args).assert_usage_error(argument)
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
    result = invoke(cli_click.run, "stats", str(path))
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"error: {path}")
    assert problem in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_unreadable_file_is_a_runtime_error(invoke: Invoke) -> None:
    result = invoke(cli_click.run, "stats", "/proc/self/mem")  # exists, but reading it fails
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == "error: cannot read /proc/self/mem: Input/output error\n"


def test_paths_that_look_like_markup_are_printed_as_they_are(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "odd.log"
    path.write_text(COMBINED.replace("/api?id=3", "/a[/b]/[red]x"), encoding="utf-8")
    result = invoke(cli_click.run, "top", str(path))
    assert result.code == 0, result.stderr
    assert "/a[/b]/[red]x" in result.stdout


def test_ctrl_c_is_one_line_and_exit_130(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, log: Path
) -> None:
    """Reading a log takes no time to interrupt: Ctrl-C arrives as the KeyboardInterrupt it is."""

    def interrupted(entries: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_click, "summarise", interrupted)
    result = invoke(cli_click.run, "stats", str(log))
    assert (result.code, result.stdout) == (130, "")
    assert result.stderr.strip() == "interrupted"  # after a newline: click ends the ^C line


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("cli_click", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["stats"]["requests"] == len(cli_click.DEMO_LOG)
    assert len(result["top"]) == 5


def test_runtime_error_is_one_line_and_exit_1(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "binary.log"
    path.write_bytes(b"\xff\xfe\x00")
    proc = runner.run("cli_click", "stats", str(path), "--json")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: {path}: not an access log (no line is in the log format)\n"
