"""Tests for scripts/validation.py: the models, the batch validator, the CLI, the real script."""

import io
import json
import signal
import tempfile
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import validation
from conftest import Invocation, ScriptRunner

Invoke = Callable[..., Invocation]

GOOD: dict[str, Any] = {
    "order_id": "ORD-000001",
    "email": "ann@example.com",
    "status": "shipped",
    "currency": "EUR",
    "sku": "ABC-1234",
    "quantity": 2,
    "unit_price": "9.99",
    "total": "19.98",
    "ordered_on": "2026-03-01",
    "shipped_on": "2026-03-03",
}


def line(**changes: Any) -> str:
    return json.dumps(GOOD | changes)


def problems_in(text: str) -> list[validation.Problem]:
    with pytest.raises(validation.InvalidRowError) as caught:
        validation.parse_order(7, text)
    return caught.value.problems


def fields_in(text: str) -> list[str]:
    return [problem.field for problem in problems_in(text)]


# --- the pattern ---------------------------------------------------------------------------------


def test_a_valid_row_becomes_typed_values() -> None:
    order = validation.parse_order(1, line())
    assert order.status is validation.Status.SHIPPED
    assert order.total == Decimal("19.98")
    assert isinstance(order.unit_price, Decimal)
    assert order.shipped_on == date(2026, 3, 3)


def test_every_problem_in_a_row_is_reported_not_only_the_first() -> None:
    text = line(email="ann", currency="eur", sku="abc", quantity=0, unit_price="1.001", coupon="X")
    assert fields_in(text) == ["email", "currency", "sku", "quantity", "unit_price", "coupon"]


def test_a_problem_names_the_row_field_message_and_input() -> None:
    (problem,) = problems_in(line(status="refunded"))
    assert (problem.row, problem.field, problem.input) == (7, "status", "refunded")
    assert "'pending', 'paid', 'shipped' or 'cancelled'" in problem.message


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"total": "19.99"}, "total", "total 19.99 is not quantity x unit_price, 19.98"),
        ({"shipped_on": "2026-02-27"}, "shipped_on", "shipped before it was ordered"),
        ({"shipped_on": None}, "shipped_on", "a shipped order needs shipped_on"),
        ({"status": "paid"}, "shipped_on", "only a shipped order has one"),
        ({"quantity": 1_001}, "quantity", "less than or equal to 1000"),
        ({"email": "ann@example"}, "email", "not an email address like name@example.com"),
    ],
)
def test_rules_across_fields(changes: dict[str, Any], field: str, message: str) -> None:
    (problem,) = problems_in(line(**changes))
    assert problem.field == field
    assert message in problem.message


def test_a_shipped_order_without_the_key_needs_shipped_on() -> None:
    without = {key: value for key, value in GOOD.items() if key != "shipped_on"}
    (problem,) = problems_in(json.dumps(without))
    assert (problem.field, problem.input) == ("shipped_on", None)


def test_a_bad_email_does_not_hide_a_ship_date_before_the_order() -> None:
    """Regression: a model_validator ran the ship-date rules only once every field was valid."""
    problems = problems_in(line(email="bad", shipped_on="2026-01-01"))
    assert [(p.field, p.message) for p in problems] == [
        ("email", "not an email address like name@example.com"),
        ("shipped_on", "shipped before it was ordered"),
    ]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"currency": "eur", "status": "paid"}, ["currency", "shipped_on"]),
        ({"status": "refunded", "shipped_on": None}, ["status"]),  # shipped or not: unknown
        ({"status": "refunded", "shipped_on": "2026-01-01"}, ["status", "shipped_on"]),
        ({"ordered_on": "2026-02-30", "shipped_on": "2026-01-01"}, ["ordered_on"]),
        ({"status": "paid", "ordered_on": "x"}, ["ordered_on", "shipped_on"]),  # status is enough
    ],
)
def test_the_ship_date_rules_wait_only_for_the_fields_they_read(
    changes: dict[str, Any], fields: list[str]
) -> None:
    assert fields_in(line(**changes)) == fields


def test_an_upper_case_address_is_an_address() -> None:
    """Regression: the top-level domain was [a-z]{2,}, so Ann@Example.COM was refused."""
    assert validation.parse_order(1, line(email="Ann@Example.COM")).email == "Ann@Example.COM"


