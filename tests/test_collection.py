"""Collection-wide checks: every lesson keeps the anatomy, the shared date, and its own environment.

These are what keep the template from drifting: each rule of the lesson anatomy (README, "Working
on the collection") that a machine can check is checked here, for every file in scripts/, so a new
lesson is held to it without a new test of its own.
"""

import ast
import asyncio
import functools
import importlib
import math
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib.metadata import distributions, packages_distributions
from pathlib import Path

import click
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT, SCRIPTS_DIR, Invocation, ScriptRunner, kill_group

BLOCK = re.compile(r"(?m)^# /// script\s*$\n(?P<body>(?:^#(?: .*)?$\n)+)^# ///\s*$")
SECTIONS = ("Pattern:", "When to use:", "When not to:", "Run:", "Try it:")
MAX_LINES = 300
# Service lessons (an app or a worker, its settings and a scripted client session) get more room:
# the ones the issues named, and the parts split from them, each a service lesson of its own.
SERVICE_LESSONS = {
    "fastapi_service",
    "structured_logging",
    "correlation_id",  # split from structured_logging: the ID across a request and two services
    "observability_overhead",  # the cost of logging, metrics and tracing, side by side
    "metrics",
    "tracing",
    "trace_sampling",  # split from tracing: ratio sampling of whole traces, batch export
    "jobs_api",
    "job_queue",  # split from jobs_api: the queue, its workers and the kill-and-verify run
    "celery_pipeline",
    "celery_redelivery",  # split from celery_pipeline: late acks and a killed worker, survived
    "celery_workflows",  # split from celery_pipeline: chain, group and chord on a real worker
    # Not a service, but it supervises process trees as one does (uv lock, the tests, builds): it
    # writes a project, adapts the lesson's tests and proves both in eight Ctrl-C-safe steps. No
    # split leaves graduate.py doing what issue 12 asks of it without an import between scripts.
    "graduate",
}
MAX_SERVICE_LINES = 450
PATTERN_LINES = 6  # the Pattern paragraph of the docstring: what it is and why it works
LESSONS = sorted(SCRIPTS_DIR.glob("*.py"))
NAMES = [path.stem for path in LESSONS]


def read_block(path: Path) -> dict:
    """The PEP 723 `script` block of a file, parsed as TOML."""
    match = BLOCK.search(path.read_text(encoding="utf-8"))
    assert match, f"{path.name} has no PEP 723 `# /// script` block"
    lines = (line.removeprefix("#").removeprefix(" ") for line in match["body"].splitlines())
    return tomllib.loads("\n".join(lines))


def declared(path: Path) -> set[str]:
    """Canonical names of the distributions a script's block asks for."""
    return {canonicalize_name(Requirement(dep).name) for dep in read_block(path)["dependencies"]}


@functools.cache
def module_owners() -> dict[str, set[str]]:
    """Every installed Python module by dotted name, with the distributions that ship its file."""
    owners: dict[str, set[str]] = {}
    for dist in distributions():
        for file in dist.files or []:
            if file.suffix != ".py":
                continue
            parts = file.with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            owners.setdefault(".".join(parts), set()).add(canonicalize_name(dist.name))
    return owners


def providers(module: str) -> set[str]:
    """The distributions that provide `module`: those shipping the deepest part of its dotted
    path. A namespace package (opentelemetry) is shared by many; its submodules are not."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        found = module_owners().get(".".join(parts[:depth]))
        if found:
            return found
    return {canonicalize_name(dist) for dist in packages_distributions().get(parts[0], [])}


def imported_distributions(path: Path) -> set[str]:
    """Canonical names of the distributions that provide the script's third-party imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from a import b`: b may be a module of its own (from opentelemetry import trace)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    third_party = {module for module in modules if module.partition(".")[0] not in stdlib}
    found = {module: providers(module) for module in third_party}
    missing = sorted(module for module, dists in found.items() if not dists)
    assert not missing, f"{path.name} imports {missing}, which no installed distribution provides"
    return set().union(*found.values())


