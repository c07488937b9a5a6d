"""Tests for scripts/retry_client.py: the policy directly, then the script as a user runs it.

The policy tests never sleep: `fetch()` takes its sleep and its clock as arguments, and a fake
clock moves only when the code under test sleeps or a fake request takes time. The fake network
is httpx.MockTransport (a stand-in for the wire, not for the code under test); the demo-server
tests use the real loopback server with the same fake sleep.
"""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import retry_client
from conftest import ScriptRunner
from retry_client import Attempt, RetryPolicy, TransientHTTPError

# --- fakes ---------------------------------------------------------------------------------------

LATENCY_S = 0.01  # what a fake answer costs on the fake clock
TRANSPORT_ERRORS = {
    "connect": httpx.ConnectError,
    "timeout": httpx.ReadTimeout,
    "drop": httpx.RemoteProtocolError,
}
# An answer of the fake network: a status, (status, Retry-After value), or a transport failure.
Outcome = int | tuple[int, int | str] | str


@dataclass
class FakeClock:
    """Time that moves only when the code under test sleeps or a fake request takes time."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Sent:
    at_s: float
    request: httpx.Request


def fake_network(outcomes: list[Outcome], clock: FakeClock, sent: list[Sent]) -> httpx.Client:
    """A client whose requests get `outcomes` in order, then 200 for ever."""
    queue = list(outcomes)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(Sent(clock.now, request))
        outcome = queue.pop(0) if queue else 200
        # A timeout takes as long as the request allowed; anything else is quick.
        clock.now += request.extensions["timeout"]["read"] if outcome == "timeout" else LATENCY_S
        if isinstance(outcome, str):
            raise TRANSPORT_ERRORS[outcome]("fake failure", request=request)
        status, after = outcome if isinstance(outcome, tuple) else (outcome, None)
        return httpx.Response(status, headers={} if after is None else {"Retry-After": str(after)})

    return httpx.Client(transport=httpx.MockTransport(answer))


def status_of(outcome: Outcome) -> int | None:
    if isinstance(outcome, str):
        return None
    return outcome[0] if isinstance(outcome, tuple) else outcome


def is_transient(outcome: Outcome) -> bool:
    return isinstance(outcome, str) or status_of(outcome) in {429, 502, 503, 504}


# --- the pattern: any sequence of answers --------------------------------------------------------

OUTCOMES = st.one_of(
    st.sampled_from([200, 201, 400, 404, 500, 502, 503, 504, 429, "connect", "timeout", "drop"]),
    st.tuples(st.sampled_from([429, 503]), st.integers(0, 120)),
)
POLICIES = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 8),
    deadline_s=st.floats(0.5, 60),
    max_wait_s=st.floats(0, 30),
    backoff_s=st.floats(0.01, 2),
    timeout_s=st.floats(0.1, 10),
)


@settings(max_examples=200, deadline=None)
@given(
    outcomes=st.lists(OUTCOMES, max_size=10),
    policy=POLICIES,
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
    keyed=st.booleans(),
)
def test_policy_holds_for_any_sequence_of_answers(
    outcomes: list[Outcome], policy: RetryPolicy, method: str, keyed: bool
) -> None:
    clock, sent, timeline = FakeClock(), list[Sent](), list[Attempt]()
    headers = {"Idempotency-Key": "order-42"} if keyed else {}
    repeatable = method != "POST" or keyed
    error: httpx.HTTPError | None = None
    with fake_network(outcomes, clock, sent) as client:
        try:
            response = retry_client.fetch(
                client, method, "http://svc/x", policy, timeline, headers, clock.sleep, clock
            )
        except httpx.HTTPError as err:  # anything else, tenacity's RetryError too, fails the test
            error = err
    answered = (outcomes + [200] * len(sent))[: len(sent)]
    last = answered[-1]

    # Attempts within the limit, each on the timeline; retried only after transient outcomes,
    # and only when a repeat is safe.
    assert 1 <= len(sent) <= policy.attempts
    assert [a.number for a in timeline] == list(range(1, len(sent) + 1))
    assert all(is_transient(o) and repeatable for o in answered[:-1])
    assert len(clock.sleeps) == len(sent) - 1

    # Every wait: Retry-After honoured (capped), else backoff within its jitter window.
    for retry, (outcome, wait) in enumerate(zip(answered, clock.sleeps, strict=False)):
        if isinstance(outcome, tuple):
            assert wait == min(float(outcome[1]), policy.max_wait_s)
        else:
            assert 0 <= wait <= min(policy.backoff_s * 2**retry, policy.max_wait_s)

    # The deadline: no attempt starts after it, planned waits fit in it, and request timeouts are
    # cut so that the whole call ends by it (give or take one fake answer's latency).
    assert all(s.at_s < policy.deadline_s for s in sent)
    assert sum(clock.sleeps) <= policy.deadline_s
    assert all(s.request.extensions["timeout"]["read"] <= policy.timeout_s for s in sent)
    assert clock.now <= policy.deadline_s + LATENCY_S + 1e-9

    # How it ended: the answer itself, or the last real error with the whole story in a note.
    status = status_of(last)
    if status is not None and 200 <= status < 300:
        assert error is None
        assert response.status_code == status
        assert timeline[-1].decision == "done"
        return
    assert error is not None
    if isinstance(last, str):
        assert type(error) is TRANSPORT_ERRORS[last]
    else:
        assert isinstance(error, httpx.HTTPStatusError)
        assert error.response.status_code == status
        assert isinstance(error, TransientHTTPError) == is_transient(last)
    assert error.__notes__ == [f"{timeline[-1].decision}: {', '.join(a.outcome for a in timeline)}"]
    if not (is_transient(last) and repeatable):
        assert timeline[-1].decision == "not retried"
    elif len(sent) == policy.attempts:
        assert timeline[-1].decision == f"gave up after {len(sent)} attempts"
    else:  # stopped early: the next wait, at most its bound, would have ended past the deadline
        assert timeline[-1].decision == "gave up to keep the deadline"
        bound = min(policy.backoff_s * 2 ** (len(sent) - 1), policy.max_wait_s)
        if isinstance(last, tuple):
            bound = min(float(last[1]), policy.max_wait_s)
        assert clock.now + bound >= policy.deadline_s


# --- the pattern: Retry-After --------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def retry_after_s(value: str) -> float | None:
    return retry_client.retry_after_s(httpx.Response(503, headers={"Retry-After": value}), NOW)


@given(offset=st.integers(-(10**6), 10**6))
def test_retry_after_http_date_is_seconds_from_now_and_never_negative(offset: int) -> None:
    assert retry_after_s(format_datetime(NOW + timedelta(seconds=offset), usegmt=True)) == max(
        0, offset
    )


@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_retry_after_never_raises_and_never_goes_negative(value: str) -> None:
    seconds = retry_after_s(value)
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 12:00:30 -0000", 30.0),  # RFC 5322's "UTC, origin unknown"
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_examples(value: str, seconds: float | None) -> None:
    assert retry_after_s(value) == seconds


def test_retry_after_of_a_non_ascii_digit_is_ignored() -> None:
    response = httpx.Response(503, headers=[(b"Retry-After", b"\xb2")])  # latin-1 "²": isdigit()
    assert retry_client.retry_after_s(response, NOW) is None


def test_an_http_date_retry_after_is_honoured_and_capped() -> None:
    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    clock, sent, timeline = FakeClock(), list[Sent](), list[Attempt]()
    policy = RetryPolicy(attempts=2, deadline_s=100, max_wait_s=5)
    with fake_network([(503, in_an_hour)], clock, sent) as client:
        response = retry_client.fetch(
            client, "GET", "http://svc/", policy, timeline, None, clock.sleep, clock
        )
    assert response.status_code == 200
    assert clock.sleeps == [5.0]
    assert timeline[0].decision == "retrying in 5.00 s (Retry-After)"


# --- the pattern against the real demo server on loopback, still without sleeping -------------


DEMO_OUTCOMES = [
    "503 Service Unavailable",
    "429 Too Many Requests",
    "RemoteProtocolError",
    "200 OK",
]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with retry_client.demo_server() as base:
        yield base


def call(
    url: str, policy: RetryPolicy, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[list[Attempt], list[float], httpx.Response | httpx.HTTPError]:
    waits, timeline = list[float](), list[Attempt]()
    result: httpx.Response | httpx.HTTPError
    with httpx.Client() as client:
        try:
            result = retry_client.fetch(
                client, method, url, policy, timeline, headers, waits.append
            )
        except httpx.HTTPError as err:
            result = err
    return timeline, waits, result


def test_the_demo_sequence_is_survived(server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="retry_client")
    timeline, waits, result = call(f"{server}/flaky/survive", RetryPolicy())
    assert isinstance(result, httpx.Response)
    assert result.status_code == 200
    assert [a.outcome for a in timeline] == DEMO_OUTCOMES
    assert waits[1] == 1.0  # the server's Retry-After, not our backoff
    assert timeline[-1].decision == "done"
    assert (
        caplog.messages[1]
        == "attempt 2 failed (429 Too Many Requests); retrying in 1.00 s (Retry-After)"
    )
    assert len(caplog.messages) == 3  # one line per wait


def test_giving_up_reraises_the_real_error_with_its_cause(server: str) -> None:
    _, waits, result = call(f"{server}/flaky/give-up", RetryPolicy(attempts=3))
    assert type(result) is httpx.RemoteProtocolError  # the real error, not tenacity's RetryError
    assert type(result.__cause__).__module__.startswith("httpcore")  # httpx's own chain, intact
    outcomes = "503 Service Unavailable, 429 Too Many Requests, RemoteProtocolError"
    assert result.__notes__ == [f"gave up after 3 attempts: {outcomes}"]
    assert len(waits) == 2


def test_a_permanent_error_is_not_retried(server: str) -> None:
    timeline, waits, result = call(f"{server}/always/404", RetryPolicy())
    assert isinstance(result, httpx.HTTPStatusError)
    assert not isinstance(result, TransientHTTPError)
    assert (len(timeline), waits, timeline[0].decision) == (1, [], "not retried")


@pytest.mark.parametrize(("headers", "attempts"), [(None, 1), ({"Idempotency-Key": "k1"}, 3)])
def test_post_is_retried_only_with_an_idempotency_key(
    server: str, headers: dict[str, str] | None, attempts: int
) -> None:
    timeline, _, result = call(f"{server}/always/503", RetryPolicy(attempts=3), "POST", headers)
    assert isinstance(result, TransientHTTPError)
    assert len(timeline) == attempts


def test_a_retry_after_past_the_deadline_gives_up_without_waiting(server: str) -> None:
    timeline, waits, result = call(
        f"{server}/always/429/30", RetryPolicy(deadline_s=10, max_wait_s=60)
    )
    assert isinstance(result, TransientHTTPError)
    assert (len(timeline), waits) == (1, [])
    assert timeline[0].decision == "gave up to keep the deadline"


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_shows_the_timeline(runner: ScriptRunner) -> None:
    proc = runner.run("retry_client")
    assert proc.returncode == 0, proc.stderr
    assert all(outcome in proc.stdout for outcome in DEMO_OUTCOMES)
    assert "retrying in 1.00 s (Retry-After)" in proc.stdout
    assert "succeeded True, attempts 4" in proc.stdout
    assert len([line for line in proc.stderr.splitlines() if "retrying in" in line]) == 3


def test_json_is_one_object_on_stdout(runner: ScriptRunner) -> None:
    proc = runner.run("retry_client", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"succeeded", "attempts", "elapsed_s", "status"}
    assert (result["succeeded"], result["attempts"], result["status"]) == (True, 4, 200)
    assert result["elapsed_s"] >= 1.0  # it really waited the second the server asked for


def test_a_404_is_one_attempt_and_exit_1(runner: ScriptRunner, server: str) -> None:
    proc = runner.run("retry_client", "--url", f"{server}/always/404", "--json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert (result["succeeded"], result["attempts"], result["status"]) == (False, 1, 404)
    assert proc.stderr.splitlines()[-1] == "error: not retried: 404 Not Found"
    assert "Traceback" not in proc.stderr


def test_a_persistent_503_gives_up_after_the_attempts(runner: ScriptRunner, server: str) -> None:
    proc = runner.run("retry_client", "--url", f"{server}/always/503", "--attempts", "3")
    assert proc.returncode == 1
    assert (
        proc.stderr.splitlines()[-1] == "error: gave up after 3 attempts: 503 Service Unavailable"
    )
    assert proc.stdout.count("503 Service Unavailable") == 3


def test_several_clients_spread_out(runner: ScriptRunner) -> None:
    proc = runner.run("retry_client", "--clients", "5")
    assert proc.returncode == 0, proc.stderr
    assert "5 client(s)" in proc.stdout
    assert "spread s" in proc.stdout
    assert "succeeded True, attempts 20, " in proc.stdout
    for client in range(1, 6):
        assert f"client {client}: attempt 2 failed (429 Too Many Requests)" in proc.stderr


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--url", "not-a-url"], "--url"),
        (["--url", "ftp://example.com/"], "--url"),
        (["--url", "http://"], "--url"),
        (["--attempts", "0"], "--attempts"),
        (["--attempts", "abc"], "--attempts"),
        (["--attempts", "21"], "--attempts"),
        (["--deadline", "0"], "--deadline"),
        (["--deadline", "soon"], "--deadline"),
        (["--max-wait", "-1"], "--max-wait"),
        (["--method", "PATCH"], "--method"),
        (["--clients", "0"], "--clients"),
        (["--clients", "51"], "--clients"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    runner: ScriptRunner, args: list[str], argument: str
) -> None:
    runner.usage_error("retry_client", *args, argument=argument)


def test_ctrl_c_while_waiting_on_retry_after(runner: ScriptRunner, server: str) -> None:
    args = ("--url", f"{server}/always/503/30", "--max-wait", "60", "--deadline", "120")
    line = runner.ctrl_c("retry_client", *args, ready="retrying in 30.00 s")
    assert line == "interrupted after 1 attempts: 503 Service Unavailable"


def test_ctrl_c_during_the_demo_stops_its_server(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("retry_client", ready="retrying in 1.00 s (Retry-After)")
    assert line.startswith("interrupted after ")  # 2 attempts, unless Ctrl-C came over 1 s late
    assert "503 Service Unavailable, 429 Too Many Requests" in line


def test_ctrl_c_with_several_clients(runner: ScriptRunner, server: str) -> None:
    url = f"{server}/always/503/30"
    args = ("--url", url, "--clients", "5", "--max-wait", "60", "--deadline", "120", "--json")
    line = runner.ctrl_c("retry_client", *args, ready="retrying in 30.00 s")
    assert line.startswith("interrupted after ")
    assert "503 Service Unavailable" in line
