"""Tests for scripts/retry_jitter.py: the waits directly, then herds against the loopback service.

The waits are checked on tenacity's own RetryCallState, built the way tenacity's tests build it.
The herd tests release real threads on the real loopback service and read the spread from the
send times that tenacity's `before` hook recorded; they compare spreads, never absolute times,
except for the floor a Retry-After sets, which a sleep can only overshoot.
"""

import json
import signal
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

import retry_jitter
from conftest import ScriptRunner
from retry_jitter import CAP_S, Herd, Round, Service

# --- the waits -----------------------------------------------------------------------------------


def failed_state(attempt: int, retry_after: str | None = None) -> tenacity.RetryCallState:
    """The state tenacity hands a wait after attempt `attempt` failed with a 503."""
    request = httpx.Request("GET", "http://svc/")
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    response = httpx.Response(503, headers=headers, request=request)
    error = httpx.HTTPStatusError("503 Service Unavailable", request=request, response=response)
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def window_s(first_s: float, attempt: int) -> float:
    """The full-jitter window after attempt `attempt`: it doubles per attempt, up to the cap."""
    return min(first_s * 2 ** (attempt - 1), CAP_S)


@given(
    asked=st.integers(0, 120),
    attempt=st.integers(1, 10),
    first_s=st.floats(0.01, 2),
)
def test_retry_after_then_jitter_is_never_earlier_than_asked(
    asked: int, attempt: int, first_s: float
) -> None:
    wait = retry_jitter.retry_after_then_jitter(first_s)
    waited = wait(failed_state(attempt, str(asked)))
    assert asked <= waited <= asked + window_s(first_s, attempt)


@given(attempt=st.integers(1, 10), first_s=st.floats(0.01, 2))
def test_without_a_retry_after_every_wait_is_full_jitter(attempt: int, first_s: float) -> None:
    for wait in (
        retry_jitter.wait_for("full", first_s),
        retry_jitter.retry_after_then_jitter(first_s),
    ):
        assert 0 <= wait(failed_state(attempt)) <= window_s(first_s, attempt)


def test_wait_retry_after_takes_the_servers_word_over_its_fallback() -> None:
    wait = retry_jitter.wait_retry_after(fallback=tenacity.wait_fixed(7))
    assert wait(failed_state(1, "2")) == 2.0
    assert wait(failed_state(1)) == 7.0
    assert wait(failed_state(1, "soon")) == 7.0  # unreadable: our own wait
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 58 < wait(failed_state(1, in_a_minute)) <= 60


def test_a_request_that_got_no_answer_falls_back() -> None:
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    error = httpx.ConnectError("refused")
    state.set_exception((type(error), error, None))
    assert retry_jitter.wait_retry_after(fallback=tenacity.wait_fixed(3))(state) == 3.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
        ("Sun, 01 Mar 2026 12:00:30 -0000", 30.0),
        ("1.5", None),
        ("", None),
    ],
)
def test_retry_after_examples(value: str, seconds: float | None) -> None:
    response = httpx.Response(503, headers={"Retry-After": value})
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert retry_jitter.retry_after_s(response, now) == seconds


# --- herds on the loopback service ---------------------------------------------------------------


def release(mode: str, clients: int, first_s: float, retry_after: int | None = None) -> list[Round]:
    """One herd of two attempts each: every client is turned away once, then let in."""
    service = Service(turn_away=1, retry_after=retry_after)
    herd = Herd()
    with retry_jitter.service_on_loopback(service) as base:
        retry_jitter.run_herd(base, clients, 2, retry_jitter.wait_for(mode, first_s), herd)
    assert sorted(service.visits.values()) == [2] * clients  # each one got in on its second try
    return herd.rounds()


def test_several_clients_spread_out() -> None:
    """With the same backoff for all, the second round leaves together; with jitter, spread."""
    together = release("none", clients=20, first_s=0.5)
    jittered = release("full", clients=20, first_s=0.5)
    assert [r.sent for r in together + jittered] == [20] * 4
    # Without jitter the second round leaves within scheduler noise (0.12 s at most, measured with
    # both cores busy); with it, 20 waits uniform in [0, 0.5 s] span less than 0.25 s once in
    # 50,000 herds. The first round is the herd as it started, all at once.
    assert jittered[1].spread_s > together[1].spread_s
    assert jittered[1].spread_s > jittered[0].spread_s


def test_retry_after_is_honoured_and_the_jitter_after_it_spreads_the_herd() -> None:
    first, second = release("retry-after-jitter", clients=12, first_s=0.4, retry_after=1)
    # No client came back before the second the service asked for; the earliest first try
    # bounds every first try's failure from below.
    assert second.first_s >= first.first_s + 1.0
    assert second.spread_s > first.spread_s


