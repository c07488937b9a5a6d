"""Lessons built to fit together, tested together.

A lesson's own test module imports no other lesson (graduate.py packages a lesson with its tests
alone), so the claims that join two lessons live here: job_queue's durable `JobQueue` is a
`JobStore` that jobs_api serves unchanged, errors and types included. (cli_click and cli_argparse
share their log core: tests/test_cli_argparse.py tests it in both.)
"""

from pathlib import Path
from typing import Any

import job_queue
import jobs_api
from test_jobs_api import assert_problem, call


def squares(job: job_queue.Job) -> Any:
    """A JobQueue handler: square's result, anything else poison."""
    if job.kind != "square":
        raise ValueError("cannot parse the payload")
    return {"square": job.payload["n"] ** 2}


def test_job_queue_plugs_in_unchanged_with_its_errors(tmp_path: Path) -> None:
    """The docstring's claim, for the type checker too: JobQueue returns its own Job dataclass,
    which the JobStore Protocol accepts (ty refused it when the Protocol asked for jobs_api.Job)."""
    queue = job_queue.JobQueue(str(tmp_path / "jobs.db"))
    app = jobs_api.create_app(
        queue,
        {
            job_queue.UnknownJobError: 404,
            job_queue.KeyReusedError: 422,
            job_queue.NotDeadError: 409,
        },
    )
    key = {"Idempotency-Key": "k1"}
    accepted = call(app, "POST", "/jobs", json=jobs_api.SQUARE, headers=key)
    assert accepted.status_code == 202
    assert call(app, "POST", "/jobs", json=jobs_api.SQUARE, headers=key).json() == accepted.json()
    reused = call(app, "POST", "/jobs", json=jobs_api.POISON, headers=key)
    assert_problem(reused, 422, "used with another body")
    assert job_queue.run_one(queue, squares) == "succeeded"
    done = call(app, "GET", accepted.headers["location"])
    assert (done.json()["state"], done.json()["result"]) == ("succeeded", {"square": 49})
    assert_problem(call(app, "GET", "/jobs/nope"), 404, "no job nope")
    assert_problem(call(app, "POST", f"{accepted.headers['location']}/retry"), 409, "succeeded")
    poison = call(app, "POST", "/jobs", json=jobs_api.POISON)
    assert job_queue.run_one(queue, squares) == "dead"
    requeued = call(app, "POST", f"{poison.headers['location']}/retry")
    assert (requeued.status_code, requeued.json()["state"]) == (202, "queued")