@pytest.mark.parametrize("quantity", [True, "2", 2.0])
def test_a_quantity_is_a_json_integer_and_nothing_like_one(quantity: object) -> None:
    """Regression: true was taken as 1, and "2" as 2."""
    (problem,) = problems_in(line(quantity=quantity, total="9.99"))
    assert (problem.field, problem.input) == ("quantity", quantity)


def test_the_old_name_qty_is_read_as_quantity_and_both_names_is_an_error() -> None:
    """The before-mode model validator sees the raw row, however broken the rest of it is."""
    old_format = {("qty" if key == "quantity" else key): value for key, value in GOOD.items()}
    assert validation.parse_order(1, json.dumps(old_format)).quantity == GOOD["quantity"]
    broken = old_format | {"email": "nobody"}
    assert fields_in(json.dumps(broken)) == ["email"]  # renamed, then checked with the rest
    both = GOOD | {"qty": GOOD["quantity"], "email": "nobody"}
    assert sorted(fields_in(json.dumps(both))) == ["email", "qty"]  # qty: an extra input


def test_a_missing_field_shows_null_not_the_whole_row() -> None:
    """Regression: pydantic's input for a missing field is the row, repeated once per field."""
    problems = problems_in(json.dumps({"order_id": "ORD-000009"}))
    assert {p.field for p in problems} >= {"email", "status", "total", "ordered_on"}
    assert {p.message for p in problems} == {"Field required"}
    assert [p.input for p in problems] == [None] * len(problems)


@pytest.mark.parametrize("wrong", ["quantity", "unit_price"])
def test_the_total_is_left_alone_when_a_factor_is_already_wrong(wrong: str) -> None:
    """The factor's own error says what is wrong; a total mismatch on top would be noise."""
    assert fields_in(line(total="1.00", **{wrong: "none"})) == [wrong]
    without = {key: value for key, value in GOOD.items() if key != wrong}
    assert fields_in(json.dumps(without | {"total": "1.00"})) == [wrong]  # missing


def test_the_pydantic_error_is_kept_as_the_cause() -> None:
    with pytest.raises(validation.InvalidRowError) as caught:
        validation.parse_order(3, "{not json")
    assert isinstance(caught.value.__cause__, ValidationError)
    assert caught.value.problems[0].field == validation.WHOLE_ROW
    assert caught.value.problems[0].input == "{not json"


def test_a_batch_records_every_bad_row_and_goes_on() -> None:
    rows = [line(), "", line(email="x"), line(), "[1, 2]"]
    validated = validation.validate_orders(rows)
    assert (validated.rows, validated.invalid) == (4, 2)
    assert [order.order_id for order in validated.orders] == ["ORD-000001", "ORD-000001"]
    # numbered as lines are, blank ones too
    assert [(p.row, p.field) for p in validated.problems] == [
        (3, "email"),
        (5, validation.WHOLE_ROW),
    ]


def test_an_open_file_reports_every_problem_of_every_row() -> None:
    """Lines as a file yields them, newline and all, as the CLI hands its sample over."""
    text = "\n".join([line(), "", line(email="x", currency="eur"), "{", "id,total"]) + "\n"
    validated = validation.validate_orders(io.StringIO(text))
    assert (validated.rows, len(validated.orders), validated.invalid) == (4, 1, 3)
    assert [(p.row, p.field) for p in validated.problems] == [
        (3, "email"),
        (3, "currency"),
        (4, validation.WHOLE_ROW),
        (5, validation.WHOLE_ROW),
    ]
    assert validated.problems[-1].message.startswith("Invalid JSON")


def test_blank_lines_are_no_rows() -> None:
    validated = validation.validate_orders(io.StringIO("\n \n\t\n"))
    assert validated == validation.Validated(rows=0, orders=[], problems=[], invalid=0)


def test_a_clean_batch_returns_the_orders() -> None:
    validated = validation.validate_orders([line(), line(order_id="ORD-000002")])
    assert [order.order_id for order in validated.orders] == ["ORD-000001", "ORD-000002"]
    assert validated.problems == []


def sample(rows: int, bad_percent: int, seed: int) -> tuple[list[str], set[tuple[int, str]]]:
    """The generator's sample, as lines, and its own list of what it broke."""
    out = io.StringIO()
    broken = validation.write_sample(out, rows, bad_percent / 100, seed)
    return out.getvalue().splitlines(), set(broken)


