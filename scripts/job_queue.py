# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""A durable job queue that loses nothing: leases, idempotency keys, retries, dead letters.

Pattern:       Jobs live in SQLite (WAL). A worker claims one with a lease in one UPDATE ...
               RETURNING; if it dies, the lease expires and another worker takes the job. Transient
               failures retry with backoff and jitter, then the job goes to a dead-letter table. An
               idempotency key makes a resubmission return the original job. Delivery is at-least-
               once, so the effect is written keyed by job id, in the completing transaction: once.
When to use:   Work that must survive a crash, on one machine and one database: imports, e-mail.
When not to:   Many machines or high rates (a broker: celery_pipeline.py); work that must finish
               within the request (just do it). The HTTP face of this queue: jobs_api.py.
Run:           uv run scripts/job_queue.py
               uv run scripts/job_queue.py --jobs 20 --lease-ms 300
Try it:        --jobs 10 --lease-ms 100: a short run, the same verdict: lost 0, 2 of 10 dead.
               --lease-ms 3000: the killed worker's job waits 3 s before it is redelivered.
"""

import hashlib
import json
import multiprocessing
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from multiprocessing.process import BaseProcess
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

# --- The pattern: the queue (SQLite, any thread, any process) ------------------------------------
LEASE_S = 30.0  # a claim's visibility timeout: well above a job's run time, or jobs run twice
MAX_ATTEMPTS = 4  # then the dead-letter table: 4 tries wait at most 0.5 + 1 + 2 = 3.5 s
BACKOFF_BASE_S = 0.5  # the first retry waits up to this; each later one up to twice as long
BACKOFF_CAP_S = 60.0  # no retry waits longer
KEY_TTL_S = 24 * 3600.0  # an idempotency key is remembered a day, as Stripe does
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',  -- running, succeeded, failed (retry due later), dead
    attempts INTEGER NOT NULL DEFAULT 0, redeliveries INTEGER NOT NULL DEFAULT 0,
    next_run_at REAL NOT NULL, lease_until REAL, lease TEXT, result TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, next_run_at);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, body_hash TEXT NOT NULL, job_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    job_id TEXT PRIMARY KEY, error TEXT NOT NULL, attempts INTEGER NOT NULL, died_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS effects (  -- the handlers' side effects: at most one per job
    job_id TEXT NOT NULL UNIQUE, value TEXT NOT NULL);
"""
INSERT_JOB = "INSERT INTO jobs (id, kind, payload, next_run_at) VALUES (?, ?, ?, ?)"
DEAD_LETTER = "INSERT INTO dead_letters SELECT id, error, attempts, ? FROM jobs WHERE id = ?"
BURY = """UPDATE jobs SET state = 'dead', lease = NULL, error = 'its lease expired every time'
    WHERE state = 'running' AND lease_until <= :now AND attempts >= :max RETURNING id"""


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    result: Any = None
    error: str | None = None


class UnknownJobError(Exception):
    """No job has this id."""


class KeyReusedError(Exception):
    """The idempotency key was used with another body."""


class NotDeadError(Exception):
    """Only a dead job can be retried."""


class TransientError(Exception):
    """A failure worth retrying (a timeout, a 503). Any other exception marks a poison job."""


@dataclass(frozen=True)
class Claim:
    job: Job
    lease: str  # this claim's token: only its holder may complete or fail the job


def backoff(
    attempt: int, base_s: float = BACKOFF_BASE_S, rng: Callable[[], float] = random.random
) -> float:
    """Full jitter: a random wait up to base * 2**(attempt-1), capped, so retries spread out."""
    return rng() * min(BACKOFF_CAP_S, base_s * 2 ** (attempt - 1))


