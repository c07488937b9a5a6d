# /// script
# requires-python = ">=3.11"
# dependencies = ["celery[redis,sqlalchemy]", "click", "kombu", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Celery workflows: a chain, a group and a chord on a real worker, checked and timed.

Pattern:       chain(a, b, c) passes each result to the next task; group(...) runs tasks side by
               side and returns their results in order; chord(group, callback) runs the callback
               once on all the group's results. A chord needs a result backend: something must
               count the finished members before the callback may start, and Celery refuses a
               chord without one. Build a flow with signatures (task.s(...)), then apply_async().
When to use:   Fan-out and fan-in over several workers: map a step over many items, then reduce.
When not to:   A few steps on one machine (call the functions, or concurrent.futures); tasks that
               must survive crashes need more than a flow: celery_redelivery.py shows late acks,
               celery_pipeline.py retries and dead letters. A chord's throughput is bounded by
               the broker's round trips and the backend's bookkeeping: on SQLite a chord_unlock
               task polls the members, first 1 s after the chord starts (a fixed cost in every
               chord there), then every 50 ms; Redis counts each member as it finishes.
Run:           uv run scripts/celery_workflows.py
               uv run scripts/celery_workflows.py --broker redis://127.0.0.1:6379/0 --backend redis://127.0.0.1:6379/1
Try it:        --chord 1: the chord's fixed cost, with nearly no work to share out: tasks_per_s
               falls far below the default's (on SQLite the chord alone takes over 1 s).
               --broker redis://... --backend redis://...: the same flows and checks on Redis.
"""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import click
import kombu.transport.sqlalchemy
from celery import Celery, Task, chain, chord, group
from celery.result import AsyncResult
from celery.signals import worker_ready
from kombu.utils.url import maybe_sanitize_url
from rich.console import Console
from rich.table import Table


# --- The pattern: tasks, and flows built from their signatures ----------------------------------
def square(task: Task, x: int) -> int:
    return x * x


def add(task: Task, x: int, y: int) -> int:
    return x + y


def total(task: Task, values: list[int]) -> int:
    return sum(values)


def create_app(broker: str, backend: str | None) -> Celery:
    """The Celery app with the workflow tasks, named `workflows.<function>`."""
    app = Celery("celery_workflows", broker=broker, backend=backend)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_chord_retry_interval=0.05,  # how often chord_unlock polls (database backends)
    )
    for function in (square, add, total):
        app.task(bind=True, name=f"workflows.{function.__name__}")(function)
    return app


def sum_of_squares(app: Celery, numbers: Sequence[int]) -> chord:
    """A chord: square every number side by side, then add them up once all are done."""
    squares = group(app.tasks["workflows.square"].s(number) for number in numbers)
    return chord(squares, app.tasks["workflows.total"].s())


# --- Demo plumbing: an embedded broker, and the worker in a process of its own -------------------
READY_TIMEOUT_S = 60.0  # a cold start on a busy machine; a warm one takes ~1-2 s
WAIT_S = 60.0  # for any one workflow
POLL_S = 0.01  # how often the client looks for news


class SQLiteTransport(kombu.transport.sqlalchemy.Transport):
    """kombu's SQLAlchemy transport, looking for messages every 50 ms instead of every second.

    Its broker_transport_options all go to SQLAlchemy's create_engine, which refuses a
    polling_interval; the class attribute is the public setting every kombu virtual transport reads.
    """

    polling_interval = 0.05


def wal_database(path: Path) -> str:
    """An SQLite file in WAL mode (it stays so): readers never wait for the one writer."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
    return str(path)


@dataclass
class Setup:
    """Where the demo's parts live: broker, result backend, and a folder for the rest."""

    broker: str
    backend: str
    folder: str

    def app(self, backend: str | None = "") -> Celery:
        """The app on this broker, with this setup's backend unless another (or None) is given."""
        app = create_app(self.broker, self.backend if backend == "" else backend)
        if self.broker.startswith("sqlite://"):
            app.conf.broker_transport = SQLiteTransport  # kombu takes a class as it is
            app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}  # busy wait, s
        return app


