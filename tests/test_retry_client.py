"""Tests for scripts/retry_client.py: the policy directly, then the script as a user runs it.

Nothing here sleeps for real. The policy comes from `retrying()`, and tests add their sleep with
tenacity's own `.copy(sleep=...)`; the clock tenacity's stop_before_delay reads (time.monotonic
through tenacity's `time` name) is swapped for a fake one that moves only when the code under test
sleeps or a fake request takes time. Where the CLI runs in-process, tenacity's default sleep
(`tenacity.nap`, which its docs say "may be mocked out for unit testing") sleeps on that fake
clock. The fake network is httpx.MockTransport, a stand-in for the wire, not for the code under
test; the demo-server tests use the real loopback server.
"""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import httpx
import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

import retry_client
from conftest import FakeClock, Invocation, ScriptRunner
from retry_client import RetryPolicy
from tenacity_clock import fake_tenacity_time, tenacity_reads


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """tenacity's clock and its default sleep on a fake clock, for in-process CLI runs."""
    return fake_tenacity_time(monkeypatch)


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


def call(
    outcomes: list[Outcome], policy: RetryPolicy, method: str = "GET", headers: dict | None = None
) -> tuple[FakeClock, list[Sent], httpx.Response | httpx.HTTPError]:
    """One fetch() over the fake network; anything but an httpx error fails the test."""
    clock = FakeClock()
    sent: list[Sent] = []
    retries = retry_client.retrying(policy).copy(sleep=clock.sleep)
    result: httpx.Response | httpx.HTTPError
    with fake_network(outcomes, clock, sent) as client, tenacity_reads(clock):
        try:
            result = retry_client.fetch(client, method, "http://svc/x", retries, headers)
        except httpx.HTTPError as err:
            result = err
    return clock, sent, result


# --- the pattern: any sequence of answers --------------------------------------------------------

OUTCOMES = st.one_of(
    st.sampled_from([200, 201, 302, 304, 400, 404, 500, 502, 503, 504, 429]),
    st.sampled_from(["connect", "timeout", "drop"]),
    st.tuples(st.sampled_from([429, 503]), st.one_of(st.integers(0, 120), st.just("soon"))),
)
POLICIES = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 8),
    deadline_s=st.floats(0.5, 60),
    backoff_s=st.floats(0.01, 2),
    max_wait_s=st.floats(0, 30),
)
RETRY_AFTER_NOTE = "gave up: the server said when to come back (Retry-After); never retry sooner"


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
    headers = {"Idempotency-Key": "order-42"} if keyed else {}
    clock, sent, result = call(outcomes, policy, method, headers)
    repeatable = method != "POST" or keyed
    answered = (outcomes + [200] * len(sent))[: len(sent)]

    # Attempts within the limit; a retry only after a transient outcome, only when safe, and
    # never after an answer that said when to come back.
    assert 1 <= len(sent) <= policy.attempts
    for outcome in answered[:-1]:
        assert is_transient(outcome)
        assert repeatable
        assert not isinstance(outcome, tuple)
    assert len(clock.sleeps) == len(sent) - 1

    # Every wait: within the full-jitter window, and never planned past the deadline.
    for retry, wait in enumerate(clock.sleeps):
        assert 0 <= wait <= min(policy.backoff_s * 2**retry, policy.max_wait_s)
        assert sent[retry].done_s + wait < policy.deadline_s

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
    elif len(sent) == policy.attempts:
        assert notes == [f"gave up after attempt {len(sent)} of {policy.attempts}"]
    elif isinstance(last, tuple):
        assert notes == [RETRY_AFTER_NOTE]
    else:  # the next wait, at most its window, would have ended past the deadline
        assert notes[0].endswith(f"wait would pass the {policy.deadline_s:g} s deadline")
        window = min(policy.backoff_s * 2 ** (len(sent) - 1), policy.max_wait_s)
        assert sent[-1].done_s + window >= policy.deadline_s


