"""celery_workflows: chain, group and chord on a real worker, embedded (SQLite) and on Redis."""

import json
import subprocess
import sys
import uuid
from collections.abc import Generator
from pathlib import Path

import click
import pytest

import celery_workflows as lesson
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


def test_the_chord_is_a_group_then_a_callback(tmp_path: Path) -> None:
    app = lesson.setup(str(tmp_path), None, None).app()
    flow = lesson.sum_of_squares(app, [1, 2, 3])
    assert [task.args for task in flow.tasks] == [(1,), (2,), (3,)]
    assert flow.body.task == "workflows.total"
    assert [app.tasks["workflows.square"](n) for n in (1, 2, 3)] == [1, 4, 9]
    assert app.tasks["workflows.total"]([1, 4, 9]) == 14
    assert app.tasks["workflows.add"](1, 2) == 3


def test_the_docstring_sends_late_acks_to_celery_redelivery() -> None:
    """Regression: it sent readers to celery_pipeline.py for late acks, which left it in a split."""
    assert "celery_redelivery.py shows late acks" in str(lesson.__doc__)
    assert "celery_pipeline.py shows late acks" not in str(lesson.__doc__)


def test_a_chord_needs_a_result_backend(tmp_path: Path) -> None:
    run = lesson.Run("SQLite (embedded)")
    lesson.chord_without_backend(lesson.setup(str(tmp_path), None, None), run)
    assert run.checks[0].passed, run.checks[0]


def test_the_workflows_on_redis(redis_url: str, tmp_path: Path) -> None:
    run = lesson.Run(redis_url)
    lesson.demo(lesson.setup(str(tmp_path), redis_url, redis_url), run, 20)
    assert all(check.passed for check in run.checks), run.checks
    assert run.figures["workflows_ok"] is True
    assert run.figures["tasks"] == 3 + 2 * 20 + 1


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


def test_the_report_for_people_marks_a_failed_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's table on one line per row
    run = lesson.Run("SQLite (embedded)")
    run.checks.append(lesson.Check("chain", "36", "36", "0.1 s"))
    run.checks.append(lesson.Check("chord", "35", "36", "0.2 s"))
    run.figures["tasks_per_s"] = 12.5
    assert lesson.report(run, as_json=False) == 1
    out = capsys.readouterr().out
    assert "36  FAILED" in out
    assert "12.5" in out


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("celery_workflows", "--json", "--chord", "20")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {"broker", "tasks", "tasks_per_s", "workflows_ok"} <= report.keys()
    assert report["workflows_ok"] is True
    assert report["tasks_per_s"] > 0
    assert all(check["passed"] for check in report["checks"]), report["checks"]
    assert [check["name"] for check in report["checks"]] == [
        "chain: add 1+2, add 3, square",
        "group: 20 squares",
        "chord: 20 squares, total",
        "chord, no result backend",
    ]


def test_ctrl_c_kills_the_worker(tmp_path: Path) -> None:
    ctrl_c_stops_the_worker("celery_workflows", "--chord", "10000", folder=tmp_path)


def test_bad_broker(invoke) -> None:
    invoke(lesson.run, "--broker", "amqp://x").assert_usage_error("--broker")


def test_bad_chord(invoke) -> None:
    invoke(lesson.run, "--chord", "0").assert_usage_error("--chord")