def setup(folder: str, broker: str | None, backend: str | None) -> Setup:
    """The given URLs, or SQLite files in `folder` for the broker and the results."""
    if broker is None:
        broker = f"sqlite:///{wal_database(Path(folder, 'broker.sqlite'))}"
    if backend is None:
        backend = f"db+sqlite:///{wal_database(Path(folder, 'results.sqlite'))}"
    return Setup(broker, backend, folder)


@dataclass
class Worker:
    """A worker process (and its pool children, in its process group)."""

    process: subprocess.Popen[bytes]
    log_file: Path

    def check(self) -> None:
        """Fail at once if the worker died: a client must not wait for ever on a dead worker."""
        if self.process.poll() is None:
            return
        lines = self.log_file.read_text().strip().splitlines() or ["no output"]
        raise click.ClickException(f"the worker died (exit {self.process.returncode}): {lines[-1]}")


@contextlib.contextmanager
def worker(where: Setup) -> Generator[Worker]:
    """Start a worker process (prefork, 2 children), wait until it consumes; SIGKILL it after.

    The demo's queue is thrown away, so no warm shutdown (SIGTERM), which takes ~5 s here.
    """
    ready = Path(where.folder, "ready")
    log_file = Path(where.folder, "worker.log")
    command = [sys.executable, str(Path(__file__).resolve()), "worker", "--ready", str(ready)]
    command.extend(["--broker", where.broker, "--backend", where.backend])
    with log_file.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (our own script, our own arguments)
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,  # Ctrl-C is the parent's to handle; the parent stops it
        )
    running = Worker(process, log_file)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.exists():
            running.check()
            if time.monotonic() > deadline:
                raise click.ClickException(f"the worker did not start in {READY_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool children
        process.wait()


def run_worker(where: Setup, ready_file: str) -> None:
    """The worker process: consume until killed."""
    app = where.app()
    worker_ready.connect(lambda **_: Path(ready_file).touch(), weak=False)
    argv = ["worker", "--pool=prefork", "--concurrency=2", "--loglevel=WARNING"]
    app.worker_main([*argv, "--without-gossip", "--without-mingle", "--without-heartbeat"])


# --- Demo plumbing: the scripted session ----------------------------------------------------------
@dataclass
class Check:
    name: str
    result: str
    expected: str
    shows: str

    @property
    def passed(self) -> bool:
        return self.result == self.expected


@dataclass
class Run:
    broker: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def wait(result: AsyncResult, running: Worker) -> Any:
    """The flow's result (its last task's); an error if the worker dies meanwhile."""
    deadline = time.monotonic() + WAIT_S
    while not result.ready():
        running.check()
        if time.monotonic() > deadline:
            raise click.ClickException(f"no result for task {result.id} in {WAIT_S:.0f} s")
        time.sleep(POLL_S)
    return result.get(timeout=WAIT_S)


def workflows(app: Celery, run: Run, running: Worker, size: int) -> None:
    """A chain, a group and a chord, each result checked; the chord's tasks/s."""
    add = app.tasks["workflows.add"]
    square = app.tasks["workflows.square"]
    numbers = range(size)
    squares = plural(size, "square")
    flows = {
        "chain: add 1+2, add 3, square": (chain(add.s(1, 2), add.s(3), square.s()), 36),
        f"group: {squares}": (group(square.s(n) for n in numbers), [n * n for n in numbers]),
        f"chord: {squares}, total": (
            sum_of_squares(app, numbers),
            sum(n * n for n in numbers),
        ),
    }
    passed = 0
    elapsed = 0.0
    for name, (flow, expected) in flows.items():
        started = time.perf_counter()
        value = wait(flow.apply_async(), running)
        elapsed = time.perf_counter() - started
        if value == expected:
            passed += 1
        run.checks.append(Check(name, summary(value), summary(expected), f"{elapsed:.2f} s"))
    run.figures["tasks"] = 3 + 2 * size + 1  # chain, group, chord (the members and the callback)
    run.figures["tasks_per_s"] = round((size + 1) / elapsed, 1)  # the chord, the last one timed
    run.figures["workflows_ok"] = passed == len(flows)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary(value: int | list[int]) -> str:
    """An int as it is; a list by its length and sum (a group's results)."""
    if isinstance(value, int):
        return str(value)
    return f"{len(value)} results, sum {sum(value)}"


def chord_without_backend(where: Setup, run: Run) -> None:
    """What the installed Celery does with a chord and no result backend: it refuses to send it."""
    app = where.app(backend=None)
    try:
        sum_of_squares(app, [2]).apply_async()
        outcome = "sent"
    except NotImplementedError as err:
        outcome = f"refused: {str(err).splitlines()[0]}"
    expected = "refused: Starting chords requires a result backend to be configured."
    shows = "who else would count the members?"
    run.checks.append(Check("chord, no result backend", outcome, expected, shows))


def demo(where: Setup, run: Run, size: int) -> None:
    click.echo(f"starting a worker on {run.broker}", err=True)
    with worker(where) as running:
        click.echo("worker ready: chain, group, chord", err=True)
        workflows(where.app(), run, running, size)
        chord_without_backend(where, run)


def report(run: Run, as_json: bool) -> int:
    code = 0 if all(check.passed for check in run.checks) else 1
    if as_json:
        checks = [asdict(check) | {"passed": check.passed} for check in run.checks]
        click.echo(json.dumps({"broker": run.broker, **run.figures, "checks": checks}))
        return code
    table = Table("step", "result", "expected", "what it shows", title=f"Checks on {run.broker}")
    for check in run.checks:
        mark = "" if check.passed else "  FAILED"
        table.add_row(check.name, check.result, f"{check.expected}{mark}", check.shows)
    figures = Table(show_header=False, title="Figures")
    for name, value in run.figures.items():
        figures.add_row(name, str(value))
    Console().print(table, figures)
    return code


def interrupt_once(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # uv passes on a second Ctrl-C: ignore it
    raise KeyboardInterrupt


# --- CLI ------------------------------------------------------------------------------------------
def redis_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.startswith(("redis://", "rediss://")):
        raise click.BadParameter("not a redis:// or rediss:// URL")
    return value


@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option(
    "--chord",
    "size",
    type=click.IntRange(1, 10_000),
    default=100,
    help="Tasks in the group and in the chord.",
)
@click.option("--broker", callback=redis_url, help="Redis broker URL (default: SQLite, embedded).")
@click.option("--backend", callback=redis_url, help="Redis result backend URL (default: SQLite).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(
    ctx: click.Context, size: int, broker: str | None, backend: str | None, as_json: bool
) -> None:
    """Run a Celery worker, check a chain, a group and a chord, then the chord's tasks/s."""
    if ctx.invoked_subcommand is not None:
        return
    run = Run(maybe_sanitize_url(broker) if broker else "SQLite (embedded)")
    previous = signal.signal(signal.SIGINT, interrupt_once)
    try:
        with TemporaryDirectory(prefix="celery_workflows-") as folder:
            demo(setup(folder, broker, backend), run, size)
    except KeyboardInterrupt:
        message = f"interrupted: {plural(len(run.checks), 'check')} done; worker stopped"
        raise click.Abort(message) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    ctx.exit(report(run, as_json))


@cli.command("worker", hidden=True)
@click.option("--broker", required=True, help="Broker URL.")
@click.option("--backend", required=True, help="Result backend URL.")
@click.option("--ready", required=True, help="File created once the worker consumes.")
def worker_command(broker: str, backend: str, ready: str) -> None:
    """Run the workflows' worker (started by the demo)."""
    run_worker(Setup(broker, backend, str(Path(ready).parent)), ready)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
