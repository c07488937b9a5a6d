"""Tests for scripts/graduate.py: the block and the files in-process, then real graduations.

Two lessons are graduated end to end (cli_click in-process, starter as the default run): every
step runs for real through uv, against its cache, and must pass. Bad input runs in-process.
"""

import json
import os
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import click
import pytest

import graduate
from conftest import ROOT, SCRIPTS_DIR, Invocation, ScriptRunner, ends_by

Invoke = Callable[..., Invocation]
STEPS = [
    "uv lock",
    "uv sync",
    "sort imports",
    "{} --help",
    "pytest",
    "ruff check",
    "ruff format --check",
    "uv build",
    "uv venv",
    "install wheel",
    "wheel: {} --help",
]
BLOCK = '# /// script\n# requires-python = ">=3.12"\n# dependencies = ["click>=8"]\n# ///\n'


def lesson_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lesson.py"
    path.write_text(text, encoding="utf-8")
    return path


def left_running(directory: Path) -> list[int]:
    """Processes working in `directory` that go on running: a step left behind.

    One that ends within a few seconds is not: SIGKILLed, it may take a moment to finish ending.
    """
    deadline = time.monotonic() + 5
    return [pid for pid in processes_in(directory) if not ends_by(pid, deadline)]


def processes_in(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = str((entry / "cwd").readlink())
            except OSError:  # gone, a zombie, or not ours to read
                continue
            if cwd.startswith(str(directory)):
                found.append(int(entry.name))
    return found


# --- reading a lesson ----------------------------------------------------------------------------


def test_the_block_gives_the_project_its_facts() -> None:
    lesson = graduate.read_lesson(SCRIPTS_DIR / "cli_click.py")
    assert (lesson.stem, lesson.requires_python) == ("cli_click", ">=3.11")
    assert lesson.dependencies == ["click", "rich"]
    assert lesson.exclude_newer == "2026-11-20T00:00:00Z"
    assert lesson.summary.startswith("Build a command-line tool with click")
    assert lesson.code.startswith('"""Build a command-line tool')  # the block has moved out
    assert "# /// script" not in lesson.code
    compile(lesson.code, "cli_click.py", "exec")


def test_a_block_without_a_date_leaves_the_lock_undated(tmp_path: Path) -> None:
    lesson = graduate.read_lesson(lesson_file(tmp_path, BLOCK + "def main() -> None: ...\n"))
    assert (lesson.requires_python, lesson.dependencies) == (">=3.12", ["click>=8"])
    assert (lesson.exclude_newer, lesson.summary) == (None, "lesson")
    assert "[tool.uv]" not in graduate.project_files(lesson, "tool", {}, None)["pyproject.toml"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('"""No block."""\n', "no PEP 723 block"),
        ('# /// script\n# dependencies = ["click"\n# ///\n', "not valid TOML"),
        ("# /// script\n# requires-python = \n# ///\n", "not valid TOML"),
    ],
)
def test_a_missing_or_broken_block_is_an_error(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        graduate.read_lesson(lesson_file(tmp_path, text))


def test_the_project_files() -> None:
    lesson = graduate.read_lesson(SCRIPTS_DIR / "cli_click.py")
    tests = graduate.read_tests(ROOT / "tests", "cli_click")
    ruff = (ROOT / "ruff.toml").read_text(encoding="utf-8")
    files = graduate.project_files(lesson, "logtool", tests, ruff)
    assert sorted(files) == [
        ".gitignore",
        "README.md",
        "pyproject.toml",
        "ruff.toml",
        "src/logtool/__init__.py",
        "src/logtool/__main__.py",
        "src/logtool/cli_click.py",
        "src/logtool/py.typed",
        "tests/conftest.py",
        "tests/test_cli_click.py",
    ]
    project = tomllib.loads(files["pyproject.toml"])
    assert project["project"]["name"] == "logtool"
    assert project["project"]["version"] == "0.1.0"
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["project"]["dependencies"] == ["click", "rich"]
    assert project["project"]["scripts"] == {"logtool": "logtool.__main__:main"}
    assert project["dependency-groups"]["dev"] == ["pytest", "ruff"]  # conftest: stdlib, pytest
    assert project["build-system"]["build-backend"] == "uv_build"
    assert project["tool"]["uv"]["exclude-newer"] == "2026-11-20T00:00:00Z"
    assert "from logtool.cli_click import main" in files["src/logtool/__main__.py"]
    assert files["tests/conftest.py"] == (ROOT / "tests" / "conftest.py").read_text(
        encoding="utf-8"
    )
    module = files["tests/test_cli_click.py"]
    assert "\nimport logtool.cli_click as cli_click\n" in module
    assert "\nimport cli_click\n" not in module
    rules = tomllib.loads(files["ruff.toml"])
    assert rules["src"] == ["src", "tests"]  # logtool and conftest are first-party there
    assert rules["lint"] == tomllib.loads(ruff)["lint"]  # the collection's rules, unchanged
    assert "2026-11-20" in files["README.md"]
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("import lesson", "import pkg.lesson as lesson"),
        ("import lesson as x", "import pkg.lesson as x"),
        ("from lesson import A, b", "from pkg.lesson import A, b"),
        ("import lesson_two", "import lesson_two"),  # another module
        ("from lessons import A", "from lessons import A"),
        ("    import lesson", "    import lesson"),  # not a top-level import: left as it is
        ('"""About the lesson."""', '"""About the lesson."""'),
    ],
)
def test_the_tests_import_the_package(line: str, expected: str) -> None:
    text = f"import json\n{line}\n"
    assert graduate.importing_the_package(text, "lesson", "pkg") == f"import json\n{expected}\n"


