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
"""Replace a file so that readers and crashes only ever see the old file or the whole new one.

Pattern:       Write to a temporary file in the same directory, flush and fsync it, rename it over
               the target with os.replace, then fsync the directory. A rename within one file
               system is atomic: whoever opens the path gets the old file or the new one, never a
               mix. A failure or Ctrl-C part way removes the temporary file; the old one stays.
When to use:   Files that others read while you write them: generated reports and data files,
               configuration, caches, anything a crash must not leave half-written.
When not to:   Files others append to or hold open for writing (they keep the old file); a symlink
               or hard link (the rename replaces the link); data shared by writers: use a database.
Run:           uv run scripts/atomic_write.py         (in a temporary directory: in place vs atomic)
               uv run scripts/atomic_write.py --output access.log --lines 1000000
Try it:        The default run: a reader polling the file sees part of it while it is written in
               place, and never while it is replaced atomically; MB/s shows what the fsync costs.
               --output big.log --lines 20000000, Ctrl-C: big.log as it was, no temp file (ls -a).
"""

import hashlib
import json
import math
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace `path` with the chunks; after a failure or Ctrl-C part way, it is as it was."""
    # The same directory, so the rename stays within one file system; the dot hides it from globs.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temp.open("xb") as out:  # x: never write into another writer's temporary file
            with suppress(FileNotFoundError):  # a new path keeps the permissions open() gives
                shutil.copymode(path, temp)  # a replaced file keeps its own
            out.writelines(chunks)
            out.flush()  # Python's buffer to the operating system...
            os.fsync(out.fileno())  # ...and the system's cache to the disk, before the rename
        temp.replace(path)  # atomic: a reader opens the old file or the new one, never a mix
    except BaseException:  # a failure or Ctrl-C part way: the old file stays, the partial one goes
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)  # the rename is an entry in the directory: make it durable too


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries to disk, so a rename in it survives a power cut (POSIX)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- Demo plumbing -------------------------------------------------------------------------------

# An access log in the Common Log Format, like the ones cli_click.py and cli_argparse.py analyse.
SAMPLE_PATHS = ("/healthz", "/api/orders", "/api/users", "/static/app.js", "/")
SAMPLE_STATUSES = (200, 304, 404, 503)
STATUS_WEIGHTS = (86, 6, 5, 3)
LINES_PER_CHUNK = 1_000  # one write, and one step of the progress bar, per 76 kB or so
DEMO_LINES = 20_000  # 1.5 MB: written as it is generated, it takes long enough to watch
OLD_LINES = 1_000  # the log the demo replaces
POLL_S = 0.002  # how often the demo's reader reads the whole file
MB = 1_000_000
Writer = Callable[[Path, Iterable[bytes]], None]


def sample_line(rng: random.Random, number: int) -> str:
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=number // 2)  # two a second
    path = rng.choice(SAMPLE_PATHS)
    status = rng.choices(SAMPLE_STATUSES, weights=STATUS_WEIGHTS)[0]
    size = rng.randint(200, 5_000)
    ip = f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 25)}"
    return f'{ip} - - [{when:%d/%b/%Y:%H:%M:%S %z}] "GET {path} HTTP/1.1" {status} {size}\n'


def sample_chunks(lines: int, seed: int = 7) -> Iterator[bytes]:
    """A deterministic access log, LINES_PER_CHUNK lines to a chunk: same seed, same bytes."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    for first in range(0, lines, LINES_PER_CHUNK):
        count = min(LINES_PER_CHUNK, lines - first)
        yield "".join(sample_line(rng, first + n) for n in range(count)).encode()


def write_in_place(path: Path, chunks: Iterable[bytes]) -> None:
    """The usual way, for comparison: open the file for writing and write into it."""
    with path.open("wb") as out:
        out.writelines(chunks)


WRITERS: dict[str, Writer] = {"in place": write_in_place, "atomic": write_atomically}


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@contextmanager
def watching(path: Path) -> Generator[Counter[str]]:
    """A reader thread that reads all of `path` again and again while the block runs."""
    seen: Counter[str] = Counter()  # the digest of what a read returned -> how many reads did
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(POLL_S):
            seen[digest(path.read_bytes())] += 1

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        yield seen
    finally:
        stop.set()
        reader.join()


@dataclass(frozen=True)
class Trial:
    """One way of writing, measured: a row of the demo's table."""

    method: str
    bytes: int
    mb_per_s: float  # writing bytes already in memory: the cost of the write itself
    reads_old: int  # what the reader's reads returned while the log was written: the old file
    reads_partial: int  # or part of a file, neither the old one nor the whole new one