# --- the pattern: the defects of earlier versions, one by one ------------------------------------

# A fixed date, not one computed at import: every pytest-xdist worker must collect the same tests.
A_DATE = "Wed, 21 Oct 2099 07:28:00 GMT"


@pytest.mark.parametrize("asked", ["120", "1", "0", A_DATE])
def test_an_answer_with_retry_after_is_final_here(asked: str) -> None:
    """A 429 asking for 120 s used to be retried after the 5 s cap: sooner than the server asked."""
    clock, sent, result = call([(429, asked)], RetryPolicy(max_wait_s=5))
    assert isinstance(result, httpx.HTTPStatusError)
    assert (len(sent), clock.sleeps) == (1, [])
    assert result.__notes__ == [RETRY_AFTER_NOTE]


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


# --- the pattern against the real demo server on loopback ----------------------------------------

DEMO = ["503 Service Unavailable", "RemoteProtocolError", "200 OK"]
# What the script says of each: with no answer, the error's reason too.
DEMO_SAID = [
    DEMO[0],
    "RemoteProtocolError: Server disconnected without sending a response.",
    DEMO[2],
]


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
        retries = retry_client.retrying(policy)
        retries = retries.copy(sleep=self.waits.append, before_sleep=self.before_sleep)
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
        assert len(story.waits) == 2


def test_a_post_with_an_idempotency_key_is_retried(demo: str) -> None:
    story = Story()
    story.fetch(f"{demo}/flaky/keyed", RetryPolicy(), "POST", {"Idempotency-Key": "k1"})
    assert story.outcomes == DEMO


def test_giving_up_reraises_the_real_error_with_its_cause(demo: str) -> None:
    story = Story()
    story.fetch(f"{demo}/flaky/give-up", RetryPolicy(attempts=2))
    assert type(story.result) is httpx.RemoteProtocolError  # not tenacity's RetryError
    assert type(story.result.__cause__).__module__.startswith("httpcore")  # httpx's own chain
    assert story.result.__notes__ == ["gave up after attempt 2 of 2"]
    assert story.outcomes == DEMO[:2]


def test_one_retrying_serves_calls_from_many_threads(demo: str) -> None:
    waits: list[float] = []
    retries = retry_client.retrying(RetryPolicy()).copy(sleep=waits.append)
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
    assert len(waits) == 8  # each call waited twice, on its own backoff


# --- the script, as a user runs it ---------------------------------------------------------------


class ScriptHandler(BaseHTTPRequestHandler):
    """Test target: /<step>,<step>,... answers the steps in turn per path, then the last again.

    A step is a status ("503"), a status with a Retry-After ("429:120"), "drop" (hang up) or
    "hang" (answer nothing until the test ends).
    """

    visits: dict[str, int] = {}  # noqa: RUF012 - one target per module; paths are per test
    release = threading.Event()

    def answer(self) -> None:
        steps = self.path.strip("/").partition("?")[0].split(",")
        seen = self.visits.get(self.path, 0)
        self.visits[self.path] = seen + 1
        step = steps[min(seen, len(steps) - 1)]
        if step == "hang":
            self.release.wait(timeout=60)
        if step in ("hang", "drop"):
            return
        status, _, after = step.partition(":")
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    ScriptHandler.release.set()
    server.shutdown()
    server.server_close()


def test_default_run_prints_one_json_object(runner: ScriptRunner) -> None:
    proc = runner.run("retry_client", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"succeeded", "status", "attempts", "elapsed_s", "timeline"}
    assert (result["succeeded"], result["status"], result["attempts"]) == (True, 200, 3)
    assert [row["outcome"] for row in result["timeline"]] == DEMO_SAID
    assert [row["status"] for row in result["timeline"]] == [503, None, 200]
    decisions = [row["decision"] for row in result["timeline"]]
    assert decisions[0].startswith("retry in ")
    assert decisions[1].startswith("retry in ")
    assert decisions[2] == "done"
    lines = proc.stderr.splitlines()
    assert len(lines) == 4  # the call, then a line per attempt as it happens
    assert lines[0].endswith("/flaky: up to 5 attempts in 15 s")


