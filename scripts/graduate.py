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
"""Graduate a lesson script into a package with an entry point, a lock file and a wheel.

Pattern:       The script's PEP 723 block already says what a project needs: Python, dependencies
               and the exclude-newer date (the lock's cut-off). Write them into pyproject.toml (an
               entry point at the CLI's main(), the uv_build backend), the code into src/<name>/,
               the lesson's tests into tests/, importing the package (their imports: the dev group),
               then prove it as CI would: lock, sync, --help, the tests, build, and the wheel,
               installed in a fresh environment, runs the command.
When to use:   A copied script that grew: others install it, it needs tests, a version, a release.
When not to:   A script you run now and then: its block is already a reproducible environment.
Run:           uv run scripts/graduate.py            (starter.py, into a temporary directory)
               uv run scripts/graduate.py scripts/cli_click.py --to /tmp/logtool --name logtool
Try it:        The default run: eight steps ok; uv build takes milliseconds (uv's own backend).
               --to a project made before: exit 2 until --force; in it, `uv run logtool --help`.
"""

import ast
import json
import keyword
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
# The PEP 723 reference regex: a `# /// script` line, comment lines, a `# ///` line.
BLOCK = re.compile(r"(?m)^# /// script\s*$\n(?P<body>(?:^#(?: .*)?$\n)+)^# ///\s*$\n?")
VERSION = "0.1.0"  # a first release: the copied module's --version reads it from the package
VERSION_OPTION = re.compile(r"click\.version_option\([^()]*\)")  # the lesson's own version
STEP_TIMEOUT_S = 600.0  # a cold cache downloads every wheel: generous, yet no step hangs for ever
BACKEND = "uv_build>=0.13.9,<0.14"  # holding uv's version, uv builds with its own: no download


@dataclass(frozen=True)
class Lesson:
    """What a project takes from a lesson script: its block's facts, and its code without it."""

    stem: str
    summary: str  # the docstring's first line
    requires_python: str
    dependencies: list[str]
    exclude_newer: str | None  # the block's [tool.uv] date: the lock resolves nothing newer
    code: str


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    seconds: float
    last_line: str  # of what the step printed: why it failed, if it did


def read_lesson(path: Path) -> Lesson:
    """A lesson's PEP 723 block, parsed as TOML, and its code without it; else ValueError."""
    text = path.read_text(encoding="utf-8")
    match = BLOCK.search(text)
    if match is None:
        raise ValueError("no PEP 723 block (# /// script ... # ///)")
    lines = [line.removeprefix("#").removeprefix(" ") for line in match["body"].splitlines()]
    try:
        block = tomllib.loads("\n".join(lines))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"its PEP 723 block is not valid TOML: {err}") from err
    code = (text[: match.start()] + text[match.end() :]).lstrip("\n")
    summary = code.split('"""')[1].splitlines()[0] if code.startswith('"""') else path.stem
    date = block.get("tool", {}).get("uv", {}).get("exclude-newer")
    requires = block.get("requires-python", ">=3.11")
    return Lesson(path.stem, summary, requires, block.get("dependencies", []), date, code)


def read_tests(script: Path) -> dict[str, str]:
    """The lesson's tests where the collection keeps them (tests/ beside scripts/), by file name:
    its test module, and the conftest with the fixtures it uses; else ValueError."""
    module = script.resolve().parent.parent / "tests" / f"test_{script.stem}.py"
    if not module.is_file():
        raise ValueError(f"no tests at {module}, and the tests are what prove the package")
    tests = {module.name: module.read_text(encoding="utf-8")}
    conftest = module.with_name("conftest.py")
    if conftest.is_file():
        tests[conftest.name] = conftest.read_text(encoding="utf-8")
    return tests


def importing_the_package(test: str, stem: str, name: str) -> str:
    """A test file, made to test the package: `from x import` becomes `from name.x import`, then
    `import x` becomes `from name import x` (`as y` kept)."""
    test = re.sub(rf"(?m)^from {stem} import", f"from {name}.{stem} import", test)
    return re.sub(rf"(?m)^import {stem}\b", f"from {name} import {stem}", test)


def distribution(requirement: str) -> str:
    """A requirement's distribution, named as PEP 503 compares names: `Log.Tool>=1` is log-tool."""
    return re.sub(r"[-_.]+", "-", re.split(r"[^\w.-]", requirement)[0]).lower()


def dev_group(tests: Sequence[str], lesson: Lesson, name: str) -> list[str]:
    """pytest, ruff, and the distributions the tests import that the package does not bring."""
    brought = set()
    for requirement in lesson.dependencies:
        brought.add(distribution(requirement))
        brought.add(distribution(requirement).split("-")[0])  # opentelemetry-sdk: opentelemetry
    local = {name, "conftest", *sys.stdlib_module_names}
    needed = {"pytest", "ruff"}
    nodes = [node for text in tests for node in ast.walk(ast.parse(text))]
    for node in nodes:
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        else:
            continue
        for top in (module.split(".")[0] for module in modules):
            if top not in local and distribution(top) not in brought:
                needed.add(distribution(top))
    return sorted(needed)


