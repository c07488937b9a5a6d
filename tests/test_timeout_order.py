"""Tests for scripts/timeout_order.py: the decorators directly, sync and async, then the script.

The order is proven by attempt counts, never by wall time. Sync calls run on a fake clock: the
lesson's clock (its `time` name) and tenacity's (its clock and its sleep, through
tenacity_clock.fake_tenacity_time) move only when the fake I/O or a retry wait moves them, so a
"hang" costs nothing. The async calls run on a real event loop with 20 ms timeouts; only counts are
asserted.
"""

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest

import timeout_order
from conftest import FakeClock, Invocation, ScriptRunner
from tenacity_clock import fake_tenacity_time
from timeout_order import ORDERS, deadline_in, stack, time_left, traced, with_timeout

WAIT = timeout_order.RETRY_WAIT_S


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The lesson's clock is the fake one too: deadlines, time_left() and stop_at_deadline."""
    fake_time = fake_tenacity_time(monkeypatch)
    monkeypatch.setattr(timeout_order, "time", SimpleNamespace(monotonic=fake_time))
    return fake_time


class Dependency:
    """A sync dependency call on the fake clock: it hangs (until its timeout) or fails at once."""

    def __init__(self, clock: FakeClock, hangs: bool) -> None:
        self.clock = clock
        self.hangs = hangs
        self.attempts = 0

    def get(self) -> str:
        self.attempts += 1
        if self.hangs:  # I/O that honours the timeout it is given, then gives up
            self.clock.now += time_left(60.0)
            raise httpx.ReadTimeout("no answer")
        raise httpx.ConnectError("refused")


def run_sync(clock: FakeClock, hangs: bool, timeout_s: float, attempts: int) -> dict[str, tuple]:
    """Each order once: (attempts, fake seconds, the error's type, its cause's type)."""
    results = {}
    for order in ORDERS:
        dep = Dependency(clock, hangs)
        stacked = stack(order, dep.get, timeout_s, attempts)
        started = clock.now
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is checked
            stacked()
        cause = type(caught.value.__cause__).__name__
        results[order] = (dep.attempts, clock.now - started, caught.type.__name__, cause)
    return results


def test_sync_hang_timeout_outside_bounds_the_call_inside_each_attempt(clock: FakeClock) -> None:
    results = run_sync(clock, hangs=True, timeout_s=1.0, attempts=3)
    outside = results["timeout outside retry"]
    inside = results["timeout inside retry"]
    assert outside == (1, pytest.approx(1.0), "TimeoutError", "ReadTimeout")
    assert inside == (3, pytest.approx(3 * 1.0 + 2 * WAIT), "TimeoutError", "ReadTimeout")


def test_sync_fast_failures_are_retried_within_the_outer_deadline(clock: FakeClock) -> None:
    # Each failure is instant: outside, the retry goes on until a wait would reach the deadline.
    results = run_sync(clock, hangs=False, timeout_s=2.5 * WAIT, attempts=10)
    outside = results["timeout outside retry"]
    assert outside[0] == 3  # at 0, WAIT and 2 WAIT; a third wait would end past 2.5 WAIT
    assert outside[1] == pytest.approx(2 * WAIT)  # it stopped instead of sleeping into the wall
    assert outside[2:] == ("ConnectError", "NoneType")  # the real error: it gave up in time
    assert results["timeout inside retry"][0] == 10  # each attempt is quick: all ten run


def test_time_left_is_the_nearest_deadline(clock: FakeClock) -> None:
    assert time_left(5.0) == 5.0  # no deadline: the I/O's own cap
    with deadline_in(2.0):
        assert time_left(5.0) == 2.0
        with deadline_in(10.0):  # an inner timeout never extends an outer one
            assert time_left(5.0) == 2.0
        clock.now += 2.0
        with pytest.raises(TimeoutError, match="passed"):
            time_left(5.0)


