"""Shared fixtures: run a lesson the way a user does (`uv run scripts/<name>.py ...`).

Every lesson test that starts a script goes through `ScriptRunner`, so the environment, the
timeouts and the Ctrl-C procedure are the same for all of them. Bad arguments need no real process:
`invoke` calls a lesson's `run(argv)` in this process (a subprocess costs ~0.7 s a case).

This file imports only the standard library and pytest, because graduate.py copies it into every
lesson's project. Helpers that need a library live in topic modules beside it, imported by the
test modules that use them: redis_database.py, structlog_capture.py, asgi_elsewhere.py and
tenacity_clock.py.
"""

import asyncio
import contextlib
import os
import queue
import select
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS_DIR = ROOT / "scripts"

# Generous bounds: a cold uv cache may build an environment on the first run of a script.
RUN_TIMEOUT_S = 180.0
# The standing rule: Ctrl-C ends a lesson within 2 s (measured from the signal to uv's exit).
INTERRUPT_DEADLINE_S = 2.0


def lesson_command(name: str) -> list[str]:
    """How a test starts a lesson, as its users do: `uv run scripts/<name>.py`.

    The collection has no pyproject.toml. A project graduate.py made of a lesson has one, and
    these fixtures with it: there the lesson is the project's command, run in its environment.
    """
    project = ROOT / "pyproject.toml"
    if project.is_file():
        (command,) = tomllib.loads(project.read_text(encoding="utf-8"))["project"]["scripts"]
        return ["uv", "run", "--frozen", "--quiet", command]
    return ["uv", "run", "--quiet", str(SCRIPTS_DIR / f"{name}.py")]


@dataclass(frozen=True)
class Invocation:
    """What a lesson's `run(argv)` returned and printed, called in-process."""

    code: int
    stdout: str
    stderr: str

    def assert_usage_error(self, argument: str) -> str:
        """Assert the bad-input contract: exit 2, one line naming the argument, no traceback."""
        message = self.stderr.strip()
        assert self.code == 2, (self.code, self.stdout, self.stderr)
        assert "Traceback" not in self.stderr
        assert len(message.splitlines()) == 1, message
        assert argument in message, message
        assert self.stdout == ""
        return message


@dataclass(frozen=True)
class Interrupted:
    """What happened after Ctrl-C was sent to a running script."""

    returncode: int
    stdout: str
    stderr: str
    seconds_to_exit: float
    survivors: bool  # processes of the script's process group still alive after it exited


