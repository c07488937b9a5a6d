"""Tests for scripts/retry_after.py: the policy directly, then the script as a user runs it.

Nothing here sleeps for real but the one default run. Tests add their sleep to the policy with
tenacity's own `.copy(sleep=...)`; the clock tenacity's stop_before_delay reads (time.monotonic
through tenacity's `time` name) is swapped for a fake one that moves only when the code under test
sleeps or a fake request takes time. Where the CLI runs in-process, tenacity's default sleep
(`tenacity.nap`, which its docs say "may be mocked out for unit testing") sleeps on that fake
clock. The fake network is httpx.MockTransport, a stand-in for the wire, not for the code under
test.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

import retry_after
from conftest import FakeClock, Invocation, ScriptRunner
from tenacity_clock import fake_tenacity_time, tenacity_reads


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """tenacity's clock and its default sleep on a fake clock, for in-process CLI runs."""
    return fake_tenacity_time(monkeypatch)


# --- fakes ---------------------------------------------------------------------------------------

LATENCY_S = 0.01  # what a fake answer costs on the fake clock
TIMEOUT_S = 2.0  # the fake client's timeout: what a fake timeout costs
TRANSPORT_ERRORS = {"connect": httpx.ConnectError, "timeout": httpx.ReadTimeout}
# An answer of the fake network: a status, (status, Retry-After value), or a transport failure.
Outcome = int | tuple[int, int | str] | str


@dataclass
class Sent:
    at_s: float  # when the request went out
    done_s: float  # when its answer, or its failure, came back


def fake_network(outcomes: list[Outcome], clock: FakeClock, sent: list[Sent]) -> httpx.Client:
    """A client whose requests get `outcomes` in order, then 200 for ever."""
    queue = list(outcomes)

    def answer(request: httpx.Request) -> httpx.Response:
        outcome = queue.pop(0) if queue else 200
        start = clock.now
        clock.now += TIMEOUT_S if outcome == "timeout" else LATENCY_S
        sent.append(Sent(start, clock.now))
        if isinstance(outcome, str):
            raise TRANSPORT_ERRORS[outcome]("fake failure", request=request)
        status, after = outcome if isinstance(outcome, tuple) else (outcome, None)
        return httpx.Response(status, headers={} if after is None else {"Retry-After": str(after)})

    return httpx.Client(transport=httpx.MockTransport(answer), timeout=TIMEOUT_S)


def status_of(outcome: Outcome) -> int | None:
    if isinstance(outcome, str):
        return None
    return outcome[0] if isinstance(outcome, tuple) else outcome


def is_transient(outcome: Outcome) -> bool:
    return isinstance(outcome, str) or status_of(outcome) in {429, 502, 503, 504}


def asked_s(outcome: Outcome) -> float | None:
    """The wait a fake answer's Retry-After asked for, if it carried a readable one."""
    if isinstance(outcome, tuple) and isinstance(outcome[1], int):
        return float(outcome[1])
    return None


def call(
    outcomes: list[Outcome], policy: dict[str, Any]
) -> tuple[FakeClock, list[Sent], httpx.Response | httpx.HTTPError]:
    """One get() over the fake network; anything but an httpx error fails the test."""
    clock = FakeClock()
    sent: list[Sent] = []
    retries = retry_after.retrying(**policy).copy(sleep=clock.sleep)
    result: httpx.Response | httpx.HTTPError
    with fake_network(outcomes, clock, sent) as client, tenacity_reads(clock):
        try:
            result = retry_after.get(client, "http://svc/x", retries)
        except httpx.HTTPError as err:
            result = err
    return clock, sent, result


# --- the pattern: any sequence of answers --------------------------------------------------------

