# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "fastapi", "httpx", "pydantic", "rich", "uvicorn"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""The HTTP contract of a job API: 202 and a Location to poll, Idempotency-Key, problem details.

Pattern:       POST /jobs answers 202 Accepted with the job, a Location to poll and Retry-After;
               GET /jobs/{id} gives its state, attempts, and result or error (an unknown id: 404).
               An Idempotency-Key replays the original job for the same body and refuses another
               (422) until the key expires, a day later (KEY_TTL_S); POST /jobs/{id}/retry requeues
               a dead job (else 409); store errors are problem+json. The app takes a JobStore (a
               Protocol) and maps its errors: where jobs live and who runs them is the store's job.
When to use:   Work longer than a request (reports, imports, e-mail) whose caller wants the result.
When not to:   Work done within the request (answer 200); fire-and-forget with nobody polling;
               many machines or high rates (a broker: celery_pipeline.py).
Run:           uv run scripts/jobs_api.py
               uv run scripts/jobs_api.py serve --port 8000   (then /docs, and the curl)
Try it:        --json: 3 submissions, 2 unique_jobs: the replay with the same key made no job.
               serve, then run its curl line twice: the same job id; with another n: a 422.
               serve, then curl -i localhost:8000/jobs/nope: a 404 as application/problem+json.

job_queue.py's JobQueue (SQLite, leases, retries, dead letters, the SIGKILL proof) plugs in
unchanged, its three exceptions passed as `errors`. The demo store: memory, one worker, no retries.
"""

import asyncio
import hashlib
import json
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Annotated, Any, Literal, Protocol

import click
import httpx
import uvicorn
from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

# --- The pattern: the store's contract --------------------------------------------------------
KEY_TTL_S = 24 * 3600.0  # an Idempotency-Key is remembered a day, as Stripe does
RETRY_AFTER_S = 1  # when a client should poll again (HTTP wants whole seconds)
FINISHED = ("succeeded", "dead")  # "failed" is not: a retry is due later


class Job(BaseModel):
    """A job as the API shows it. A store may return any object with these fields."""

    model_config = ConfigDict(frozen=True)  # a snapshot: a change is a new Job
    id: str
    kind: str
    payload: dict[str, Any]
    state: Literal["queued", "running", "succeeded", "failed", "dead"]
    attempts: int
    result: Any = None
    error: str | None = None


class UnknownJobError(Exception):
    """No job has this id."""


class KeyReusedError(Exception):
    """The idempotency key was used with another body."""


class NotDeadError(Exception):
    """Only a dead job can be retried."""


class StoredJob(Protocol):
    """A store's job, as the API reads it (then checks it as a Job): job_queue's Job fits too."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...


class JobStore(Protocol):
    """What the API needs; the store enforces the rules, the API maps its errors to HTTP.
    submit: the same key and body return the original job, another body is a KeyReusedError,
    until the key expires. get: UnknownJobError if there is none. retry: requeue a dead job
    with fresh attempts, NotDeadError if it is not dead."""

    def submit(self, kind: str, payload: dict[str, Any], key: str | None = None) -> StoredJob: ...
    def get(self, job_id: str) -> StoredJob: ...
    def retry(self, job_id: str) -> StoredJob: ...


ERRORS: Mapping[type[Exception], int] = {
    UnknownJobError: 404,
    KeyReusedError: 422,
    NotDeadError: 409,
}


# --- The pattern: the API -------------------------------------------------------------------------
class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    kind: str = Field(min_length=1, max_length=50)
    payload: dict[str, Any] = {}


