# /// script
# requires-python = ">=3.11"
# dependencies = ["celery[redis,sqlalchemy]", "click", "kombu", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Celery tasks that fail well: transient errors retried with backoff, the rest dead-lettered.

Pattern:       autoretry_for names the transient errors alone (a lost connection, a timeout); they
               retry with exponential backoff, full jitter and a cap, at most max_retries times.
               Any other error fails at once: retrying bad input cannot help. What fails for good
               goes to a dead-letter table through on_failure (Celery has none): task, args, error.
               submit() stores each id it sends as PENDING, so AsyncResult.exists() tells a queued
               task from an id never sent (a plain AsyncResult says PENDING for both).
When to use:   Work that outlives a request and calls things that fail now and then, spread over
               several machines. A task killed mid-way, run again: celery_redelivery.py. Chains,
               groups, chords and their throughput (tasks_per_s, workflows_ok): celery_workflows.py.
When not to:   One machine and a few job kinds (jobs_api.py shows the same guarantees in SQLite);
               sub-millisecond calls (call the function); errors that need a person, not a retry.
               The round-trip p50 is bounded by the broker: the embedded one (kombu's SQLAlchemy
               transport on SQLite) is polled every 50 ms.
Run:           uv run scripts/celery_pipeline.py
               uv run scripts/celery_pipeline.py --broker redis://127.0.0.1:6379/0 --backend redis://127.0.0.1:6379/1
Try it:        --round-trips 3: tasks 6 (3 trips + 3 retry cases); the same checks pass.
               --broker redis://... --backend redis://...: the same checks, dead letters on Redis.
"""

import contextlib
import json
import os
import signal
import sqlite3
import statistics
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
from celery import Celery, Task, states
from celery.result import AsyncResult
from celery.signals import worker_ready
from kombu.utils.url import maybe_sanitize_url
from rich.console import Console
from rich.table import Table

# --- The pattern: the task base, the ledger (attempts, dead letters), submit and poll -----------
TRANSIENT = (ConnectionError, TimeoutError)  # worth retrying; any other error fails at once
MAX_RETRIES = 2  # three attempts in all, then the dead-letter table
BACKOFF_S = 1  # Celery's smallest backoff factor: it rounds to whole seconds
BACKOFF_MAX_S = 2  # sized for the demo; a service caps the wait at minutes


class Ledger:
    """The tasks' own SQLite file: the attempts they made, and the dead letters."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS attempts (key TEXT, retries INTEGER);
        CREATE TABLE IF NOT EXISTS dead_letters (task_id TEXT, name TEXT, args TEXT, error TEXT);
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


class PipelineTask(Task):
    """Every task of the app: retried if the error is transient, dead-lettered once it fails."""

    autoretry_for = TRANSIENT  # only these: a retry runs the task again, effects and all
    retry_backoff = BACKOFF_S
    retry_backoff_max = BACKOFF_MAX_S
    retry_jitter = True  # full jitter: retries of many tasks do not arrive together
    max_retries = MAX_RETRIES

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ledger = Ledger(self.app.conf["ledger_path"])
        ledger.write("INSERT INTO attempts VALUES (?, ?)", args[0], self.request.retries)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Called once a task fails for good: retries exhausted, or an error not worth one."""
        letter = (task_id, self.name, json.dumps(args), f"{type(exc).__name__}: {exc}")
        ledger = Ledger(self.app.conf["ledger_path"])
        ledger.write("INSERT INTO dead_letters VALUES (?, ?, ?, ?)", *letter)


def process(task: PipelineTask, key: str, transient_failures: int, permanent: bool = False) -> str:
    """Fail transiently `transient_failures` times (or for good), then succeed."""
    if permanent:
        raise ValueError(f"{key}: bad input, retrying cannot help")
    if task.request.retries < transient_failures:
        raise ConnectionError(f"{key}: attempt {task.request.retries + 1} failed")
    return key


def create_app(broker: str, backend: str | None, ledger_path: str) -> Celery:
    """The Celery app with the pipeline's task, `pipeline.process`."""
    app = Celery("celery_pipeline", broker=broker, backend=backend, task_cls=PipelineTask)
    app.conf.update(
        ledger_path=ledger_path,
        worker_prefetch_multiplier=1,  # a worker holds no more messages than it runs
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(bind=True, name="pipeline.process")(process)
    return app


def submit(app: Celery, name: str, *args: Any) -> AsyncResult:
    """Send a task, first storing its id as PENDING, so poll() can tell it from a stranger."""
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, None, states.PENDING)
    return app.tasks[name].apply_async(args, task_id=task_id)


def poll(app: Celery, task_id: str) -> str:
    """The task's state, or UNKNOWN for an id never sent (or whose result expired)."""
    result = app.AsyncResult(task_id)
    return result.state if result.exists() else "UNKNOWN"


