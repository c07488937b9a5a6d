"""Tests for scripts/cli_click.py: the log core, commands in-process, the script as users run it.

The log core is the same in cli_click.py and cli_argparse.py (so the two CLIs compare line by
line), so its tests here run against both; tests/test_cli_argparse.py tests only its CLI.
"""

import json
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner, Result

import cli_argparse
import cli_click
from conftest import ScriptRunner

COMBINED = '10.0.0.1 - - [01/Jan/2026:00:00:01 +0000] "GET /api?id=3 HTTP/1.1" 503 120 "-" "curl"\n'
COMMON = '10.0.0.2 - bob [01/Jan/2026:00:00:02 +0000] "POST /healthz HTTP/1.0" 204 -\n'

# --- the log core, in both lessons ---------------------------------------------------------------


@pytest.fixture(params=[cli_click, cli_argparse], ids=["click", "argparse"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    return request.param


def entries(core: ModuleType) -> list:
    return [
        core.LogEntry("10.0.0.1", "/", 200, 100),
        core.LogEntry("10.0.0.2", "/", 503, 0),
        core.LogEntry("10.0.0.1", "/x", 404, 50),
        core.LogEntry("10.0.0.3", "/", 200, 10),
    ]


def test_parse_line_reads_combined_and_common_format(core: ModuleType) -> None:
    assert core.parse_line(COMBINED) == core.LogEntry("10.0.0.1", "/api?id=3", 503, 120)
    assert core.parse_line(COMMON) == core.LogEntry("10.0.0.2", "/healthz", 204, 0)
    assert core.parse_line(COMBINED).status_class == "5xx"


@pytest.mark.parametrize("text", ["hello", '1.2.3.4 - - [t] "GET / HTTP/1.1" ok 12', "{}"])
def test_parse_line_refuses_other_text(core: ModuleType, text: str) -> None:
    assert core.parse_line(text) is None


def test_read_log_skips_blank_lines_and_filters(core: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(f"{COMBINED}\n{COMMON}", encoding="utf-8")
    assert [entry.ip for entry in core.read_log(path)] == ["10.0.0.1", "10.0.0.2"]
    assert [entry.path for entry in core.read_log(path, skip=("/health",))] == ["/api?id=3"]
    assert [entry.status for entry in core.read_log(path, status="2xx")] == [204]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (f"{COMBINED}not a request\n".encode(), "line 2: not an access-log line"),
        (b"\xff\xfe", "text"),
    ],
)
def test_read_log_refuses_what_is_not_a_log(
    core: ModuleType, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(content)
    with pytest.raises(core.BadLogError, match=problem):
        core.read_log(path)


def test_summarise_a_known_sample(core: ModuleType) -> None:
    assert core.summarise(entries(core)) == core.LogStats(
        requests=4,
        clients=3,
        status_classes={"2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1},
        error_rate=0.25,
        bytes_sent=160,
    )
    assert core.summarise([]).error_rate == 0.0


def test_top_counts_most_requests_first(core: ModuleType) -> None:
    assert core.top_counts(entries(core), "path", 1) == [core.Count("/", 3, 0.75)]
    by_ip = core.top_counts(entries(core), "ip", 10)
    assert (by_ip[0].key, by_ip[0].requests) == ("10.0.0.1", 2)
    assert len(by_ip) == 3


def test_sample_is_deterministic_and_parses(core: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    size = core.write_atomically(path, core.sample_lines(500, seed=3))
    assert size == path.stat().st_size
    assert path.read_text(encoding="utf-8") == "".join(core.sample_lines(500, seed=3))
    assert path.read_text(encoding="utf-8") != "".join(core.sample_lines(500, seed=4))
    assert core.summarise(core.read_log(path)).requests == 500


def test_interrupted_write_keeps_the_old_file(core: ModuleType, tmp_path: Path) -> None:
    def interrupted() -> object:
        yield "half a line"
        raise KeyboardInterrupt

    path = tmp_path / "access.log"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        core.write_atomically(path, interrupted())
    assert path.read_text(encoding="utf-8") == "old\n"
    assert list(tmp_path.iterdir()) == [path]  # no .partial left behind


def test_both_lessons_analyse_the_same_sample() -> None:
    assert "".join(cli_click.sample_lines(300)) == "".join(cli_argparse.sample_lines(300))


# --- the commands, in-process with CliRunner -----------------------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "access.log"
    cli_click.write_atomically(path, cli_click.sample_lines(1_000))
    return path


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli_click.cli, [str(arg) for arg in args], env=env)


def test_json_is_one_object_on_stdout(log: Path) -> None:
    result = invoke("--json", "stats", log)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats == asdict(cli_click.summarise(cli_click.read_log(log)))
    assert stats["requests"] == 1_000


def test_top_by_status_with_a_limit(log: Path) -> None:
    result = json.loads(invoke("--json", "top", log, "--by", "status", "--limit", "2").stdout)
    counts = [row["requests"] for row in result["top"]]
    assert result["by"] == "status"
    assert result["top"][0]["key"] == "200"
    assert len(counts) == 2
    assert counts == sorted(counts, reverse=True)


def test_group_options_reach_every_command(log: Path) -> None:
    stats = json.loads(invoke("--json", "--status", "5xx", "stats", log).stdout)
    assert stats["requests"] == stats["status_classes"]["5xx"] > 0
    top = json.loads(invoke("--json", "--status", "5xx", "top", log, "--by", "status").stdout)
    assert [row["key"] for row in top["top"]] == ["503"]


def test_exclude_falls_back_to_the_environment(log: Path) -> None:
    def requests(*args: str, env: dict[str, str] | None = None) -> int:
        return json.loads(invoke("--json", *args, "stats", log, env=env).stdout)["requests"]

    everything = requests()
    from_flags = requests("--exclude", "/healthz", "--exclude", "/static")
    assert requests(env={"ACCESSLOG_EXCLUDE": "/healthz /static"}) == from_flags < everything
    assert requests("--exclude", "/nothing", env={"ACCESSLOG_EXCLUDE": "/healthz"}) == everything


def test_tables_for_people(log: Path) -> None:
    result = invoke("top", log, "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "Top 3 by path" in result.stdout
    assert "/healthz" in result.stdout


def test_generate_writes_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "sample.log"
    result = invoke("--json", "generate", path, "--lines", "300", "--seed", "5")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "file": str(path),
        "requests": 300,
        "bytes": path.stat().st_size,
    }
    assert path.read_text(encoding="utf-8") == "".join(cli_click.sample_lines(300, seed=5))
    assert "writing 300 requests" in result.stderr


def test_version() -> None:
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, "cli_click, version 1.0.0\n")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["top", "LOG", "--limit", "abc"], "'--limit'"),
        (["top", "LOG", "--limit", "0"], "'--limit'"),
        (["stats", "missing.log"], "'FILE'"),
        (["top", "LOG", "--by", "referrer"], "'--by'"),
        (["--status", "6xx", "stats", "LOG"], "'--status'"),
        (["stats"], "'FILE'"),
        (["stats", "LOG", "--colour"], "--colour"),
    ],
)
def test_usage_errors_exit_2_naming_the_parameter(log: Path, args: list[str], named: str) -> None:
    result = invoke(*(str(log) if arg == "LOG" else arg for arg in args))
    assert result.exit_code == 2
    assert named in result.stderr
    assert result.stdout == ""


