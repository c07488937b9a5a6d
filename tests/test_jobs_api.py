"""jobs_api: the HTTP contract over a JobStore, in-process over ASGITransport.

The store's handler waits at a gate the test opens, and the store's clock is a FakeClock: a job
runs when a test lets it, and a key expires when a test moves the clock, never after a real wait.
"""

import asyncio
import json
import signal
import socket
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import wait
from contextlib import asynccontextmanager, closing
from typing import Any

import click
import httpx
import pytest
from fastapi import FastAPI

import jobs_api
from conftest import FakeClock, Invocation, ScriptRunner

TTL_S = 60.0
WAIT_S = 10.0  # a bound on every wait: a hung job fails the test instead of hanging it


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=1_000.0)


@pytest.fixture
def gate() -> threading.Event:
    """Closed: a job the worker takes waits; set: jobs run through."""
    return threading.Event()


@pytest.fixture
def store(clock: FakeClock, gate: threading.Event) -> Generator[jobs_api.MemoryStore]:
    def handler(job: jobs_api.Job) -> Any:
        assert gate.wait(WAIT_S), "the gate never opened"
        return jobs_api.demo_handler(job)

    with closing(jobs_api.MemoryStore(handler, now=clock, key_ttl_s=TTL_S)) as store:
        yield store
        gate.set()  # a job still waiting ends, so close() returns at once


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the app, in-process."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://jobs") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