@settings(max_examples=10, deadline=None)
@given(rows=st.integers(1, 200), bad_percent=st.integers(0, 100), seed=st.integers(0, 2**32))
def test_every_deliberate_mistake_is_reported_and_nothing_else(
    rows: int, bad_percent: int, seed: int
) -> None:
    lines, broken = sample(rows, bad_percent, seed)
    validated = validation.validate_orders(lines)
    assert {(p.row, p.field) for p in validated.problems} == broken
    assert validated.invalid == len({row for row, _field in broken})


def test_the_sample_breaks_every_kind_of_field() -> None:
    _lines, broken = sample(3_000, 20, seed=1)
    assert {field for _row, field in broken} == set(validation.MISTAKES)


def test_the_sample_mixes_rule_mistakes_with_field_mistakes_in_one_row() -> None:
    """Regression: a broken rule came alone, so a rule hidden by a field error went unseen."""
    _lines, broken = sample(1_000, 50, seed=1)
    by_row: dict[int, set[str]] = {}
    for row, field in broken:
        by_row.setdefault(row, set()).add(field)
    rules = set(validation.READS)
    for rule in rules:
        with_a_field = [fields for fields in by_row.values() if rule in fields and fields - rules]
        assert with_a_field, rule


# --- the command line, in-process ----------------------------------------------------------------


def test_default_json_lists_every_error_and_exits_1(invoke: Invoke) -> None:
    result = invoke(validation.run, "--json")
    assert result.code == 1
    report = json.loads(result.stdout)
    assert {"rows", "valid", "invalid", "errors"} <= set(report)
    assert report["rows"] == 1_000
    assert report["valid"] + report["invalid"] == 1_000
    assert report["invalid"] == len({error["row"] for error in report["errors"]}) > 0
    assert set(report["errors"][0]) >= {"row", "field", "message", "input"}
    _lines, broken = sample(1_000, 2, seed=validation.SEED)  # the defaults
    assert {(error["row"], error["field"]) for error in report["errors"]} == broken
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: ")
    assert last.endswith("invalid: the file is rejected")  # the exit code is for the shell


def test_a_table_for_people(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke(validation.run, "--rows", "1000", "--bad-percent", "10")
    assert result.code == 1
    assert "errors, the first 50; --json lists all" in result.stdout  # over TABLE_LIMIT
    _lines, broken = sample(1_000, 10, seed=validation.SEED)
    caption = " ".join(result.stdout.split())  # as one line, however the terminal wrapped it
    assert f"deliberate mistakes found {len(broken)} of {len(broken)}" in caption


def test_a_clean_file_exits_0(invoke: Invoke) -> None:
    result = invoke(validation.run, "--rows", "200", "--bad-percent", "0")
    assert result.code == 0, result.stderr
    caption = " ".join(result.stdout.split())
    assert "200 rows, 200 valid, 0 invalid, 0 errors" in caption
    assert "deliberate mistakes found 0 of 0" in caption  # the count is shown even with none
    assert "error:" not in result.stderr


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--rows", "0"], "--rows"),
        (["--rows", "10001"], "--rows"),  # capped: the sample is written to a temporary file
        (["--rows", "many"], "--rows"),
        (["--bad-percent", "101"], "--bad-percent"),
        (["--bad-percent", "-1"], "--bad-percent"),
        (["--bad-percent", "2.5"], "--bad-percent"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_usage_errors(invoke: Invoke, args: list[str], argument: str) -> None:
    invoke(validation.run, *args).assert_usage_error(argument)


def test_ctrl_c_is_one_line_and_exit_130_and_leaves_no_file(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No Ctrl-C subprocess run: a run takes well under a second, too short to interrupt on cue.
    Ctrl-C arrives here as the KeyboardInterrupt it is, while validating: run()'s Abort path."""

    def interrupted(lines: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(validation, "validate_orders", interrupted)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    previous = signal.getsignal(signal.SIGINT)
    try:
        result = invoke(validation.run)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # uv's second Ctrl-C
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (result.code, result.stdout) == (130, "")
    assert result.stderr.strip() == "interrupted"  # after a newline: click ends the ^C line
    assert list(tmp_path.iterdir()) == []  # the sample file went with its temporary directory


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("validation", "--rows", "300", "--bad-percent", "10", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    _lines, broken = sample(300, 10, seed=validation.SEED)
    assert {(error["row"], error["field"]) for error in report["errors"]} == broken
    assert proc.stderr.splitlines()[-1].endswith("the file is rejected")