@dataclass
class JobQueue:
    """Jobs in one SQLite file. Each method is one short transaction on a connection of its own,
    so it works from any thread or process. `now` is the clock (wall time, so that a lease
    means the same in every process; a test injects its own); `delay(attempts)` the backoff."""

    path: str
    now: Callable[[], float] = time.time
    lease_s: float = LEASE_S
    max_attempts: int = MAX_ATTEMPTS
    delay: Callable[[int], float] = backoff

    def __post_init__(self) -> None:
        with connect(self.path) as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            db.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Generator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock first: two claims can never interleave."""
        with connect(self.path) as db, db:  # `with db`: COMMIT, or ROLLBACK on an exception
            db.execute("BEGIN IMMEDIATE")
            yield db

    def submit(self, kind: str, payload: dict[str, Any], key: str | None = None) -> Job:
        """Store a job and return it. The same key with the same body returns the original job;
        with another body it is refused (KeyReusedError), until the key expires."""
        body = json.dumps({"kind": kind, "payload": payload}, sort_keys=True)
        body_hash = hashlib.sha256(body.encode()).hexdigest()
        now = self.now()
        job_id = uuid.uuid4().hex
        with self.transaction() as db:
            db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,))
            seen = db.execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchone()
            if seen and seen["body_hash"] != body_hash:
                raise KeyReusedError("this idempotency key was used with another body")
            if seen:
                return self.get(seen["job_id"])
            db.execute(INSERT_JOB, (job_id, kind, json.dumps(payload), now))
            if key is not None:
                db.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?, ?)",
                    (key, body_hash, job_id, now + KEY_TTL_S),
                )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with connect(self.path) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(f"no job {job_id}")
        result = json.loads(row["result"]) if row["result"] else None
        fields = {name: row[name] for name in ("id", "kind", "state", "attempts", "error")}
        return Job(**fields, payload=json.loads(row["payload"]), result=result)

    def claim(self) -> Claim | None:
        """Take the next due job, or one whose lease expired (its worker died), in one atomic
        UPDATE ... RETURNING. A job that used up its attempts by dying is dead-lettered."""
        now = self.now()
        lease = uuid.uuid4().hex
        with self.transaction() as db:
            # Its last lease expired too: it kills its worker every time, so it must not loop.
            buried = db.execute(BURY, {"now": now, "max": self.max_attempts}).fetchall()
            db.executemany(DEAD_LETTER, [(now, job["id"]) for job in buried])
            row = db.execute(
                """UPDATE jobs SET state = 'running', attempts = attempts + 1, lease = :lease,
                       redeliveries = redeliveries + (state = 'running'), lease_until = :until
                   WHERE id = (SELECT id FROM jobs
                       WHERE (state IN ('queued', 'failed') AND next_run_at <= :now)
                          OR (state = 'running' AND lease_until <= :now)
                       ORDER BY next_run_at LIMIT 1)
                   RETURNING id, attempts""",
                {"lease": lease, "until": now + self.lease_s, "now": now},
            ).fetchone()
        return Claim(self.get(row["id"]), lease) if row else None

    def complete(self, claim: Claim, result: Any) -> bool:
        """Record the result and its side effect in one transaction. False if the lease was
        lost (it expired and another worker took the job): then nothing is written."""
        with self.transaction() as db:
            done = db.execute(
                "UPDATE jobs SET state = 'succeeded', result = ?, lease = NULL "
                "WHERE id = ? AND lease = ?",
                (json.dumps(result), claim.job.id, claim.lease),
            )
            if done.rowcount == 0:
                return False
            # The effect, keyed by job id: the UNIQUE constraint refuses a second one.
            db.execute("INSERT INTO effects VALUES (?, ?)", (claim.job.id, json.dumps(result)))
        return True

    def fail(self, claim: Claim, error: str, transient: bool) -> str:
        """Retry after the backoff, or dead-letter the job; return its new state ("lost" if the
        lease was lost: then nothing is written)."""
        now = self.now()
        state = "failed" if transient and claim.job.attempts < self.max_attempts else "dead"
        with self.transaction() as db:
            moved = db.execute(
                "UPDATE jobs SET state = ?, error = ?, lease = NULL, next_run_at = ? "
                "WHERE id = ? AND lease = ?",
                (state, error, now + self.delay(claim.job.attempts), claim.job.id, claim.lease),
            )
            if moved.rowcount == 0:
                return "lost"
            if state == "dead":
                db.execute(DEAD_LETTER, (now, claim.job.id))
        return state

    def retry(self, job_id: str) -> Job:
        """Requeue a dead job with fresh attempts (once its cause is fixed); NotDeadError if not."""
        with self.transaction() as db:
            requeued = db.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, next_run_at = ? "
                "WHERE id = ? AND state = 'dead'",
                (self.now(), job_id),
            )
            db.execute("DELETE FROM dead_letters WHERE job_id = ?", (job_id,))
        job = self.get(job_id)  # UnknownJobError if there is no such job
        if requeued.rowcount == 0:
            raise NotDeadError(f"job {job_id} is {job.state}; only a dead job can be retried")
        return job


@contextmanager
def connect(path: str) -> Generator[sqlite3.Connection]:
    """A connection in autocommit mode (BEGIN is ours to say) that waits 5 s for a lock."""
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()


# --- The pattern: the worker ----------------------------------------------------------------------
Handler = Callable[[Job], Any]  # returns the result; raises TransientError to be retried


def run_one(queue: JobQueue, handler: Handler) -> str | None:
    """Claim one job and run it; return its new state, or None if nothing was due.

    Handlers must be idempotent: delivery is at-least-once. A worker that dies (or stalls past
    its lease) after starting a job has the job redelivered to another, which runs it again.
    Here the effect is written by complete(), keyed by job id, with the completion."""
    claim = queue.claim()
    if claim is None:
        return None
    try:
        result = handler(claim.job)
    except TransientError as err:
        return queue.fail(claim, f"transient: {err}", transient=True)
    except Exception as err:  # noqa: BLE001 - poison: retrying cannot help, nor may it block
        return queue.fail(claim, f"{type(err).__name__}: {err}", transient=False)
    return "succeeded" if queue.complete(claim, result) else "lost"


def work(queue: JobQueue, handler: Handler, stop: threading.Event, idle_s: float = 0.05) -> None:
    """Run jobs until `stop` is set; poll every `idle_s` while the queue is empty."""
    while not stop.is_set():
        if run_one(queue, handler) is None:
            stop.wait(idle_s)


# --- Demo plumbing: the handler, workers in processes of their own --------------------------------
WORK_S = 0.02  # each demo job's work: most of a worker's time is inside a lease, so is the kill
TIMEOUT_S = 10.0  # for any stretch without progress
DEMO_BACKOFF_S = 0.05  # the first retry's wait: a tenth of the default, for a run of seconds
FAILS = {4: 2, 7: 99}  # job i (mod 10): transient failures before it succeeds (99: it never does)


def demo_handler(job: Job) -> Any:
    """task: n squared, after `fails` transient failures; poison: a payload it cannot parse."""
    time.sleep(WORK_S)
    if job.kind == "poison":
        raise ValueError("cannot parse the payload")
    if job.attempts <= job.payload.get("fails", 0):
        raise TransientError(f"attempt {job.attempts} timed out")
    return {"square": job.payload["n"] ** 2}


def worker_child(queue: JobQueue) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when its workers stop
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())  # end the job, exit 0
    work(queue, demo_handler, stop)


@contextmanager
def child(target: Callable[..., None], *args: Any) -> Generator[BaseProcess]:
    """A forked child process, stopped on the way out: SIGTERM, then SIGKILL after 1.5 s."""
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    try:
        yield process
    finally:
        process.terminate()
        process.join(timeout=1.5)
        process.kill()  # only if it is still there: the 2 s rule beats a hung shutdown
        process.join()


# --- Demo plumbing: submit, kill the worker mid-job, drain, verify from the database -------------
@dataclass
class Summary:
    submitted: int  # submissions, duplicates (the same key and body) included
    unique_jobs: int  # rows in the jobs table: one per key if duplicates collapsed
    succeeded: int  # each with exactly one side effect
    dead: int  # poison, and flaky past the attempts: in the dead-letter table
    lost: int  # submitted jobs that did not end exactly once (succeeded + 1 effect, or dead)
    duplicate_effects: int  # side effects beyond one per job
    redelivered: int  # claims of a job whose lease had expired: the killed worker's, usually
    jobs_per_s: float  # first submission to drained: bound by the commits' fsyncs, not the lease


# Every figure from the database, none from what the processes said they did.
VERIFY = """SELECT :submitted AS submitted, count(*) AS unique_jobs,
    count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE state = 'dead') AS dead,
    :unique - count(*) FILTER (WHERE state = 'succeeded' AND effects = 1
        OR state = 'dead' AND effects = 0 AND dead_letters = 1) AS lost,
    (SELECT count(*) - count(DISTINCT job_id) FROM effects) AS duplicate_effects,
    coalesce(sum(redeliveries), 0) AS redelivered,
    round(:unique / :elapsed_s, 1) AS jobs_per_s