def docstring(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{path.name} has no module docstring"
    return doc


def collection_date() -> str:
    return read_block(ROOT / "tests" / "run.py")["tool"]["uv"]["exclude-newer"]


def readme_catalog() -> dict[str, list[str]]:
    """Catalog rows of README.md by script name: [summary, dependencies, command]."""
    rows: dict[str, list[str]] = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*\[`?(\w+)`?\]\(scripts/\1\.py\)\s*\|(.*)\|\s*$", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def test_there_are_lessons() -> None:
    assert "starter" in NAMES


@pytest.fixture(params=LESSONS, ids=NAMES)
def lesson(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_block_pins_python_and_the_shared_date(lesson: Path) -> None:
    block = read_block(lesson)
    assert block["requires-python"] == ">=3.11"
    assert block["tool"]["uv"]["exclude-newer"] == collection_date()
    assert isinstance(block["dependencies"], list)


def test_block_lists_exactly_the_third_party_imports(lesson: Path) -> None:
    # Transitive dependencies do not count: a script that imports anyio must list anyio itself.
    assert imported_distributions(lesson) == declared(lesson)


def test_docstring_has_every_section_in_order(lesson: Path) -> None:
    doc = docstring(lesson)
    summary = doc.splitlines()[0]
    assert summary.endswith("."), "the first line is a one-sentence summary"
    positions = [re.search(rf"(?m)^{re.escape(section)}", doc) for section in SECTIONS]
    missing = [section for section, pos in zip(SECTIONS, positions, strict=True) if pos is None]
    assert not missing, f"{lesson.name} docstring lacks {missing}"
    starts = [pos.start() for pos in positions if pos]
    assert starts == sorted(starts), f"sections must come in the order {SECTIONS}"
    assert f"uv run scripts/{lesson.name}" in doc, "the Run section shows the command"


def test_ends_with_a_main_guard(lesson: Path) -> None:
    tree = ast.parse(lesson.read_text(encoding="utf-8"))
    last = tree.body[-1]
    assert isinstance(last, ast.If), "the file ends with `if __name__ == '__main__': main()`"
    assert ast.unparse(last.test) == "__name__ == '__main__'"
    assert ast.unparse(last.body[0]) == "main()"


def test_imports_no_sibling_script(lesson: Path) -> None:
    siblings = set(NAMES) - {lesson.stem}
    tree = ast.parse(lesson.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").partition(".")[0]}
        else:
            continue
        assert not names & siblings, f"{lesson.name} imports a sibling: {names & siblings}"


def test_has_its_own_test_module(lesson: Path) -> None:
    assert (ROOT / "tests" / f"test_{lesson.stem}.py").is_file()


def test_is_short_enough_to_read(lesson: Path) -> None:
    cap = MAX_SERVICE_LINES if lesson.stem in SERVICE_LESSONS else MAX_LINES
    lines = len(lesson.read_text(encoding="utf-8").splitlines())
    assert lines <= cap, f"{lesson.name} has {lines} lines; split the lesson, never squeeze it"


def test_is_written_plainly(lesson: Path) -> None:
    """No formatter opt-outs to pack lines, and no CLI options passed on wholesale as **kwargs."""
    text = lesson.read_text(encoding="utf-8")
    assert "# fmt: skip" not in text
    assert "# fmt: off" not in text
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef) and node.args.kwarg and clicked(node):
            raise AssertionError(f"{node.name}() takes **{node.args.kwarg.arg} from click")


def clicked(function: ast.FunctionDef) -> bool:
    """Whether a function is a click command or group (so its parameters are CLI options)."""
    decorators = [ast.unparse(decorator) for decorator in function.decorator_list]
    return any(re.search(r"\b(command|group)\(", decorator) for decorator in decorators)


def test_pattern_paragraph_is_short(lesson: Path) -> None:
    doc = docstring(lesson)
    pattern = doc[doc.index("Pattern:") : doc.index("When to use:")].rstrip().splitlines()
    assert len(pattern) <= PATTERN_LINES, "say what it is and why it works; tables go to the README"


def test_readme_catalog_lists_every_lesson_once() -> None:
    assert sorted(readme_catalog()) == NAMES


def test_readme_catalog_row_matches_the_script(lesson: Path) -> None:
    summary, dependencies, command = readme_catalog()[lesson.stem]
    assert summary == docstring(lesson).splitlines()[0]
    listed = {canonicalize_name(dep) for dep in re.findall(r"[\w.-]+", dependencies)} - {"none"}
    assert listed == declared(lesson)
    assert command.startswith(f"`uv run scripts/{lesson.name}")


def test_runs_in_its_own_environment(lesson: Path) -> None:
    """The isolation proof: uv builds the environment from the script's block alone."""
    proc = ScriptRunner(isolated=True).run(lesson.stem, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--json" in proc.stdout, "every lesson offers --json"


# --- the command line, in-process --------------------------------------------------------------


def click_commands() -> list[tuple[str, click.Command]]:
    """(lesson, command) for every click command and subcommand in the collection."""
    found = []
    for name in NAMES:
        command = getattr(importlib.import_module(name), "cli", None)
        stack = [command] if isinstance(command, click.Command) else []
        while stack:
            current = stack.pop()
            found.append((f"{name} {current.name}", current))
            if isinstance(current, click.Group):
                stack.extend(current.commands.values())
    return found


COMMANDS = click_commands()
CLICK_LESSONS = sorted({label.split()[0] for label, _ in COMMANDS})


@pytest.mark.parametrize("name", CLICK_LESSONS)
def test_its_tests_can_leave_with_it(name: str) -> None:
    """graduate.py packages a click lesson with its test module and conftest alone, so that
    module imports no other lesson and no other test module (lessons tested together:
    test_lessons_together.py)."""
    tree = ast.parse((ROOT / "tests" / f"test_{name}.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    ours = set(NAMES) | {path.stem for path in (ROOT / "tests").glob("test_*.py")}
    assert imported & ours <= {name}


@pytest.mark.parametrize("name", CLICK_LESSONS)
def test_an_exit_code_from_ctx_exit_is_kept(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """run() hands back what a command passes to ctx.exit(n), as click's standalone mode does."""
    module = importlib.import_module(name)

    @click.command()
    @click.pass_context
    def exits_3(ctx: click.Context) -> None:
        ctx.exit(3)

    monkeypatch.setattr(module, "cli", exits_3)
    assert module.run([]) == 3


@pytest.mark.parametrize(("label", "command"), COMMANDS, ids=[label for label, _ in COMMANDS])
def test_every_option_is_explained(label: str, command: click.Command) -> None:
    unexplained = [
        param.name
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
    ]
    assert not unexplained, f"{label}: options without help text: {unexplained}"


@pytest.mark.parametrize(("label", "command"), COMMANDS, ids=[label for label, _ in COMMANDS])
def test_float_options_refuse_nan_and_inf(label: str, command: click.Command) -> None:
    """nan compares false with every bound, so a plain FloatRange lets it through.

    The command line is parsed as a user's would be, so a type or a callback may refuse it.
    """
    for param in command.params:
        if isinstance(param.type, click.types.FloatParamType):
            for text in ("nan", "inf", "-inf"):
                args = [param.opts[0], text] if isinstance(param, click.Option) else [text]
                with pytest.raises(click.BadParameter) as refused:
                    command.make_context(label, args)
                assert refused.value.param is param, refused.value
                assert not math.isfinite(float(text))


HELP_SNAPSHOTS = ROOT / "tests" / "help"


@pytest.mark.parametrize("name", NAMES)
def test_help_matches_its_snapshot(
    name: str, invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workshop handouts print each lesson's --help: a change to it must be a reviewed one.

    After changing a lesson's options on purpose: UPDATE_HELP=1 uv run tests/run.py -k help
    """
    monkeypatch.setenv("COLUMNS", "80")  # the width click and argparse wrap to, as in CI
    monkeypatch.setattr(sys, "argv", [f"scripts/{name}.py"])  # the name `uv run` gives it
    monkeypatch.setattr(sys.modules["__main__"], "__package__", None)  # not pytest's `-m`
    done = invoke(importlib.import_module(name).run, "--help")
    assert done.code == 0, done.stderr
    snapshot = HELP_SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_HELP"):
        snapshot.write_text(done.stdout, encoding="utf-8")
    assert snapshot.exists(), f"no snapshot yet: UPDATE_HELP=1 uv run tests/run.py -k {name}"
    assert done.stdout == snapshot.read_text(encoding="utf-8")


def test_every_help_snapshot_belongs_to_a_lesson() -> None:
    assert sorted(path.stem for path in HELP_SNAPSHOTS.glob("*.txt")) == NAMES


CTRL_C_HELPERS = [
    name for name in NAMES if hasattr(importlib.import_module(name), "cancel_on_ctrl_c")
]


@pytest.mark.parametrize("name", CTRL_C_HELPERS)
def test_only_the_first_ctrl_c_cancels(name: str) -> None:
    """uv passes a second Ctrl-C on: it must not interrupt the clean-up the first one started."""
    cancel_on_ctrl_c = importlib.import_module(name).cancel_on_ctrl_c
    cleaned_up = []

    async def scenario() -> None:
        async def work() -> None:
            cancel_on_ctrl_c()  # as the demo does, from the task Ctrl-C cancels
            try:
                await asyncio.Event().wait()
            finally:  # the clean-up, which a second cancellation would cut short
                signal.raise_signal(signal.SIGINT)
                for _ in range(3):  # the loop turns, and would deliver a cancellation
                    await asyncio.sleep(0)
                cleaned_up.append(True)

        task = asyncio.create_task(work())
        await asyncio.sleep(0)  # work() starts waiting
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(asyncio.CancelledError):
            await task

    previous = signal.getsignal(signal.SIGINT)
    try:
        asyncio.run(scenario())
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cleaned_up == [True]


# --- the command line, as a process ------------------------------------------------------------


def test_a_closed_stdout_ends_quietly(lesson: Path) -> None:
    """`lesson | head` may close the pipe early: exit 1 with nothing said, as click does."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        proc = subprocess.run(
            ScriptRunner(isolated=True).command(lesson.stem, ["--help"]),
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (1, "")


# --- the harness's own checks -------------------------------------------------------------------


def test_survivor_check_counts_live_processes_only() -> None:
    """A process left running is a survivor; a zombie waiting to be reaped is not."""
    live = subprocess.Popen(["sleep", "60"], start_new_session=True)
    assert kill_group(live.pid)
    assert live.wait(timeout=10) == -9
    exited = subprocess.Popen(["true"], start_new_session=True)
    os.waitid(os.P_PID, exited.pid, os.WEXITED | os.WNOWAIT)  # exited, and not yet reaped
    assert not kill_group(exited.pid)
    assert exited.wait(timeout=10) == 0


def test_survivor_check_lets_a_process_finish_ending() -> None:
    """A helper that ends on its own as the script goes (EOF on its pipe) is not left behind."""
    ending = subprocess.Popen(["cat"], stdin=subprocess.PIPE, start_new_session=True)
    assert ending.stdin is not None
    ending.stdin.close()  # cat reads EOF and exits, as the resource tracker does
    assert not kill_group(ending.pid)
    assert ending.wait(timeout=10) == 0
