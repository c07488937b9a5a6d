# /// script
# requires-python = ">=3.11"
# dependencies = []
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Build a command-line tool with only the standard library: argparse subcommands and exit codes.

Pattern:       What click has built in, written with argparse: error() overridden so a bad argument
               is one line and exit 2; type= functions raising ArgumentTypeError, which that line
               names; a parent parser giving every subcommand the shared options, so they work
               before or after its name (SUPPRESS keeps the top level's values), then merged, with
               an env-var fallback; and a quiet exit 1 when stdout closes early (`| head`).
When to use:   Zero dependencies: stdlib-only environments (a system Python, a container without
               pip, a script copied onto a server), tiny tools and one-off scripts.
When not to:   Nested groups, env-var options, state shared with subcommands and CliRunner tests
               come built into click (cli_click.py is this tool); here each is written by hand.
Run:           uv run scripts/cli_argparse.py           (no command: a demo on a built-in log)
               uv run scripts/cli_argparse.py stats access.log --exclude /healthz
               uv run scripts/cli_argparse.py top access.log --by status --limit 3 --json
Try it:        A log to try: your own, or `uv run scripts/atomic_write.py --output access.log`.
               top access.log --limit 0, then the same with cli_click.py: compare the two messages.
               stats access.log | true: true reads nothing; however the race ends, no traceback.
"""

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

# --- The pattern ---------------------------------------------------------------------------------
# argparse's own pieces for what click has built in: one-line errors, checked types, options that
# every subcommand shares before or after its name, and a quiet end when stdout closes.
EXCLUDE_ENV = "ACCESSLOG_EXCLUDE"  # --exclude's fallback: a space-separated list of prefixes
JSON_HELP = "print one JSON object, not text"
EXCLUDE_HELP = f"leave out paths starting with PREFIX (repeatable; default: ${EXCLUDE_ENV})"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, and whose --help notices a closed stdout."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")  # not the whole usage first: this line names it

    def print_help(self, file: Any = None) -> None:
        (file or sys.stdout).write(self.format_help())  # argparse's own ignores a failed write


class CommandError(Exception):
    """An expected failure: one line and exit code 1, as click.ClickException is in cli_click."""


def existing_file(text: str) -> Path:
    """type= for an input file, so a missing one is a usage error naming the argument."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"file {text!r} is a directory")
    if not path.exists():  # a pipe is fine: stats <(zcat access.log.gz)
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    return path


def row_limit(text: str) -> int:
    """type= for --limit: a whole number from 1 to 1000 (argparse's int has no range)."""
    if not text.isdecimal() or not 1 <= int(text) <= 1_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return int(text)


def shared_options(after_command: bool) -> OneLineParser:
    """A parent parser holding the options every command takes, before or after its name."""
    # argparse copies a subcommand's values over the top level's: after the command, --json is
    # SUPPRESSed when left out, and --exclude goes to exclude_after, for merge_shared_options().
    options = OneLineParser(add_help=False)
    json_default = argparse.SUPPRESS if after_command else False
    dest = "exclude_after" if after_command else "exclude"
    options.add_argument("--json", action="store_true", default=json_default, help=JSON_HELP)
    options.add_argument(
        "--exclude", action="append", dest=dest, default=[], metavar="PREFIX", help=EXCLUDE_HELP
    )
    return options


def merge_shared_options(args: argparse.Namespace) -> None:
    """--exclude before and after the command all count; with none, the environment's list."""
    args.exclude += args.exclude_after
    if not args.exclude:  # a flag in either position beats the environment
        args.exclude = os.environ.get(EXCLUDE_ENV, "").split()


def show(args: argparse.Namespace, payload: dict[str, Any], *texts: str) -> None:
    """One JSON object on stdout for machines (--json), or plain text for people."""
    text = json.dumps(payload) if args.json else "\n\n".join(texts)
    sys.stdout.write(text + "\n")


def exit_with(run: Callable[[], int]) -> NoReturn:
    """Exit with run()'s code; if stdout closed early (`| head`), quietly with 1, as click does."""
    try:
        code = run()
        sys.stdout.flush()  # a closed stdout fails here, not in Python's own flush at exit
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the flush at exit now has somewhere to go
        code = 1
    sys.exit(code)


# --- Demo plumbing -------------------------------------------------------------------------------
# What the commands work on, as in cli_click.py: access logs in the Common and Combined Log
# Format (nginx, Apache), like DEMO_LOG; whatever follows the response size is ignored.
LOG_LINE = re.compile(
    r'\S+ \S+ \S+ \[[^\]]+\] "[A-Z]+ (?P<path>\S+)[^"]*" (?P<status>[1-5]\d\d) (?:\d+|-)'
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")  # LOG_LINE reads statuses 100-599
TOP_KEYS = ("path", "status")  # what `top --by` counts requests by: LogEntry fields


@dataclass(frozen=True)
class LogEntry:
    path: str
    status: int


@dataclass(frozen=True)
class LogStats:
    requests: int
    status_classes: dict[str, int]


@dataclass(frozen=True)
class Count:
    key: str
    requests: int


@dataclass(frozen=True)
class AccessLog:
    entries: list[LogEntry]  # the requests, less those to excluded paths
    skipped: int  # lines not in the format: nginx's `"-" 400 0`, TLS bytes sent to port 80


class BadLogError(ValueError):
    """A file holds something that is not an access log."""


def read_log(lines: Iterable[str], source: str, skip: tuple[str, ...] = ()) -> AccessLog:
    """The requests in a log (an open file, any lines) but those to paths starting with `skip`."""
    entries: list[LogEntry] = []
    read = 0
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        read += 1
        match = LOG_LINE.match(line)
        if match is None:  # real logs hold a few: count them, go on
            skipped += 1
        elif not match["path"].startswith(skip):
            entries.append(LogEntry(match["path"], int(match["status"])))
    if skipped and skipped == read:  # not one line in the format: the wrong file, not a log
        raise BadLogError(f"{source}: not an access log (no line is in the log format)")
    return AccessLog(entries, skipped)


def summarise(entries: Sequence[LogEntry]) -> LogStats:
    classes = Counter(f"{entry.status // 100}xx" for entry in entries)
    return LogStats(len(entries), {name: classes[name] for name in STATUS_CLASSES})


def top_counts(entries: Sequence[LogEntry], by: str, limit: int) -> list[Count]:
    """The `limit` most frequent values of a field (one of TOP_KEYS), most requests first."""
    counts = Counter(str(getattr(entry, by)) for entry in entries)
    return [Count(key, requests) for key, requests in counts.most_common(limit)]


DEMO_LOG = [  # a small service's requests
    '10.0.0.1 - - [01/Jan/2026:10:00:00 +0000] "GET /healthz HTTP/1.1" 200 2',
    '10.0.0.2 - - [01/Jan/2026:10:00:01 +0000] "GET /api/orders?page=2 HTTP/1.1" 200 1843',
    '10.0.0.3 - ann [01/Jan/2026:10:00:01 +0000] "POST /api/orders HTTP/1.1" 201 512',
    '10.0.0.1 - - [01/Jan/2026:10:00:02 +0000] "GET /healthz HTTP/1.1" 200 2',
    '10.0.0.4 - - [01/Jan/2026:10:00:03 +0000] "GET /static/app.js HTTP/1.1" 304 -',
    '10.0.0.2 - - [01/Jan/2026:10:00:04 +0000] "GET /api/users/7 HTTP/1.1" 404 153',
    '10.0.0.5 - - [01/Jan/2026:10:00:05 +0000] "GET /api/orders HTTP/1.1" 503 97 "-" "curl/8.5"',
    '10.0.0.1 - - [01/Jan/2026:10:00:06 +0000] "GET /healthz HTTP/1.1" 200 2',
]


def plural(count: int, noun: str) -> str:
    """'1 request', '2,000 requests': a count that reads as English."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def stats_text(stats: LogStats, source: str) -> str:
    """The stats as a plain-text table: no rich without dependencies."""
    lines = [f"{name:<8}{requests:>10,}" for name, requests in stats.status_classes.items()]
    return "\n".join([f"{plural(stats.requests, 'request')} in {source}", *lines])


def counts_text(counts: Sequence[Count], by: str) -> str:
    width = max([len(by), *(len(count.key) for count in counts)])
    lines = [f"{count.key:<{width}}  {count.requests:>8,}" for count in counts]
    return "\n".join([f"Top {len(counts)} by {by}", f"{by:<{width}}  {'requests':>8}", *lines])


# --- CLI -----------------------------------------------------------------------------------------
FILE_HELP = "an access log in the Common or Combined Log Format"


def load(args: argparse.Namespace, path: Path) -> AccessLog:
    """The requests in a log the user named; whatever goes wrong is one line, exit 1."""
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:  # a byte not UTF-8: \ufffd
            log = read_log(lines, str(path), tuple(args.exclude))
    except BadLogError as err:
        raise CommandError(str(err)) from err
    except OSError as err:  # unreadable: permissions, a device, a failing disk
        raise CommandError(f"cannot read {path}: {err.strerror}") from err
    if log.skipped:
        sys.stderr.write(f"skipped {plural(log.skipped, 'line')} not in the log format\n")
    return log


def demo(args: argparse.Namespace) -> None:
    sys.stderr.write(f"no command: a demo on {len(DEMO_LOG)} requests (see --help)\n")
    entries = read_log(DEMO_LOG, "the demo", tuple(args.exclude)).entries
    stats = summarise(entries)
    counts = top_counts(entries, "path", 5)
    payload = {"stats": asdict(stats), "top": [asdict(count) for count in counts]}
    show(args, payload, stats_text(stats, "the demo"), counts_text(counts, "path"))


def stats_command(args: argparse.Namespace) -> None:
    log = load(args, args.file)
    stats = summarise(log.entries)
    show(args, {**asdict(stats), "skipped": log.skipped}, stats_text(stats, args.file.name))


def top_command(args: argparse.Namespace) -> None:
    log = load(args, args.file)
    counts = top_counts(log.entries, args.by, args.limit)
    payload = {"by": args.by, "top": [asdict(count) for count in counts], "skipped": log.skipped}
    show(args, payload, counts_text(counts, args.by))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cli_argparse",
        description="Analyse web access logs offline. With no command: a demo.",
        parents=[shared_options(after_command=False)],
    )
    parser.add_argument("--version", action="version", version="%(prog)s 1.0.0")
    parser.set_defaults(handler=demo, exclude_after=[])
    after = [shared_options(after_command=True)]  # the same options after the command's name
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    stats = commands.add_parser("stats", parents=after, help="requests by status class")
    stats.add_argument("file", type=existing_file, metavar="FILE", help=FILE_HELP)
    stats.set_defaults(handler=stats_command)

    top = commands.add_parser("top", parents=after, help="the busiest paths or status codes")
    top.add_argument("file", type=existing_file, metavar="FILE", help=FILE_HELP)
    top.add_argument("--by", choices=TOP_KEYS, default="path", help="count by (default: path)")
    top.add_argument("--limit", type=row_limit, default=10, help="1-1000 rows (default: 10)")
    top.set_defaults(handler=top_command)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run one command and return the exit code: 0, 1, 2 or 130."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error argparse has reported
        return done.code if isinstance(done.code, int) else 0
    merge_shared_options(args)
    try:
        args.handler(args)
    except CommandError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


def main() -> None:
    exit_with(run)


if __name__ == "__main__":
    main()
