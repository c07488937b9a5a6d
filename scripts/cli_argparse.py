# /// script
# requires-python = ">=3.11"
# dependencies = []
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Build a command-line tool with only the standard library: argparse subcommands and exit codes.

Pattern:       One ArgumentParser, a subparser per verb, set_defaults(handler=...) naming the
               function that runs it. type= functions turn text into checked values or raise
               ArgumentTypeError, reported naming the argument. A parent parser gives every
               subcommand the shared options, so they work before or after it. error() is
               overridden so a bad argument is one line and exit 2; run() returns the exit code.
When to use:   Zero dependencies: stdlib-only environments (a system Python, a container without
               pip, a script copied onto a server), tiny tools and one-off scripts.
When not to:   Nested groups, env-var options, state shared with subcommands and CliRunner tests
               come built into click (cli_click.py is this tool); here each is written by hand.
Run:           uv run scripts/cli_argparse.py           (no command: a demo on a generated log)
               uv run scripts/cli_argparse.py generate access.log --lines 50000
               uv run scripts/cli_argparse.py top access.log --by status --json -o top.json
Try it:        top access.log --limit 0, then the same with cli_click.py: compare the two messages.
               -o report.txt stats access.log: the table lands in the file and stdout stays empty.
"""

import argparse
import json
import os
import random
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

# --- The pattern ---------------------------------------------------------------------------------
# The same log analysis as cli_click.py, so the two CLIs compare line by line.
LOG_LINE = re.compile(
    r'(?P<ip>\S+) \S+ \S+ \[[^\]]+\] "[A-Z]+ (?P<path>\S+)[^"]*" (?P<status>\d{3}) (?P<size>\d+|-)'
)
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
TOP_KEYS = ("path", "status", "ip")  # what `top --by` groups requests by: LogEntry fields


@dataclass(frozen=True)
class LogEntry:
    ip: str
    path: str
    status: int
    size: int

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx"


@dataclass(frozen=True)
class LogStats:
    requests: int
    clients: int
    status_classes: dict[str, int]
    error_rate: float  # share of requests answered with a 5xx
    bytes_sent: int


@dataclass(frozen=True)
class Count:
    key: str
    requests: int
    share: float


class BadLogError(ValueError):
    """A file holds something that is not an access log."""


def parse_line(text: str) -> LogEntry | None:
    """One log line as a LogEntry, or None if it is not in the log format."""
    match = LOG_LINE.match(text)
    if match is None:
        return None
    size = 0 if match["size"] == "-" else int(match["size"])
    return LogEntry(match["ip"], match["path"], int(match["status"]), size)


def read_log(path: Path, skip: tuple[str, ...] = (), status: str | None = None) -> list[LogEntry]:
    """Requests in a log file, minus paths starting with a `skip` prefix, of one status class."""
    entries: list[LogEntry] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                entry = parse_line(line)
                if entry is None:  # refuse a wrong file rather than report an empty log
                    raise BadLogError(f"{path}, line {number}: not an access-log line")
                if status in (None, entry.status_class) and not entry.path.startswith(skip):
                    entries.append(entry)
    except UnicodeDecodeError as err:
        raise BadLogError(f"{path}: not a text file ({err.reason})") from err
    return entries


def summarise(entries: Sequence[LogEntry]) -> LogStats:
    classes = Counter(entry.status_class for entry in entries)
    return LogStats(
        requests=len(entries),
        clients=len({entry.ip for entry in entries}),
        status_classes={name: classes[name] for name in STATUS_CLASSES},
        error_rate=classes["5xx"] / len(entries) if entries else 0.0,
        bytes_sent=sum(entry.size for entry in entries),
    )


def top_counts(entries: Sequence[LogEntry], by: str, limit: int) -> list[Count]:
    """The `limit` most frequent values of a field (one of TOP_KEYS), most requests first."""
    counts = Counter(str(getattr(entry, by)) for entry in entries)
    return [Count(key, n, n / len(entries)) for key, n in counts.most_common(limit)]


# --- Demo plumbing -------------------------------------------------------------------------------

# A small service's traffic: health checks, an API and static files, from a hundred clients.
SAMPLE_PATHS = {"/healthz": 30, "/api/orders": 25, "/api/users": 15, "/static/app.js": 20, "/": 10}
SAMPLE_STATUSES = {200: 86, 304: 6, 404: 5, 503: 3}
DEMO_LINES = 2_000


def sample_lines(count: int, seed: int = 7) -> Iterator[str]:
    """A deterministic Common Log Format sample: same seed, same lines."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    time = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(count):
        time += timedelta(seconds=rng.expovariate(2.0))  # about two requests a second
        path = rng.choices(list(SAMPLE_PATHS), weights=list(SAMPLE_PATHS.values()))[0]
        status = rng.choices(list(SAMPLE_STATUSES), weights=list(SAMPLE_STATUSES.values()))[0]
        size = 0 if status == 304 else rng.randint(200, 5_000)
        ip = f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 25)}"
        yield f'{ip} - - [{time:%d/%b/%Y:%H:%M:%S %z}] "GET {path} HTTP/1.1" {status} {size}\n'


