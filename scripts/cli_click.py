# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "click",
#     "rich",
# ]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Build a command-line tool with click: subcommands, typed options and exit codes to rely on.

Pattern:       A click group is one tool with subcommands. Options they share (--json, --exclude)
               reach them as a typed dataclass on ctx.obj, given before or after the command.
               Types (Path, Choice, IntRange) refuse bad input before your code runs, naming the
               parameter; envvar= lets the environment supply a value. Commands stay thin: parse,
               call a plain function, print rich tables or one JSON object. run() makes every error
               one line and returns exit code 2 (usage), 1 (failure) or 130 (Ctrl-C).
When to use:   Tools with several verbs or many options: nested groups, env-var defaults, shared
               options, and tests that run a command in-process with click's CliRunner.
When not to:   A ten-line script, or a machine where nothing can be installed: use argparse
               (cli_argparse.py is this tool on the standard library). Typer builds on click.
Run:           uv run scripts/cli_click.py              (no command: a demo on a built-in log)
               uv run scripts/cli_click.py stats access.log --exclude /healthz
               uv run scripts/cli_click.py top access.log --by status --limit 3 --json
Try it:        A log to try: your own, or `uv run scripts/atomic_write.py --output access.log`.
               top access.log --limit 0: one line naming --limit, exit 2 (echo $?).
               ACCESSLOG_EXCLUDE=/healthz before `stats access.log`: health checks leave the counts.
"""

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console, RenderableType
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
# Commands stay thin: the work below knows nothing of click, so it is tested and reused alone.
# Common and Combined Log Format (nginx, Apache): whatever follows the response size is ignored.
LOG_LINE = re.compile(
    r'(?P<ip>\S+) \S+ \S+ \[[^\]]+\] "[A-Z]+ (?P<path>\S+)[^"]*" '
    r"(?P<status>[1-5]\d\d) (?P<size>\d+|-)"
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")  # LOG_LINE reads statuses 100-599
TOP_KEYS = ("path", "status", "ip")  # what `top --by` groups requests by: LogEntry fields


@dataclass(frozen=True)
class LogEntry:
    ip: str
    path: str
    status: int
    size: int


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


@dataclass(frozen=True)
class AccessLog:
    entries: list[LogEntry]  # the requests, less those to excluded paths
    skipped: int  # lines not in the format: nginx's `"-" 400 0`, TLS bytes sent to port 80


class BadLogError(ValueError):
    """A file holds something that is not an access log."""


def parse_line(text: str) -> LogEntry | None:
    """One log line as a LogEntry, or None if it is not in the log format."""
    match = LOG_LINE.match(text)
    if match is None:
        return None
    size = 0 if match["size"] == "-" else int(match["size"])
    return LogEntry(match["ip"], match["path"], int(match["status"]), size)


def read_log(lines: Iterable[str], source: str, skip: tuple[str, ...] = ()) -> AccessLog:
    """The requests in a log (an open file, any lines) but those to paths starting with `skip`."""
    entries: list[LogEntry] = []
    read = 0
    skipped = 0
    try:
        for line in lines:
            if not line.strip():
                continue
            read += 1
            entry = parse_line(line)
            if entry is None:  # real logs hold a few: count them, go on
                skipped += 1
            elif not entry.path.startswith(skip):
                entries.append(entry)
    except UnicodeDecodeError as err:  # a file opened as text that is not text
        raise BadLogError(f"{source}: not a text file ({err.reason})") from err
    if skipped and skipped == read:  # not one line in the format: the wrong file, not a log
        raise BadLogError(f"{source}: not an access log (no line is in the log format)")
    return AccessLog(entries, skipped)


def summarise(entries: Sequence[LogEntry]) -> LogStats:
    classes = Counter(f"{entry.status // 100}xx" for entry in entries)
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

# The demo's input: a small service's requests, in the Common and Combined Log Formats.
DEMO_LOG = [
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


def stats_table(stats: LogStats, source: str) -> Table:
    table = Table("metric", "value", title=f"{plural(stats.requests, 'request')} in {source}")
    table.add_row("clients", f"{stats.clients:,}")
    for name, requests in stats.status_classes.items():
        table.add_row(name, f"{requests:,}")
    table.add_row("5xx rate", f"{stats.error_rate:.2%}")
    table.add_row("bytes sent", f"{stats.bytes_sent:,}")
    return table


def counts_table(counts: Sequence[Count], by: str) -> Table:
    table = Table(by, "requests", "share", title=f"Top {len(counts)} by {by}")
    for count in counts:
        table.add_row(count.key, f"{count.requests:,}", f"{count.share:.1%}")
    return table


# --- CLI -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the shared options decide for every subcommand; click carries it on ctx.obj."""

    as_json: bool = False
    exclude: tuple[str, ...] = ()

    def show(self, payload: dict[str, Any], *human: RenderableType) -> None:
        """One JSON object on stdout for machines, or rich renderables for people."""
        if self.as_json:
            click.echo(json.dumps(payload))
        else:
            for renderable in human:
                Console(markup=False).print(renderable)  # log text is not markup

    def load(self, path: Path) -> AccessLog:
        """The requests in a log the user named; whatever goes wrong is one line, exit 1."""
        try:
            with path.open(encoding="utf-8") as lines:
                log = read_log(lines, str(path), self.exclude)
        except BadLogError as err:
            raise click.ClickException(str(err)) from err
        except OSError as err:  # unreadable: permissions, a device, a failing disk
            raise click.ClickException(f"cannot read {path}: {err.strerror}") from err
        if log.skipped:
            click.echo(f"skipped {plural(log.skipped, 'line')} not in the log format", err=True)
        return log