OUTCOMES = st.one_of(
    st.sampled_from([200, 304, 404, 500, 502, 503, 504, 429, "connect", "timeout"]),
    st.tuples(st.sampled_from([429, 503]), st.integers(0, 120)),
    st.tuples(st.sampled_from([429, 503]), st.sampled_from(["soon", "-5", "1.5"])),  # garbage
)
POLICIES = st.fixed_dictionaries(
    {
        "attempts": st.integers(1, 8),
        "deadline_s": st.floats(0.5, 200),
        "max_wait_s": st.floats(0, 150),
        "backoff_s": st.floats(0.01, 2),
    }
)


@settings(max_examples=300, deadline=None)
@given(outcomes=st.lists(OUTCOMES, max_size=10), policy=POLICIES)
def test_never_earlier_than_asked_never_past_the_cap_and_says_why(
    outcomes: list[Outcome], policy: dict[str, Any]
) -> None:
    """The property the lesson is about, stated for any answers and any policy.

    It never retries earlier than the server asked; it never waits past the cap; it gives up
    with the right note when a Retry-After exceeds the cap or the remaining deadline.
    """
    clock, sent, result = call(outcomes, policy)
    answered = (outcomes + [200] * len(sent))[: len(sent)]
    assert 1 <= len(sent) <= policy["attempts"]
    assert all(is_transient(outcome) for outcome in answered[:-1])
    assert len(clock.sleeps) == len(sent) - 1

    for retry, wait in enumerate(clock.sleeps):
        asked = asked_s(answered[retry])
        if asked is None:  # no readable Retry-After: the full-jitter backoff
            assert 0 <= wait <= min(policy["backoff_s"] * 2**retry, policy["max_wait_s"])
        else:  # exactly what the server asked: never earlier, and no later either
            assert wait == asked
        assert wait <= policy["max_wait_s"]
        assert sent[retry].done_s + wait < policy["deadline_s"]
        assert sent[retry + 1].at_s == sent[retry].done_s + wait  # the next try, not earlier

    last = answered[-1]
    status = status_of(last)
    if status is not None and status < 400:
        assert isinstance(result, httpx.Response)
        assert result.status_code == status
        return
    notes = getattr(result, "__notes__", [])
    asked = asked_s(last)
    done_s = sent[-1].done_s
    if not is_transient(last):
        assert notes == []
    elif len(sent) == policy["attempts"]:
        assert notes == [f"gave up after attempt {len(sent)} of {policy['attempts']}"]
    elif asked is not None and asked > policy["max_wait_s"]:  # the server asks too much
        cap = policy["max_wait_s"]
        assert notes == [f"gave up: asked to wait {asked:.2f} s, over the {cap:g} s cap"]
    elif asked is not None:  # what it asks would end past the deadline
        deadline = policy["deadline_s"]
        assert notes == [f"gave up: a {asked:.2f} s wait would pass the {deadline:g} s deadline"]
        assert done_s + asked >= deadline
    else:  # the backoff, at most its window, would have ended past the deadline
        assert notes[0].endswith(f"wait would pass the {policy['deadline_s']:g} s deadline")
        window = min(policy["backoff_s"] * 2 ** (len(sent) - 1), policy["max_wait_s"])
        assert done_s + window >= policy["deadline_s"]


# --- the pattern: the defects of earlier versions, one by one ------------------------------------


def test_a_retry_after_over_the_cap_is_not_retried_early() -> None:
    """It used to sleep the 5 s cap and retry a 429 that asked for 120 s."""
    clock, sent, result = call([(429, 120)], {"max_wait_s": 5})
    assert isinstance(result, httpx.HTTPStatusError)
    assert (len(sent), clock.sleeps) == (1, [])
    assert result.__notes__ == ["gave up: asked to wait 120.00 s, over the 5 s cap"]


def test_a_retry_after_past_the_deadline_gives_up_without_waiting() -> None:
    clock, sent, result = call([(429, 30)], {"deadline_s": 10, "max_wait_s": 60})
    assert isinstance(result, httpx.HTTPStatusError)
    assert (len(sent), clock.sleeps) == (1, [])
    assert result.__notes__ == ["gave up: a 30.00 s wait would pass the 10 s deadline"]


