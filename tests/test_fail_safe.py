"""Tests for scripts/fail_safe.py: the decorator directly (sync and async), then the script.

The decorated functions here fail on cue from a list of outcomes: no network, no sleeps. The
demo's loopback dependency is exercised in-process through run(); two subprocess runs check the
script as a user runs it (one --json run, one Ctrl-C during a hanging call).
"""

import asyncio
import inspect
import json
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

import fail_safe
from conftest import Invocation, ScriptRunner
from fail_safe import fail_safe as fail_safe_decorator

Outcome = float | BaseException


def scripted(outcomes: list[Outcome]) -> Callable[[], float]:
    """A sync dependency call that returns or raises each outcome in turn."""
    queue = list(outcomes)

    def rate() -> float:
        outcome = queue.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return rate


def ascripted(outcomes: list[Outcome]) -> Callable[[], Coroutine[Any, Any, float]]:
    """The same, as a coroutine function."""
    sync = scripted(outcomes)

    async def rate() -> float:
        await asyncio.sleep(0)  # a real suspension point, as I/O would have
        return sync()

    return rate


def call_all(
    outcomes: list[Outcome],
    mode: str,
    swallow: tuple[type[Exception], ...] = fail_safe.DEPENDENCY_ERRORS,
    max_age_s: float = math.inf,
) -> tuple[list[float], list[str]]:
    """Call the fail-safe version once per outcome; what it returned, and what the hook heard."""
    heard: list[str] = []
    guard = fail_safe_decorator(
        default=-1.0, swallow=swallow, max_age_s=max_age_s, on_fallback=heard.append
    )
    if mode == "sync":
        sync_rate = guard(scripted(outcomes))
        return [sync_rate() for _ in outcomes], heard
    async_rate = guard(ascripted(outcomes))

    async def all_calls() -> list[float]:
        return [await async_rate() for _ in outcomes]

    return asyncio.run(all_calls()), heard


MODES = ["sync", "async"]
DOWN = httpx.ConnectError("refused")


@pytest.mark.parametrize("mode", MODES)
def test_serves_the_default_then_the_last_good_value(mode: str) -> None:
    outcomes: list[Outcome] = [DOWN, 1.07, TimeoutError("slow"), 1.09, OSError("reset"), DOWN]
    served, heard = call_all(outcomes, mode)
    assert served == [-1.0, 1.07, 1.07, 1.09, 1.09, 1.09]
    assert heard == ["default", "last good", "last good", "last good"]


@pytest.mark.parametrize("mode", MODES)
def test_a_stale_last_good_value_is_not_served(mode: str) -> None:
    served, heard = call_all([1.07, DOWN], mode, max_age_s=0.0)
    assert served == [1.07, -1.0]
    assert heard == ["default"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "error",
    [
        asyncio.CancelledError(),
        KeyboardInterrupt(),
        SystemExit(3),
        TypeError("bug"),
        KeyError("rate"),  # not listed in DEPENDENCY_ERRORS
        json.JSONDecodeError("a 200 that is not JSON", "<html>", 0),  # a ValueError: not listed
    ],
    ids=lambda error: type(error).__name__,
)
def test_never_swallows_a_cancellation_an_interrupt_or_an_unlisted_error(
    mode: str, error: BaseException
) -> None:
    with pytest.raises(type(error)):
        call_all([1.07, error], mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "error", [TypeError("bug"), AttributeError("bug"), NameError("bug"), NotImplementedError()]
)
def test_the_programming_errors_propagate_even_when_a_listed_class_covers_them(
    mode: str, error: Exception
) -> None:
    listed = (RuntimeError, TypeError, AttributeError, NameError)  # NotImplementedError: Runtime
    served, _ = call_all([RuntimeError("down")], mode, swallow=listed)
    assert served == [-1.0]
    with pytest.raises(type(error)):
        call_all([1.07, error], mode, swallow=listed)


@pytest.mark.parametrize("mode", MODES)
def test_any_other_error_a_listed_class_covers_is_swallowed(mode: str) -> None:
    # The documented limit: listing LookupError swallows a KeyError, bug or not.
    served, heard = call_all([1.07, KeyError("rate")], mode, swallow=(LookupError,))
    assert (served, heard) == ([1.07, 1.07], ["last good"])


@pytest.mark.parametrize(
    "kind", [Exception, KeyboardInterrupt, asyncio.CancelledError, BaseException]
)
def test_refuses_to_swallow_exception_itself_or_what_must_propagate(
    kind: type[BaseException],
) -> None:
    with pytest.raises(TypeError, match="Exception subclasses only"):
        fail_safe_decorator(default=0, swallow=(kind,))  # ty: ignore[invalid-argument-type]


@pytest.mark.parametrize("mode", MODES)
def test_logs_what_it_swallowed(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=fail_safe.log.name)
    call_all([httpx.ReadTimeout("timed out\nsecond line"), 2.0, OSError("reset")], mode)
    records = [record for record in caplog.records if record.name == fail_safe.log.name]
    assert [record.levelno for record in records] == [logging.WARNING, logging.WARNING]
    first, second = (record.getMessage() for record in records)
    assert first == "rate failed, ReadTimeout: timed out; serving the default value"
    assert second == "rate failed, OSError: reset; serving the last good value"


