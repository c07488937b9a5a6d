# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "pydantic", "pydantic-core", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Validate a file of orders at the boundary and report every error in it at once.

Pattern:       Pydantic models parse each JSON line at the edge into a typed `Order` (an enum, a
               Literal, Decimal money, constrained strings, strict counts). Field validators state
               rules across fields, each once the fields it reads are valid; a before-mode model
               validator maps an old field name. `parse_order()` raises InvalidRowError from
               pydantic's error; `validate_orders()` collects every problem of every row at once.
               (error_groups.py shows a batch of independent failures as an ExceptionGroup.)
When to use:   Files and payloads from outside (uploads, partner feeds, queues) before any work.
When not to:   Data your own code wrote with these models; a stream too big to hold (count, don't
               collect); rules that need a database (check them after the parse, in the service).
Run:           uv run scripts/validation.py  (it writes a sample file with mistakes on purpose,
               validates it, and exits 1, as a rejected file does)
Try it:        --bad-percent 0: every row is valid, and it exits 0.
               --bad-percent 100: 1-3 errors a row, every one listed, none lost.
"""

import json
import random
import re
import signal
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import click
from pydantic import BaseModel, Field, ValidationError, ValidationInfo
from pydantic.functional_validators import field_validator, model_validator
from pydantic_core import PydanticCustomError, to_jsonable_python
from rich.console import Console
from rich.table import Table
from rich.text import Text

# --- The pattern ---------------------------------------------------------------------------------
WHOLE_ROW = "(row)"  # the field of a problem with the row as a whole: not JSON, not an object


class Status(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


Currency = Literal["EUR", "GBP", "USD"]
OrderId = Annotated[str, Field(pattern=r"^ORD-[0-9]{6}$")]
Sku = Annotated[str, Field(pattern=r"^[A-Z]{3}-[0-9]{4}$")]
Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]  # cents, never a float
# Strict: a JSON true or "2" is no count. More than 1,000 of a thing is a typo.
Quantity = Annotated[int, Field(strict=True, gt=0, le=1_000)]


class Order(BaseModel):
    """An order as the rest of the service sees it: every field checked, every type exact."""

    model_config = {"extra": "forbid", "frozen": True}  # an unknown key is a mistake too

    order_id: OrderId
    email: str
    status: Status
    currency: Currency
    sku: Sku
    quantity: Quantity
    unit_price: Money
    total: Money  # after quantity and unit_price: a field validator sees only the fields before it
    ordered_on: date
    shipped_on: date | None = Field(default=None, validate_default=True)  # checked if absent too

    @field_validator("email")
    @classmethod
    def plausible_email(cls, email: str) -> str:  # only a mail that arrives proves an address
        if re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", email) is None:
            raise PydanticCustomError("email", "not an email address like name@example.com")
        return email  # an error in words above: a regex in the report helps nobody

    @field_validator("total")
    @classmethod
    def total_is_quantity_times_price(cls, total: Decimal, info: ValidationInfo) -> Decimal:
        quantity = info.data.get("quantity")  # absent if invalid: its own error says so
        unit_price = info.data.get("unit_price")
        if quantity is None or unit_price is None or total == quantity * unit_price:
            return total
        message = "total {total} is not quantity x unit_price, {expected}"
        context = {"total": str(total), "expected": str(quantity * unit_price)}
        raise PydanticCustomError("total_mismatch", message, context)

    # Not model_validator(mode="after"): that runs only once EVERY field is valid, so a bad email
    # would hide a bad ship date. This runs once status and ordered_on are (they come before it).
    @field_validator("shipped_on")
    @classmethod
    def ship_date_fits(cls, shipped_on: date | None, info: ValidationInfo) -> date | None:
        status = info.data.get("status")  # absent if invalid, as ordered_on: their errors say so
        ordered_on = info.data.get("ordered_on")
        if status is not None and (status is Status.SHIPPED) != (shipped_on is not None):
            message = "a shipped order needs shipped_on, and only a shipped order has one"
            raise PydanticCustomError("status_ship_date", message)
        if shipped_on is not None and ordered_on is not None and shipped_on < ordered_on:
            raise PydanticCustomError("shipped_before_ordered", "shipped before it was ordered")
        return shipped_on

    @model_validator(mode="before")  # on the raw input, so it runs on every row however broken
    @classmethod
    def read_the_old_name(cls, data: Any) -> Any:  # partners on last year's format send "qty"
        if isinstance(data, dict) and "qty" in data and "quantity" not in data:
            data = {("quantity" if key == "qty" else key): value for key, value in data.items()}
        return data  # both sent: extra="forbid" names qty, beside the row's other errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one row: where, what, and the input that was wrong."""

    row: int
    field: str  # the field's name; WHOLE_ROW for the row as a whole
    message: str
    input: Any  # as it came in, made JSON-safe; None for a missing field


