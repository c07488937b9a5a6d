"""Tests for scripts/batch_result.py: the pattern directly, and against the demo's store.

The proofs are by identity: sets of order ids, checked against what the store itself recorded
in its ledger (the requests it received and the writes it made, by order id, on its side of a
real HTTP connection on loopback), not counts alone. Retry waits are recorded, not slept: tenacity's
AsyncRetrying takes the sleep as an argument, and process_batch() keeps it in the copy it makes
per item.
"""

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable

import pytest
import tenacity

import batch_result
from batch_result import (
    BatchResult,
    Failure,
    InvalidOrderError,
    Ledger,
    Order,
    StoreBusyError,
    StoreFaultError,
)
from conftest import Invocation, ScriptRunner

REQUIRED_KEYS = {"items", "succeeded", "failed", "failed_by_kind", "retries", "elapsed_s"}


def kind(failure: Failure) -> str:
    """The kind of a failure, as BatchResult.failed_by_kind() counts it."""
    return type(failure.error).__name__


def recorded_retrying(attempts: int, waits: list[float]) -> tenacity.AsyncRetrying:
    """The demo's retry policy, with the waits recorded instead of slept."""

    async def record(seconds: float) -> None:
        waits.append(seconds)

    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts), wait=batch_result.WAIT, sleep=record
    )


def send(orders: list[Order], attempts: int) -> tuple[BatchResult[Order], Ledger, list[float]]:
    """POST the orders to the demo's store over loopback, as send_orders() does."""
    ledger = Ledger()
    waits: list[float] = []

    async def scenario() -> BatchResult[Order]:
        async with batch_result.order_store(ledger) as write:
            return await batch_result.process_batch(
                orders,
                write,
                recorded_retrying(attempts, waits),
                batch_result.CONCURRENCY,
                transient=(StoreBusyError,),
                poison=(InvalidOrderError, StoreFaultError),
            )

    return asyncio.run(scenario()), ledger, waits


def poison_of(orders: list[Order]) -> set[str]:
    """The orders the store can never take: no quantity, or a sku it cannot store."""
    return {order.id for order in orders if order.quantity < 1 or not order.sku.isascii()}


def busy_at_first(orders: list[Order], poison: set[str]) -> set[str]:
    """The good orders the store turns away on their first try: one in ten, by their id."""
    return {order.id for order in orders if order.id.endswith("7")} - poison


# --- the goal: 10,000 orders, 2% poison ---------------------------------------------------------


def test_ten_thousand_orders_end_exactly_once_and_only_poison_fails() -> None:
    orders = [batch_result.make_order(n) for n in range(10_000)]
    poison = poison_of(orders)
    result, ledger, waits = send(orders, attempts=batch_result.ATTEMPTS)
    everything = {order.id for order in orders}
    succeeded = [order.id for order in result.succeeded]
    failed = [failure.item.id for failure in result.failed]

    assert len(everything) == 10_000
    assert len(poison) == 200
    assert len(set(succeeded)) == len(succeeded)  # none reported twice
    assert len(set(failed)) == len(failed)
    assert set(succeeded) | set(failed) == everything  # none lost
    assert not set(succeeded) & set(failed)  # none in both lists
    assert set(failed) == poison  # exactly the poison failed
    # The store's ledger: every succeeded order written exactly once, and no failed one.
    assert ledger.writes == Counter(succeeded)
    # Retried: exactly the good orders turned away at first, once each.
    retried = {order_id for order_id, count in ledger.attempts.items() if count > 1}
    assert retried == busy_at_first(orders, poison)
    assert len(retried) == 900  # 1,000 ids end in 7, 100 of them poison
    assert set(ledger.attempts.values()) == {1, 2}
    assert result.retries == len(retried) == len(waits)
    assert result.items == 10_000
    assert result.failure_rate == 0.02
    invalid = {order.id for order in orders if order.quantity < 1}
    assert result.failed_by_kind() == {"InvalidOrderError": 100, "StoreFaultError": 100}
    for failure in result.failed:
        expected = "InvalidOrderError" if failure.item.id in invalid else "StoreFaultError"
        assert (kind(failure), failure.attempts) == (expected, 1)  # poison is never retried
        assert ledger.attempts[failure.item.id] == 1


