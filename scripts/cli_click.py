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

Pattern:       Options every subcommand shares (--json, --exclude) reach it as one typed Settings
               on ctx.obj. Declared on the group and again on each subcommand, whose callbacks add
               to Settings, they work before or after the command's name; envvar= lets the
               environment stand in for a flag. Types (Path, Choice, IntRange) refuse bad input
               naming the parameter, and run() makes every error one line with exit code 2
               (usage), 1 (failure) or 130 (Ctrl-C). Commands stay thin: parse, call, show.
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
# The shared options are declared twice: on the group, so they may come before the command's name,
# and on each subcommand, so they may come after it. Both ways they end in one Settings on ctx.obj.
EXCLUDE_ENV = "ACCESSLOG_EXCLUDE"  # --exclude's fallback: a space-separated list of prefixes
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}
JSON_HELP = "Print one JSON object instead of tables."
EXCLUDE_HELP = "Leave out requests whose path starts with PREFIX (repeatable)."


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
                Console(markup=False).print(renderable)  # the user's data is not markup


def add_json(ctx: click.Context, param: click.Parameter, as_json: bool) -> None:
    """Callback of --json given after the subcommand: it turns JSON on, as it does before."""
    if as_json:
        ctx.obj = replace(ctx.obj, as_json=True)


def add_excludes(ctx: click.Context, param: click.Parameter, more: tuple[str, ...]) -> None:
    """Callback of --exclude after the subcommand: it adds to the prefixes given before it."""
    before = ctx.obj.exclude
    if ctx.find_root().get_parameter_source("exclude") is ParameterSource.ENVIRONMENT:
        before = ()  # a flag in either position beats the environment
    if more:
        ctx.obj = replace(ctx.obj, exclude=before + more)


pass_settings = click.make_pass_decorator(Settings)
# Before the command's name: options of the group, which builds Settings from them.
json_option = click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
exclude_option = click.option(
    "--exclude",
    multiple=True,
    metavar="PREFIX",
    envvar=EXCLUDE_ENV,
    show_envvar=True,
    help=EXCLUDE_HELP,
)
# After it: the same options on each subcommand, whose callbacks update Settings.
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

# --- Demo plumbing -------------------------------------------------------------------------------
# What the commands work on, as in cli_argparse.py: access logs in the Common and Combined Log
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


def stats_table(stats: LogStats, source: str) -> Table:
    title = f"{plural(stats.requests, 'request')} in {source}"
    table = Table("status", "requests", title=title, min_width=len(title))  # a title on one line
    for name, requests in stats.status_classes.items():
        table.add_row(name, f"{requests:,}")
    return table


def counts_table(counts: Sequence[Count], by: str) -> Table:
    table = Table(by, "requests", title=f"Top {len(counts)} by {by}")
    for count in counts:
        table.add_row(count.key, f"{count.requests:,}")
    return table


# --- CLI -----------------------------------------------------------------------------------------
# Missing or a directory: usage error (exit 2). Unreadable: the OS's reason, at run time (exit 1).
LOG_FILE = click.Path(exists=True, dir_okay=False, readable=False, path_type=Path)


def load(settings: Settings, path: Path) -> AccessLog:
    """The requests in a log the user named; whatever goes wrong is one line, exit 1."""
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:  # a byte not UTF-8: \ufffd
            log = read_log(lines, str(path), settings.exclude)
    except BadLogError as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:  # unreadable: permissions, a device, a failing disk
        raise click.ClickException(f"cannot read {path}: {err.strerror}") from err
    if log.skipped:
        click.echo(f"skipped {plural(log.skipped, 'line')} not in the log format", err=True)
    return log


@click.group(invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.version_option("1.0.0", prog_name="cli_click")
@json_option
@exclude_option
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
    """Requests by status class (1xx to 5xx) in FILE, an access log."""
    log = load(settings, file)
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
    """The busiest paths or status codes in FILE, an access log."""
    log = load(settings, file)
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