FROM (SELECT *, (SELECT count(*) FROM effects WHERE job_id = jobs.id) AS effects,
    (SELECT count(*) FROM dead_letters WHERE job_id = jobs.id) AS dead_letters FROM jobs)"""
PROGRESS = """SELECT count(*) FILTER (WHERE state IN ('succeeded', 'dead')) AS finished,
    count(*) FILTER (WHERE state = 'running') AS running FROM jobs"""


def wait_until(path: str, target: int, progress: list[int], mid_job: bool = False) -> None:
    """Poll until `target` jobs have finished (and, if `mid_job`, one is running), or fail."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        with connect(path) as db:
            row = db.execute(PROGRESS).fetchone()
        progress[0] = row["finished"]
        if progress[0] >= target and (row["running"] or not mid_job):
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"no progress in {TIMEOUT_S:.0f} s: the queue is stuck")
        time.sleep(0.005)  # the poll's interval: short, to catch a worker mid-job


def demo(queue: JobQueue, jobs: int, console: Console, progress: list[int]) -> Summary:
    """Submit `jobs`, every 4th twice; SIGKILL the worker mid-job, start another; wait for the
    queue to drain. `progress[0]` holds the jobs finished so far, for a Ctrl-C's message."""
    answers: list[str] = []  # the job id each submission returned, duplicates included
    with child(worker_child, queue) as first:
        console.print(f"worker {first.pid} started")
        started = time.perf_counter()
        for i in range(jobs):
            payload = {"n": i, "fails": FAILS.get(i % 10, 0)}
            kind = "poison" if i % 10 == 9 else "task"
            copies = 2 if i % 4 == 0 else 1  # a client's retry after a timeout: same key and body
            answers += [queue.submit(kind, payload, key=f"k{i}").id for _ in range(copies)]
        wait_until(queue.path, jobs // 3, progress, mid_job=True)
        first.kill()  # SIGKILL mid-job; one just after a COMMIT leaves that commit whole
        console.print(f"worker {first.pid} killed after {progress[0]} jobs; a new one starts")
    ids = set(answers)  # one job per key, if the duplicates collapsed
    with child(worker_child, queue), Progress(console=console, transient=True) as bar:
        task = bar.add_task("draining", total=len(ids))
        while progress[0] < len(ids):
            wait_until(queue.path, progress[0] + 1, progress)
            bar.update(task, completed=progress[0])
    elapsed_s = time.perf_counter() - started
    figures = {"submitted": len(answers), "unique": len(ids), "elapsed_s": elapsed_s}
    with connect(queue.path) as db:
        row = db.execute(VERIFY, figures).fetchone()
    return Summary(**dict(row))


def report(summary: Summary, console: Console, as_json: bool) -> int:
    """Print the figures; return 0 only if nothing was lost or applied twice."""
    good = summary.lost == 0 and summary.duplicate_effects == 0
    if as_json:
        click.echo(json.dumps(asdict(summary)))
        return 0 if good else 1
    table = Table("figure", "value", title="Jobs, verified from the database")
    for name, value in asdict(summary).items():
        table.add_row(name, str(value))
    console.print(table, "all ended exactly once" if good else "FAILED: see lost and duplicates")
    return 0 if good else 1


def interrupt_once(signum: int, frame: object) -> None:
    """The first Ctrl-C stops the run; a second (uv passes one on) must not cut the clean-up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


# --- CLI ------------------------------------------------------------------------------------------
@click.command(context_settings={"show_default": True})
@click.option("--jobs", type=click.IntRange(10, 10_000), default=60, help="Jobs to submit.")
@click.option(
    "--lease-ms",
    type=click.IntRange(100, 60_000),
    default=1000,
    help="How long a claimed job stays hidden from other workers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.pass_context
def cli(ctx: click.Context, jobs: int, lease_ms: int, as_json: bool) -> None:
    """Submit jobs, kill a worker mid-job, and check from the database that none was lost."""
    console = Console(stderr=True)
    progress = [0]
    signal.signal(signal.SIGINT, interrupt_once)
    with tempfile.TemporaryDirectory(prefix="job_queue-") as directory:
        delay = partial(backoff, base_s=DEMO_BACKOFF_S)
        queue = JobQueue(f"{directory}/jobs.db", lease_s=lease_ms / 1000, delay=delay)
        try:
            summary = demo(queue, jobs, console, progress)
        except KeyboardInterrupt as err:
            noun = "job" if progress[0] == 1 else "jobs"
            message = f"interrupted: {progress[0]} {noun} finished; workers stopped"
            raise click.Abort(message) from err
    ctx.exit(report(summary, console, as_json))


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
