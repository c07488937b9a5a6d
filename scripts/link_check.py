# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "httpx", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Check many links concurrently, list every broken one, and exit 1 if any link is broken.

Pattern:       The bounded fan-out of async_fetch.py, aimed at links: one httpx.AsyncClient, an
               asyncio.Semaphore(C), and per link a GET that follows redirects and reads the
               status, never the body. Each failure is a result with a kind (http 404, timeout,
               transport, deadline), so one dead host never hides the rest; the exit status is what
               a script needs: 0 when every link works, 1 when any is broken, 2 for bad usage.
When to use:   CI checks of docs, READMEs and sitemaps: any list of URLs whose breakage should fail.
When not to:   Finding the links in pages (parse them first, or use lychee); hosts that rate-limit
               you (keep --concurrency low); measuring a fan-out's speed (async_fetch.py).
Run:           uv run scripts/link_check.py
               uv run scripts/link_check.py --url https://example.org/ --urls-file links.txt --json
               The demo checks a local site with links broken on purpose, so it exits 1, as every
               check that finds a broken link does.
Try it:        --timeout 5: the page that never answers holds the run for 5 s; the other links
               are done long before, as they are checked alongside it.
               --deadline 0.5: the hanging link is cut by the deadline instead, as "deadline".
               --url http://127.0.0.1:9/; echo $?: nothing listens there: "transport", exit 1.
"""

import asyncio
import contextlib
import json
import math
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

import click
import httpx
from click import Context, Parameter
from rich.console import Console
from rich.table import Table
from rich.text import Text

# --- The pattern ---------------------------------------------------------------------------------
TIMEOUT_S = 10.0  # per link: a slow site that works answers well within it
DEADLINE_S = 60.0  # per check: about as long as a CI step should wait for links


@dataclass(frozen=True, slots=True)
class LinkResult:
    url: str  # as given
    status: int | None  # the last answer's status, after redirects; None when no answer came
    broken: str | None = None  # "http 404", "timeout", "transport", "deadline"; None if it works
    detail: str = ""  # the reason phrase, or what the network library said


async def check_one(client: httpx.AsyncClient, url: str) -> LinkResult:
    """GET one link, following redirects. The status line decides: the body is never read."""
    try:
        async with client.stream("GET", url, follow_redirects=True) as response:
            broken = f"http {response.status_code}" if response.is_error else None
            return LinkResult(url, response.status_code, broken, response.reason_phrase)
    except httpx.RequestError as err:  # no answer: refused, reset, too slow, too many redirects
        kind = "timeout" if isinstance(err, httpx.TimeoutException) else "transport"
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return LinkResult(url, None, kind, detail)


async def check_all(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    concurrency: int,
    *,
    deadline_s: float = DEADLINE_S,
    on_result: Callable[[LinkResult], None] | None = None,
) -> list[LinkResult]:
    """Check every link, at most `concurrency` (no more than the pool holds) at a time.

    The results come in the order of the URLs; links the deadline cuts are "deadline" results.
    Anything else (a URL httpx cannot parse, a bug) is raised once the rest have finished.
    """
    semaphore = asyncio.Semaphore(concurrency)

    async def check(url: str) -> LinkResult:
        async with semaphore:  # wait here, where waiting is free, not in the pool (PoolTimeout)
            result = await check_one(client, url)
        if on_result is not None:
            on_result(result)
        return result

    # Tasks, not bare coroutines: the deadline cancels gather() and its list, not their results.
    tasks = [asyncio.create_task(check(url)) for url in urls]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline_s):
            await asyncio.gather(*tasks, return_exceptions=True)
    return [outcome(task, url) for task, url in zip(tasks, urls, strict=True)]


def outcome(task: asyncio.Task[LinkResult], url: str) -> LinkResult:
    if task.cancelled():
        return LinkResult(url, None, "deadline", "not checked before the deadline")
    return task.result()  # re-raises a bug (never a network error), once the rest have finished


# --- Demo plumbing: a local site with links broken on purpose, and the report ------------------
DEMO_TIMEOUT_S = 1.0  # the demo's page that never answers costs this long, then is a timeout
PAGES = {"/": 200, "/docs": 200, "/docs/install": 200, "/blog": 200, "/missing": 404, "/error": 500}
REDIRECTS = {"/moved": "/docs", "/old": "/missing"}  # one to a page that works, one to a 404
SILENT = "/slow"  # never answers: a timeout


class DemoPage(BaseHTTPRequestHandler):
    """The demo site: PAGES answer with their status, REDIRECTS with a 301, SILENT never."""

    def __init__(self, *args: Any, stopping: threading.Event, **kwargs: Any) -> None:
        self.stopping = stopping  # set when the site stops
        super().__init__(*args, **kwargs)  # this handles the request, so it comes last

    def do_GET(self) -> None:
        if self.path == SILENT:
            self.stopping.wait()  # no answer at all, until the site stops
            return
        if self.path in REDIRECTS:
            self.send_response(301)
            self.send_header("Location", REDIRECTS[self.path])
        else:
            self.send_response(PAGES.get(self.path, 404))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the report says what happened."""