def test_a_file_that_is_not_a_log_is_a_runtime_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n", encoding="utf-8")
    result = invoke("stats", path)
    assert result.exit_code == 1
    assert f"{path}, line 1: not an access-log line" in result.stderr


def test_an_unwritable_file_is_a_runtime_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "sample.log"
    result = invoke("generate", path, "--lines", "10")
    assert result.exit_code == 1
    assert f"cannot write {path}: No such file or directory" in result.stderr


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_is_a_demo(runner: ScriptRunner) -> None:
    proc = runner.run("cli_click")
    assert proc.returncode == 0, proc.stderr
    assert "2,000 requests in the demo" in proc.stdout
    assert "Top 5 by path" in proc.stdout
    assert "no command" in proc.stderr


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("cli_click", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["stats"]["requests"] == 2_000
    assert len(result["top"]) == 5


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["top", "LOG", "--limit", "abc"], "--limit"),  # wrong type
        (["top", "LOG", "--limit", "0"], "--limit"),  # out of range
        (["stats", "no-such.log"], "FILE"),  # missing file
        (["top", "LOG", "--by", "referrer"], "--by"),  # unknown choice
        (["--colour", "stats", "LOG"], "--colour"),  # unknown option
        (["top"], "FILE"),  # missing argument
        (["tail", "LOG"], "tail"),  # unknown command
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    runner: ScriptRunner, log: Path, args: list[str], argument: str
) -> None:
    args = [str(log) if arg == "LOG" else arg for arg in args]
    message = runner.usage_error("cli_click", *args, argument=argument)
    assert message.startswith("error: ")


def test_runtime_error_is_one_line_and_exit_1(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "binary.log"
    path.write_bytes(b"\xff\xfe\x00")
    proc = runner.run("cli_click", "stats", str(path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {path}: not a text file (invalid start byte)"
    assert proc.stdout == ""


@pytest.mark.parametrize("lesson", ["cli_click", "cli_argparse"])
def test_ctrl_c_exits_130_and_leaves_no_half_file(
    runner: ScriptRunner, tmp_path: Path, lesson: str
) -> None:
    path = tmp_path / "big.log"
    line = runner.ctrl_c(lesson, "generate", str(path), "--lines", "10000000", ready="writing")
    assert line == "interrupted"
    assert list(tmp_path.iterdir()) == []  # neither big.log nor big.log.partial


def test_paths_that_look_like_markup_are_printed_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "odd.log"
    path.write_text(COMBINED.replace("/api?id=3", "/a[/b]/[red]x"), encoding="utf-8")
    result = invoke("top", path)
    assert result.exit_code == 0, result.output
    assert "/a[/b]/[red]x" in result.stdout
