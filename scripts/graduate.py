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
               then prove it as CI would: lock, sync, --help, the tests, ruff, build, and the wheel,
               installed in a fresh environment, runs the command.
When to use:   A copied script that grew: others install it, it needs tests, a version, a release.
When not to:   A script you run now and then: its block is already a reproducible environment.
Run:           uv run scripts/graduate.py            (starter.py, into a temporary directory)
               uv run scripts/graduate.py scripts/cli_click.py --to /tmp/logtool --name logtool
Try it:        The default run: eleven steps ok; uv build takes milliseconds (uv's own backend).
               --to a project made before: exit 2 until --force; in it, `uv run logtool --help`.
"""

import ast
import json
import keyword
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
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
RUFF_SRC = re.compile(r"(?m)^src = .*$")  # where ruff looks for first-party code: scripts/ no more
NAME = re.compile(r"[a-z][a-z0-9_]*")  # one word for the project, the package and the command
# What uv, Python, pytest and ruff make in a project: .gitignore keeps it out of commits.
IGNORED = ".venv/\n__pycache__/\n.pytest_cache/\n.ruff_cache/\ndist/\n"


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
class Proof:
    """One step of the proof: what the report calls it, and the command that runs it."""

    name: str
    command: list[str]


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


def imported_modules(source: str, filename: str) -> set[str]:
    """The top-level names of every module a Python source imports, anywhere in it."""
    modules = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def read_tests(tests: Path, stem: str) -> dict[str, str]:
    """The lesson's tests in a tests folder, by path in the project: its test module, the conftest
    and the helper modules it imports from there; else ValueError (or SyntaxError)."""
    module = tests / f"test_{stem}.py"
    if not module.is_file():
        raise ValueError(f"no tests at {module}, and the tests are what prove the package")
    found = {module.name: module.read_text(encoding="utf-8")}
    for helper in sorted(imported_modules(found[module.name], module.name) | {"conftest"}):
        if (tests / f"{helper}.py").is_file():  # a fixture or helper module beside it
            found[f"{helper}.py"] = (tests / f"{helper}.py").read_text(encoding="utf-8")
    return {f"tests/{file}": text for file, text in found.items()}


def importing_the_package(test: str, stem: str, name: str) -> str:
    """A test file, made to test the package: `import x` becomes `import name.x as x` (still an
    `import` line: isort's order holds), `from x import` becomes `from name.x import`. Only
    top-level import lines: an import inside a function, or "x.f" in a string, stays as it is."""
    test = re.sub(rf"(?m)^import {stem}$", f"import {name}.{stem} as {stem}", test)
    test = re.sub(rf"(?m)^import {stem} as ", f"import {name}.{stem} as ", test)
    return re.sub(rf"(?m)^from {stem} import", f"from {name}.{stem} import", test)


def distribution(requirement: str) -> str:
    """A requirement's distribution, named as PEP 503 compares names: `Log.Tool>=1` is log-tool."""
    return re.sub(r"[-_.]+", "-", re.split(r"[^\w.-]", requirement)[0]).lower()


def dev_group(tests: Mapping[str, str], lesson: Lesson, name: str) -> list[str]:
    """pytest, ruff, and the distributions the tests import that the package does not bring. An
    import is taken for its distribution's name: where they differ (yaml: PyYAML), uv lock fails
    on it, and the author puts the right name in the dev group."""
    brought = set()
    for requirement in lesson.dependencies:
        brought.add(distribution(requirement))
        # opentelemetry-sdk brings opentelemetry.* (and pytest-x would count as pytest: harmless)
        brought.add(distribution(requirement).split("-")[0])
    local = {name, *(Path(path).stem for path in tests), *sys.stdlib_module_names}
    needed = {"pytest", "ruff"}
    for path, text in tests.items():
        for module in imported_modules(text, path) - local:
            if distribution(module) not in brought:
                needed.add(distribution(module))
    return sorted(needed)


def project_files(
    lesson: Lesson, name: str, tests: Mapping[str, str], ruff: str | None
) -> dict[str, str]:
    """Every file of the project, by its path from its root: `tests` as read_tests gives them, and
    the lint rules (ruff.toml) the lesson was written to, if any."""
    adapted = {path: importing_the_package(text, lesson.stem, name) for path, text in tests.items()}
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
dev = {json.dumps(dev_group(adapted, lesson, name))}

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
move it and `uv lock --upgrade`. Data files, if you add any: in src/{name}/, read through
`importlib.resources.files("{name}")`, never beside `__file__`.
"""
    module = VERSION_OPTION.sub(
        f'click.version_option(package_name="{name}", prog_name="{name}")', lesson.code
    )
    entry = f'"""`python -m {name}` and the `{name}` command."""\n\n'
    entry += f"from {name}.{lesson.stem} import main\n"
    files = {
        "pyproject.toml": toml,
        "README.md": readme,
        ".gitignore": IGNORED,
        f"src/{name}/__init__.py": f'"""The `{name}` package: see {lesson.stem}.py."""\n',
        f"src/{name}/py.typed": "",
        f"src/{name}/__main__.py": entry + '\nif __name__ == "__main__":\n    main()\n',
        f"src/{name}/{lesson.stem}.py": module,
        **adapted,
    }
    if ruff is not None:
        files["ruff.toml"] = RUFF_SRC.sub('src = ["src", "tests"]', ruff)
    return files


def name_problem(name: str, lesson: Lesson, tests: Mapping[str, str]) -> str | None:
    """Why `name` cannot name the project, package and command, if it cannot. (A package that a
    dependency needs in turn is not known before the lock: its name is for the author to avoid.)"""
    needs = {dist.replace("-", "_") for dist in dev_group(tests, lesson, lesson.stem)}
    needs.update(distribution(dep).replace("-", "_") for dep in lesson.dependencies)
    if not NAME.fullmatch(name):
        return "must be snake_case: a-z, 0-9 and _, starting with a letter"
    if keyword.iskeyword(name):
        return "is a Python keyword"
    if name in sys.stdlib_module_names:
        return "is a standard library module: importing it would find the package"
    if name in needs:
        return "is a package the project or its tests need"
    if name in {"tests", *(Path(path).stem for path in tests)}:
        return "is a module of the tests"
    return None


def run_step(
    name: str,
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    started: Callable[[int], None] | None = None,
) -> Step:
    """Run one command in a process group of its own, which ends with it however it ends.

    `started` is told the group's id at once (the caller's Ctrl-C policy can end it from there).
    A step past STEP_TIMEOUT_S raises subprocess.TimeoutExpired, its group ended first."""
    begun = time.perf_counter()
    with subprocess.Popen(  # noqa: S603 - the commands are the proof steps, built below
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own: the step's processes, ended all at once
    ) as proc:  # on the way out, however it goes: the pipe closed, the process reaped
        try:
            if started is not None:
                started(proc.pid)
            output, _ = proc.communicate(timeout=STEP_TIMEOUT_S)
        except BaseException:  # a step that hangs, or an exception: none of its processes stays
            end_group(proc.pid)
            proc.wait()  # Popen's own exit waits only 0.25 s after a Ctrl-C
            raise
    lines = output.strip().splitlines() or ["(no output)"]
    return Step(name, proc.returncode == 0, round(time.perf_counter() - begun, 2), lines[-1])


def end_group(pgid: int) -> None:
    """SIGKILL a step's process group: uv and all it started (uv's cache survives it)."""
    with suppress(ProcessLookupError):  # the group is gone already
        os.killpg(pgid, signal.SIGKILL)


def proof_steps(project: Path, name: str, venv: Path, date: str | None) -> list[Proof]:
    """Each step of the proof, in order: the project's checks, then the wheel's. After the
    sync, ruff sorts the tests' imports: a `from name.x import` line may now need wrapping."""
    wheel = project / "dist" / f"{name}-{VERSION}-py3-none-any.whl"
    newer = ["--exclude-newer", date] if date else []  # the lock's cut-off for the wheel's deps
    ruff = ["uv", "run", "--frozen", "ruff"]  # the project's own: its rules, its locked version
    return [
        Proof("uv lock", ["uv", "lock"]),
        Proof("uv sync", ["uv", "sync"]),
        Proof("sort imports", [*ruff, "check", "--select", "I", "--fix", "--quiet", "tests"]),
        Proof(f"{name} --help", ["uv", "run", "--frozen", name, "--help"]),
        Proof("pytest", ["uv", "run", "--frozen", "pytest", "-q"]),
        Proof("ruff check", [*ruff, "check"]),
        Proof("ruff format --check", [*ruff, "format", "--check"]),
        Proof("uv build", ["uv", "build"]),
        Proof("uv venv", ["uv", "venv", str(venv)]),
        Proof("install wheel", ["uv", "pip", "install", "--python", str(venv), *newer, str(wheel)]),
        Proof(f"wheel: {name} --help", [str(venv / "bin" / name), "--help"]),
    ]


