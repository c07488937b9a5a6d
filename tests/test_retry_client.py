"""Tests for scripts/retry_client.py: the policy directly, then the script as a user runs it.

The policy tests never sleep. `retrying()` takes its sleep as tenacity does (`sleep=`), and the
clock tenacity's stop_before_delay reads (time.monotonic through the module's `time` name) is
swapped for a fake one that moves only when the code under test sleeps or a fake request takes
time. The fake network is httpx.MockTransport, a stand-in for the wire, not for the code under
test; the demo-server tests use the real loopback server with the same fake sleep.
"""

import json
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import click
import httpx
import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

import retry_client
from conftest import ScriptRunner
from retry_client import RetryPolicy

# --- fakes ---------------------------------------------------------------------------------------

LATENCY_S = 0.01  # what a fake answer costs on the fake clock
TIMEOUT_S = 2.0  # the fake client's timeout: what a fake timeout costs
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


@contextmanager
def tenacity_reads(clock: FakeClock) -> Generator[None]:
    """Make tenacity's own clock (RetryCallState timestamps) the fake one, for one call."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tenacity, "time", SimpleNamespace(monotonic=clock))
        yield


@dataclass
class Sent:
    at_s: float  # when the request went out
    done_s: float  # when its answer, or its failure, came back
    request: httpx.Request


def fake_network(outcomes: list[Outcome], clock: FakeClock, sent: list[Sent]) -> httpx.Client:
    """A client whose requests get `outcomes` in order, then 200 for ever."""
    queue = list(outcomes)

    def answer(request: httpx.Request) -> httpx.Response:
        outcome = queue.pop(0) if queue else 200
        start = clock.now
        clock.now += TIMEOUT_S if outcome == "timeout" else LATENCY_S
        sent.append(Sent(start, clock.now, request))
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
    """The Retry-After a fake answer carried, in seconds."""
    return float(outcome[1]) if isinstance(outcome, tuple) else None


def call(
    outcomes: list[Outcome], policy: RetryPolicy, method: str = "GET", headers: dict | None = None
) -> tuple[FakeClock, list[Sent], httpx.Response | httpx.HTTPError]:
    """One fetch() over the fake network; anything but an httpx error fails the test."""
    clock, sent = FakeClock(), list[Sent]()
    retries = retry_client.retrying(policy, sleep=clock.sleep)
    result: httpx.Response | httpx.HTTPError
    with fake_network(outcomes, clock, sent) as client, tenacity_reads(clock):
        try:
            result = retry_client.fetch(client, method, "http://svc/x", retries, headers)
        except httpx.HTTPError as err:
            result = err
    return clock, sent, result


# --- the pattern: any sequence of answers --------------------------------------------------------

OUTCOMES = st.one_of(
    st.sampled_from([200, 201, 302, 304, 400, 404, 500, 502, 503, 504, 429, "connect", "timeout"]),
    st.just("drop"),
    st.tuples(st.sampled_from([429, 503]), st.integers(0, 120)),
)
POLICIES = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 8),
    deadline_s=st.floats(0.5, 60),
    max_wait_s=st.floats(0, 30),
    backoff_s=st.floats(0.01, 2),
)


@settings(max_examples=300, deadline=None)
@given(
    outcomes=st.lists(OUTCOMES, max_size=10),
    policy=POLICIES,
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
    keyed=st.booleans(),
)
def test_policy_holds_for_any_sequence_of_answers(
    outcomes: list[Outcome], policy: RetryPolicy, method: str, keyed: bool
) -> None:
    headers = {"Idempotency-Key": "order-42"} if keyed else {}
    clock, sent, result = call(outcomes, policy, method, headers)
    repeatable = method != "POST" or keyed
    answered = (outcomes + [200] * len(sent))[: len(sent)]

    # Attempts within the limit; a retry only after a transient outcome, and only when safe.
    assert 1 <= len(sent) <= policy.attempts
    assert all(is_transient(o) and repeatable for o in answered[:-1])
    assert len(clock.sleeps) == len(sent) - 1

    # Every wait: never earlier than the server asked (and exactly that), never over the cap, never
    # planned past the deadline; without a Retry-After, within the backoff's jitter window.
    for retry, (outcome, wait) in enumerate(zip(answered, clock.sleeps, strict=False)):
        asked = asked_s(outcome)
        if asked is None:
            assert 0 <= wait <= min(policy.backoff_s * 2**retry, policy.max_wait_s)
        else:
            assert wait == asked
        assert wait <= policy.max_wait_s
        assert sent[retry].done_s + wait < policy.deadline_s
    assert all(s.request.extensions["timeout"]["read"] == TIMEOUT_S for s in sent)

    # How it ended: any answer below 400 is returned; otherwise the last real error, not
    # tenacity's RetryError, with a note saying why it stopped if it was worth a retry.
    last = answered[-1]
    status = status_of(last)
    if status is not None and status < 400:
        assert isinstance(result, httpx.Response)
        assert result.status_code == status
        return
    if isinstance(last, str):
        assert type(result) is TRANSPORT_ERRORS[last]
    else:
        assert isinstance(result, httpx.HTTPStatusError)
        assert result.response.status_code == status
    notes = getattr(result, "__notes__", [])
    if not (is_transient(last) and repeatable):
        assert notes == []
        return
    asked = asked_s(last)
    done_s = sent[-1].done_s
    if len(sent) == policy.attempts:
        assert notes == [f"gave up after attempt {len(sent)} of {policy.attempts}"]
    elif asked is not None and asked > policy.max_wait_s:  # the server asks too much: give up
        assert notes == [
            f"gave up: asked to wait {asked:g} s, over the {policy.max_wait_s:g} s cap"
        ]
    else:  # the next wait, at most its bound, would have ended past the deadline
        assert notes[0].endswith(f"wait would pass the {policy.deadline_s:g} s deadline")
        bound = min(policy.backoff_s * 2 ** (len(sent) - 1), policy.max_wait_s)
        assert done_s + (bound if asked is None else asked) >= policy.deadline_s


# --- the pattern: the defects of the previous version, one by one ---------------------------------


def test_a_retry_after_over_the_cap_is_not_retried_early() -> None:
    """It used to sleep the 5 s cap and retry a 429 that asked for 120 s."""
    clock, sent, result = call([(429, 120)], RetryPolicy(max_wait_s=5))
    assert isinstance(result, httpx.HTTPStatusError)
    assert (len(sent), clock.sleeps) == (1, [])
    assert result.__notes__ == ["gave up: asked to wait 120 s, over the 5 s cap"]


def test_a_retry_after_past_the_deadline_gives_up_without_waiting() -> None:
    clock, sent, result = call([(429, 30)], RetryPolicy(deadline_s=10, max_wait_s=60))
    assert isinstance(result, httpx.HTTPStatusError)
    assert (len(sent), clock.sleeps) == (1, [])
    assert result.__notes__ == ["gave up: a 30.00 s wait would pass the 10 s deadline"]


@pytest.mark.parametrize("status", [301, 302, 304])
def test_a_redirect_or_not_modified_is_an_answer_not_a_failure(status: int) -> None:
    """raise_for_status() raised for every status outside 2xx."""
    _, sent, result = call([status], RetryPolicy())
    assert isinstance(result, httpx.Response)
    assert (result.status_code, len(sent)) == (status, 1)


def test_the_deadline_is_read_from_tenacitys_clock() -> None:
    # Two timeouts of 2 s leave 1 s of a 5 s deadline: a backoff of up to 1.6 s may not fit.
    policy = RetryPolicy(attempts=10, deadline_s=5, backoff_s=0.4, max_wait_s=0.4)
    clock, sent, result = call(["timeout", "timeout", "timeout"], policy)
    assert type(result) is httpx.ReadTimeout
    assert sent[-1].at_s < policy.deadline_s <= clock.now  # it started in time, ended late
    assert result.__notes__[0].startswith("gave up: a ")


def test_an_http_date_retry_after_is_honoured_in_full() -> None:
    in_ten_s = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    clock, _, result = call([(503, in_ten_s)], RetryPolicy(max_wait_s=60, deadline_s=100))
    assert isinstance(result, httpx.Response)
    assert 8 < clock.sleeps[0] <= 10  # never earlier: a second lost to rounding at most


# --- the pattern: Retry-After --------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def retry_after_s(value: str) -> float | None:
    return retry_client.retry_after_s(httpx.Response(503, headers={"Retry-After": value}), NOW)


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


# --- the pattern against the real demo server on loopback, still without sleeping --------------

DEMO = ["503 Service Unavailable", "429 Too Many Requests", "RemoteProtocolError", "200 OK"]


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    with retry_client.demo_server() as base:
        yield base


def outcome(result: httpx.Response | BaseException | None) -> str:
    if isinstance(result, httpx.HTTPStatusError):
        result = result.response
    if isinstance(result, httpx.Response):
        return f"{result.status_code} {result.reason_phrase}"
    return type(result).__name__


@dataclass
class Story:
    """What tenacity's hooks saw of one call, and how it ended."""

    outcomes: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    result: httpx.Response | httpx.HTTPError | None = None

    def before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        self.outcomes.append(outcome(retry_client.last_error(retry_state)))

    def fetch(
        self, url: str, policy: RetryPolicy, method: str = "GET", headers: dict | None = None
    ) -> None:
        retries = retry_client.retrying(
            policy, sleep=self.waits.append, before_sleep=self.before_sleep
        )
        with httpx.Client(timeout=5) as client:
            try:
                self.result = retry_client.fetch(client, method, url, retries, headers)
            except httpx.HTTPError as err:
                self.result = err
        self.outcomes.append(outcome(self.result))