def test_a_failure_before_the_deadline_is_not_called_a_timeout(clock: FakeClock) -> None:
    with pytest.raises(httpx.ConnectError), deadline_in(1.0):
        raise httpx.ConnectError("refused")


def test_a_bug_after_the_deadline_is_not_called_a_timeout(clock: FakeClock) -> None:
    # Only a network timeout becomes TimeoutError: a KeyError must not look transient.
    @with_timeout(1.0)
    def late_bug() -> None:
        clock.now += 2.0
        raise KeyError("rate")

    with pytest.raises(KeyError):
        late_bug()


def test_a_late_answer_is_discarded(clock: FakeClock) -> None:
    # A trickling server: every read comes within the time left, the whole answer too late.
    @with_timeout(1.0)
    def trickle() -> str:
        read_timeout = time_left(5.0)  # httpx takes it once: the timeout of each read
        for _ in range(11):  # a byte each 0.15 s, well within the read timeout
            assert read_timeout > 0.15
            clock.now += 0.15
        return "late"

    with pytest.raises(TimeoutError, match="after 1 s"):
        trickle()
    assert with_timeout(1.0)(lambda: "on time")() == "on time"


async def hang(attempts: list[int]) -> str:
    attempts.append(1)
    await asyncio.Event().wait()  # nothing ever sets it: only a cancellation ends this
    return "never"


def test_async_hang_timeout_outside_bounds_the_call_inside_each_attempt() -> None:
    async def scenario() -> dict[str, int]:
        counts = {}
        for order in ORDERS:
            attempts: list[int] = []
            stacked = stack(order, hang, 0.02, 3)
            with pytest.raises(TimeoutError):
                await stacked(attempts)
            counts[order] = len(attempts)
        return counts

    counts = asyncio.run(scenario())
    assert counts == {"timeout outside retry": 1, "timeout inside retry": 3}


def test_an_async_timeout_says_what_it_waited_for() -> None:
    # asyncio.timeout's own TimeoutError has no message: logs read "TimeoutError: ."
    with pytest.raises(TimeoutError, match=r"^no answer within 0\.02 s$"):
        asyncio.run(with_timeout(0.02)(hang)([]))


def test_spans_are_named_as_the_table_names_the_runs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=timeout_order.log.name)

    async def answer() -> str:
        return "ok"

    assert stack(ORDERS[0], lambda: "ok", 1.0, 3)() == "ok"
    assert asyncio.run(stack(ORDERS[1], answer, 1.0, 3)()) == "ok"
    spans = [r.getMessage().rsplit(" after ", 1)[0] for r in caplog.records]
    assert spans == ["sync timeout outside retry: ok", "async timeout inside retry: ok"]


def test_a_cancellation_is_never_retried_or_swallowed() -> None:
    async def scenario() -> list[int]:
        counts = []
        started = asyncio.Event()

        async def hang_after_saying_so(attempts: list[int]) -> str:
            started.set()
            return await hang(attempts)

        for order in ORDERS:
            stacked = stack(order, hang_after_saying_so, 60.0, 3)
            attempts: list[int] = []
            started.clear()
            task = asyncio.create_task(stacked(attempts))
            await started.wait()  # the first attempt is waiting
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            counts.append(len(attempts))
        return counts

    assert asyncio.run(scenario()) == [1, 1]  # per order: one attempt, and not retried


@pytest.mark.parametrize("error", [KeyboardInterrupt(), TypeError("bug")])
def test_an_interrupt_or_a_bug_is_never_retried(clock: FakeClock, error: BaseException) -> None:
    attempts = []

    def call() -> None:
        attempts.append(1)
        raise error

    for order in ORDERS:
        with pytest.raises(type(error)):
            stack(order, call, 1.0, 3)()
    assert len(attempts) == 2  # one per order


