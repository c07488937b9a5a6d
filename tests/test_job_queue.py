"""job_queue: idempotency by key, leases that expire and redeliver, dead letters, retries.

The queue's clock is a FakeClock, so a lease or a key's TTL expires when a test moves the clock,
never after a real wait.
"""

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from rich.console import Console

import job_queue
from conftest import FakeClock, Invocation, ScriptRunner

LEASE_S = 30.0
MAX_ATTEMPTS = 3


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=1_000.0)


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> job_queue.JobQueue:
    """A queue on a fake clock whose retry waits 10 s after attempt 1, 20 s after attempt 2."""
    return job_queue.JobQueue(
        str(tmp_path / "jobs.db"),
        now=clock,
        lease_s=LEASE_S,
        max_attempts=MAX_ATTEMPTS,
        delay=lambda attempts: 10.0 * attempts,
    )


def rows(queue: job_queue.JobQueue, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(queue.path) as db:
        return db.execute(sql).fetchall()


def fails_transiently(job: job_queue.Job) -> Any:
    raise job_queue.TransientError("the upstream timed out")


def test_the_same_key_and_body_return_the_original_job(queue: job_queue.JobQueue) -> None:
    first = queue.submit("task", {"n": 1}, key="k1")
    assert (first.state, first.attempts, first.result) == ("queued", 0, None)
    assert queue.submit("task", {"n": 1}, key="k1") == first
    other = queue.submit("task", {"n": 1}, key="k2")
    without = [queue.submit("task", {"n": 1}).id for _ in range(2)]
    assert len({first.id, other.id, *without}) == 4
    assert rows(queue, "SELECT count(*) FROM jobs") == [(4,)]


def test_the_same_key_with_another_body_is_refused(queue: job_queue.JobQueue) -> None:
    queue.submit("task", {"n": 1}, key="k1")
    with pytest.raises(job_queue.KeyReusedError, match="another body"):
        queue.submit("task", {"n": 2}, key="k1")
    with pytest.raises(job_queue.KeyReusedError):
        queue.submit("poison", {"n": 1}, key="k1")
    assert rows(queue, "SELECT count(*) FROM jobs") == [(1,)]


def test_a_key_is_forgotten_after_its_ttl(queue: job_queue.JobQueue, clock: FakeClock) -> None:
    first = queue.submit("task", {"n": 1}, key="k1")
    clock.now += job_queue.KEY_TTL_S - 1
    assert queue.submit("task", {"n": 1}, key="k1").id == first.id  # still remembered
    clock.now += 1
    renewed = queue.submit("task", {"n": 2}, key="k1")  # expired: another body is fine now
    assert renewed.id != first.id
    assert queue.submit("task", {"n": 2}, key="k1").id == renewed.id


def test_an_unknown_id_is_refused(queue: job_queue.JobQueue) -> None:
    with pytest.raises(job_queue.UnknownJobError, match="no job nope"):
        queue.get("nope")
    with pytest.raises(job_queue.UnknownJobError):
        queue.retry("nope")


def test_an_expired_lease_redelivers_the_job(queue: job_queue.JobQueue, clock: FakeClock) -> None:
    job = queue.submit("task", {"n": 1})
    first = queue.claim()
    assert first is not None
    assert first.job.id == job.id
    assert queue.claim() is None  # leased: invisible to other workers
    clock.now += LEASE_S - 0.1
    assert queue.claim() is None
    clock.now += 0.1  # the first worker died, or stalled: its lease ran out
    second = queue.claim()
    assert second is not None
    assert (second.job.id, second.job.attempts) == (job.id, 2)
    assert queue.complete(first, {"by": "first"}) is False  # a stale worker writes nothing
    assert queue.fail(first, "late", transient=True) == "lost"
    assert queue.complete(second, {"by": "second"}) is True
    assert queue.get(job.id).result == {"by": "second"}
    assert rows(queue, "SELECT job_id, value FROM effects") == [(job.id, '{"by": "second"}')]
    assert rows(queue, "SELECT redeliveries FROM jobs") == [(1,)]


def test_an_effect_is_never_written_twice_even_past_the_lease_check(
    queue: job_queue.JobQueue,
) -> None:
    """The UNIQUE constraint is the last guard: a second effect for a job is refused."""
    queue.submit("task", {"n": 1})
    claim = queue.claim()
    assert claim is not None
    assert queue.complete(claim, 1)
    with pytest.raises(sqlite3.IntegrityError), queue.transaction() as db:
        db.execute("INSERT INTO effects VALUES (?, ?)", (claim.job.id, "2"))
    assert rows(queue, "SELECT count(*) FROM effects") == [(1,)]


def test_transient_failures_back_off_then_dead_letter(
    queue: job_queue.JobQueue, clock: FakeClock
) -> None:
    job = queue.submit("task", {"n": 1})
    assert job_queue.run_one(queue, fails_transiently) == "failed"
    assert queue.get(job.id).state == "failed"
    assert job_queue.run_one(queue, fails_transiently) is None  # not due for 10 s
    clock.now += 10
    assert job_queue.run_one(queue, fails_transiently) == "failed"
    clock.now += 19.9
    assert job_queue.run_one(queue, fails_transiently) is None  # the second wait is 20 s
    clock.now += 0.1
    assert job_queue.run_one(queue, fails_transiently) == "dead"  # attempt 3 of 3
    dead = queue.get(job.id)
    assert (dead.state, dead.attempts) == ("dead", MAX_ATTEMPTS)
    assert dead.error == "transient: the upstream timed out"
    assert rows(queue, "SELECT job_id, attempts FROM dead_letters") == [(job.id, MAX_ATTEMPTS)]
    clock.now += 1_000
    assert job_queue.run_one(queue, fails_transiently) is None  # dead stays dead


def test_poison_is_dead_at_once_and_does_not_block_the_queue(queue: job_queue.JobQueue) -> None:
    poison = queue.submit("poison", {})
    fine = queue.submit("task", {"n": 1, "fails": 0})
    assert job_queue.run_one(queue, job_queue.demo_handler) == "dead"
    assert job_queue.run_one(queue, job_queue.demo_handler) == "succeeded"
    assert queue.get(poison.id).error == "ValueError: cannot parse the payload"
    assert queue.get(fine.id).result == {"square": 1}


def test_a_job_that_kills_its_worker_every_time_is_dead_lettered(
    queue: job_queue.JobQueue, clock: FakeClock
) -> None:
    job = queue.submit("task", {"n": 1})
    for _ in range(MAX_ATTEMPTS):
        assert queue.claim() is not None  # ... and the worker dies with it
        clock.now += LEASE_S
    assert queue.claim() is None  # its last lease expired too: dead, not claimed again
    dead = queue.get(job.id)
    assert (dead.state, dead.attempts) == ("dead", MAX_ATTEMPTS)
    assert dead.error == "its lease expired every time"
    assert rows(queue, "SELECT job_id, attempts FROM dead_letters") == [(job.id, MAX_ATTEMPTS)]
    clock.now += LEASE_S
    assert queue.claim() is None


def test_a_stalled_worker_cannot_complete_a_job_buried_under_it(
    queue: job_queue.JobQueue, clock: FakeClock
) -> None:
    """The last lease expires and the job is dead-lettered; its worker was only slow, not dead:
    its late answer must not turn a dead job into a succeeded one with an effect."""
    job = queue.submit("task", {"n": 1})
    claims = []
    for _ in range(MAX_ATTEMPTS):
        claims.append(queue.claim())
        clock.now += LEASE_S
    assert queue.claim() is None  # buried
    last = claims[-1]
    assert last is not None
    assert queue.complete(last, {"late": True}) is False
    assert queue.fail(last, "late", transient=True) == "lost"
    assert queue.get(job.id).state == "dead"
    assert rows(queue, "SELECT count(*) FROM effects") == [(0,)]


def test_a_dead_job_is_requeued_by_a_retry(queue: job_queue.JobQueue) -> None:
    job = queue.submit("poison", {})
    with pytest.raises(job_queue.NotDeadError, match="is queued"):
        queue.retry(job.id)
    job_queue.run_one(queue, job_queue.demo_handler)
    requeued = queue.retry(job.id)
    assert (requeued.state, requeued.attempts, requeued.error) == ("queued", 0, None)
    assert rows(queue, "SELECT count(*) FROM dead_letters") == [(0,)]
    with pytest.raises(job_queue.NotDeadError, match="only a dead job can be retried"):
        queue.retry(job.id)
    assert queue.claim() is not None  # it runs again


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    def top(attempt: int) -> float:
        return job_queue.backoff(attempt, rng=lambda: 1.0)

    assert [top(attempt) for attempt in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert top(30) == job_queue.BACKOFF_CAP_S
    assert job_queue.backoff(3, rng=lambda: 0.25) == 0.5
    assert job_queue.backoff(3, base_s=0.05, rng=lambda: 1.0) == pytest.approx(0.2)


def test_the_demo_handler_fails_as_the_payload_says() -> None:
    job = job_queue.Job(
        id="j", kind="task", payload={"n": 4, "fails": 1}, state="running", attempts=1
    )
    with pytest.raises(job_queue.TransientError):
        job_queue.demo_handler(job)
    assert job_queue.demo_handler(dataclasses.replace(job, attempts=2)) == {"square": 16}


def test_work_runs_jobs_until_stopped(queue: job_queue.JobQueue) -> None:
    for n in range(3):
        queue.submit("task", {"n": n})
    stop = threading.Event()
    done: list[int] = []

    def handler(job: job_queue.Job) -> int:
        done.append(job.payload["n"])
        if len(done) == 2:
            stop.set()
        return 0

    job_queue.work(queue, handler, stop)
    assert done == [0, 1]


def test_a_stuck_queue_fails_the_wait(
    queue: job_queue.JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_queue, "TIMEOUT_S", 0.0)
    progress = [0]
    with pytest.raises(click.ClickException, match="stuck"):
        job_queue.wait_until(queue.path, 1, progress)


SUMMARY: dict[str, Any] = {
    "submitted": 5,
    "unique_jobs": 4,
    "succeeded": 3,
    "dead": 1,
    "lost": 0,
    "duplicate_effects": 0,
    "redelivered": 1,
    "jobs_per_s": 2.0,
}


@pytest.mark.parametrize(
    ("change", "code"),
    [({}, 0), ({"lost": 1}, 1), ({"duplicate_effects": 1}, 1)],
)
def test_the_report_fails_on_a_loss_or_a_double(
    change: dict[str, Any], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = job_queue.Summary(**{**SUMMARY, **change})
    console = Console(file=None, stderr=True, width=120)
    assert job_queue.report(summary, console, as_json=False) == code
    assert "duplicate_effects" in capsys.readouterr().err
    assert job_queue.report(summary, console, as_json=True) == code
    assert json.loads(capsys.readouterr().out) == {**SUMMARY, **change}


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--jobs", "0"], "--jobs"), (["--lease-ms", "99"], "--lease-ms")],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], named: str
) -> None:
    invoke(job_queue.run, *args).assert_usage_error(named)


def test_json_run_kills_a_worker_and_loses_nothing(runner: ScriptRunner) -> None:
    proc = runner.run("job_queue", "--json", "--jobs", "20", "--lease-ms", "200")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(SUMMARY) == set(summary)
    assert (summary["submitted"], summary["unique_jobs"]) == (25, 20)  # every 4th sent twice
    assert (summary["lost"], summary["duplicate_effects"]) == (0, 0)
    assert (summary["succeeded"], summary["dead"]) == (16, 4)  # 2 poison, 2 flaky for ever
    # No assertion on "redelivered": a SIGKILL can land after the worker's COMMIT reached the
    # WAL, and that commit stands: then no job was held, none is redelivered.
    # test_an_expired_lease_redelivers_the_job proves the redelivery itself.
    assert "killed" in proc.stderr


def test_ctrl_c_stops_the_workers(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("job_queue", "--jobs", "2000", ready="worker")
    assert line.startswith("interrupted: ")
    assert line.endswith("finished; workers stopped")