def problem(status: int, detail: str) -> JSONResponse:
    """An RFC 9457 problem details answer."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "detail": detail}
    body["status"] = status
    return JSONResponse(body, status, media_type="application/problem+json")


def create_app(store: JobStore, errors: Mapping[type[Exception], int] = ERRORS) -> FastAPI:
    """The job API over `store`; `errors` maps the store's exceptions to HTTP statuses. The routes
    are plain `def`s: FastAPI runs them in its thread pool, so a blocking store never stalls the
    event loop."""
    app = FastAPI(title="jobs")

    async def store_error(request: Request, err: Exception) -> JSONResponse:
        status = next(code for kind, code in errors.items() if isinstance(err, kind))
        return problem(status, str(err))

    for kind in errors:
        app.add_exception_handler(kind, store_error)

    def answer(job: StoredJob, response: Response) -> Job:
        """The job as JSON; Retry-After while it is unfinished, so a client knows when to poll."""
        if job.state not in FINISHED:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return Job.model_validate(job, from_attributes=True)

    @app.post("/jobs", status_code=202)
    def submit(
        data: JobIn,
        response: Response,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
    ) -> Job:
        job = store.submit(data.kind, data.payload, idempotency_key)
        response.headers["Location"] = f"/jobs/{job.id}"
        response.headers["Retry-After"] = str(RETRY_AFTER_S)  # always, even if it ran already
        return answer(job, response)

    @app.get("/jobs/{job_id}")
    def status(job_id: str, response: Response) -> Job:
        return answer(store.get(job_id), response)

    @app.post("/jobs/{job_id}/retry", status_code=202)
    def retry(job_id: str, response: Response) -> Job:
        job = store.retry(job_id)
        response.headers["Location"] = f"/jobs/{job.id}"
        response.headers["Retry-After"] = str(RETRY_AFTER_S)  # always, even if it ran already
        return answer(job, response)

    return app


# --- Demo plumbing: a store in memory and one worker thread --------------------------------------
def demo_handler(job: Job) -> Any:
    """square: n squared; any other kind is poison (a payload it cannot parse)."""
    if job.kind != "square":
        raise ValueError("cannot parse the payload")
    return {"square": job.payload["n"] ** 2}


@dataclass
class MemoryStore:
    """A JobStore in memory, safe from any thread: jobs and keys under one lock; each queued job
    is handed to an executor with one worker thread, which runs `handler` on it. close() stops
    that thread. Gone when the process ends (JobQueue is not)."""

    handler: Callable[[Job], Any]  # runs on the worker thread; what it returns is the result
    now: Callable[[], float] = time.time  # wall time; a test injects its own clock
    key_ttl_s: float = KEY_TTL_S
    jobs: dict[str, Job] = field(default_factory=dict)
    keys: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # body hash, job, until
    runs: dict[str, Future[None]] = field(default_factory=dict)  # each job's latest run
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, kind: str, payload: dict[str, Any], key: str | None = None) -> Job:
        body = json.dumps({"kind": kind, "payload": payload}, sort_keys=True)
        body_hash = hashlib.sha256(body.encode()).hexdigest()
        now = self.now()
        with self.lock:  # the look-up and the insert are one step: two requests cannot both insert
            if key in self.keys:  # None never is
                seen_hash, seen_id, until = self.keys[key]
                if until > now:  # seen before, and not yet expired
                    if seen_hash != body_hash:
                        raise KeyReusedError("this Idempotency-Key was used with another body")
                    return self.jobs[seen_id]
            job = Job(id=uuid.uuid4().hex, kind=kind, payload=payload, state="queued", attempts=0)
            self.jobs[job.id] = job
            if key is not None:
                self.keys[key] = (body_hash, job.id, now + self.key_ttl_s)
            self.runs[job.id] = self.executor.submit(self.execute, job.id)
        return job

    def get(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no job {job_id}")
        return job

    def retry(self, job_id: str) -> Job:
        self.get(job_id)  # UnknownJobError if there is no such job
        with self.lock:  # read again under the lock: two retries at once requeue it once
            state = self.jobs[job_id].state
            if state != "dead":
                raise NotDeadError(f"job {job_id} is {state}; only a dead job can be retried")
            job = self.update(job_id, {"state": "queued", "attempts": 0, "error": None})
            self.runs[job_id] = self.executor.submit(self.execute, job_id)
        return job

    def execute(self, job_id: str) -> None:
        """Run one job on the worker thread: running with one more attempt, then succeeded, or
        dead at the first failure (no retries here: job_queue.py has them)."""
        with self.lock:
            attempts = self.jobs[job_id].attempts + 1
            job = self.update(job_id, {"state": "running", "attempts": attempts})
        try:
            result = self.handler(job)
        except Exception as err:  # noqa: BLE001 - any failure ends the job: dead, the queue moves on
            changes = {"state": "dead", "error": f"{type(err).__name__}: {err}"}
        else:
            changes = {"state": "succeeded", "result": result}
        with self.lock:
            self.update(job_id, changes)

    def update(self, job_id: str, changes: dict[str, Any]) -> Job:
        """Replace a job by a changed copy (a Job is frozen); the caller holds the lock."""
        job = self.jobs[job_id].model_copy(update=changes)
        self.jobs[job_id] = job
        return job

    def close(self) -> None:
        """Stop the worker: a running job ends, queued ones are dropped; no thread is left."""
        self.executor.shutdown(wait=True, cancel_futures=True)


# --- Demo plumbing: the server in a thread --------------------------------------------------------
TIMEOUT_S = 10.0  # per request, for start-up, and for a job to finish
POLL_SCALE = 0.05  # the demo waits a twentieth of Retry-After between polls: 50 ms, not 1 s


@contextmanager
def serving(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Generator[str]:
    """Serve `app` from a thread of this process; yield its URL once uvicorn has started. On the
    way out, ask uvicorn to stop (it ends the requests in flight) and wait for the thread. Off
    the main thread uvicorn installs no signal handlers: Ctrl-C stays with the main thread."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP (no 40 ms Nagle).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror}") from err
        sock.listen(1024)
        url = f"http://{host}:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
        thread.start()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise click.ClickException(f"the API did not start at {url}")
                time.sleep(0.01)  # the poll's interval
            yield url
        finally:
            server.should_exit = True
            thread.join()