def post(store: jobs_api.MemoryStore, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return call(jobs_api.create_app(store), "POST", "/jobs", json=body, headers=headers)


def get(store: jobs_api.MemoryStore, path: str) -> httpx.Response:
    return call(jobs_api.create_app(store), "GET", path)


def work_all(store: jobs_api.MemoryStore, gate: threading.Event) -> int:
    """Open the gate and wait for every job's latest run; how many jobs ran."""
    gate.set()
    runs = list(store.runs.values())
    done, _ = wait(runs, timeout=WAIT_S)
    assert len(done) == len(runs), "a job did not finish"
    return len(runs)


def assert_problem(answer: httpx.Response, status: int, detail: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status
    assert detail in body["detail"]
    return body


def test_a_job_is_accepted_then_polled_until_it_succeeds(
    store: jobs_api.MemoryStore, gate: threading.Event
) -> None:
    accepted = post(store, jobs_api.SQUARE, key=None)
    assert accepted.status_code == 202
    job = accepted.json()
    assert (job["state"], job["attempts"], job["result"]) == ("queued", 0, None)
    assert accepted.headers["location"] == f"/jobs/{job['id']}"
    assert accepted.headers["retry-after"] == "1"
    queued = get(store, accepted.headers["location"])
    assert queued.status_code == 200
    assert queued.json()["state"] in ("queued", "running")  # the gate holds it
    assert queued.headers["retry-after"] == "1"  # unfinished: poll again
    assert work_all(store, gate) == 1
    done = get(store, accepted.headers["location"])
    assert done.json()["state"] == "succeeded"
    assert done.json()["attempts"] == 1
    assert done.json()["result"] == {"square": 49}
    assert "retry-after" not in done.headers  # finished: nothing to wait for


def test_an_unknown_id_is_a_404_problem_never_pending(store: jobs_api.MemoryStore) -> None:
    assert_problem(get(store, "/jobs/nope"), 404, "no job nope")
    app = jobs_api.create_app(store)
    assert_problem(call(app, "POST", "/jobs/nope/retry"), 404, "no job nope")


def test_the_same_key_and_body_return_the_original_job(
    store: jobs_api.MemoryStore, gate: threading.Event
) -> None:
    first = post(store, jobs_api.SQUARE, key="k1")
    again = post(store, jobs_api.SQUARE, key="k1")
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    other_key = post(store, jobs_api.SQUARE, key="k2")
    no_key = post(store, jobs_api.SQUARE, key=None)
    assert len({first.json()["id"], other_key.json()["id"], no_key.json()["id"]}) == 3
    assert work_all(store, gate) == 3  # the replay queued nothing
    assert all(store.get(job_id).attempts == 1 for job_id in store.runs)


def test_the_same_key_with_another_body_is_a_422_problem(store: jobs_api.MemoryStore) -> None:
    post(store, jobs_api.SQUARE, key="k1")
    refused = post(store, jobs_api.POISON, key="k1")
    assert_problem(refused, 422, "another body")
    assert len(store.jobs) == 1


def test_a_key_is_forgotten_after_its_ttl(store: jobs_api.MemoryStore, clock: FakeClock) -> None:
    first = post(store, jobs_api.SQUARE, key="k1").json()
    clock.now += TTL_S - 0.001
    assert post(store, jobs_api.SQUARE, key="k1").json()["id"] == first["id"]  # still remembered
    clock.now += 0.001
    renewed = post(store, jobs_api.POISON, key="k1")  # expired: another body is fine now
    assert renewed.status_code == 202
    assert renewed.json()["id"] != first["id"]
    assert post(store, jobs_api.POISON, key="k1").json()["id"] == renewed.json()["id"]


def test_a_dead_job_is_retried_and_others_are_409(
    store: jobs_api.MemoryStore, gate: threading.Event
) -> None:
    app = jobs_api.create_app(store)
    poison = post(store, jobs_api.POISON, key=None).json()
    square = post(store, jobs_api.SQUARE, key=None).json()
    unfinished = call(app, "POST", f"/jobs/{poison['id']}/retry")
    assert_problem(unfinished, 409, "only a dead job can be retried")  # queued or running
    assert work_all(store, gate) == 2
    assert get(store, f"/jobs/{square['id']}").json()["state"] == "succeeded"  # not blocked
    dead = get(store, f"/jobs/{poison['id']}").json()
    assert (dead["state"], dead["attempts"]) == ("dead", 1)
    assert dead["error"] == "ValueError: cannot parse the payload"
    assert_problem(call(app, "POST", f"/jobs/{square['id']}/retry"), 409, "is succeeded")
    requeued = call(app, "POST", f"/jobs/{poison['id']}/retry")
    assert requeued.status_code == 202
    assert requeued.headers["location"] == f"/jobs/{poison['id']}"
    assert (requeued.json()["state"], requeued.json()["attempts"]) == ("queued", 0)
    assert requeued.json()["error"] is None
    work_all(store, gate)
    again = get(store, f"/jobs/{poison['id']}").json()
    assert (again["state"], again["attempts"]) == ("dead", 1)  # requeued once, run once


def test_an_invalid_body_is_a_422_naming_every_bad_field_and_makes_no_job(
    store: jobs_api.MemoryStore,
) -> None:
    answer = post(store, {"kind": "", "payload": 3, "colour": "red"}, key=None)
    assert answer.status_code == 422
    fields = {".".join(map(str, error["loc"])) for error in answer.json()["detail"]}
    assert fields == {"body.kind", "body.payload", "body.colour"}
    assert store.jobs == {}


class ListStore:
    """A second JobStore, with errors of its own: the API needs only the Protocol and a map."""

    class MissingError(LookupError):
        pass

    class ConflictError(Exception):
        pass

    def __init__(self) -> None:
        self.jobs: list[jobs_api.Job] = []

    def submit(self, kind: str, payload: dict[str, Any], key: str | None = None) -> jobs_api.Job:
        if key == "taken":
            raise ListStore.ConflictError("key taken")
        job = jobs_api.Job(
            id=str(len(self.jobs)), kind=kind, payload=payload, state="succeeded", attempts=1
        )
        self.jobs.append(job)
        return job

    def get(self, job_id: str) -> jobs_api.Job:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise ListStore.MissingError(f"nothing at {job_id}")

    def retry(self, job_id: str) -> jobs_api.Job:
        raise ListStore.ConflictError(f"{self.get(job_id).id} cannot be retried here")


def test_any_store_plugs_in_with_its_errors_mapped() -> None:
    store = ListStore()
    errors: dict[type[Exception], int] = {ListStore.MissingError: 404, ListStore.ConflictError: 409}
    app = jobs_api.create_app(store, errors=errors)
    accepted = call(app, "POST", "/jobs", json=jobs_api.SQUARE)
    assert accepted.status_code == 202
    assert accepted.headers["location"] == "/jobs/0"
    assert accepted.headers["retry-after"] == "1"  # on a 202 always, even if it ran already
    finished = call(app, "GET", "/jobs/0")
    assert finished.json()["state"] == "succeeded"
    assert "retry-after" not in finished.headers
    assert_problem(call(app, "GET", "/jobs/9"), 404, "nothing at 9")
    assert_problem(call(app, "POST", "/jobs/0/retry"), 409, "cannot be retried here")
    taken = call(app, "POST", "/jobs", json=jobs_api.SQUARE, headers={"Idempotency-Key": "taken"})
    assert_problem(taken, 409, "key taken")


def eventually(condition: Callable[[], bool], what: str) -> None:
    """A bounded poll: fail, naming `what`, if `condition` is not true within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.01)  # the poll's interval


def no_thread_left(before: set[threading.Thread]) -> None:
    """Every thread started since `before` ends: FastAPI's AnyIO worker threads are told to stop
    when their event loop ends, and take a moment to do it."""
    eventually(lambda: set(threading.enumerate()) <= before, "no thread of the run is left")


def test_close_stops_the_worker_and_drops_queued_jobs(
    store: jobs_api.MemoryStore, gate: threading.Event
) -> None:
    before = set(threading.enumerate())
    running = store.submit("square", {"n": 2})
    queued = store.submit("square", {"n": 3})
    closer = threading.Thread(target=store.close)
    closer.start()  # it cancels what is queued at once, then waits for the running job
    eventually(store.runs[queued.id].cancelled, "close() cancelled the queued job")
    gate.set()
    closer.join(WAIT_S)
    assert store.get(running.id).state == "succeeded"  # the running job ended, not cut
    assert store.get(queued.id).state == "queued"  # never run
    no_thread_left(before)
    with pytest.raises(RuntimeError):  # a closed store takes no more jobs
        store.submit("square", {"n": 4})


def test_serving_answers_over_a_real_socket_then_stops(store: jobs_api.MemoryStore) -> None:
    before = set(threading.enumerate())
    with jobs_api.serving(jobs_api.create_app(store)) as url:
        answer = httpx.get(f"{url}/jobs/nope", timeout=WAIT_S)  # what curl sees after serve
        assert_problem(answer, 404, "no job nope")
    no_thread_left(before)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/jobs/nope", timeout=WAIT_S)


# uvicorn ends its thread with SystemExit when the app's start-up fails: Python ignores that in a
# thread, pytest reports it; the test is that serving() notices the thread is gone.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_serving_fails_in_one_line_if_the_port_is_taken_or_the_app_cannot_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = pytest.raises(click.ClickException, match=f"cannot listen on 127.0.0.1:{port}")
        with refused, jobs_api.serving(FastAPI(), port=port):
            pass

    @asynccontextmanager
    async def broken(app: FastAPI) -> AsyncGenerator[None]:
        raise RuntimeError("no database")
        yield

    failed = pytest.raises(click.ClickException, match="did not start")
    with failed, jobs_api.serving(FastAPI(lifespan=broken)):
        pass


def test_the_default_run_passes_every_check(invoke: Callable[..., Invocation]) -> None:
    before = set(threading.enumerate())
    done = invoke(jobs_api.run)
    assert done.code == 0, done.stderr
    summary = ["8 of 8 checks passed", "3 submissions, 2 jobs: the replay made none"]
    assert done.stdout.splitlines()[-2:] == summary  # a line each, not run together
    no_thread_left(before)


def test_ctrl_c_in_the_default_run_stops_server_and_worker(
    invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch
) -> None:
    pressed = threading.Event()

    def interrupting(job: jobs_api.Job) -> Any:
        if not pressed.is_set():  # one Ctrl-C, while the first job runs
            pressed.set()
            signal.raise_signal(signal.SIGINT)
        return jobs_api.demo_handler(job)

    monkeypatch.setattr(jobs_api, "demo_handler", interrupting)
    before = set(threading.enumerate())
    previous = signal.getsignal(signal.SIGINT)
    try:
        done = invoke(jobs_api.run)
    finally:
        signal.signal(signal.SIGINT, previous)  # the run ignores a second Ctrl-C from then on
    assert done.code == 130, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().endswith("of 8 checks run; server stopped")
    assert "Traceback" not in done.stderr
    no_thread_left(before)


def test_bad_arguments_are_one_line_and_exit_2(invoke: Callable[..., Invocation]) -> None:
    invoke(jobs_api.run, "--json", "extra").assert_usage_error("extra")
    invoke(jobs_api.run, "serve", "--port", "0").assert_usage_error("--port")
    invoke(jobs_api.run, "serve", "--port", "many").assert_usage_error("--port")


def test_json_run_passes_every_check(runner: ScriptRunner) -> None:
    proc = runner.run("jobs_api", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["checks"]) == 8
    assert all(check["passed"] for check in result["checks"]), result["checks"]
    assert (result["submitted"], result["unique_jobs"]) == (3, 2)  # the replay made no job


def test_serve_runs_until_ctrl_c(runner: ScriptRunner) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    line = runner.ctrl_c("jobs_api", "serve", "--port", str(port), ready="curl -i")
    assert line == "interrupted: server stopped"