# --- Demo plumbing -------------------------------------------------------------------------------
LEFT_OUT = ("VIRTUAL_ENV", "PYTHONPATH")  # the caller's; the steps run in the project's alone
REPLACED = ("src", "tests", "dist")  # what --force clears first: no old module or test stays


def prove(project: Path, name: str, exclude_newer: str | None, scratch: Path) -> list[Step]:
    """Run the proof steps until one fails. Ctrl-C ends the running step's group and says how far
    the steps got; a second Ctrl-C (uv passes one on) changes nothing."""
    steps: list[Step] = []
    running: int | None = None  # the process group of the step that runs now
    pressed = False

    def stop(signum: int, frame: object) -> None:  # no exception: nothing is cut half-way
        nonlocal pressed
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pressed = True
        if running is not None:
            end_group(running)

    def started(pgid: int) -> None:
        nonlocal running
        running = pgid
        if pressed:  # Ctrl-C came while the step was starting
            end_group(pgid)

    env = {key: value for key, value in os.environ.items() if key not in LEFT_OUT}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    plan = proof_steps(project, name, scratch / "venv", exclude_newer)
    previous = signal.signal(signal.SIGINT, stop)
    try:
        for proof in plan:
            if pressed:
                break
            click.echo(f"running {proof.name}", err=True)
            step = run_step(proof.name, proof.command, project, env, started)
            running = None  # its group is gone: a later Ctrl-C must not kill a reused id
            if pressed:  # the step was ended, not failed
                break
            steps.append(step)
            if not step.ok:
                break
        if pressed:
            done = f"{len(steps)} of {len(plan)} steps done"
            raise click.Abort(f"interrupted: {done}, no step left running")
    except subprocess.TimeoutExpired as err:
        steps.append(Step(proof.name, False, err.timeout, f"no result after {err.timeout:g} s"))
    finally:
        signal.signal(signal.SIGINT, previous)
    return steps


