# /// script
# requires-python = ">=3.11"
# dependencies = ["celery[redis,sqlalchemy]", "click", "kombu", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Celery tasks that survive a killed worker: late acks, requeue on a lost worker, idempotent tasks.

Pattern:       acks_late=True acks a message only once its task has ended, so a task whose process
               dies is delivered again; reject_on_worker_lost=True requeues it when a pool child
               dies (without it, the task is marked failed and acked); so a task may run twice,
               and must be idempotent: its effect keyed, applied once. Each of the three is unsafe
               alone: late acks without idempotency apply effects twice; idempotency without late
               acks loses the task; and a lost pool child, unrejected, drops it too.
When to use:   Work that must not be lost when a machine or a process dies (OOM, deploys, SIGKILL).
               Retries and dead letters: celery_pipeline.py; chains and chords: celery_workflows.py.
When not to:   Tasks with effects you cannot key (send them through a keyed outbox first). On the
               embedded broker (kombu's SQLAlchemy transport) a killed pool child's task is
               requeued by its worker, but a SIGKILLed worker strands its message: the transport
               marks it invisible when fetched and restores unacked messages only on a clean
               shutdown. Redis brings it back after visibility_timeout (3 s here; default 1 h).
Run:           uv run scripts/celery_redelivery.py
               uv run scripts/celery_redelivery.py --broker redis://127.0.0.1:6379/0 --backend redis://127.0.0.1:6379/1
Try it:        --broker redis://... --backend redis://...: the whole worker killed, then restarted.
               --task-seconds 0.5: recovered_s (kill to result) still exceeds 0.5 s: the second
               attempt runs the task from the start, not from where the kill cut it.
"""

import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import click
import kombu.transport.sqlalchemy
from celery import Celery, Task
from celery.result import AsyncResult
from celery.signals import worker_ready
from kombu.utils.url import maybe_sanitize_url
from rich.console import Console
from rich.table import Table

# --- The pattern: a task base that survives a kill, and an effect applied once -------------------


class Ledger:
    """The tasks' own SQLite file: each attempt (key, process id), effects keyed by their key."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS attempts (key TEXT, pid INTEGER);
        CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, value TEXT);
    """

    def __init__(self, path: str) -> None:
        self.path = path
        with contextlib.closing(self.connect()) as db:
            db.executescript(self.SCHEMA)

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)  # autocommit
        db.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        return db

    def write(self, sql: str, *params: object) -> int:
        with contextlib.closing(self.connect()) as db:
            return db.execute(sql, params).rowcount

    def read(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.connect()) as db:
            return db.execute(sql, params).fetchall()

    def apply_once(self, key: str, value: str) -> bool:
        """The effect, applied at most once per key: a second delivery changes nothing."""
        return self.write("INSERT OR IGNORE INTO effects VALUES (?, ?)", key, value) == 1


class RedeliveredTask(Task):
    """Every task of the app: acked when it ends, requeued if its process dies mid-way."""

    acks_late = True  # ack after the task ends: a task cut short is delivered again...
    reject_on_worker_lost = True  # ...also when a pool child dies (SIGKILL, OOM)...
    # ...so it may run twice: every task applies its effect through Ledger.apply_once.

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ledger = Ledger(self.app.conf["ledger_path"])
        ledger.write("INSERT INTO attempts VALUES (?, ?)", args[0], os.getpid())


def slow(task: RedeliveredTask, key: str, seconds: float) -> str:
    """Long work, then its effect, once per key: the task the demo kills mid-way."""
    time.sleep(seconds)
    Ledger(task.app.conf["ledger_path"]).apply_once(key, "done")
    return key


def create_app(broker: str, backend: str | None, ledger_path: str) -> Celery:
    """The Celery app with the one task, `redelivery.slow`."""
    app = Celery("celery_redelivery", broker=broker, backend=backend, task_cls=RedeliveredTask)
    app.conf.update(
        ledger_path=ledger_path,
        worker_prefetch_multiplier=1,  # with late acks, hold no more messages than you run
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(bind=True, name="redelivery.slow")(slow)
    return app


# --- Demo plumbing: an embedded broker, and the worker in a process of its own -------------------
READY_TIMEOUT_S = 60.0  # a cold start on a busy machine; a warm one takes ~1-2 s
WAIT_S = 30.0  # for any one result
POLL_S = 0.01  # how often the client looks for news
REDIS_OPTIONS = {  # the whole-worker kill: Redis restores an unacked message after 3 s
    "visibility_timeout": 3,  # > the longest task, or a task still running is delivered again
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}


class SQLiteChannel(kombu.transport.sqlalchemy.Channel):
    """kombu's SQLAlchemy channel, its one session used by one thread at a time: a prefork
    worker's loop and its pool's result thread (requeueing a dead child's task) would otherwise
    drive it at once and stop the worker (IllegalStateChangeError, "Unrecoverable error")."""

    lock = threading.Lock()

    def _get(self, queue: str) -> Any:
        with self.lock:
            return super()._get(queue)

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        with self.lock:
            super()._put(queue, payload, **kwargs)


class SQLiteTransport(kombu.transport.sqlalchemy.Transport):
    """kombu's SQLAlchemy transport with that channel, looking for messages every 50 ms.

    Its broker_transport_options all go to SQLAlchemy's create_engine, which refuses a
    polling_interval (default 1 s); the class attribute is what every virtual transport reads.
    """

    Channel = SQLiteChannel
    polling_interval = 0.05


def wal_database(path: Path) -> str:
    """An SQLite file in WAL mode (it stays so): readers never wait for the one writer."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
    return str(path)


@dataclass
class Setup:
    """Where the demo's parts live: broker, result backend, ledger, and a folder for the rest."""

    broker: str
    backend: str
    ledger: str
    folder: str

    def app(self) -> Celery:
        app = create_app(self.broker, self.backend, self.ledger)
        if self.broker.startswith("sqlite://"):
            app.conf.broker_transport = SQLiteTransport  # kombu takes a class as it is
            app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}  # busy wait, s
            app.conf.worker_lost_wait = 0.5  # for a dead child's late result (default 10 s)
        else:
            app.conf.broker_transport_options = dict(REDIS_OPTIONS)
        return app