@pytest.mark.parametrize("mode", MODES)
def test_logs_an_error_with_no_message_by_its_type(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=fail_safe.log.name)
    call_all([TimeoutError()], mode)  # as asyncio.timeout raises it
    messages = [
        record.getMessage() for record in caplog.records if record.name == fail_safe.log.name
    ]
    assert messages == ["rate failed, TimeoutError; serving the default value"]


def test_each_function_keeps_its_own_last_good_value() -> None:
    guard = fail_safe_decorator(default=0.0)
    first = guard(scripted([1.0, DOWN]))
    second = guard(scripted([DOWN]))
    assert first() == 1.0
    assert second() == 0.0  # not the other function's value
    assert first() == 1.0


def test_a_method_shares_one_last_good_value_across_instances() -> None:
    # The documented limit: the decorator wraps the function, not each instance's method.
    class Rates:
        def __init__(self, outcomes: list[Outcome]) -> None:
            self.rate = scripted(outcomes)

        @fail_safe_decorator(default=0.0)
        def current(self) -> float:
            return self.rate()

    assert Rates([1.07]).current() == 1.07
    assert Rates([DOWN]).current() == 1.07  # the other instance's value


def test_the_result_is_the_function_s_type_or_the_default_s() -> None:
    # Checked by ty on this file too: a default of another type than the return is allowed.
    @fail_safe_decorator(default=None)
    def maybe() -> float | None:
        raise DOWN

    @fail_safe_decorator(default=[])
    def names() -> list[str]:
        raise DOWN

    @fail_safe_decorator(default=0.0)
    async def rate() -> float:
        raise DOWN

    none: float | None = maybe()
    empty: list[str] = names()
    zero: float = asyncio.run(rate())
    assert (none, empty, zero) == (None, [], 0.0)


def test_the_wrapped_function_keeps_its_name_and_signature() -> None:
    def rate(currency: str, *, when: int = 0) -> float:
        """The rate of `currency`."""
        return 1.0 if currency == "EUR" else math.nan

    guarded = fail_safe_decorator(default=0.0)(rate)
    assert str(inspect.signature(guarded)) == "(currency: str, *, when: int = 0) -> float"
    assert guarded.__doc__ == "The rate of `currency`."
    assert guarded("EUR", when=1) == 1.0


# --- the demo, in-process ----------------------------------------------------------------------


def test_json_counts_what_was_served(
    invoke: Callable[..., Invocation], caplog: pytest.LogCaptureFixture
) -> None:
    done = invoke(fail_safe.run, "--timeout", "0.05", "--json")
    assert done.code == 0, done.stderr
    figures = json.loads(done.stdout)
    assert 0.05 <= figures.pop("elapsed_s") < 30  # the hang costs its timeout at least
    assert figures == {"calls": 7, "fallbacks": 4, "last_good_served": 3, "default_served": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("serving the" in message for message in warnings) == 4
    assert any("ReadTimeout" in message for message in warnings)  # the hang, with its type


def test_max_age_zero_serves_only_the_default(invoke: Callable[..., Invocation]) -> None:
    done = invoke(fail_safe.run, "--timeout", "0.05", "--max-age", "0")
    assert done.code == 0, done.stderr
    rows = [line.split("│")[1:-1] for line in done.stdout.splitlines() if line.startswith("│")]
    sources = [row[3].strip() for row in rows]
    assert sources == ["default", "fresh", "fresh", "default", "default", "fresh", "default"]
    assert "7 calls, 4 fallbacks (0 last good, 4 default)" in done.stdout


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "nan"], "--timeout"),
        (["--max-age", "-1"], "--max-age"),
        (["--max-age", "inf"], "--max-age"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(fail_safe.run, *args).assert_usage_error(argument)


# --- the script, as a user runs it --------------------------------------------------------------


def test_default_run_prints_one_json_object(runner: ScriptRunner) -> None:
    proc = runner.run("fail_safe", "--timeout", "0.1", "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert (figures["calls"], figures["fallbacks"], figures["last_good_served"]) == (7, 4, 3)
    # Plain log lines on stderr, one per swallowed failure, not padded or wrapped by rich.
    lines = proc.stderr.splitlines()
    assert sum(line.startswith("WARNING exchange_rate failed, ") for line in lines) == 4
    assert all(line == line.rstrip() for line in lines)


def test_ctrl_c_during_a_hanging_call_is_not_swallowed(runner: ScriptRunner) -> None:
    # Call 4's warning comes just before call 5 hangs, here for up to 30 s: Ctrl-C lands in
    # call 5, or (if it comes that fast) still in call 4 after its warning.
    line = runner.ctrl_c("fail_safe", "--timeout", "30", ready="serving the last good value")
    assert line in {
        "interrupted after 4 of 7 calls, 2 served by the fallback",
        "interrupted after 3 of 7 calls, 1 served by the fallback",
    }