class InvalidRowError(ValueError):
    """A row that is not a valid order, with every problem pydantic found in it."""

    def __init__(self, row: int, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.row = row
        self.problems = problems


def parse_order(row: int, line: str) -> Order:
    """One JSON line as an Order; InvalidRowError, caused by pydantic's ValidationError, if not."""
    try:
        return Order.model_validate_json(line)
    except ValidationError as err:
        problems: list[Problem] = []
        for detail in err.errors(include_url=False):
            field = ".".join(str(part) for part in detail["loc"]) or WHOLE_ROW
            # pydantic gives a missing field the whole row as its input: null says "not given"
            given = None if detail["type"] == "missing" else detail["input"]
            given = to_jsonable_python(given, fallback=str)
            problems.append(Problem(row=row, field=field, message=detail["msg"], input=given))
        raise InvalidRowError(row, problems) from err


@dataclass(frozen=True)
class Validated:
    """A file's outcome: the orders to work with, and every problem of the rows rejected."""

    rows: int  # non-blank lines
    orders: list[Order]
    problems: list[Problem]  # in row order; a row's own in pydantic's order
    invalid: int  # rows with a problem


def validate_orders(lines: Iterable[str]) -> Validated:
    """Check every non-blank line: a bad row is recorded, and the next one checked all the same."""
    orders: list[Order] = []
    rejected: list[InvalidRowError] = []
    for row, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            orders.append(parse_order(row, line))
        except InvalidRowError as err:
            rejected.append(err)
    problems = [problem for err in rejected for problem in err.problems]
    return Validated(len(orders) + len(rejected), orders, problems, len(rejected))


# --- Demo plumbing -------------------------------------------------------------------------------
SEED = 7  # the same sample every run: change it for another
TABLE_LIMIT = 50  # error rows shown; --json lists every one
# The deliberate mistakes: a field, and a bad value for it; the report must name that field.
MISTAKES: dict[str, Any] = {
    "email": "customer at example.com",
    "status": "refunded",
    "currency": "eur",
    "quantity": 0,
    "ordered_on": "2026-02-30",
    "coupon": "FREE",  # a key no order has
    "total": "0.01",  # money, but never quantity x unit_price: a rule across fields
    "shipped_on": "2025-12-31",  # before every sample order, or on one not shipped: a rule too
}
# The fields each rule reads: a rule waits for them, so the sample never breaks both at once.
READS = {"total": {"quantity", "unit_price"}, "shipped_on": {"status", "ordered_on"}}


def sample_order(row: int, rng: random.Random) -> dict[str, Any]:
    """A valid order as a partner sends it, dates and money as JSON strings."""
    quantity = rng.randint(1, 5)
    unit_price = Decimal(rng.randint(100, 20_000)) / 100
    status = rng.choice(list(Status))
    return {
        "order_id": f"ORD-{row:06d}",
        "email": f"customer{row}@example.com",
        "status": status.value,
        "currency": rng.choice(["EUR", "GBP", "USD"]),
        "sku": rng.choice(["ABC-1234", "BIK-0042", "CUP-0007", "DOC-1999", "MUG-0300"]),
        "quantity": quantity,
        "unit_price": str(unit_price),
        "total": str(quantity * unit_price),
        "ordered_on": "2026-03-01",
        "shipped_on": "2026-03-02" if status is Status.SHIPPED else None,
    }


def write_sample(out: TextIO, rows: int, bad_rate: float, seed: int) -> list[tuple[int, str]]:
    """Write `rows` orders as JSON Lines, about bad_rate of them broken; return what it broke."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    broken: list[tuple[int, str]] = []
    for row in range(1, rows + 1):
        order = sample_order(row, rng)
        if rng.random() < bad_rate:
            fields = rng.sample(list(MISTAKES), k=rng.randint(1, 3))
            for field in fields:
                if READS.get(field, set()).isdisjoint(fields):
                    order[field] = MISTAKES[field]
                    broken.append((row, field))
        out.write(json.dumps(order) + "\n")
    return broken


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def show(validated: Validated, found: str) -> None:
    errors = validated.problems  # a table of the first TABLE_LIMIT, the counts in its caption
    counts = f"{len(validated.orders):,} valid, {validated.invalid:,} invalid"
    caption = f"{plural(validated.rows, 'row')}, {counts}, {plural(len(errors), 'error')}, "
    caption += f"deliberate mistakes found {found}"
    title = f"errors, the first {TABLE_LIMIT}; --json lists all"
    table = Table("row", "field", "message", "input", title=title, caption=caption)
    for problem in errors[:TABLE_LIMIT]:
        shown = json.dumps(problem.input)[:40]
        table.add_row(str(problem.row), problem.field, Text(problem.message), Text(shown))
    Console().print(table if errors else caption)


# --- CLI -----------------------------------------------------------------------------------------
@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--rows", type=click.IntRange(1, 10_000), default=1_000, help="Orders in the sample.")
@click.option("--bad-percent", type=click.IntRange(0, 100), default=2, help="Orders to spoil, %.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(rows: int, bad_percent: int, as_json: bool) -> None:
    """Write a sample file of orders with mistakes, validate it, and list every error."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "orders.jsonl"
        with path.open("w", encoding="utf-8") as out:
            broken = write_sample(out, rows, bad_percent / 100, SEED)
        with path.open(encoding="utf-8") as lines:  # read as a service reads an upload
            validated = validate_orders(lines)
    if as_json:
        report = {
            "rows": validated.rows,
            "valid": len(validated.orders),
            "invalid": validated.invalid,
            "errors": [asdict(problem) for problem in validated.problems],
        }
        click.echo(json.dumps(report))
    else:
        reported = {(problem.row, problem.field) for problem in validated.problems}
        found = sum(1 for mistake in broken if mistake in reported)
        show(validated, f"{found:,} of {len(broken):,}")
    if validated.invalid:
        invalid = f"{validated.invalid:,} of {plural(validated.rows, 'row')} invalid"
        raise click.ClickException(f"{invalid}: the file is rejected")


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # uv sends a second Ctrl-C: let us finish
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