def add_json(ctx: click.Context, param: click.Parameter, as_json: bool) -> None:
    """Callback of --json given after the subcommand: it turns JSON on, as it does before."""
    if as_json:
        ctx.obj = replace(ctx.obj, as_json=True)


def add_excludes(ctx: click.Context, param: click.Parameter, more: tuple[str, ...]) -> None:
    """Callback of --exclude after the subcommand: it adds to the prefixes given before it."""
    before = ctx.obj.exclude
    if ctx.find_root().get_parameter_source("exclude") is ParameterSource.ENVIRONMENT:
        before = ()  # a flag in either position beats ACCESSLOG_EXCLUDE
    if more:
        ctx.obj = replace(ctx.obj, exclude=before + more)


pass_settings = click.make_pass_decorator(Settings)
# Missing or a directory: usage error (exit 2). Unreadable: the OS's reason, at run time (exit 1).
LOG_FILE = click.Path(exists=True, dir_okay=False, readable=False, path_type=Path)
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}
JSON_HELP = "Print one JSON object instead of tables."
EXCLUDE_HELP = "Leave out requests whose path starts with PREFIX (repeatable)."
# The shared options once more, for each subcommand, so `stats access.log --json` works too.
json_after = click.option(
    "--json", "as_json", is_flag=True, expose_value=False, callback=add_json, help=JSON_HELP
)
exclude_after = click.option(
    "--exclude",
    multiple=True,
    metavar="PREFIX",
    expose_value=False,
    callback=add_excludes,
    help=EXCLUDE_HELP,
)


@click.group(invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.version_option("1.0.0", prog_name="cli_click")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option(
    "--exclude",
    multiple=True,
    metavar="PREFIX",
    envvar="ACCESSLOG_EXCLUDE",  # from the environment: a space-separated list
    show_envvar=True,
    help=EXCLUDE_HELP,
)
@click.pass_context
def cli(ctx: click.Context, as_json: bool, exclude: tuple[str, ...]) -> None:
    """Analyse web-server access logs offline. With no command: a demo."""
    ctx.obj = Settings(as_json, exclude)
    if ctx.invoked_subcommand is None:
        demo(ctx.obj)


def demo(settings: Settings) -> None:
    click.echo(f"no command: a demo on {len(DEMO_LOG)} requests (see --help)", err=True)
    entries = read_log(DEMO_LOG, "the demo", settings.exclude).entries
    stats = summarise(entries)
    counts = top_counts(entries, "path", 5)
    payload = {"stats": asdict(stats), "top": [asdict(count) for count in counts]}
    settings.show(payload, stats_table(stats, "the demo"), counts_table(counts, "path"))


@cli.command("stats")
@click.argument("file", type=LOG_FILE)
@json_after
@exclude_after
@pass_settings
def stats_command(settings: Settings, file: Path) -> None:
    """Requests, clients, status classes and error rate of FILE, an access log."""
    log = settings.load(file)
    stats = summarise(log.entries)
    settings.show({**asdict(stats), "skipped": log.skipped}, stats_table(stats, file.name))


@cli.command("top")
@click.argument("file", type=LOG_FILE)
@click.option(
    "--by", type=click.Choice(TOP_KEYS), default="path", help="Count requests by this field."
)
@click.option("--limit", type=click.IntRange(1, 1_000), default=10, help="How many rows to show.")
@json_after
@exclude_after
@pass_settings
def top_command(settings: Settings, file: Path, by: str, limit: int) -> None:
    """The busiest paths, status codes or client IPs in FILE, an access log."""
    log = settings.load(file)
    counts = top_counts(log.entries, by, limit)
    payload = {"by": by, "top": [asdict(count) for count in counts], "skipped": log.skipped}
    settings.show(payload, counts_table(counts, by))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
