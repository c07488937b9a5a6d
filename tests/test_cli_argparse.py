"""Tests for scripts/cli_argparse.py: run() in-process, then the script as a user runs it.

The log core it shares with cli_click.py is tested against both lessons in test_cli_click.py.
"""

import json
from pathlib import Path

import pytest

import cli_argparse
from conftest import ScriptRunner

EXCLUDE_ENV = "ACCESSLOG_EXCLUDE"

# Every kind of bad argument, with what the one-line message must name ("LOG" is a real log file).
BAD_ARGUMENTS = [
    pytest.param(["top", "LOG", "--limit", "abc"], "--limit", id="wrong type"),
    pytest.param(["top", "LOG", "--limit", "0"], "--limit", id="out of range"),
    pytest.param(["stats", "no-such.log"], "FILE", id="missing file"),
    pytest.param(["stats", "."], "FILE", id="directory"),
    pytest.param(["top", "LOG", "--by", "referrer"], "--by", id="unknown choice"),
    pytest.param(["--status", "6xx", "stats", "LOG"], "--status", id="unknown status class"),
    pytest.param(["--colour", "stats", "LOG"], "--colour", id="unknown option"),
    pytest.param(["top"], "FILE", id="missing argument"),
    pytest.param(["-o"], "--output", id="option without its value"),
    pytest.param(["tail", "LOG"], "COMMAND", id="unknown command"),
]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "access.log"
    cli_argparse.write_atomically(path, cli_argparse.sample_lines(1_000))
    return path


def with_log(args: list[str], log: Path) -> list[str]:
    return [str(log) if arg == "LOG" else arg for arg in args]


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert cli_argparse.run(["--json", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one object, one line, nothing else on stdout
    return json.loads(out)


# --- run(), in-process ---------------------------------------------------------------------------


def test_json_is_one_object_on_stdout(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    stats = run_json(capsys, "stats", str(log))
    assert stats["requests"] == 1_000
    assert sum(stats["status_classes"].values()) == 1_000


def test_top_by_status_with_a_limit(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    result = run_json(capsys, "top", str(log), "--by", "status", "--limit", "2")
    counts = [row["requests"] for row in result["top"]]
    assert result["top"][0]["key"] == "200"
    assert len(counts) == 2
    assert counts == sorted(counts, reverse=True)


def test_status_filter_applies_to_the_command(
    capsys: pytest.CaptureFixture[str], log: Path
) -> None:
    stats = run_json(capsys, "--status", "5xx", "stats", str(log))
    assert stats["requests"] == stats["status_classes"]["5xx"] > 0


def test_plain_text_table_for_people(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    assert cli_argparse.run(["top", str(log), "--limit", "3"]) == 0
    title, header, *rows = capsys.readouterr().out.splitlines()
    assert title == "Top 3 by path"
    assert header.split() == ["path", "requests", "share"]
    assert len(rows) == 3
    assert len({len(row) for row in [header, *rows]}) == 1  # columns line up


def test_exclude_falls_back_to_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, log: Path
) -> None:
    everything = run_json(capsys, "stats", str(log))["requests"]
    from_flags = run_json(
        capsys, "--exclude", "/healthz", "--exclude", "/static", "stats", str(log)
    )
    monkeypatch.setenv(EXCLUDE_ENV, "/healthz /static")
    from_env = run_json(capsys, "stats", str(log))
    assert from_env == from_flags
    assert from_env["requests"] < everything
    monkeypatch.setenv(EXCLUDE_ENV, "/healthz")
    assert run_json(capsys, "--exclude", "/nothing", "stats", str(log))["requests"] == everything


@pytest.mark.parametrize("as_json", [False, True])
def test_output_option_writes_the_file_not_stdout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, log: Path, as_json: bool
) -> None:
    out = tmp_path / "report.txt"
    assert (
        cli_argparse.run([*(["--json"] if as_json else []), "-o", str(out), "stats", str(log)]) == 0
    )
    assert capsys.readouterr().out == ""
    text = out.read_text(encoding="utf-8")
    if as_json:
        assert json.loads(text)["requests"] == 1_000
    else:
        assert text.startswith("1,000 requests in access.log\n")


def test_generate_writes_the_sample(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "sample.log"
    result = run_json(capsys, "generate", str(path), "--lines", "300")
    assert result == {"file": str(path), "requests": 300, "bytes": path.stat().st_size}
    assert path.read_text(encoding="utf-8") == "".join(cli_argparse.sample_lines(300))


def test_no_command_runs_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_argparse.run([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("2,000 requests in the demo\n")
    assert "Top 5 by path" in captured.out
    assert "no command" in captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_argparse.run(["--version"]) == 0
    assert capsys.readouterr().out == "cli_argparse 1.0.0\n"


@pytest.mark.parametrize(("args", "argument"), BAD_ARGUMENTS)
def test_usage_errors_return_2_with_one_line(
    capsys: pytest.CaptureFixture[str], log: Path, args: list[str], argument: str
) -> None:
    assert cli_argparse.run(with_log(args, log)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1
    assert argument in captured.err


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"hello\n", "line 1: not an access-log line"), (b"\xff\xfe", "not a text file")],
)
def test_runtime_errors_return_1_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    assert cli_argparse.run(["stats", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}")
    assert problem in err
    assert err.count("\n") == 1


def test_unwritable_output_is_a_runtime_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, log: Path
) -> None:
    out = tmp_path / "missing" / "report.txt"
    assert cli_argparse.run(["-o", str(out), "stats", str(log)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "No such file or directory" in err
    assert err.count("\n") == 1
    assert not out.parent.exists()


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_is_a_demo(runner: ScriptRunner) -> None:
    proc = runner.run("cli_argparse")
    assert proc.returncode == 0, proc.stderr
    assert "2,000 requests in the demo" in proc.stdout
    assert "Top 5 by path" in proc.stdout


@pytest.mark.parametrize(("args", "argument"), BAD_ARGUMENTS)
def test_bad_arguments_are_one_line_and_exit_2(
    runner: ScriptRunner, log: Path, args: list[str], argument: str
) -> None:
    message = runner.usage_error("cli_argparse", *with_log(args, log), argument=argument)
    assert message.startswith("error: ")


def test_runtime_error_is_one_line_and_exit_1(runner: ScriptRunner, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n", encoding="utf-8")
    proc = runner.run("cli_argparse", "--json", "stats", str(path))
    assert proc.returncode == 1
    assert proc.stderr == f"error: {path}, line 1: not an access-log line\n"
    assert proc.stdout == ""


def test_json_and_output_file(runner: ScriptRunner, tmp_path: Path, log: Path) -> None:
    out = tmp_path / "top.json"
    proc = runner.run("cli_argparse", "--json", "-o", str(out), "top", str(log), "--by", "ip")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8"))["by"] == "ip"