class StopWhenAllWait(tenacity.wait.wait_base):
    """A long wait; the last client to fail stops the herd, as Ctrl-C does, while the rest sleep."""

    def __init__(self, herd: Herd, clients: int) -> None:
        self.herd = herd
        self.failed = threading.Barrier(clients, action=herd.stopping.set)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        self.failed.wait()  # every client has failed once; the last one to get here sets it
        return 60.0


def test_a_stopped_herd_sends_no_further_request() -> None:
    """Regression: tenacity checks `stop` before its sleep; woken clients used to retry at once."""
    service = Service(turn_away=1, retry_after=None)
    herd = Herd()
    with retry_jitter.service_on_loopback(service) as base:
        retry_jitter.run_herd(base, 8, 3, StopWhenAllWait(herd, 8), herd)
    assert [r.sent for r in herd.rounds()] == [8]
    assert sorted(service.visits.values()) == [1] * 8


def test_clients_that_run_out_of_attempts_give_up_quietly() -> None:
    service = Service(turn_away=5, retry_after=None)  # still down when the tries run out
    herd = Herd()
    with retry_jitter.service_on_loopback(service) as base:
        retry_jitter.run_herd(base, 4, 2, retry_jitter.wait_for("full", 0.01), herd)
    assert [r.sent for r in herd.rounds()] == [4, 4]
    assert sorted(service.visits.values()) == [2] * 4


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_prints_one_json_object(runner: ScriptRunner) -> None:
    proc = runner.run("retry_jitter", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    result = json.loads(proc.stdout)
    assert set(result) == {"mode", "clients", "rounds", "second_round_spread_s", "elapsed_s"}
    assert (result["mode"], result["clients"]) == ("full", 20)
    assert [r["round"] for r in result["rounds"]] == [1, 2, 3, 4]
    assert all(r["sent"] == 20 for r in result["rounds"])
    assert result["second_round_spread_s"] == result["rounds"][1]["spread_s"]
    starts = [r["first_s"] for r in result["rounds"]]
    assert starts == sorted(starts)  # a client's next try always leaves after its last one


@pytest.mark.parametrize("mode", ["none", "full", "retry-after", "retry-after-jitter"])
def test_each_mode_shows_a_row_per_round(invoke, mode: str) -> None:
    args = ("--mode", mode, "--clients", "3", "--attempts", "3", "--backoff-ms", "10")
    done = invoke(retry_jitter.run, *args, "--retry-after", "0")
    assert done.code == 0, done.stderr
    assert done.stderr == f"3 clients, mode {mode}: each turned away 2 times, then let in\n"
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ ")]
    assert [row.split("│")[1:3] for row in rows] == [[f" {n}     ", " 3    "] for n in (1, 2, 3)]
    assert done.stdout.splitlines()[-1].startswith("second round spread ")


def test_the_table_fits_80_columns_with_the_whole_strip(invoke, monkeypatch) -> None:
    """Regression: a pipe or a CI log is 80 columns wide, and rich cut the 40-slot strip short."""
    monkeypatch.setenv("COLUMNS", "80")
    done = invoke(retry_jitter.run, "--clients", "2", "--attempts", "2", "--backoff-ms", "10")
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ ")]
    assert len(rows) == 2
    for row in rows:
        strip = row.split("│")[5].strip()
        assert len(strip) == retry_jitter.SLOTS
        assert set(strip) <= {"|", "."}


def test_a_finished_run_gives_ctrl_c_back(invoke) -> None:
    """The run ignores a second Ctrl-C while its herd stops; once done, Ctrl-C works as before."""
    before = signal.getsignal(signal.SIGINT)
    assert invoke(retry_jitter.run, "--clients", "2", "--attempts", "2", "--json").code == 0
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_ends_the_herd_and_its_service(runner: ScriptRunner) -> None:
    """Regression: uv passes on a second Ctrl-C, which used to replace this line (100 clients).

    The first round may or may not have left when Ctrl-C comes; no later one does.
    """
    args = ("--mode", "retry-after", "--retry-after", "10", "--clients", "100", "--attempts", "10")
    line = runner.ctrl_c("retry_jitter", *args, ready="each turned away 9 times")
    sent = int(line.removeprefix("interrupted with ").removesuffix(" of 1000 requests sent"))
    assert 0 <= sent <= 100


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--mode", "random"], "--mode"),
        (["--clients", "1"], "--clients"),
        (["--clients", "101"], "--clients"),
        (["--clients", "many"], "--clients"),
        (["--attempts", "1"], "--attempts"),
        (["--attempts", "11"], "--attempts"),
        (["--backoff-ms", "0"], "--backoff-ms"),
        (["--backoff-ms", "nan"], "--backoff-ms"),
        (["--backoff-ms", "5001"], "--backoff-ms"),
        (["--retry-after", "-1"], "--retry-after"),
        (["--retry-after", "11"], "--retry-after"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(invoke, args: list[str], argument: str) -> None:
    invoke(retry_jitter.run, *args).assert_usage_error(argument)