def project_files(lesson: Lesson, name: str, tests: Mapping[str, str]) -> dict[str, str]:
    """Every file of the project, by its path from the project's root; `tests` by file name."""
    adapted = {
        f"tests/{file}": importing_the_package(text, lesson.stem, name)
        for file, text in tests.items()
    }
    toml = f"""[project]
name = "{name}"
version = "{VERSION}"
description = {json.dumps(lesson.summary)}
readme = "README.md"
requires-python = {json.dumps(lesson.requires_python)}
dependencies = {json.dumps(lesson.dependencies)}

[project.scripts]
{name} = "{name}.__main__:main"

[dependency-groups]
dev = {json.dumps(dev_group(list(adapted.values()), lesson, name))}

[build-system]
requires = ["{BACKEND}"]
build-backend = "uv_build"
"""
    if lesson.exclude_newer:  # the script's date becomes the lock's cut-off
        toml += f'\n[tool.uv]\nexclude-newer = "{lesson.exclude_newer}"\n'
    readme = f"""# {name}

{lesson.summary} From `scripts/{lesson.stem}.py`, by graduate.py: `uv run {name} --help`.
tests/ holds the lesson's own tests, importing the package: `uv run pytest`.
uv.lock holds nothing newer than {lesson.exclude_newer or "its day"} (`[tool.uv] exclude-newer`):
move it and `uv lock --upgrade`. Data files: src/{name}/ via importlib.resources, not `__file__`.
"""
    module = VERSION_OPTION.sub(
        f'click.version_option(package_name="{name}", prog_name="{name}")', lesson.code
    )
    entry = f'"""`python -m {name}` and the `{name}` command."""\n\n'
    entry += f"from {name}.{lesson.stem} import main\n"
    return {
        "pyproject.toml": toml,
        "README.md": readme,
        f"src/{name}/__init__.py": f'"""{lesson.summary}"""\n',
        f"src/{name}/py.typed": "",
        f"src/{name}/__main__.py": entry + '\nif __name__ == "__main__":\n    main()\n',
        f"src/{name}/{lesson.stem}.py": module,
        **adapted,
    }