def setup(folder: str, broker: str | None, backend: str | None) -> Setup:
    """The given URLs, or SQLite files in `folder` for the broker and the results."""
    if broker is None:
        broker = f"sqlite:///{wal_database(Path(folder, 'broker.sqlite'))}"
    if backend is None:
        backend = f"db+sqlite:///{wal_database(Path(folder, 'results.sqlite'))}"
    return Setup(broker, backend, str(Path(folder, "ledger.sqlite")), folder)


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


def wait_for(done: Callable[[], bool], running: Worker, what: str, seconds: float) -> None:
    """Poll until done() says so; an error if the worker dies meanwhile or time runs out."""
    deadline = time.monotonic() + seconds
    while not done():
        running.check()
        if time.monotonic() > deadline:
            raise click.ClickException(f"no {what} in {seconds:.0f} s")
        time.sleep(POLL_S)


@contextlib.contextmanager
def worker(where: Setup, number: int = 1) -> Generator[Worker]:
    """Start a worker process (prefork, 2 children), wait until it consumes; SIGKILL it after."""
    ready = Path(where.folder, f"ready-{number}")
    log_file = Path(where.folder, f"worker-{number}.log")
    script = str(Path(__file__).resolve())
    command = [sys.executable, script, "worker", str(ready), json.dumps(asdict(where))]
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
        wait_for(ready.exists, running, "worker ready", READY_TIMEOUT_S)
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
    """The task's result, or its exception as a value."""
    wait_for(result.ready, running, f"result for task {result.id}", WAIT_S)
    return result.result


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def kill_mid_task(where: Setup, run: Run, running: Worker, seconds: float) -> None:
    """SIGKILL the process running a task; the task must run again and apply its effect once."""
    app = where.app()
    ledger = Ledger(where.ledger)
    # A key of this run's own: a task left unacked on Redis by an interrupted run comes back
    # too, and its attempts must not count as this one's.
    key = f"kill-me-{uuid.uuid4().hex[:8]}"
    result = app.tasks["redelivery.slow"].delay(key, seconds)
    first = "SELECT pid FROM attempts WHERE key = ?"
    wait_for(lambda: bool(ledger.read(first, key)), running, "first attempt", WAIT_S)
    pid = ledger.read(first, key)[0][0]
    killed_at = time.perf_counter()
    if where.broker.startswith("sqlite://"):
        os.kill(pid, signal.SIGKILL)  # a pool child: its worker requeues the task
        value = wait(result, running)
        run.figures["killed"] = "pool child"
        shows = "pool child killed: its worker requeued the task"
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signal.SIGKILL)  # the whole worker, unacked in Redis
        running.process.wait()
        click.echo("worker killed; restarting it: Redis redelivers after 3 s", err=True)
        with worker(where, number=2) as restarted:
            value = wait(result, restarted)
        run.figures["killed"] = "whole worker"
        shows = "worker killed, restarted: Redis redelivered after visibility_timeout"
    run.figures["recovered_s"] = round(time.perf_counter() - killed_at, 2)
    pids = ledger.read(first, key)
    effects = ledger.read("SELECT COUNT(*) FROM effects WHERE key = ?", key)[0][0]
    run.figures["attempts"] = len(pids)
    run.figures["redelivered"] = len(pids) > 1 and pids[0] != pids[-1]
    run.figures["effects"] = effects
    returned = "its key" if value == key else repr(value)
    outcome = f"{returned}, {plural(len(pids), 'attempt')}, {plural(effects, 'effect')}"
    run.checks.append(Check("SIGKILL mid-task", outcome, "its key, 2 attempts, 1 effect", shows))
    other = "another process" if run.figures["redelivered"] else "the same process"
    run.checks.append(Check("second attempt", other, "another process", "a new delivery"))