def test_with_one_attempt_the_busy_orders_fail_and_are_not_written() -> None:
    """The 503 comes before the write, so here "failed" does mean "not done"."""
    orders = [batch_result.make_order(n) for n in range(500)]
    poison = poison_of(orders)
    result, ledger, waits = send(orders, attempts=1)
    busy = {f.item.id for f in result.failed if kind(f) == "StoreBusyError"}
    assert busy == busy_at_first(orders, poison)
    assert {f.item.id for f in result.failed} == poison | busy
    assert not busy & set(ledger.writes)
    assert ledger.writes == Counter(order.id for order in result.succeeded)
    assert (result.retries, waits) == (0, [])


def test_the_store_is_an_http_service_on_loopback() -> None:
    """Each answer of the store, through the client's handler, and the ledger behind them."""
    ledger = Ledger()

    async def write_each() -> list[str]:
        orders = [
            Order("o-000001", "SKU-1", 0),
            Order("o-000002", "SKU-\N{SNOWMAN}", 1),
            Order("o-000007", "SKU-1", 1),
            Order("o-000007", "SKU-1", 1),
        ]
        answers = []
        async with batch_result.order_store(ledger) as write:
            for order in orders:
                try:
                    await write(order)
                    answers.append("stored")
                except (InvalidOrderError, StoreFaultError, StoreBusyError) as err:
                    answers.append(f"{type(err).__name__}: {err}")
        return answers

    assert asyncio.run(write_each()) == [
        "InvalidOrderError: o-000001: the quantity must be at least 1",  # 422, its body
        "StoreFaultError: o-000002: cannot store the sku 'SKU-\N{SNOWMAN}'",  # 500
        "StoreBusyError: o-000007: busy, try again",  # 503 on its first try
        "stored",  # 201 on the second
    ]
    assert ledger.writes == Counter({"o-000007": 1})
    assert ledger.attempts == Counter({"o-000001": 1, "o-000002": 1, "o-000007": 2})


# --- the pattern alone: no store ----------------------------------------------------------------


class FlakyError(Exception):
    pass


class PoisonError(Exception):
    pass


def process(
    items: list[int], handle: Callable, attempts: int = 3, concurrency: int = 8
) -> BatchResult[int]:
    retrying = recorded_retrying(attempts, [])
    coroutine = batch_result.process_batch(
        items, handle, retrying, concurrency, transient=(FlakyError,), poison=(PoisonError,)
    )
    return asyncio.run(coroutine)


def test_each_item_gets_its_own_retries_while_many_run_at_once() -> None:
    """Item n fails n % 4 times: a retry state shared between items would miscount."""
    calls: Counter[int] = Counter()

    async def handle(item: int) -> None:
        calls[item] += 1
        await asyncio.sleep(0)  # let the other workers run between attempts
        if item % 10 == 0:
            raise PoisonError(f"item {item}")
        if calls[item] <= item % 4:
            raise FlakyError(f"item {item}, attempt {calls[item]}")

    items = list(range(200))
    result = process(items, handle)
    gave_up = {item for item in items if item % 4 == 3 and item % 10 != 0}
    poison = {item for item in items if item % 10 == 0}
    assert {failure.item for failure in result.failed} == poison | gave_up
    for failure in result.failed:
        if failure.item in poison:
            assert (kind(failure), failure.attempts) == ("PoisonError", 1)
        else:
            assert (kind(failure), failure.attempts) == ("FlakyError", 3)
            assert str(failure.error) == f"item {failure.item}, attempt 3"  # the last error
    assert sorted(result.succeeded) == sorted(set(items) - poison - gave_up)
    assert result.retries == sum(calls.values()) - len(items)
    for item in items:
        expected = 1 if item in poison else min(item % 4 + 1, 3)
        assert calls[item] == expected
    ended = sorted([*result.succeeded, *(failure.item for failure in result.failed)])
    assert ended == items  # each item ends exactly once
    assert result.failed_by_kind() == {"FlakyError": 50, "PoisonError": 20}


def test_an_unclassified_error_is_a_bug_and_aborts_the_batch() -> None:
    async def handle(item: int) -> None:
        if item == 5:
            raise KeyError("a bug")

    with pytest.raises(ExceptionGroup) as raised:
        process(list(range(50)), handle, concurrency=4)
    assert raised.group_contains(KeyError)


def test_a_poison_error_is_never_retried_even_when_a_transient_class_covers_it() -> None:
    """An HTTP client's errors nest: a 422 is a ClientResponseError, which is a ClientError."""
    calls: Counter[int] = Counter()

    class RejectedError(FlakyError):  # poison, though a kind of the transient class
        pass

    async def handle(item: int) -> None:
        calls[item] += 1
        raise RejectedError(f"item {item}")

    retrying = recorded_retrying(3, [])
    coroutine = batch_result.process_batch(
        [1, 2], handle, retrying, 2, transient=(FlakyError,), poison=(RejectedError,)
    )
    result = asyncio.run(coroutine)
    assert [failure.attempts for failure in result.failed] == [1, 1]
    assert calls == Counter({1: 1, 2: 1})