class DemoServer(ThreadingHTTPServer):
    request_queue_size = 64  # socketserver's 5 drops connections when a check opens 10 at once
    daemon_threads = False  # so that server_close() waits for every page, SILENT too


@contextlib.contextmanager
def demo_site() -> Generator[list[str]]:
    """Serve the demo site on a free loopback port; yield its links, the last on a closed port."""
    stopping = threading.Event()
    server = DemoServer(("127.0.0.1", 0), partial(DemoPage, stopping=stopping))
    serving = threading.Thread(target=server.serve_forever, args=(0.05,))
    with socket.socket() as closed:  # bound, never listening: a connection to it is refused
        closed.bind(("127.0.0.1", 0))
        serving.start()
        try:  # from here on, whatever happens stops the site
            base = f"http://127.0.0.1:{server.server_port}"
            links = [base + path for path in [*PAGES, *REDIRECTS, SILENT]]
            yield [*links, f"http://127.0.0.1:{closed.getsockname()[1]}/"]
        finally:
            stopping.set()
            server.shutdown()
            server.server_close()
            serving.join()


@contextlib.contextmanager
def first_ctrl_c_only() -> Generator[None]:
    """Let the first Ctrl-C cancel the check and ignore the next: uv forwards a second one."""
    cancel = signal.getsignal(signal.SIGINT)  # asyncio.run()'s handler, which cancels the check

    def once(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if callable(cancel):  # unless Ctrl-C was ignored from the start
            cancel(signum, frame)

    signal.signal(signal.SIGINT, once)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is once:  # no Ctrl-C came: hand the handler back
            signal.signal(signal.SIGINT, cancel)


@dataclass(frozen=True)
class Report:
    """What a check found: the tables show it, --json prints it."""

    checked: int
    concurrency: int
    ok: int
    broken: int
    failed_by_kind: dict[str, int]
    elapsed_s: float
    failures: list[dict[str, str]]  # url, kind and detail of each broken link, in the order given


def check_links(
    urls: list[str], concurrency: int, timeout_s: float, deadline_s: float, as_json: bool
) -> int:
    """check_all() with a stock httpx client, then the report; 1 if any link is broken, else 0."""
    done: list[LinkResult] = []

    async def check_and_report() -> int:
        with first_ctrl_c_only():
            click.echo(f"checking {plural(len(urls), 'link')}, {concurrency} at a time", err=True)
            started = time.perf_counter()
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
                results = await check_all(
                    client, urls, concurrency, deadline_s=deadline_s, on_result=done.append
                )
        report = summarise(results, concurrency, time.perf_counter() - started)
        if as_json:
            click.echo(json.dumps(asdict(report)))
        else:
            show(report)
        return 1 if report.broken else 0  # a broken link fails the check: scripts rely on it

    try:
        return asyncio.run(check_and_report())
    except KeyboardInterrupt as err:
        broken = sum(result.broken is not None for result in done)
        so_far = (
            f"{len(done)}/{plural(len(urls), 'link')} ({len(done) - broken} ok, {broken} broken)"
        )
        raise click.Abort(f"interrupted after {so_far}") from err


def summarise(results: list[LinkResult], concurrency: int, elapsed_s: float) -> Report:
    """The report of a check: counts, and each broken link with why."""
    failures = [
        {"url": result.url, "kind": result.broken, "detail": result.detail}
        for result in results
        if result.broken is not None
    ]
    kinds = Counter(failure["kind"] for failure in failures)
    return Report(
        checked=len(results),
        concurrency=concurrency,
        ok=len(results) - len(failures),
        broken=len(failures),
        failed_by_kind=dict(kinds.most_common()),
        elapsed_s=round(elapsed_s, 4),
        failures=failures,
    )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def show(report: Report) -> None:
    """The broken links as a table, then a line of summary, on stdout."""
    console = Console()
    if report.failures:
        table = Table("URL", "kind", "detail", title=plural(report.broken, "broken link"))
        for failure in report.failures:  # URLs and messages are text, never rich markup
            table.add_row(Text(failure["url"]), failure["kind"], Text(failure["detail"]))
        console.print(table)
    kinds = ", ".join(f"{count} {kind}" for kind, count in report.failed_by_kind.items())
    result = f"{report.ok} ok, {report.broken} broken" + (f" ({kinds})" if kinds else "")
    took = f"in {report.elapsed_s:.2f} s, {report.concurrency} at a time"
    console.print(f"{plural(report.checked, 'link')} checked {took}: {result}", markup=False)


# --- CLI -----------------------------------------------------------------------------------------
class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which slip past its bounds."""

    def convert(self, value: Any, param: Parameter | None, ctx: Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def plain_urls(texts: list[str]) -> list[str]:
    """The texts, once each is known to be a plain http(s) URL; else a click.BadParameter."""
    for text in texts:
        try:  # UnicodeError: a host that is not valid IDNA (httpx decodes it on demand)
            url = httpx.URL(text)
            plain = url.scheme in ("http", "https") and url.host != "" and url.userinfo == b""
        except (UnicodeError, httpx.InvalidURL) as err:
            raise click.BadParameter(f"{text!r}: {err}") from err
        if not plain:
            raise click.BadParameter(f"{text!r} is not a plain http(s) URL")
    return texts


def checked_urls(ctx: Context, param: Parameter, value: tuple[str, ...]) -> list[str]:
    return plain_urls(list(value))


def urls_in_file(ctx: Context, param: Parameter, value: TextIO | None) -> list[str]:
    """The URLs in the file, one a line; blank lines and # comments are skipped."""
    if value is None:
        return []
    try:
        with value:  # read it all now, and close it (click would only after a good parse)
            lines = [line.strip() for line in value]
    except UnicodeError as err:  # not UTF-8 text
        raise click.BadParameter(str(err)) from err
    except OSError as err:  # opened, yet unreadable: a device, a failing disk
        raise click.BadParameter(f"cannot read {value.name}: {err.strerror}") from err
    texts = [line for line in lines if line and not line.startswith("#")]
    if not texts:
        raise click.BadParameter("no URLs")
    return plain_urls(texts)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--url",
    "urls",
    multiple=True,
    callback=checked_urls,
    help="A link to check instead of the demo's; repeat it for more.",
)
@click.option(
    "--urls-file",
    type=click.File(encoding="utf-8"),
    callback=urls_in_file,
    help="Check the links in this file, one a line; blank lines and # comments are skipped.",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 100), default=10, help="The most links checked at once."
)
@click.option(
    "--timeout",
    type=FiniteFloat(0.001, 300),
    show_default=f"{TIMEOUT_S:g}, or {DEMO_TIMEOUT_S:g} in the demo",
    help="Seconds one link may take to answer before it counts as broken (a timeout).",
)
@click.option(
    "--deadline",
    type=FiniteFloat(0.001, 3600),
    default=DEADLINE_S,
    help="Seconds for the whole check; links not checked by then count as broken (a deadline).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(
    ctx: click.Context,
    urls: list[str],
    urls_file: list[str],
    concurrency: int,
    timeout: float | None,
    deadline: float,
    as_json: bool,
) -> None:
    """Check links concurrently and list the broken ones; exit 1 if any link is broken.

    Without --url or --urls-file it checks a local demo site, some of whose links are broken.
    """
    given = [*urls, *urls_file]
    if given:
        ctx.exit(check_links(given, concurrency, timeout or TIMEOUT_S, deadline, as_json))
    with demo_site() as links:
        ctx.exit(check_links(links, concurrency, timeout or DEMO_TIMEOUT_S, deadline, as_json))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