# --- Demo plumbing: an embedded broker, and the worker in a process of its own -------------------
READY_TIMEOUT_S = 60.0  # a cold start on a busy machine; a warm one takes ~1-2 s
WAIT_S = 60.0  # for any one result: far above a task's time on a busy machine, yet a hang fails
POLL_S = 0.01  # how often the client looks for news


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
def worker(where: Setup) -> Generator[Worker]:
    """Start a worker process (prefork, 2 children), wait until it consumes; SIGKILL it after."""
    ready = Path(where.folder, "ready")
    log_file = Path(where.folder, "worker.log")
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
    sent: list[AsyncResult] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def wait(result: AsyncResult, running: Worker) -> Any:
    """The task's result, or its exception as a value."""
    wait_for(result.ready, running, f"result for task {result.id}", WAIT_S)
    return result.result


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def p50(values: list[float]) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[49]


def round_trips(app: Celery, run: Run, running: Worker, count: int) -> None:
    """Tasks one at a time: submit, poll at once, wait for the result; then a made-up id."""
    latencies = []
    right = 0
    for number in range(count):
        key = f"trip-{number}"
        started = time.perf_counter()
        result = submit(app, "pipeline.process", key, 0)
        if poll(app, str(result.id)) != "UNKNOWN" and wait(result, running) == key:
            right += 1
        latencies.append((time.perf_counter() - started) * 1000)
        run.sent.append(result)
    run.figures["roundtrip_p50_ms"] = round(p50(latencies), 2)
    shows = f"known at once, then done; p50 {p50(latencies):.1f} ms"
    expected = f"{count} of {count} right"
    run.checks.append(Check("submit, poll, wait", f"{right} of {count} right", expected, shows))
    stranger = str(uuid.uuid4())
    shows = f"a plain AsyncResult says {app.AsyncResult(stranger).state}"
    run.checks.append(Check("poll a made-up id", poll(app, stranger), "UNKNOWN", shows))


EXHAUSTED = f"{MAX_RETRIES + 1} attempts, FAILURE, dead letter"
RETRY_CASES = {  # key: transient failures, permanent, the outcome expected, what it shows
    "flaky": (1, False, "2 attempts, SUCCESS, no dead letter", "transient: retried, then done"),
    "hopeless": (9, False, EXHAUSTED, "transient every time: retries exhausted"),
    "bad-input": (0, True, "1 attempt, FAILURE, dead letter", "a permanent error: no retry"),
}


def retries_and_dead_letters(app: Celery, run: Run, ledger: Ledger, running: Worker) -> None:
    results = {}
    for key, (failures, permanent, _, _) in RETRY_CASES.items():
        results[key] = submit(app, "pipeline.process", key, failures, permanent)
    for result in results.values():
        wait(result, running)
    run.sent.extend(results.values())
    # on_failure runs just after the FAILURE state is stored: wait for both dead letters.
    count = "SELECT COUNT(*) FROM dead_letters"
    wait_for(lambda: ledger.read(count)[0][0] >= 2, running, "dead letters", WAIT_S)
    attempts = dict(ledger.read("SELECT key, COUNT(*) FROM attempts GROUP BY key"))
    dead = {row[0] for row in ledger.read("SELECT json_extract(args, '$[0]') FROM dead_letters")}
    for key, (_, _, expected, shows) in RETRY_CASES.items():
        letter = "dead letter" if key in dead else "no dead letter"
        outcome = f"{plural(attempts.get(key, 0), 'attempt')}, {results[key].state}, {letter}"
        run.checks.append(Check(f"process {key}", outcome, expected, shows))


def demo(where: Setup, run: Run, count: int) -> None:
    app = where.app()
    ledger = Ledger(where.ledger)
    click.echo(f"starting a worker on {run.broker}", err=True)
    with worker(where) as running:
        click.echo("worker ready: round trips, retries, dead letters", err=True)
        round_trips(app, run, running, count)
        retries_and_dead_letters(app, run, ledger, running)
    run.figures["tasks"] = len(run.sent)
    run.figures["succeeded"] = sum(result.state == states.SUCCESS for result in run.sent)
    run.figures["retried"] = ledger.read("SELECT COUNT(*) FROM attempts WHERE retries > 0")[0][0]
    run.figures["dead_lettered"] = ledger.read("SELECT COUNT(*) FROM dead_letters")[0][0]


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
def redis_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.startswith(("redis://", "rediss://")):
        raise click.BadParameter("not a redis:// or rediss:// URL")
    return value


@click.group(invoke_without_command=True, context_settings={"show_default": True})
@click.option(
    "--round-trips",
    type=click.IntRange(1, 1000),
    default=10,
    help="Single tasks timed there and back.",
)
@click.option("--broker", callback=redis_url, help="Redis broker URL (default: SQLite, embedded).")
@click.option("--backend", callback=redis_url, help="Redis result backend URL (default: SQLite).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(
    ctx: click.Context, round_trips: int, broker: str | None, backend: str | None, as_json: bool
) -> None:
    """Run a Celery worker: round trips, unknown ids, retries, dead letters."""
    if ctx.invoked_subcommand is not None:
        return
    run = Run(maybe_sanitize_url(broker) if broker else "SQLite (embedded)")
    previous = signal.signal(signal.SIGINT, interrupt_once)
    try:
        with TemporaryDirectory(prefix="celery_pipeline-") as folder:
            demo(setup(folder, broker, backend), run, round_trips)
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
    """Run the pipeline's worker (started by the demo): READY is created once it consumes."""
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