def demo(where: Setup, run: Run, seconds: float) -> None:
    click.echo(f"starting a worker on {run.broker}", err=True)
    with worker(where) as running:
        click.echo("worker ready: a task, killed mid-way", err=True)
        kill_mid_task(where, run, running, seconds)


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
    table.caption = ", ".join(f"{name} {value}" for name, value in run.figures.items())
    Console().print(table)
    return code


def interrupt_once(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # uv passes on a second Ctrl-C: ignore it
    raise KeyboardInterrupt


# --- CLI ------------------------------------------------------------------------------------------
class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which slip past its bounds."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def redis_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.startswith(("redis://", "rediss://")):
        raise click.BadParameter("not a redis:// or rediss:// URL")
    return value


@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option(
    "--task-seconds",
    type=FiniteFloat(0.5, 2.5),
    default=1.0,
    help="How long the task works; it is killed once it has started.",
)
@click.option("--broker", callback=redis_url, help="Redis broker URL (default: SQLite, embedded).")
@click.option("--backend", callback=redis_url, help="Redis result backend URL (default: SQLite).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(
    ctx: click.Context, task_seconds: float, broker: str | None, backend: str | None, as_json: bool
) -> None:
    """Run a Celery worker, kill it mid-task, and check the task runs again with one effect."""
    if ctx.invoked_subcommand is not None:
        return
    run = Run(maybe_sanitize_url(broker) if broker else "SQLite (embedded)")
    previous = signal.signal(signal.SIGINT, interrupt_once)
    try:
        with TemporaryDirectory(prefix="celery_redelivery-") as folder:
            demo(setup(folder, broker, backend), run, task_seconds)
    except KeyboardInterrupt:
        message = f"interrupted: {plural(len(run.checks), 'check')} done; worker stopped"
        raise click.Abort(message) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    ctx.exit(report(run, as_json))


@cli.command("worker", hidden=True)
@click.argument("ready")
@click.argument("where")
def worker_command(ready: str, where: str) -> None:
    """Run the lesson's worker (started by the demo): READY is created once it consumes."""
    run_worker(Setup(**json.loads(where)), ready)


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