def trial(method: str, directory: Path, lines: int) -> Trial:
    """Replace a log while a reader watches, then time a write of the same bytes on their own."""
    write = WRITERS[method]
    path = directory / "access.log"
    old = b"".join(sample_chunks(OLD_LINES, seed=1))
    path.write_bytes(old)
    with watching(path) as seen:
        write(path, sample_chunks(lines))  # generated as it goes, as a real producer writes
    new = path.read_bytes()
    started = time.perf_counter()
    write(path, [new])  # the same bytes again, from memory: no generating, no reader
    seconds = time.perf_counter() - started
    return Trial(
        method=method,
        bytes=len(new),
        mb_per_s=round(len(new) / MB / seconds, 1),
        reads_old=seen[digest(old)],
        reads_partial=sum(seen.values()) - seen[digest(old)] - seen[digest(new)],
    )


def plural(count: int, noun: str) -> str:
    """'1 line', '2,000 lines': a count that reads as English."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def render(trials: Sequence[Trial], lines: int) -> Table:
    table = Table("write", "MB/s", "reads of the old file", "of part of a file")
    table.title = f"Replacing a log with {plural(lines, 'line')} while a reader polls it"
    table.caption = "what the reader's reads returned while the log was written"
    for t in trials:
        table.add_row(t.method, f"{t.mb_per_s:,.0f}", str(t.reads_old), str(t.reads_partial))
    return table


# --- CLI -----------------------------------------------------------------------------------------


def demo(lines: int, as_json: bool) -> None:
    """Each way of writing in a directory of its own, then a table or one JSON object."""
    click.echo(f"writing {plural(lines, 'line')} in place, then atomically (see --help)", err=True)
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for method in WRITERS:
                directory = Path(tempfile.mkdtemp(dir=tmp))
                trials.append(trial(method, directory, lines))
        except KeyboardInterrupt as err:  # one line with what was measured, for run()
            done = [f"{t.method}: {plural(t.reads_partial, 'partial read')}" for t in trials]
            raise click.Abort("; ".join(["interrupted", *done])) from err
    if as_json:
        click.echo(json.dumps({"lines": lines, "trials": [asdict(t) for t in trials]}))
    else:
        Console().print(render(trials, lines))


def write_file(path: Path, lines: int, as_json: bool) -> None:
    """The pattern on the user's file, with a progress bar on stderr when that is a terminal."""
    console = Console(stderr=True)
    written = 0  # counted here: a disabled bar (stderr not a terminal) stops counting its steps

    def counted() -> Iterator[bytes]:
        nonlocal written
        for chunk in sample_chunks(lines):
            yield chunk
            written += chunk.count(b"\n")  # back here: the writer has written the chunk

    started = time.perf_counter()
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("writing", total=math.ceil(lines / LINES_PER_CHUNK))
        chunks = progress.track(counted(), task_id=task)  # a step per chunk written
        try:
            click.echo(f"writing {plural(lines, 'line')} to {path}", err=True)
            write_atomically(path, chunks)
        except OSError as err:  # err.filename: the temporary file, if creating it failed
            detail = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
            raise click.ClickException(f"cannot write {path}: {detail}") from err
        except KeyboardInterrupt as err:  # one line with how far it got, for run()
            so_far = f"{written:,} of {plural(lines, 'line')}"
            raise click.Abort(f"interrupted after {so_far}; no half-written file left") from err
    size = path.stat().st_size
    mb_per_s = round(size / MB / (time.perf_counter() - started), 1)  # generating and writing
    if as_json:
        result = {"file": str(path), "lines": lines, "bytes": size, "mb_per_s": mb_per_s}
        click.echo(json.dumps(result))
    else:
        speed = f"{mb_per_s} MB/s generated and written"
        click.echo(f"wrote {plural(lines, 'line')} ({size:,} bytes, {speed}) to {path}")


def output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """--output: a new or regular file in a folder that exists; os.replace would swap the rest."""
    if value is None:
        return None
    path = Path(value)
    if value.endswith(os.sep) or not path.parent.is_dir():
        raise click.BadParameter(f"{value!r} is not a file in an existing folder", ctx, param)
    if path.is_symlink() or (path.exists() and not path.is_file()):  # a link, a FIFO, a device
        raise click.BadParameter(f"{value!r} is a symlink or not a regular file", ctx, param)
    return path


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--lines",
    type=click.IntRange(1, 100_000_000),
    default=DEMO_LINES,
    help="How many access-log lines to write.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    callback=output_file,
    help="Write the log to this file, safely, instead of comparing in a temporary directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(lines: int, output: Path | None, as_json: bool) -> None:
    """Write a log in place and atomically while a reader polls it, or write one safely."""
    if output is None:
        demo(lines, as_json)
    else:
        write_file(output, lines, as_json)


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