def write_atomically(path: Path, lines: Iterable[str]) -> int:
    """Write lines to path and return its size; a failure or Ctrl-C leaves no half-written file."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            out.writelines(lines)
        partial.replace(path)  # atomic: readers see the old file or the whole new one
    finally:
        partial.unlink(missing_ok=True)  # still there only if writing failed or was interrupted
    return path.stat().st_size


def plural(count: int, noun: str) -> str:
    """'1 request', '2,000 requests': a count that reads as English."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def stats_text(stats: LogStats, source: str) -> str:
    """The stats as a plain-text table: no rich without dependencies."""
    rows = [("clients", f"{stats.clients:,}")]
    rows += [(name, f"{requests:,}") for name, requests in stats.status_classes.items()]
    rows += [("5xx rate", f"{stats.error_rate:.2%}"), ("bytes sent", f"{stats.bytes_sent:,}")]
    lines = [f"{label:<12}{value:>12}" for label, value in rows]
    return "\n".join([f"{plural(stats.requests, 'request')} in {source}", *lines])


def counts_text(counts: Sequence[Count], by: str) -> str:
    width = max([len(by), *(len(count.key) for count in counts)])
    header = f"{by:<{width}}  {'requests':>8}  {'share':>6}"
    lines = [f"{count.key:<{width}}  {count.requests:>8,}  {count.share:>6.1%}" for count in counts]
    return "\n".join([f"Top {len(counts)} by {by}", header, *lines])


# --- CLI -----------------------------------------------------------------------------------------

EXCLUDE_ENV = "ACCESSLOG_EXCLUDE"  # --exclude's fallback, a space-separated list of prefixes


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, and whose --help notices a closed stdout."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")  # not the whole usage first: this line names it

    def print_help(self, file: Any = None) -> None:
        (file or sys.stdout).write(self.format_help())  # argparse's own ignores a failed write


class CommandError(Exception):
    """An expected failure: one line and exit code 1, as click.ClickException is in cli_click."""


@dataclass(frozen=True)
class Report:
    payload: dict[str, Any]  # for --json
    text: str  # for people


def existing_file(text: str) -> Path:
    """type= for an input file, so a missing one is a usage error naming the argument."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"file {text!r} is a directory")
    if not path.exists():  # a pipe is fine: stats <(zcat access.log.gz)
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    return path


def int_between(low: int, high: int) -> Callable[[str], int]:
    """type= for a whole number from low to high: argparse's int has no range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def shared_options(default: Any = None) -> OneLineParser:
    """A parent parser holding the options every command takes, before or after its name.

    argparse copies a subcommand's values over the top level's, so under a subcommand the default
    is SUPPRESS: an option left out there leaves nothing to copy over one given before it.
    """
    options = OneLineParser(add_help=False, argument_default=default)
    options.add_argument("--json", action="store_true", help="print one JSON object, not text")
    options.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write the output to FILE, not stdout"
    )
    options.add_argument(
        "--exclude",
        action="append",
        metavar="PREFIX",
        help=f"leave out paths starting with PREFIX (repeatable; default: ${EXCLUDE_ENV})",
    )
    options.add_argument("--status", choices=STATUS_CLASSES, help="only count this status class")
    return options