def test_traced_logs_each_outcome_sync_and_async(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=timeout_order.log.name)

    @traced
    def ok(x: int, *, y: int = 1) -> int:
        return x + y

    @traced
    async def fails() -> None:
        raise httpx.ConnectError("refused")

    assert ok(1, y=2) == 3
    with pytest.raises(httpx.ConnectError):
        asyncio.run(fails())
    messages = [r.getMessage() for r in caplog.records if r.name == timeout_order.log.name]
    assert [message.rsplit(" after ", 1)[0] for message in messages] == [
        "ok: ok",
        "fails: ConnectError",
    ]
    assert str(inspect.signature(ok)) == "(x: int, *, y: int = 1) -> int"


def test_with_timeout_keeps_the_signature() -> None:
    async def fetch(url: str, retries: int = 0) -> bytes:
        return url.encode() * (retries + 1)

    bounded = with_timeout(1.0)(fetch)
    assert str(inspect.signature(bounded)) == str(inspect.signature(fetch))
    assert asyncio.run(bounded("a", retries=1)) == b"aa"


# --- the demo, in-process ------------------------------------------------------------------------


def test_inside_answers_on_a_retry_outside_bounds_the_call(
    invoke: Callable[..., Invocation],
) -> None:
    # The dependency hangs on each call's first attempt: a retry inside gets the answer; the
    # timeout outside is spent on the hang, so that call fails, but within its bound.
    done = invoke(timeout_order.run, "--timeout-ms", "100", "--json")
    assert done.code == 0, done.stderr
    figures = json.loads(done.stdout)
    rows = [
        (row["order"], row["mode"], row["attempts"], row["outcome"]) for row in figures["orders"]
    ]
    assert rows == [
        ("timeout outside retry", "sync", 1, "TimeoutError"),
        ("timeout inside retry", "sync", 2, "answer"),
        ("timeout outside retry", "async", 1, "TimeoutError"),
        ("timeout inside retry", "async", 2, "answer"),
    ]
    outside = [row["elapsed_s"] for row in figures["orders"] if row["outcome"] == "TimeoutError"]
    assert all(0.1 <= elapsed < 5.0 for elapsed in outside)  # the bound, and a sanity ceiling


def test_the_table_says_what_each_order_bounds(invoke: Callable[..., Invocation]) -> None:
    done = invoke(timeout_order.run, "--timeout-ms", "50")
    assert done.code == 0, done.stderr
    assert "a 0.05 s timeout and up to 3 attempts" in done.stdout
    assert "outside: the whole call within 0.05 s; inside: 0.05 s per attempt" in done.stdout
    assert (done.stdout.count("TimeoutError"), done.stdout.count("answer")) == (2, 2)


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--timeout-ms", "0"], "--timeout-ms"),
        (["--timeout-ms", "0.5"], "--timeout-ms"),
        (["--timeout-ms", "10001"], "--timeout-ms"),
        (["--attempts", "3"], "--attempts"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(timeout_order.run, *args).assert_usage_error(argument)


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_prints_one_json_object(runner: ScriptRunner) -> None:
    proc = runner.run("timeout_order", "--timeout-ms", "50", "--json")
    assert proc.returncode == 0, proc.stderr
    attempts = [row["attempts"] for row in json.loads(proc.stdout)["orders"]]
    assert attempts == [1, 2, 1, 2]
    # Plain log lines on stderr (no rich padding), spans named as the table's rows.
    lines = proc.stderr.splitlines()
    assert "INFO sync timeout inside retry: ok" in [line.rsplit(" after ", 1)[0] for line in lines]
    assert all(line == line.rstrip() for line in lines)


def test_ctrl_c_during_a_hanging_call(runner: ScriptRunner) -> None:
    # The first call hangs for up to 10 s: Ctrl-C lands in it, in the sync half.
    args = ("--timeout-ms", "10000")
    line = runner.ctrl_c("timeout_order", *args, ready="against a dependency that hangs")
    assert line == "interrupted after 0 of 4 runs"