def show(target: Path, files: Sequence[str], steps: Sequence[Step], kept: bool) -> None:
    where = str(target) if kept else f"{target} (temporary, removed)"
    title = f"{len(files)} files written to {where}"
    table = Table("step", "result", "seconds", title=title, min_width=len(title))  # on one line
    for step in steps:
        table.add_row(step.name, "ok" if step.ok else "FAILED", f"{step.seconds:.2f}")
    Console().print(table)


def report(target: Path, files: Sequence[str], steps: Sequence[Step], kept: bool) -> None:
    rows = [{"name": step.name, "ok": step.ok, "seconds": step.seconds} for step in steps]
    result = {"project": str(target), "kept": kept, "files": list(files), "steps": rows}
    click.echo(json.dumps(result))


# --- CLI -----------------------------------------------------------------------------------------
LESSON = click.Path(exists=True, dir_okay=False, path_type=Path)
STARTER = Path(__file__).with_name("starter.py")  # the default SCRIPT: the collection's template
PROJECT = click.Path(file_okay=False, path_type=Path)  # a file there: exit 2, naming --to


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("script", type=LESSON, metavar="SCRIPT", default=STARTER)
@click.option("--to", "target", type=PROJECT, help="The project's directory (default: temporary).")
@click.option("--name", help="The project's, package's and command's name (default: SCRIPT's).")
@click.option(
    "--force", is_flag=True, help="Write into a non-empty --to, replacing src/, tests/ and dist/."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(script: Path, target: Path | None, name: str | None, force: bool, as_json: bool) -> None:
    """Turn SCRIPT, a lesson with a click CLI, into a package, and prove the package works."""
    collection = script.resolve().parent.parent  # scripts/, and tests/ and ruff.toml beside it
    try:
        lesson = read_lesson(script)
        tests = read_tests(collection / "tests", script.stem)
    except (ValueError, SyntaxError) as err:  # no block, a broken one, no tests, not UTF-8 text
        raise click.BadParameter(f"{script}: {err}", param_hint="'SCRIPT'") from err
    lessons = {path.stem for path in script.resolve().parent.glob("*.py")} - {script.stem}
    others = sorted(imported_modules(tests[f"tests/test_{script.stem}.py"], script.name) & lessons)
    if others:  # tests of two lessons at once: the package would have only one of them
        mixed = f"its tests import another lesson too ({', '.join(others)})"
        raise click.BadParameter(f"{script}: {mixed}", param_hint="'SCRIPT'")
    name = name or script.stem
    problem = name_problem(name, lesson, tests)
    if problem is not None:
        raise click.BadParameter(f"{name!r} {problem}", param_hint="'--name'")
    if target is not None and target.exists() and any(target.iterdir()) and not force:
        raise click.BadParameter(f"{target} is not empty (add --force)", param_hint="'--to'")
    ruff = collection / "ruff.toml"
    rules = ruff.read_text(encoding="utf-8") if ruff.is_file() else None
    files = project_files(lesson, name, tests, rules)
    # a scratch directory: for the proof's fresh venv, and the project when no --to is given
    with tempfile.TemporaryDirectory(prefix="graduate-") as scratch:
        root = target or Path(scratch) / name
        try:
            for folder in REPLACED:
                shutil.rmtree(root / folder, ignore_errors=True)
            for relative, content in files.items():
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                (root / relative).write_text(content, encoding="utf-8")
        except OSError as err:  # under a file, or where no one may write
            raise click.BadParameter(f"{root}: {err.strerror}", param_hint="'--to'") from err
        steps = prove(root.resolve(), name, lesson.exclude_newer, Path(scratch))
        if as_json:
            report(root, sorted(files), steps, kept=target is not None)
        else:
            show(root, sorted(files), steps, kept=target is not None)
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