def methods_offered() -> list[str]:
    (method,) = [param for param in retry_client.cli.params if param.name == "method"]
    assert isinstance(method.type, click.Choice)
    return [str(choice) for choice in method.type.choices]


@pytest.mark.parametrize("method", methods_offered())
def test_every_method_the_cli_offers_works_against_the_demo_server(demo: str, method: str) -> None:
    """OPTIONS and TRACE used to get 501 Unsupported method from the demo's own server."""
    story = Story()
    story.fetch(f"{demo}/flaky/{method}", RetryPolicy(), method)
    if method == "POST":  # not idempotent: the first 503 is final, as the lesson shows
        assert story.outcomes == DEMO[:1]
        assert story.waits == []
    else:
        assert story.outcomes == DEMO
        assert story.waits[1] == 1.0  # the server's Retry-After, not our backoff


def test_a_post_with_an_idempotency_key_is_retried(demo: str) -> None:
    story = Story()
    story.fetch(f"{demo}/flaky/keyed", RetryPolicy(), "POST", {"Idempotency-Key": "k1"})
    assert story.outcomes == DEMO


def test_giving_up_reraises_the_real_error_with_its_cause(demo: str) -> None:
    story = Story()
    story.fetch(f"{demo}/flaky/give-up", RetryPolicy(attempts=3))
    assert type(story.result) is httpx.RemoteProtocolError  # not tenacity's RetryError
    assert type(story.result.__cause__).__module__.startswith("httpcore")  # httpx's own chain
    assert story.result.__notes__ == ["gave up after attempt 3 of 3"]
    assert story.outcomes == DEMO[:3]