@pytest.mark.parametrize("concurrency", [0, -1])
def test_no_workers_is_refused_rather_than_every_item_dropped(concurrency: int) -> None:
    async def handle(item: int) -> None:
        pass

    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        process([1, 2, 3], handle, concurrency=concurrency)


def test_an_empty_batch() -> None:
    async def handle(item: int) -> None:
        raise AssertionError("never called")

    result = process([], handle)
    assert (result.items, result.failure_rate, result.failed_by_kind()) == (0, 0.0, {})


def test_more_workers_than_items() -> None:
    async def handle(item: int) -> None:
        pass

    result = process([1, 2, 3], handle, concurrency=50)
    assert sorted(result.succeeded) == [1, 2, 3]


# --- the CLI, in-process ------------------------------------------------------------------------


def test_the_exit_policy_is_the_failure_rate(invoke: Callable[..., Invocation]) -> None:
    done = invoke(batch_result.run, "--items", "400", "--max-failure-rate", "0.01", "--json")
    assert done.code == 1
    figures = json.loads(done.stdout)
    assert set(figures) >= REQUIRED_KEYS
    assert (figures["items"], figures["failed"], figures["succeeded"]) == (400, 8, 392)
    assert figures["failed_by_kind"] == {"InvalidOrderError": 4, "StoreFaultError": 4}
    assert (figures["retries"], figures["writes"]) == (36, 392)
    assert done.stderr.splitlines()[-1] == (
        "error: 2.00% of the orders failed, above --max-failure-rate 1.00%"
    )
    passed = invoke(batch_result.run, "--items", "400", "--max-failure-rate", "0.02", "--json")
    assert passed.code == 0, passed.stderr


def test_the_table_groups_failures_by_kind(
    invoke: Callable[..., Invocation], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    done = invoke(batch_result.run, "--items", "300")
    assert done.code == 0, done.stderr  # 2% failed, under the default 5%
    assert re.search(r"300 orders in \d+\.\d\d s", done.stdout)
    assert re.search(r"succeeded +│ 294, 294 writes ", done.stdout)  # each written once
    assert re.search(r"failed +│ 6, 2\.00% of the orders ", done.stdout)
    assert re.search(r"InvalidOrderError +│ 3, e\.g\. o-000\d13: the quantity must", done.stdout)
    assert re.search(r"StoreFaultError +│ 3, e\.g\. o-000\d37: cannot store the sku", done.stdout)
    assert "StoreBusyError" not in done.stdout  # every busy order went through on a retry
    assert re.search(r"retries +│ 27 ", done.stdout)  # 30 ids end in 7, 3 of them poison


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--items", "0"], "--items"),
        (["--items", "10001"], "--items"),
        (["--max-failure-rate", "nan"], "--max-failure-rate"),
        (["--max-failure-rate", "inf"], "--max-failure-rate"),
        (["--max-failure-rate", "-inf"], "--max-failure-rate"),
        (["--max-failure-rate", "-0.1"], "--max-failure-rate"),
        (["--max-failure-rate", "2"], "--max-failure-rate"),
        (["--max-failure-rate", "x"], "--max-failure-rate"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    invoke: Callable[..., Invocation], args: list[str], argument: str
) -> None:
    invoke(batch_result.run, *args).assert_usage_error(argument)


# --- the script, as a user runs it --------------------------------------------------------------


def test_default_run_prints_one_json_object(runner: ScriptRunner) -> None:
    proc = runner.run("batch_result", "--items", "1000", "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert set(figures) >= REQUIRED_KEYS
    assert (figures["items"], figures["succeeded"], figures["failed"]) == (1000, 980, 20)
    assert sum(figures["failed_by_kind"].values()) == 20
    assert figures["retries"] == 90  # 100 ids end in 7, 10 of them poison: one retry each
    assert figures["writes"] == 980


def test_ctrl_c_stops_the_batch_with_partial_results(runner: ScriptRunner) -> None:
    line = runner.ctrl_c("batch_result", "--items", "10000", ready="sending")
    pattern = r"interrupted: [\d,]+ of 10,000 written"
    assert re.fullmatch(pattern, line.strip()), line