def test_an_http_date_retry_after_is_honoured_in_full() -> None:
    in_ten_s = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    clock, _, result = call([(503, in_ten_s)], {"max_wait_s": 60, "deadline_s": 100})
    assert isinstance(result, httpx.Response)
    assert 8 < clock.sleeps[0] <= 10  # never earlier: a second lost to rounding at most


@pytest.mark.parametrize("garbage", ["soon", "-5", "1.5", ""])
def test_an_unreadable_retry_after_falls_back_to_the_backoff(garbage: str) -> None:
    clock, sent, result = call([(503, garbage)], {"backoff_s": 0.5})
    assert isinstance(result, httpx.Response)
    assert len(sent) == 2
    assert 0 <= clock.sleeps[0] <= 0.5


@pytest.mark.parametrize("status", [304, 302])
def test_a_not_modified_or_redirect_is_an_answer(status: int) -> None:
    _, sent, result = call([status], {})
    assert isinstance(result, httpx.Response)
    assert (result.status_code, len(sent)) == (status, 1)


# --- the pattern: reading Retry-After ------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def retry_after_s(value: str) -> float | None:
    return retry_after.retry_after_s(httpx.Response(503, headers={"Retry-After": value}), NOW)


@given(offset=st.integers(-(10**6), 10**6))
def test_retry_after_http_date_is_seconds_from_now_and_never_negative(offset: int) -> None:
    date = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert retry_after_s(date) == max(0, offset)


@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_retry_after_never_raises_and_never_goes_negative(value: str) -> None:
    seconds = retry_after_s(value)
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
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
    assert retry_after.retry_after_s(response, NOW) is None


# --- the pattern against the real demo server on loopback ----------------------------------------


def test_the_demo_server_asks_in_seconds_then_by_date_and_each_wait_is_honoured() -> None:
    clock = FakeClock()
    outcomes: list[str] = []

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        assert isinstance(error, httpx.HTTPStatusError)
        outcomes.append(f"{error.response.status_code} {error.response.headers['Retry-After']}")

    retries = retry_after.retrying().copy(sleep=clock.sleep, before_sleep=before_sleep)
    with retry_after.demo_server(1) as base, httpx.Client(timeout=5) as client:
        response = retry_after.get(client, base, retries)
    assert response.status_code == 200
    assert outcomes[0] == "429 1"
    assert outcomes[1].startswith("503 ")
    assert outcomes[1].endswith(" GMT")  # an HTTP-date
    assert clock.sleeps[0] == 1.0
    assert 0.9 < clock.sleeps[1] <= 2.0  # the date is 2 s ahead in whole seconds: 1 to 2 s


# --- the script, as a user runs it ---------------------------------------------------------------


def table_rows(done: Invocation) -> list[list[str]]:
    """The cells of each body row of the rich table printed on stdout."""
    rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]


def test_default_run_prints_one_json_object_and_waits_what_was_asked(
    runner: ScriptRunner,
) -> None:
    proc = runner.run("retry_after", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"succeeded", "attempts", "elapsed_s", "timeline"}
    assert (result["succeeded"], result["attempts"]) == (True, 3)
    first, second, third = result["timeline"]
    assert first["outcome"] == "429 Too Many Requests, Retry-After: 1"
    assert first["decision"] == "retry in 1.00 s"
    assert second["outcome"].startswith("503 Service Unavailable, Retry-After: ")
    second_wait = float(second["decision"].removeprefix("retry in ").removesuffix(" s"))
    assert 0.9 < second_wait <= 2.0
    assert third == {**third, "outcome": "200 OK", "decision": "done"}
    # It really waited: each try came no earlier than the server asked (0.01 s for rounding).
    assert second["at_s"] - first["at_s"] >= 1.0 - 0.01
    assert third["at_s"] - second["at_s"] >= second_wait - 0.01
    assert result["elapsed_s"] == third["at_s"]
    assert len(proc.stderr.splitlines()) == 4  # the call, then a line per attempt