def test_one_retrying_serves_calls_from_many_threads(demo: str) -> None:
    waits: list[float] = []
    retries = retry_client.retrying(RetryPolicy(), sleep=waits.append)
    results: list[int] = []

    def one(name: str) -> None:
        results.append(
            retry_client.fetch(client, "GET", f"{demo}/flaky/{name}", retries).status_code
        )

    with httpx.Client(timeout=5) as client:
        threads = [threading.Thread(target=one, args=(f"thread-{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [200] * 4
    assert waits.count(1.0) == 4  # each call honoured its own Retry-After


# --- the script, as a user runs it ---------------------------------------------------------------


class PathHandler(BaseHTTPRequestHandler):
    """Test target: /<status>[/<retry-after>] answers that, to any method."""

    def answer(self) -> None:
        status, _, after = self.path.strip("/").partition("/")
        self.send_response(int(status))
        if after:
            self.send_header("Retry-After", after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = answer  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PathHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_default_run_prints_one_json_object(runner: ScriptRunner) -> None:
    proc = runner.run("retry_client", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"succeeded", "attempts", "elapsed_s", "status"}
    assert (result["succeeded"], result["attempts"], result["status"]) == (True, 4, 200)
    assert result["elapsed_s"] >= 1.0  # it really waited the second the server asked for
    lines = proc.stderr.splitlines()
    assert len(lines) == 5  # the call, then a line per attempt
    for line, said in zip(lines[1:], DEMO, strict=True):
        assert f": {said}; " in line
    assert lines[2].endswith("; retrying in 1.00 s (Retry-After)")  # the server's wish
    assert lines[4].endswith("200 OK; done")


def test_a_post_is_not_retried_and_exits_1(runner: ScriptRunner) -> None:
    proc = runner.run("retry_client", "--method", "POST", "--json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert (result["succeeded"], result["attempts"], result["status"]) == (False, 1, 503)
    assert proc.stderr.splitlines()[-1] == "error: 503 Service Unavailable; not retried"
    assert "Traceback" not in proc.stderr


def test_ctrl_c_while_waiting_on_retry_after(runner: ScriptRunner, target: str) -> None:
    args = ("--url", f"{target}/503/30", "--max-wait", "60", "--deadline", "120")
    line = runner.ctrl_c("retry_client", *args, ready="retrying in 30.00 s")
    assert line == "interrupted after 1 attempt: 503 Service Unavailable"  # was "1 attempts"


def test_a_wait_over_the_cap_gives_up_and_says_so(invoke, target: str) -> None:
    done = invoke(retry_client.run, "--url", f"{target}/429/120", "--json")
    assert done.code == 1
    reason = "gave up: asked to wait 120 s, over the 5 s cap"
    assert done.stderr.splitlines()[-1] == f"error: 429 Too Many Requests; {reason}"
    result = json.loads(done.stdout)
    assert (result["succeeded"], result["attempts"], result["status"]) == (False, 1, 429)


def test_one_attempt_is_said_in_the_singular(invoke, target: str) -> None:
    done = invoke(retry_client.run, "--url", f"{target}/503", "--attempts", "1")
    assert done.code == 1
    assert ": up to 1 attempt in 15 s" in done.stderr.splitlines()[0]
    assert done.stderr.splitlines()[-1] == (
        "error: 503 Service Unavailable; gave up after attempt 1 of 1"
    )


@pytest.mark.parametrize("status", ["304", "302"])
def test_a_not_modified_or_redirect_answer_is_a_success(invoke, target: str, status: str) -> None:
    done = invoke(retry_client.run, "--url", f"{target}/{status}", "--json")
    assert done.code == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["succeeded"], result["attempts"], result["status"]) == (True, 1, int(status))


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--url", "not-a-url"], "--url"),
        (["--url", "ftp://example.com/"], "--url"),
        (["--url", "http://"], "--url"),
        (["--url", "http://[::1/"], "--url"),  # was a ValueError traceback, exit 1
        (["--url", "http://xn--a.example/"], "--url"),
        (["--attempts", "0"], "--attempts"),
        (["--attempts", "abc"], "--attempts"),
        (["--attempts", "21"], "--attempts"),
        (["--deadline", "0"], "--deadline"),
        (["--deadline", "soon"], "--deadline"),
        (["--deadline", "nan"], "--deadline"),  # was accepted
        (["--deadline", "inf"], "--deadline"),
        (["--max-wait", "-1"], "--max-wait"),
        (["--max-wait", "nan"], "--max-wait"),  # was accepted
        (["--max-wait", "inf"], "--max-wait"),
        (["--method", "PATCH"], "--method"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(invoke, args: list[str], argument: str) -> None:
    invoke(retry_client.run, *args).assert_usage_error(argument)