def test_the_dev_group_is_what_the_tests_import_and_the_package_lacks() -> None:
    lesson = graduate.Lesson(
        "lesson", "", ">=3.11", ["opentelemetry-sdk>=1", "Prometheus_Client", "click"], None, ""
    )
    tests = {
        "tests/test_lesson.py": "import json\nimport hypothesis.strategies as st\nimport clocks\n",
        "tests/clocks.py": "from conftest import runner\nimport opentelemetry.trace\n",
        "tests/conftest.py": "from pkg.lesson import x\nfrom prometheus_client import C\n",
        "tests/other.py": "def f() -> None:\n    import yaml\n    from click import echo\n",
    }
    assert graduate.dev_group(tests, lesson, "pkg") == ["hypothesis", "pytest", "ruff", "yaml"]


def test_the_tests_come_with_their_conftest_and_helpers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no tests at"):
        graduate.read_tests(tmp_path, "lesson")
    (tmp_path / "test_lesson.py").write_text("import lesson\nimport clocks\n", encoding="utf-8")
    (tmp_path / "test_other.py").write_text("import other\n", encoding="utf-8")
    assert graduate.read_tests(tmp_path, "lesson") == {
        "tests/test_lesson.py": "import lesson\nimport clocks\n"
    }
    (tmp_path / "conftest.py").write_text("import pytest\n", encoding="utf-8")
    (tmp_path / "clocks.py").write_text("import time\n", encoding="utf-8")
    assert sorted(graduate.read_tests(tmp_path, "lesson")) == [
        "tests/clocks.py",
        "tests/conftest.py",
        "tests/test_lesson.py",
    ]


def test_the_copied_module_reports_the_packages_version() -> None:
    """Regression: `logtool --version` said `cli_click, version 1.0.0`, the lesson's own."""
    lesson = graduate.read_lesson(SCRIPTS_DIR / "cli_click.py")
    module = graduate.project_files(lesson, "logtool", {}, None)["src/logtool/cli_click.py"]
    old = '@click.version_option("1.0.0", prog_name="cli_click")'
    assert old in lesson.code
    new = '@click.version_option(package_name="logtool", prog_name="logtool")'
    assert module == lesson.code.replace(old, new)


# --- bad input, in-process -----------------------------------------------------------------------


def test_a_non_empty_directory_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = invoke(graduate.run, str(SCRIPTS_DIR / "starter.py"), "--to", str(tmp_path))
    assert "--force" in result.assert_usage_error("'--to'")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "notes.txt"]  # nothing written