def load(args: argparse.Namespace, path: Path) -> list[LogEntry]:
    """The requests in a log the user named; whatever goes wrong is one line, exit 1."""
    exclude = args.exclude or os.environ.get(EXCLUDE_ENV, "").split()  # the flag wins
    try:
        return read_log(path, tuple(exclude), args.status)
    except BadLogError as err:
        raise CommandError(str(err)) from err
    except OSError as err:  # unreadable: permissions, a device, a failing disk
        raise CommandError(f"cannot read {path}: {err.strerror}") from err


def stats_report(args: argparse.Namespace) -> Report:
    stats = summarise(load(args, args.file))
    return Report(asdict(stats), stats_text(stats, args.file.name))


def top_report(args: argparse.Namespace) -> Report:
    counts = top_counts(load(args, args.file), args.by, args.limit)
    payload = {"by": args.by, "top": [asdict(count) for count in counts]}
    return Report(payload, counts_text(counts, args.by))


def generate_report(args: argparse.Namespace) -> Report:
    sys.stderr.write(f"writing {plural(args.lines, 'request')} to {args.file}\n")
    try:
        size = write_atomically(args.file, sample_lines(args.lines))
    except OSError as err:
        raise CommandError(f"cannot write {args.file}: {err.strerror}") from err
    payload = {"file": str(args.file), "requests": args.lines, "bytes": size}
    return Report(payload, f"wrote {plural(args.lines, 'request')} ({size:,} bytes) to {args.file}")


def demo_report(args: argparse.Namespace) -> Report:
    sys.stderr.write(f"no command: a demo on {DEMO_LINES:,} generated requests (see --help)\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "access.log"
        write_atomically(path, sample_lines(DEMO_LINES))
        entries = load(args, path)
    stats = summarise(entries)
    counts = top_counts(entries, "path", 5)
    payload = {"stats": asdict(stats), "top": [asdict(count) for count in counts]}
    return Report(payload, f"{stats_text(stats, 'the demo')}\n\n{counts_text(counts, 'path')}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cli_argparse",
        description="Analyse web access logs offline. With no command: a demo on a generated log.",
        parents=[shared_options()],
    )
    parser.add_argument("--version", action="version", version="%(prog)s 1.0.0")
    parser.set_defaults(handler=demo_report)
    after = [shared_options(argparse.SUPPRESS)]  # the same options after the command's name
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    stats = commands.add_parser("stats", parents=after, help="requests, clients and error rate")
    stats.add_argument("file", type=existing_file, metavar="FILE")
    stats.set_defaults(handler=stats_report)

    top = commands.add_parser("top", parents=after, help="the busiest paths, statuses or IPs")
    top.add_argument("file", type=existing_file, metavar="FILE")
    top.add_argument(
        "--by", choices=TOP_KEYS, default="path", help="count by this field (default: path)"
    )
    top.add_argument(
        "--limit", type=int_between(1, 1_000), default=10, help="rows to show, 1-1000 (default: 10)"
    )
    top.set_defaults(handler=top_report)

    generate = commands.add_parser("generate", parents=after, help="write a sample log to FILE")
    generate.add_argument("file", type=Path, metavar="FILE")
    generate.add_argument(
        "--lines",
        type=int_between(1, 10_000_000),
        default=DEMO_LINES,
        help=f"how many requests to write (default: {DEMO_LINES:,})",
    )
    generate.set_defaults(handler=generate_report)
    return parser


def write_output(args: argparse.Namespace, report: Report) -> None:
    """Text or JSON, on stdout or, with -o, in a file written whole or not at all."""
    text = json.dumps(report.payload) if args.json else report.text
    if args.output is None:
        sys.stdout.write(text + "\n")
        return
    try:
        write_atomically(args.output, [text + "\n"])
    except OSError as err:
        raise CommandError(f"cannot write {args.output}: {err.strerror}") from err


def run(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run one command and return the exit code: 0, 1, 2 or 130."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error argparse has reported
        return done.code if isinstance(done.code, int) else 0
    try:
        report = args.handler(args)
        write_output(args, report)
    except CommandError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


def main() -> None:
    try:
        code = run()
        sys.stdout.flush()  # a closed stdout fails here, not in Python's own flush at exit
    except BrokenPipeError:  # `... | head` closed stdout: end quietly, as click does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the flush at exit now has somewhere to go
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