class ScriptRunner:
    """Runs lessons as subprocesses under `uv run`, each in its own environment.

    When the harness measures coverage, its PYTHONPATH (a sitecustomize and coverage alone) starts
    coverage in the lesson's processes too. `isolated=True` leaves that out: the environment is
    exactly what the lesson's block makes it.
    """

    def __init__(self, *, isolated: bool = False) -> None:
        left_out = {"VIRTUAL_ENV"}
        if isolated:
            left_out |= {"PYTHONPATH", "COVERAGE_PROCESS_START"}
        self.env = {key: value for key, value in os.environ.items() if key not in left_out}
        # A wide, colourless terminal keeps rich's tables on one line each and easy to assert on.
        self.env |= {"COLUMNS": "160", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}

    def command(self, name: str, args: Sequence[str]) -> list[str]:
        return [*lesson_command(name), *args]

    def run(
        self, name: str, *args: str, timeout: float = RUN_TIMEOUT_S, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `uv run scripts/<name>.py ARGS` to completion and capture its output."""
        return subprocess.run(
            self.command(name, args),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )

    def ctrl_c(self, name: str, *args: str, ready: str) -> str:
        """Press Ctrl-C once `ready` shows and assert the standing rule; return the message line.

        The rule: exit 130 within 2 s, one line saying "interrupted" (last on stderr), nothing on
        stdout, no traceback or asyncio warning, and no process of the script left behind.
        """
        done = self.interrupt(name, *args, ready=ready)
        assert done.returncode == 130, done.stderr
        assert done.seconds_to_exit < INTERRUPT_DEADLINE_S, done.seconds_to_exit
        assert not done.survivors, "a process of the script outlived it"
        assert done.stdout == "", "an interrupted run prints no result on stdout"
        for noise in ("Traceback", "Task was destroyed", "never awaited", "Exception ignored"):
            assert noise not in done.stderr, done.stderr
        lines = [line for line in done.stderr.splitlines() if "interrupted" in line]
        assert len(lines) == 1, done.stderr
        assert done.stderr.rstrip().endswith(lines[0]), "the message is the last thing said"
        return lines[0]

    def interrupt(
        self,
        name: str,
        *args: str,
        ready: str,
        timeout: float = 120,
        signum: signal.Signals = signal.SIGINT,
    ) -> Interrupted:
        """Start a script, wait until stderr shows `ready`, then press Ctrl-C (or send `signum`).

        Ctrl-C in a terminal sends SIGINT to the whole foreground process group (uv and the
        script alike), so the script runs in a session of its own and the signal goes to that group.
        """
        proc = subprocess.Popen(
            self.command(name, args),
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr_lines: queue.Queue[str | None] = queue.Queue()
        stdout_chunks: list[str] = []
        readers = [
            threading.Thread(target=_pump_lines, args=(proc.stderr, stderr_lines), daemon=True),
            threading.Thread(target=_collect, args=(proc.stdout, stdout_chunks), daemon=True),
        ]
        for reader in readers:
            reader.start()
        seen = _wait_for_line(stderr_lines, ready, timeout)
        try:
            assert any(ready in line for line in seen), f"never printed {ready!r}: {seen}"
            started = time.monotonic()
            os.killpg(proc.pid, signum)
            returncode = proc.wait(timeout=30)
            seconds_to_exit = time.monotonic() - started
        finally:
            survivors = kill_group(proc.pid)
        for reader in readers:
            reader.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        rest = _drain(stderr_lines)
        return Interrupted(
            returncode=returncode,
            stdout="".join(stdout_chunks),
            stderr="".join(seen + rest),
            seconds_to_exit=seconds_to_exit,
            survivors=survivors,
        )


def _pump_lines(stream: IO[str], lines: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _collect(stream: IO[str], chunks: list[str]) -> None:
    chunks.append(stream.read())


def _wait_for_line(lines: "queue.Queue[str | None]", ready: str, timeout: float) -> list[str]:
    """Lines read until one contains `ready`, the stream closes, or the timeout passes."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            lines.put(None)  # keep the end marker for whoever drains the queue next
            break
        seen.append(line)
        if ready in line:
            break
    return seen


def _drain(lines: "queue.Queue[str | None]") -> list[str]:
    rest: list[str] = []
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return rest
        if line is not None:
            rest.append(line)


# A process that ends by itself just after the script is not left behind: multiprocessing's
# resource tracker, for one, exits when it reads the end of its pipe from the script (seen still
# running 2 ms after uv exited, gone by 10 ms).
SURVIVOR_GRACE_S = 0.5


def kill_group(pgid: int, grace_s: float = SURVIVOR_GRACE_S) -> bool:
    """Kill whatever of a process group still runs after grace_s; True if anything was left.

    A zombie (a process that has exited but whose parent has not yet collected its status) is
    not left running: it holds no resources but a table entry, and the OS reaps it a moment after
    its parent exits. Counting it would make the check race that reaping.
    """
    deadline = time.monotonic() + grace_s
    alive = [pid for pid in live_members(pgid) if not ends_by(pid, deadline)]
    with contextlib.suppress(ProcessLookupError):  # nothing left at all
        os.killpg(pgid, signal.SIGKILL)
    return bool(alive)


def ends_by(pid: int, deadline: float) -> bool:
    """Wait for any process (a child or not) to end, until `deadline`; True if it did.

    A pidfd (Linux 5.3) becomes readable when its process exits: an event to wait on, no polling.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # gone already
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        os.close(pidfd)
    return bool(ready)


def live_members(pgid: int) -> list[int]:
    """Process IDs in the group `pgid` that are not zombies, read from /proc (Linux)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # after "pid (command name)"
        except OSError:  # it exited while we looked
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def processes_naming(folder: Path) -> list[int]:
    """Processes whose command line mentions `folder` (read from /proc, Linux): a worker that runs
    in a session of its own (Celery's), which a check of the process group does not see."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(folder) in cmdline.read_text():
                found.append(int(cmdline.parent.name))
        except OSError:  # it exited while we looked
            continue
    return found


def ctrl_c_stops_the_worker(name: str, *args: str, folder: Path) -> None:
    """Ctrl-C a Celery lesson once its worker is ready: exit 130 within 2 s (ctrl_c checks it),
    and the worker, in a session of its own, and its pool gone too. `folder` becomes TMPDIR, so
    the worker's command line names it."""
    runner = ScriptRunner()
    runner.env["TMPDIR"] = str(folder)
    line = runner.ctrl_c(name, *args, ready="worker ready")
    assert "worker stopped" in line
    assert processes_naming(folder) == []


@pytest.fixture(scope="session")
def runner() -> ScriptRunner:
    return ScriptRunner()


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., Invocation]:
    """Call a lesson's `run(argv) -> int` with the arguments given, capturing what it prints."""

    def call(run: Callable[[list[str]], int], *args: str) -> Invocation:
        code = run(list(args))
        out, err = capsys.readouterr()
        return Invocation(code, out, err)

    return call


# --- a fake clock for retry lessons: time that moves only when asked ----------------------------


@dataclass
class FakeClock:
    """Time that moves only when the code under test sleeps or a fake request takes time."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- the cancellation lessons' shared check (each carries its own copy of the job) ----------------


def pool_of(size: int) -> asyncio.Queue[int]:
    """A pool of `size` connections, as the cancellation lessons' jobs borrow them."""
    pool: asyncio.Queue[int] = asyncio.Queue()
    for connection in range(size):
        pool.put_nowait(connection)
    return pool


def check_a_cancelled_job_cleans_up(lesson: ModuleType) -> None:
    """A job cancelled mid-work releases its connection, flushes what it did, and re-raises."""
    flushed: list[int] = []
    tally = lesson.Tally()

    async def scenario() -> asyncio.Queue[int]:
        pool = pool_of(2)
        third = asyncio.Event()
        count = 0

        async def work() -> int:
            nonlocal count
            count += 1
            if count == 3:
                third.set()
                await asyncio.Event().wait()  # never answers: only a cancellation ends it
            return count

        async def sink(results: list[int]) -> None:
            flushed.extend(results)

        task = asyncio.create_task(lesson.job("j", work, 10, pool, sink, tally))
        await third.wait()
        assert pool.qsize() == 1  # the job holds a connection
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pool

    pool = asyncio.run(scenario())
    assert pool.qsize() == 2  # released
    assert flushed == [1, 2]  # what it did before the cancellation
    assert (tally.started, tally.completed, tally.cancelled, tally.cleaned_up) == (1, 0, 1, 1)