@pytest.mark.parametrize(
    ("text", "argument"),
    [('"""No block."""\n', "no PEP 723 block"), ("# /// script\n# x = \n# ///\n", "not valid")],
)
def test_a_script_without_a_good_block_is_refused(
    invoke: Invoke, tmp_path: Path, text: str, argument: str
) -> None:
    message = invoke(graduate.run, str(lesson_file(tmp_path, text))).assert_usage_error(argument)
    assert "'SCRIPT'" in message


@pytest.mark.parametrize(
    ("tests", "problem"),
    [(None, "no tests at"), ("def broken(:\n", "invalid syntax (test_lesson.py, line 1)")],
    ids=["none", "not Python"],
)
def test_a_script_without_tests_to_prove_it_is_refused(
    invoke: Invoke, tmp_path: Path, tests: str | None, problem: str
) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "tests").mkdir()
    script = lesson_file(tmp_path / "scripts", BLOCK + "def main() -> None: ...\n")
    if tests is not None:
        (tmp_path / "tests" / "test_lesson.py").write_text(tests, encoding="utf-8")
    project = tmp_path / "project"
    message = invoke(graduate.run, str(script), "--to", str(project)).assert_usage_error("'SCRIPT'")
    assert problem in message
    assert not project.exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--to", str(SCRIPTS_DIR / "starter.py")], "'--to'"),  # a file, not a directory
        (["missing.py"], "'SCRIPT'"),  # as click says it
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_usage_errors(invoke: Invoke, args: list[str], argument: str) -> None:
    invoke(graduate.run, *args).assert_usage_error(argument)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("log-tool", "snake_case"),
        ("Logtool", "snake_case"),
        ("class", "keyword"),  # `import class` cannot be written
        ("json", "standard library"),  # the standard library's json would find the package
        ("click", "need"),  # starter's dependency: the lock would fail
        ("pytest", "need"),  # the dev group's: the command would hide pytest's own
        ("ruff", "need"),
        ("conftest", "tests"),
        ("tests", "tests"),
    ],
)
def test_a_name_that_cannot_work_is_refused_saying_why(
    invoke: Invoke, name: str, reason: str
) -> None:
    """Regression: pytest, ruff and conftest passed, and the proof failed later, at exit 1."""
    message = invoke(graduate.run, "--name", name).assert_usage_error("'--name'")
    assert reason in message


def test_a_lesson_tested_with_another_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    """cli_argparse's tests also test cli_click's core: a package of cli_argparse alone would
    miss it (the uv lock failed on a `cli-click` dev dependency)."""
    project = tmp_path / "project"
    script = str(SCRIPTS_DIR / "cli_argparse.py")
    message = invoke(graduate.run, script, "--to", str(project)).assert_usage_error("'SCRIPT'")
    assert message.endswith("its tests import another lesson too (cli_click)")
    assert not project.exists()


def test_a_name_taken_by_a_dependency_writes_nothing(invoke: Invoke, tmp_path: Path) -> None:
    """Regression: the name was refused only after the files were written, at exit 1.

    Dependency names are compared normalised (PEP 503): `Log.Tool>=1` is the module log_tool.
    """
    (tmp_path / "scripts").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_lesson.py").write_text("import lesson\n", encoding="utf-8")
    block = BLOCK.replace('"click>=8"', '"click>=8", "Log.Tool>=1"')
    lesson = lesson_file(tmp_path / "scripts", block)
    project = tmp_path / "project"
    args = [str(lesson), "--to", str(project), "--name", "log_tool"]
    assert "need" in invoke(graduate.run, *args).assert_usage_error("'--name'")
    assert not project.exists()