# --- Demo plumbing: the scripted session and the report -------------------------------------------
SQUARE = {"kind": "square", "payload": {"n": 7}}
POISON = {"kind": "poison", "payload": {"n": 0}}
CHECKS = 8  # the steps of the session


@dataclass
class Check:
    name: str
    status: int
    expected: int
    shows: str
    passed: bool


@dataclass
class Run:
    """What the demo has done so far."""

    checks: list[Check] = field(default_factory=list)
    submitted: int = 0  # POST /jobs answered 202, replays included
    unique_jobs: int = 0  # the jobs the store holds at the end

    def check(self, name: str, answer: httpx.Response, expected: int, shows: str, ok: bool) -> None:
        """Record a step: passed if the status is as expected, `ok` holds, errors are problems."""
        problem = answer.headers.get("content-type") == "application/problem+json"
        passed = answer.status_code == expected and ok and (expected < 400 or problem)
        self.checks.append(Check(name, answer.status_code, expected, shows, passed))


async def poll(client: httpx.AsyncClient, location: str) -> httpx.Response:
    """GET `location` until the job has finished, waiting Retry-After (scaled) between polls."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        answer = await client.get(location)
        if "retry-after" not in answer.headers or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(int(answer.headers["retry-after"]) * POLL_SCALE)


async def session(client: httpx.AsyncClient, run: Run) -> None:
    """Every rule once, each step recorded as a Check."""
    key = {"Idempotency-Key": "order-7"}
    first = await client.post("/jobs", json=SQUARE, headers=key)
    job = first.json()
    where = first.headers.get("location") == f"/jobs/{job.get('id')}"
    when = first.headers.get("retry-after") == str(RETRY_AFTER_S)
    shows = "accepted: Location and Retry-After say where, when"
    run.check("POST /jobs", first, 202, shows, where and when)
    again = await client.post("/jobs", json=SQUARE, headers=key)
    same = again.json().get("id") == job["id"]
    run.check("POST /jobs, same key and body", again, 202, "the original job: no second one", same)
    other = await client.post("/jobs", json=POISON, headers=key)
    run.check("POST /jobs, same key, other body", other, 422, "a reused key is refused", True)
    done = await poll(client, first.headers["location"])
    result = done.json().get("result") == {"square": 49}
    run.check(f"GET {first.headers['location']}", done, 200, "polled until succeeded: 49", result)
    unknown = await client.get("/jobs/no-such-id")
    run.check("GET /jobs/no-such-id", unknown, 404, "an unknown id is a 404, never pending", True)
    poison = await client.post("/jobs", json=POISON)
    dead = await poll(client, poison.headers["location"])
    is_dead = dead.json().get("state") == "dead"
    run.check(f"GET {poison.headers['location']}", dead, 200, "a poison job ends dead", is_dead)
    requeued = await client.post(f"{poison.headers['location']}/retry")
    queued = requeued.json().get("state") == "queued"
    run.check("POST .../retry (dead)", requeued, 202, "a dead job is requeued", queued)
    refused = await client.post(f"/jobs/{job['id']}/retry")
    run.check("POST .../retry (succeeded)", refused, 409, "only a dead job can be retried", True)
    run.submitted = len([answer for answer in (first, again, poison) if answer.status_code == 202])


async def drive(url: str, run: Run) -> None:
    """The session. The first Ctrl-C cancels it; any after that is ignored, not to cut the
    clean-up short (uv passes a second one on)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_ctrl_c() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_ctrl_c)
    click.echo(f"API on {url}, served from a thread, jobs run on a worker thread", err=True)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S) as client:
        await session(client, run)