def run_step(name: str, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Step:
    """Run one command in a process group of its own; on Ctrl-C, end the whole group first."""
    started = time.perf_counter()
    held: list[int] = []  # a Ctrl-C while the step starts waits until it can stop the step
    stopping = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:  # not a blocked SIGINT: the step's processes would inherit the mask, and ignore Ctrl-C
        proc = subprocess.Popen(  # noqa: S603 - the commands are the proof steps, built below
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a group of its own: Ctrl-C is ours to pass on, all at once
        )
    except BaseException:
        signal.signal(signal.SIGINT, stopping)
        raise
    with proc:  # on the way out, however it goes: the pipe closed, the process reaped
        try:
            signal.signal(signal.SIGINT, stopping)
            if held:
                signal.raise_signal(signal.SIGINT)  # the Ctrl-C held while the step started
            output, _ = proc.communicate(timeout=STEP_TIMEOUT_S)
        except BaseException:  # Ctrl-C, or a step that hangs: none of its processes outlives it
            with suppress(ProcessLookupError):  # the group is gone already
                os.killpg(proc.pid, signal.SIGKILL)  # uv and all it started (its cache survives)
            proc.wait()  # Popen's own exit waits only 0.25 s after a Ctrl-C
            raise
    lines = output.strip().splitlines() or ["(no output)"]
    return Step(name, proc.returncode == 0, round(time.perf_counter() - started, 2), lines[-1])


def proof_steps(project: Path, name: str, venv: Path, date: str | None) -> list[tuple[str, list]]:
    """(name, command) of each proof, in order: the project's checks, then the wheel's."""
    wheel = project / "dist" / f"{name}-{VERSION}-py3-none-any.whl"
    newer = ["--exclude-newer", date] if date else []  # the lock's cut-off for the wheel's deps
    return [
        ("uv lock", ["uv", "lock"]),
        ("uv sync", ["uv", "sync"]),
        (f"{name} --help", ["uv", "run", "--frozen", name, "--help"]),
        ("pytest", ["uv", "run", "--frozen", "pytest", "-q"]),
        ("uv build", ["uv", "build"]),
        ("uv venv", ["uv", "venv", str(venv)]),
        ("install wheel", ["uv", "pip", "install", "--python", str(venv), *newer, str(wheel)]),
        (f"wheel: {name} --help", [str(venv / "bin" / name), "--help"]),
    ]


# --- Demo plumbing -------------------------------------------------------------------------------
NAME = re.compile(r"[a-z][a-z0-9_]*")  # one word for the project, the package and the command
LEFT_OUT = ("VIRTUAL_ENV", "PYTHONPATH")  # the caller's; the steps run in the project's alone


def interrupt_once(signum: int, frame: object) -> None:
    """The first Ctrl-C stops the step; uv passes a second one on, which must not cut the stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def prove(project: Path, name: str, exclude_newer: str | None, scratch: Path) -> list[Step]:
    """Run the proof steps until one fails; Ctrl-C says how far they got."""
    steps: list[Step] = []
    env = {key: value for key, value in os.environ.items() if key not in LEFT_OUT}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    plan = proof_steps(project, name, scratch / "venv", exclude_newer)
    previous = signal.signal(signal.SIGINT, interrupt_once)
    try:
        for label, command in plan:
            click.echo(f"running {label}", err=True)
            steps.append(run_step(label, command, project, env))
            if not steps[-1].ok:
                break
    except subprocess.TimeoutExpired as err:
        steps.append(Step(label, False, err.timeout, f"no result after {err.timeout:g} s"))
    except KeyboardInterrupt:
        done = f"{len(steps)} of {len(plan)} steps done"
        raise click.Abort(f"interrupted: {done}, no step left running") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    return steps


def show(target: Path, files: Sequence[str], steps: Sequence[Step], as_json: bool) -> None:
    if as_json:
        rows = [{"name": step.name, "ok": step.ok, "seconds": step.seconds} for step in steps]
        click.echo(json.dumps({"project": str(target), "files": list(files), "steps": rows}))
        return
    title = f"{len(files)} files written to {target}"
    table = Table("step", "result", "seconds", title=title, min_width=len(title))  # on one line
    for step in steps:
        table.add_row(step.name, "ok" if step.ok else "FAILED", f"{step.seconds:.2f}")
    Console().print(table)


# --- CLI -----------------------------------------------------------------------------------------
LESSON = click.Path(exists=True, dir_okay=False, path_type=Path)
STARTER = Path(__file__).with_name("starter.py")  # the default SCRIPT: the collection's template
PROJECT = click.Path(file_okay=False, path_type=Path)  # a file there: exit 2, naming --to


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("script", type=LESSON, metavar="SCRIPT", default=STARTER)
@click.option("--to", "target", type=PROJECT, help="The project's directory (default: temporary).")
@click.option("--name", help="The project's, package's and command's name (default: SCRIPT's).")
@click.option("--force", is_flag=True, help="Write into --to even if it is not empty.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(script: Path, target: Path | None, name: str | None, force: bool, as_json: bool) -> None:
    """Turn SCRIPT, a lesson with a click CLI, into a package, and prove the package works."""
    try:
        lesson = read_lesson(script)
    except ValueError as err:  # no block, a broken one, or not UTF-8 text
        raise click.BadParameter(f"{script}: {err}", param_hint="'SCRIPT'") from err
    name = name or script.stem
    dependencies = {distribution(dep).replace("-", "_") for dep in lesson.dependencies}
    taken = dependencies | sys.stdlib_module_names  # json would hide the standard library's
    if not NAME.fullmatch(name) or keyword.iskeyword(name) or name in taken:
        rule = "must be snake_case, not a keyword, a standard library module or a dependency"
        raise click.BadParameter(f"{name!r} {rule}", param_hint="'--name'")
    if target is not None and target.exists() and any(target.iterdir()) and not force:
        raise click.BadParameter(f"{target} is not empty (add --force)", param_hint="'--to'")
    try:
        files = project_files(lesson, name, read_tests(script))
    except ValueError as err:  # no tests where the collection keeps them
        raise click.BadParameter(f"{script}: {err}", param_hint="'SCRIPT'") from err
    except SyntaxError as err:  # the dev group is read from the tests' imports
        raise click.BadParameter(f"its tests: {err}", param_hint="'SCRIPT'") from err
    # a scratch directory: for the proof's fresh venv, and the project when no --to is given
    with tempfile.TemporaryDirectory(prefix="graduate-") as scratch:
        root = target or Path(scratch) / name
        try:
            for relative, content in files.items():
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                (root / relative).write_text(content, encoding="utf-8")
        except OSError as err:  # under a file, or where no one may write
            raise click.BadParameter(f"{root}: {err.strerror}", param_hint="'--to'") from err
        steps = prove(root.resolve(), name, lesson.exclude_newer, Path(scratch))
        show(root, sorted(files), steps, as_json)
    if not steps[-1].ok:  # the steps stop at the first that fails
        raise click.ClickException(f"{steps[-1].name} failed: {steps[-1].last_line}")


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