def test_ctrl_c_while_waiting_keeps_the_partial_results(runner: ScriptRunner) -> None:
    args = ("--retry-after", "30", "--max-wait", "60", "--deadline", "120")
    line = runner.ctrl_c("retry_after", *args, ready="retry in 30.00 s")
    assert line == "interrupted after 1 attempt: 429 Too Many Requests, Retry-After: 30"


def test_the_summary_is_a_table_with_a_row_per_attempt(
    invoke: Callable[..., Invocation], fake_time: FakeClock
) -> None:
    done = invoke(retry_after.run)
    assert done.code == 0, done.stderr
    rows = table_rows(done)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert rows[0][2:] == ["429 Too Many Requests, Retry-After: 1", "retry in 1.00 s"]
    assert rows[1][2].startswith("503 Service Unavailable, Retry-After: ")
    assert rows[1][3] == f"retry in {fake_time.sleeps[1]:.2f} s"
    assert rows[2][2:] == ["200 OK", "done"]
    assert fake_time.sleeps[0] == 1.0
    assert "3 attempts in " in done.stdout


def test_a_wait_over_the_cap_gives_up_at_once_and_says_so(
    invoke: Callable[..., Invocation], fake_time: FakeClock
) -> None:
    done = invoke(retry_after.run, "--retry-after", "120")
    assert done.code == 1
    reason = "gave up: asked to wait 120.00 s, over the 5 s cap"
    message = f"error: 429 Too Many Requests, Retry-After: 120; {reason}"
    assert done.stderr.splitlines()[-1] == message
    (row,) = table_rows(done)
    assert [row[0], row[2], row[3]] == ["1", "429 Too Many Requests, Retry-After: 120", reason]
    assert "1 attempt in " in done.stdout  # not "1 attempts"
    assert fake_time.sleeps == []


def test_a_wait_past_the_deadline_gives_up_before_waiting(
    invoke: Callable[..., Invocation], fake_time: FakeClock
) -> None:
    args = ("--retry-after", "30", "--max-wait", "60", "--deadline", "20", "--json")
    done = invoke(retry_after.run, *args)
    assert done.code == 1
    assert done.stderr.splitlines()[-1].endswith(
        "; gave up: a 30.00 s wait would pass the 20 s deadline"
    )
    result = json.loads(done.stdout)
    assert (result["succeeded"], result["attempts"]) == (False, 1)
    assert fake_time.sleeps == []


def test_no_wait_accepted_means_the_first_answer_is_final(
    invoke: Callable[..., Invocation], fake_time: FakeClock
) -> None:
    done = invoke(retry_after.run, "--max-wait", "0", "--json")
    assert done.code == 1
    reason = "gave up: asked to wait 1.00 s, over the 0 s cap"
    assert json.loads(done.stdout)["timeline"][0]["decision"] == reason
    assert fake_time.sleeps == []


def test_a_failure_with_no_answer_is_named_by_its_kind() -> None:
    timeline = retry_after.Timeline()
    timeline.record(httpx.ConnectError("refused"), "retry in 0.10 s")
    assert timeline.rows[0].outcome == "ConnectError"


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--retry-after", "-1"], "--retry-after"),
        (["--retry-after", "soon"], "--retry-after"),
        (["--max-wait", "-1"], "--max-wait"),
        (["--max-wait", "nan"], "--max-wait"),  # a float option used to accept nan
        (["--max-wait", "inf"], "--max-wait"),
        (["--deadline", "0"], "--deadline"),
        (["--deadline", "nan"], "--deadline"),
        (["--deadline", "inf"], "--deadline"),
        (["--deadline", "-inf"], "--deadline"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(retry_after.run, *args).assert_usage_error(argument)