def test_a_post_is_not_retried_and_exits_1(runner: ScriptRunner) -> None:
    proc = runner.run("retry_client", "--method", "POST", "--json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert (result["succeeded"], result["attempts"], result["status"]) == (False, 1, 503)
    assert proc.stderr.splitlines()[-1] == "error: 503 Service Unavailable; not retried"
    assert "Traceback" not in proc.stderr


def test_ctrl_c_keeps_the_partial_results(runner: ScriptRunner, target: str) -> None:
    ready = "attempt 1: 503 Service Unavailable"  # then a short backoff, then an endless wait
    line = runner.ctrl_c("retry_client", "--url", f"{target}/503,hang", ready=ready)
    assert line == "interrupted after 1 attempt: 503 Service Unavailable"  # was "1 attempts"


def table_rows(done: Invocation) -> list[list[str]]:
    """The cells of each body row of the rich table printed on stdout."""
    rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]


def test_the_summary_is_a_table_with_a_row_per_attempt(
    invoke: Callable[..., Invocation], fake_time: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rework printed a line of key-value pairs instead of the table."""
    monkeypatch.setenv("COLUMNS", "160")
    done = invoke(retry_client.run)
    assert done.code == 0, done.stderr
    rows = table_rows(done)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[2] for row in rows] == DEMO_SAID
    waits = [f"retry in {wait:.2f} s" for wait in fake_time.sleeps]
    assert [row[3] for row in rows] == [*waits, "done"]
    assert "3 attempts in " in done.stdout


def test_one_attempt_is_said_in_the_singular(
    invoke: Callable[..., Invocation], target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    done = invoke(retry_client.run, "--url", f"{target}/503?one", "--attempts", "1")
    assert done.code == 1
    assert done.stderr.splitlines()[0].endswith(": up to 1 attempt in 15 s")
    assert done.stderr.splitlines()[-1] == (
        "error: 503 Service Unavailable; gave up after attempt 1 of 1"
    )
    assert "1 attempt in " in done.stdout


def test_a_retry_after_answer_is_final_and_says_why(
    invoke: Callable[..., Invocation], target: str
) -> None:
    done = invoke(retry_client.run, "--url", f"{target}/429:1", "--json")
    assert done.code == 1
    assert done.stderr.splitlines()[-1] == f"error: 429 Too Many Requests; {RETRY_AFTER_NOTE}"
    result = json.loads(done.stdout)
    assert (result["succeeded"], result["attempts"], result["status"]) == (False, 1, 429)


def test_a_failure_with_no_answer_says_why_on_one_line(invoke: Callable[..., Invocation]) -> None:
    """Regression: it said only "ConnectError", not that the connection was refused."""
    done = invoke(retry_client.run, "--url", "http://127.0.0.1:9/", "--attempts", "1", "--json")
    assert done.code == 1
    message = done.stderr.splitlines()[-1]
    assert message.startswith("error: ConnectError: ")
    assert "refused" in message.lower()
    assert message.endswith("; gave up after attempt 1 of 1")


@pytest.mark.parametrize("status", ["304", "302"])
def test_a_not_modified_or_redirect_answer_is_a_success(
    invoke: Callable[..., Invocation], target: str, status: str
) -> None:
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
        (["--url", ""], "--url"),  # was taken for the demo server's URL, then exit 1
        (["--url", "http://127.0.0.1:99999/"], "--url"),  # was accepted: no such port
        (["--url", "http://127.0.0.1:0/"], "--url"),
        (["--attempts", "0"], "--attempts"),
        (["--attempts", "abc"], "--attempts"),
        (["--attempts", "21"], "--attempts"),
        (["--attempts", "nan"], "--attempts"),
        (["--method", "PATCH"], "--method"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(retry_client.run, *args).assert_usage_error(argument)