def test_force_replaces_the_project_it_wrote(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: --force wrote over an old project file by file; its module and tests stayed,
    and the old tests then ran against the new command."""
    monkeypatch.setattr(graduate, "proof_steps", lambda *args: [graduate.Proof("quick", ["true"])])
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    cli_click = [str(SCRIPTS_DIR / "cli_click.py"), "--name", "logtool"]
    assert invoke(graduate.run, *cli_click, "--to", str(tmp_path), "--force").code == 0
    assert invoke(graduate.run, "--to", str(tmp_path), "--force").code == 0  # starter this time
    assert sorted(path.name for path in (tmp_path / "src").iterdir()) == ["starter"]
    assert sorted(path.name for path in (tmp_path / "tests").iterdir()) == [
        "conftest.py",
        "test_starter.py",
    ]
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"  # not ours: kept


def test_a_to_that_cannot_be_made_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    """Regression: a --to under a file ended in a traceback (NotADirectoryError)."""
    (tmp_path / "f").write_text("a file", encoding="utf-8")
    message = invoke(graduate.run, "--to", str(tmp_path / "f" / "sub")).assert_usage_error("'--to'")
    assert message.endswith("Not a directory")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["sh", "-c", "echo working; echo boom >&2; exit 3"], "error: fails failed: boom\n"),
        (["sleep", "30"], "error: fails failed: no result after 0.2 s\n"),
    ],
    ids=["exit 3", "hangs"],
)
def test_a_failing_step_stops_the_proof(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list, message: str
) -> None:
    """The report shows the failed step, the steps after it do not run; one line, exit 1."""
    plan = [graduate.Proof("fails", command), graduate.Proof("never", ["sh", "-c", "touch never"])]
    monkeypatch.setattr(graduate, "proof_steps", lambda *args: plan)
    monkeypatch.setattr(graduate, "STEP_TIMEOUT_S", 0.2)
    result = invoke(graduate.run, "--to", str(tmp_path / "project"), "--json")
    assert result.code == 1
    steps = json.loads(result.stdout)["steps"]
    assert [(step["name"], step["ok"]) for step in steps] == [("fails", False)]
    assert result.stderr.endswith(message)
    assert not (tmp_path / "project" / "never").exists()
    assert left_running(tmp_path) == []


def test_a_table_for_people(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(graduate, "proof_steps", lambda *args: [graduate.Proof("quick", ["true"])])
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke(graduate.run, "--to", str(tmp_path))
    assert result.code == 0, result.stderr
    assert f"10 files written to {tmp_path}\n" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "quick" in line)
    assert [cell.strip() for cell in row.split("│")][1:3] == ["quick", "ok"]
    assert (tmp_path / "src" / "starter" / "starter.py").is_file()


def test_the_table_says_a_temporary_project_is_gone(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the default run named a directory that no longer existed when it returned."""
    monkeypatch.setattr(graduate, "proof_steps", lambda *args: [graduate.Proof("quick", ["true"])])
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke(graduate.run)
    assert result.code == 0, result.stderr
    title = next(line for line in result.stdout.splitlines() if "files written to" in line)
    assert title.strip().endswith("starter (temporary, removed)")


def test_a_step_can_be_interrupted_itself(tmp_path: Path) -> None:
    """Regression: SIGINT was blocked while a step started, and the step inherited the mask, so
    the lessons' own Ctrl-C tests, run in a graduated project, never saw their SIGINT."""
    step = graduate.run_step("mask", ["grep", "SigBlk", "/proc/self/status"], tmp_path, {})
    blocked = int(step.last_line.split()[-1], 16)
    assert step.ok
    assert not blocked & 1 << (signal.SIGINT - 1), step.last_line


def test_ctrl_c_ends_the_step_and_all_it_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The running step's whole group goes (here a shell, and the sleep it started in the
    background), the steps after it never start, and the run says how far it got.

    Ctrl-C is pressed on this (the main) thread once the shell says the sleep runs, through a
    FIFO: the press waits for that event, not for a guessed time.
    """
    started = tmp_path / "started"
    os.mkfifo(started)
    script = f"sleep 60 & echo $! > {started}; wait"
    plan = [
        graduate.Proof("ctrl-c", ["sh", "-c", script]),
        graduate.Proof("never", ["sh", "-c", "touch never"]),
    ]
    monkeypatch.setattr(graduate, "proof_steps", lambda *args: plan)
    main_thread = threading.get_ident()
    sleeps: list[int] = []

    def press_ctrl_c() -> None:
        sleeps.append(int(started.read_text(encoding="utf-8")))  # blocks until the shell writes
        signal.pthread_kill(main_thread, signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        with pytest.raises(click.Abort, match="interrupted: 0 of 2 steps done"):
            graduate.prove(tmp_path, "project", None, tmp_path)
    finally:
        presser.join()
    assert ends_by(sleeps[0], time.monotonic() + 5)
    assert not (tmp_path / "never").exists()


def test_a_step_that_raises_ends_its_group(tmp_path: Path) -> None:
    """run_step on its own: whatever ends the wait (here the `started` hook raising, once the
    shell says the sleep runs) ends the step's processes too, the background sleep included."""
    started = tmp_path / "started"
    os.mkfifo(started)
    script = f"sleep 60 & echo $! > {started}; wait"
    sleeps: list[int] = []

    def raise_once_running(pgid: int) -> None:
        sleeps.append(int(started.read_text(encoding="utf-8")))  # blocks until the shell writes
        raise RuntimeError(f"stop group {pgid}")

    with pytest.raises(RuntimeError, match="stop group"):
        graduate.run_step("raises", ["sh", "-c", script], tmp_path, {}, raise_once_running)
    assert ends_by(sleeps[0], time.monotonic() + 5)


