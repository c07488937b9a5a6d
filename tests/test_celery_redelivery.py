"""celery_redelivery: a task killed mid-way runs again with one effect, embedded and on Redis."""

import json
import subprocess
import sys
import uuid
from collections.abc import Generator
from pathlib import Path

import click
import pytest

import celery_redelivery as lesson
from conftest import ScriptRunner, ctrl_c_stops_the_worker
from redis_database import redis_database

pytestmark = [
    # kombu 5.7's SQLAlchemy models use lazy="noload", deprecated in SQLAlchemy 2.1.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    # Celery 5.7's Redis result backend calls setex, deprecated in redis-py 8.
    pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def redis_url(request: pytest.FixtureRequest) -> Generator[str]:
    yield from redis_database(request)


def test_the_task_base_acks_late_and_applies_its_effect_once(tmp_path: Path) -> None:
    where = lesson.setup(str(tmp_path), None, None)
    app = where.app()
    task = app.tasks["redelivery.slow"]
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    task.before_start("id-1", ("k", 0), {})
    assert task("k", 0) == "k"
    assert task("k", 0) == "k"  # delivered twice: the effect stays one row
    ledger = lesson.Ledger(where.ledger)
    assert ledger.read("SELECT key FROM effects") == [("k",)]
    assert [row[0] for row in ledger.read("SELECT key FROM attempts")] == ["k"]


def test_the_pattern_keeps_celerys_worker_lost_wait(tmp_path: Path) -> None:
    """Regression: the pattern's create_app shortened worker_lost_wait, a demo-only knob."""
    ledger = str(tmp_path / "ledger.sqlite")
    assert lesson.create_app("redis://127.0.0.1:9/0", None, ledger).conf.worker_lost_wait == 10
    assert lesson.setup(str(tmp_path), None, None).app().conf.worker_lost_wait == 0.5


def test_the_embedded_broker_polls_fast_and_redis_restores_unacked(tmp_path: Path) -> None:
    """kombu's SQLAlchemy transport polls once a second by default; Redis's timeout is an hour."""
    app = lesson.setup(str(tmp_path), None, None).app()
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, lesson.SQLiteTransport)
        assert connection.transport.polling_interval == 0.05
        assert connection.default_channel.lock is lesson.SQLiteChannel.lock
        with connection.SimpleQueue("probe") as queue:  # through the locked _put and _get
            queue.put({"n": 1})
            assert queue.get(timeout=5).payload == {"n": 1}
    on_redis = lesson.setup(str(tmp_path), "redis://127.0.0.1:9/0", None).app()
    assert on_redis.conf.broker_transport_options["visibility_timeout"] == 3


def test_a_killed_worker_is_restarted_and_redis_redelivers(redis_url: str, tmp_path: Path) -> None:
    """Redis: the whole worker SIGKILLed, a new one gets the task back after visibility_timeout.

    Regression: a task left unacked by an interrupted earlier run (same Redis database, the
    same task) came back too, and its attempts were counted as this run's.
    """
    where = lesson.setup(str(tmp_path), redis_url, redis_url)
    stale = lesson.create_app(redis_url, redis_url, where.ledger)
    stale.tasks["redelivery.slow"].delay("kill-me", 0.2)  # what the old code's runs all sent
    run = lesson.Run(redis_url)
    lesson.demo(where, run, 0.5)
    assert all(check.passed for check in run.checks), run.checks
    assert run.figures["killed"] == "whole worker"
    assert run.figures["effects"] == 1
    assert run.figures["recovered_s"] >= 2  # not before visibility_timeout (3 s, polled each 1 s)


def test_a_dead_worker_fails_the_wait(tmp_path: Path) -> None:
    """A worker that died leaves no client waiting: the wait fails with the worker's last words."""
    where = lesson.setup(str(tmp_path), None, None)
    log_file = tmp_path / "worker.log"
    crash = [sys.executable, "-c", "print('Unrecoverable error: JSONDecodeError'); exit(3)"]
    with log_file.open("wb") as output:
        process = subprocess.Popen(crash, stdout=output)
    process.wait()
    never_sent = where.app().AsyncResult(str(uuid.uuid4()))
    with pytest.raises(click.ClickException, match=r"exit 3.*JSONDecodeError"):
        lesson.wait(never_sent, lesson.Worker(process, log_file))


def test_waits_end_at_their_deadline(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = lesson.Worker(process, tmp_path / "worker.log")
        with pytest.raises(click.ClickException, match="no first attempt in 0 s"):
            lesson.wait_for(lambda: False, alive, "first attempt", 0.0)
    finally:
        process.kill()
        process.wait()


def test_the_report_for_people_marks_a_failed_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's table on one line per row
    run = lesson.Run("SQLite (embedded)")
    run.checks.append(lesson.Check("kept", "1 effect", "1 effect", "once"))
    run.checks.append(lesson.Check("doubled", "2 effects", "1 effect", "twice"))
    run.figures["attempts"] = 2
    assert lesson.report(run, as_json=False) == 1
    out = capsys.readouterr().out
    assert "1 effect  FAILED" in out
    assert "attempts 2" in out


def test_default_run_json(runner: ScriptRunner) -> None:
    """Embedded: the pool child is SIGKILLed mid-task, its worker requeues it, one effect."""
    proc = runner.run("celery_redelivery", "--json", "--task-seconds", "0.5")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert all(check["passed"] for check in report["checks"]), report["checks"]
    assert report["broker"] == "SQLite (embedded)"
    assert report["killed"] == "pool child"
    assert report["redelivered"] is True
    assert report["attempts"] == 2
    assert report["effects"] == 1
    assert report["recovered_s"] >= 0.5  # the second attempt ran the whole task again


def test_ctrl_c_kills_the_worker(tmp_path: Path) -> None:
    ctrl_c_stops_the_worker("celery_redelivery", "--task-seconds", "2.5", folder=tmp_path)


def test_bad_broker(invoke) -> None:
    invoke(lesson.run, "--broker", "amqp://x").assert_usage_error("--broker")


def test_bad_backend(invoke) -> None:
    invoke(lesson.run, "--backend", "db+sqlite:///x").assert_usage_error("--backend")


def test_bad_task_seconds(invoke) -> None:
    invoke(lesson.run, "--task-seconds", "nan").assert_usage_error("--task-seconds")
    invoke(lesson.run, "--task-seconds", "9").assert_usage_error("--task-seconds")