def report(run: Run, as_json: bool) -> int:
    """Print the checks and the figures; return 0 only if every check passed."""
    code = 0 if all(check.passed for check in run.checks) else 1
    if as_json:
        checks = [asdict(check) for check in run.checks]
        figures = {"submitted": run.submitted, "unique_jobs": run.unique_jobs}
        click.echo(json.dumps({"checks": checks, **figures}))
        return code
    table = Table("request", "status", "expected", "what it shows", title="The contract, checked")
    for check in run.checks:
        mark = "" if check.passed else "  FAILED"
        table.add_row(check.name, str(check.status), f"{check.expected}{mark}", check.shows)
    passed = sum(check.passed for check in run.checks)
    figures = f"{run.submitted} submissions, {run.unique_jobs} jobs: the replay made none"
    Console().print(table, f"{passed} of {len(run.checks)} checks passed", figures, sep="\n")
    return code


# --- CLI ------------------------------------------------------------------------------------------
@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(ctx: click.Context, as_json: bool) -> None:
    """Run the job API and check its contract, one request at a time, with a scripted client."""
    if ctx.invoked_subcommand is not None:
        return
    run = Run()
    with closing(MemoryStore(demo_handler)) as store, serving(create_app(store)) as url:
        try:
            asyncio.run(drive(url, run))
        except asyncio.CancelledError:  # drive() cancels itself on Ctrl-C; the with stops all
            checks = f"{len(run.checks)} of {CHECKS} checks run"
            raise click.Abort(f"interrupted: {checks}; server stopped") from None
        run.unique_jobs = len(store.jobs)
    ctx.exit(report(run, as_json))


@cli.command(context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the API and one worker until Ctrl-C, for curl and /docs."""
    body = """'{"kind": "square", "payload": {"n": 7}}'"""
    headers = "-H 'Idempotency-Key: k1' -H 'Content-Type: application/json'"
    with closing(MemoryStore(demo_handler)) as store, serving(create_app(store), host, port) as url:
        try:  # from the ready line on, a Ctrl-C is this one's to report
            click.echo(f"curl -i {headers} -d {body} {url}/jobs", err=True)
            threading.Event().wait()  # nothing sets it: the main thread sleeps until Ctrl-C
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second one must not cut the stop
    raise click.Abort("interrupted: server stopped")


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