# --- real graduations: every step through uv -----------------------------------------------------


def test_cli_click_graduates_into_logtool(invoke: Invoke, tmp_path: Path) -> None:
    """The Must show: tests pass, and the wheel installed in a fresh venv runs `logtool --help`."""
    project = tmp_path / "logtool"
    project.mkdir()
    (project / "notes.txt").write_text("kept", encoding="utf-8")
    args = [str(SCRIPTS_DIR / "cli_click.py"), "--to", str(project), "--name", "logtool"]
    invoke(graduate.run, *args).assert_usage_error("'--to'")  # not empty: --force needed
    result = invoke(graduate.run, *args, "--force", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [step["name"] for step in report["steps"]] == [s.format("logtool") for s in STEPS]
    assert all(step["ok"] for step in report["steps"]), report
    assert all(0 <= step["seconds"] < 300 for step in report["steps"])
    assert len(report["files"]) == 10
    assert report["kept"] is True
    ignored = {
        line.rstrip("/") for line in (project / ".gitignore").read_text(encoding="utf-8").split()
    }
    made = {path.name for path in project.iterdir()} - {Path(f).parts[0] for f in report["files"]}
    assert made - ignored == {
        "uv.lock",
        "notes.txt",
    }  # what the tools made is ignored, the lock not
    lesson_tests = (ROOT / "tests" / "test_cli_click.py").read_text(encoding="utf-8")
    ours = (project / "tests" / "test_cli_click.py").read_text(encoding="utf-8")
    assert ours == graduate.importing_the_package(lesson_tests, "cli_click", "logtool")
    assert (project / "uv.lock").is_file()
    assert (project / "dist" / "logtool-0.1.0-py3-none-any.whl").is_file()
    assert (project / "notes.txt").read_text(encoding="utf-8") == "kept"
    lock = tomllib.loads((project / "uv.lock").read_text(encoding="utf-8"))
    assert lock["options"]["exclude-newer"].startswith("2026-11-20")  # the script's date
    command = [str(project / ".venv" / "bin" / "logtool"), "--version"]
    version = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout == "logtool, version 0.1.0\n"  # the package's, not the lesson's


def test_the_default_run_graduates_starter(runner: ScriptRunner) -> None:
    proc = runner.run("graduate", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [step["name"] for step in report["steps"]] == [s.format("starter") for s in STEPS]
    assert all(step["ok"] for step in report["steps"]), report
    assert "src/starter/starter.py" in report["files"]
    assert report["kept"] is False
    assert not Path(report["project"]).exists()  # a temporary directory, removed afterwards


def test_ctrl_c_leaves_no_step_running(runner: ScriptRunner, tmp_path: Path) -> None:
    project = tmp_path / "project"
    line = runner.ctrl_c("graduate", "--to", str(project), ready="running pytest")
    assert line.startswith("interrupted: 4 of 11 steps done")
    assert left_running(tmp_path) == []
