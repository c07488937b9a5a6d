"""celery_pipeline: retries, dead letters and polling on a real worker, embedded and on Redis."""

import json
import subprocess
import sys
import uuid
from collections.abc import Generator
from pathlib import Path

import click
import pytest

import celery_pipeline as lesson
from conftest import ROOT, ScriptRunner, ctrl_c_stops_the_worker
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


def test_the_embedded_broker_polls_fast(tmp_path: Path) -> None:
    """Regression: kombu's SQLAlchemy transport looks for messages once a second by default."""
    app = lesson.setup(str(tmp_path), None, None).app()
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, lesson.SQLiteTransport)
        assert connection.transport.polling_interval == 0.05
        assert connection.default_channel.lock is lesson.SQLiteChannel.lock
        with connection.SimpleQueue("probe") as queue:  # through the locked _put and _get
            queue.put({"n": 1})
            assert queue.get(timeout=5).payload == {"n": 1}


def test_the_whole_demo_on_redis(redis_url: str, tmp_path: Path) -> None:
    """Redis as broker and backend: the same checks pass, the same dead letters are kept."""
    run = lesson.Run(redis_url)
    lesson.demo(lesson.setup(str(tmp_path), redis_url, redis_url), run, 3)
    assert all(check.passed for check in run.checks), run.checks
    assert run.figures["dead_lettered"] == 2
    assert run.figures["retried"] == 1 + lesson.MAX_RETRIES  # flaky once, hopeless twice


def test_a_dead_worker_fails_the_wait(tmp_path: Path) -> None:
    """Regression: a worker that died (a crash in its broker loop) left the client waiting."""
    where = lesson.setup(str(tmp_path), None, None)
    log_file = tmp_path / "worker.log"
    crash = [sys.executable, "-c", "print('Unrecoverable error: JSONDecodeError'); exit(3)"]
    with log_file.open("wb") as output:
        process = subprocess.Popen(crash, stdout=output)
    process.wait()
    never_sent = where.app().AsyncResult(str(uuid.uuid4()))
    with pytest.raises(click.ClickException, match=r"exit 3.*JSONDecodeError"):
        lesson.wait(never_sent, lesson.Worker(process, log_file))


def test_the_task_base_retries_transient_errors_only_and_records_dead_letters(
    tmp_path: Path,
) -> None:
    app = lesson.setup(str(tmp_path), None, None).app()
    task = app.tasks["pipeline.process"]
    assert task.autoretry_for == (ConnectionError, TimeoutError)  # not ValueError: no retry
    assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter) == (1, 2, True)
    assert task.max_retries == lesson.MAX_RETRIES
    assert task("k", 0) == "k"
    task.before_start("id-1", ("k", 0), {})
    error = ValueError("k: bad")
    task.on_failure(error, "id-1", ("k", 0), {}, None)
    ledger = lesson.Ledger(app.conf["ledger_path"])
    assert ledger.read("SELECT key, retries FROM attempts") == [("k", 0)]
    assert ledger.read("SELECT * FROM dead_letters") == [
        ("id-1", "pipeline.process", '["k", 0]', "ValueError: k: bad")
    ]
    with pytest.raises(ValueError, match="retrying cannot help"):
        task("k", 0, True)
    with pytest.raises(ConnectionError, match="attempt 1 failed"):
        task("k", 1)


@pytest.fixture
def alive(tmp_path: Path) -> Generator[lesson.Worker]:
    """A process that stays up (a stand-in for a worker that never answers)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield lesson.Worker(process, tmp_path / "worker.log")
    finally:
        process.kill()
        process.wait()


def test_waits_end_at_their_deadline(
    alive: lesson.Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = lesson.setup(str(tmp_path), None, None)
    monkeypatch.setattr(lesson, "WAIT_S", 0.0)
    with pytest.raises(click.ClickException, match="no result for task"):
        lesson.wait(where.app().AsyncResult(str(uuid.uuid4())), alive)
    with pytest.raises(click.ClickException, match="no dead letters in 0 s"):
        lesson.wait_for(lambda: False, alive, "dead letters", 0.0)


def test_the_report_for_people_marks_a_failed_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's table on one line per row
    run = lesson.Run("SQLite (embedded)")
    run.checks.append(lesson.Check("kept", "1 effect", "1 effect", "once"))
    run.checks.append(lesson.Check("lost", "0 effects", "1 effect", "never"))
    run.figures["roundtrip_p50_ms"] = lesson.p50([12.5])
    assert lesson.report(run, as_json=False) == 1
    out = capsys.readouterr().out
    assert "1 effect  FAILED" in out
    assert "12.5" in out


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("celery_pipeline", "--json", "--round-trips", "3")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    keys = {"broker", "tasks", "succeeded", "retried", "dead_lettered", "roundtrip_p50_ms"}
    assert keys <= report.keys()
    assert all(check["passed"] for check in report["checks"]), report["checks"]
    assert report["broker"] == "SQLite (embedded)"
    assert report["dead_lettered"] == 2
    assert report["succeeded"] == report["tasks"] - 2
    assert report["tasks"] == 3 + len(lesson.RETRY_CASES)  # the Try-it line: 3 trips + 3 cases
    assert report["checks"][0]["result"] == "3 of 3 right"
    assert not (ROOT / "control").exists(), "regression: kombu's broker wrote into the cwd"


def test_ctrl_c_kills_the_worker(tmp_path: Path) -> None:
    ctrl_c_stops_the_worker("celery_pipeline", "--round-trips", "1000", folder=tmp_path)


def test_bad_broker(invoke) -> None:
    invoke(lesson.run, "--broker", "amqp://x").assert_usage_error("--broker")


def test_bad_backend(invoke) -> None:
    invoke(lesson.run, "--backend", "db+sqlite:///x").assert_usage_error("--backend")


def test_bad_round_trips(invoke) -> None:
    invoke(lesson.run, "--round-trips", "0").assert_usage_error("--round-trips")
