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
               transport), so one dead host never hides the rest; the exit status is what a
               script needs: 0 when every link works, 1 when any is broken, 2 for bad usage.
When to use:   CI checks of docs, READMEs and sitemaps: any list of URLs whose breakage should fail.
When not to:   Finding the links in pages (parse them first, or use lychee); hosts that rate-limit
               you (lower CONCURRENCY); measuring a fan-out's speed (async_fetch.py).
Run:           uv run scripts/link_check.py
               uv run scripts/link_check.py --url https://example.org/ --urls-file links.txt --json
               The demo checks a local site with links broken on purpose, so it exits 1, as every
               check that finds a broken link does.
Try it:        --timeout 5: the link that never answers holds the run for 5 s; the other links
               are done long before, as they are checked alongside it.
               --url http://127.0.0.1:9/; echo $?: nothing listens there: "transport", exit 1.
"""

import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO

import click
import httpx
from click import Context, Parameter
from rich.console import Console
from rich.table import Table
from rich.text import Text

# --- The pattern ---------------------------------------------------------------------------------
TIMEOUT_S = 10  # per link: a slow site that works answers well within it
CONCURRENCY = 10  # links at once: a slow host hides behind the rest, and no host sees a flood


@dataclass(frozen=True, slots=True)
class LinkResult:
    url: str  # as given
    status: int | None  # the last answer's status, after redirects; None when no answer came
    broken: str | None = None  # "http 404", "timeout", "transport"; None if the link works
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
    on_result: Callable[[LinkResult], None] | None = None,
) -> list[LinkResult]:
    """Check every link, at most `concurrency` (no more than the pool holds) at a time.

    The results come in the order of the URLs. A URL httpx cannot parse raises httpx.InvalidURL.
    """
    semaphore = asyncio.Semaphore(concurrency)

    async def check(url: str) -> LinkResult:
        async with semaphore:  # wait here, where waiting is free, not in the pool (PoolTimeout)
            result = await check_one(client, url)
        if on_result is not None:
            on_result(result)
        return result

    return await asyncio.gather(*[check(url) for url in urls])


# --- Demo plumbing: a local site with links broken on purpose, and the report ------------------
DEMO_TIMEOUT_S = 1  # the demo's link that never answers costs this long, then is a timeout
PAGES = {"/": 200, "/docs": 200, "/blog": 200, "/missing": 404, "/error": 500}


class DemoPage(BaseHTTPRequestHandler):
    """The demo site: each of PAGES answers with its status, and any other path with a 404."""

    timeout = 1.0  # a connection that never sends its request (a client cut short) is dropped

    def do_GET(self) -> None:
        self.send_response(PAGES.get(self.path, 404))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the report says what happened."""


@contextlib.contextmanager
def demo_site() -> Generator[list[str]]:
    """Serve PAGES on a free loopback port; yield their links, then one silent, one refused."""
    server = HTTPServer(("127.0.0.1", 0), DemoPage)  # one page at a time: each answers at once
    serving = threading.Thread(target=server.serve_forever, args=(0.05,))
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts the connection, and nobody ever answers: a timeout
        closed.bind(("127.0.0.1", 0))  # bound, never listening: a connection to it is refused
        serving.start()
        try:  # from here on, whatever happens stops the site
            links = [f"http://127.0.0.1:{server.server_port}{path}" for path in PAGES]
            links.append(f"http://127.0.0.1:{silent.getsockname()[1]}/silent")
            yield [*links, f"http://127.0.0.1:{closed.getsockname()[1]}/"]
        finally:
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
    ok: int
    broken: int
    failed_by_kind: dict[str, int]
    elapsed_s: float
    failures: list[dict[str, str]]  # url, kind and detail of each broken link, in the order given


def check_links(urls: list[str], timeout_s: float, as_json: bool) -> int:
    """check_all() with a stock httpx client, then the report; 1 if any link is broken, else 0."""

    async def check_and_report() -> int:
        with first_ctrl_c_only():
            click.echo(f"checking {plural(len(urls), 'link')}, {CONCURRENCY} at a time", err=True)
            started = time.perf_counter()
            limits = httpx.Limits(max_connections=CONCURRENCY)
            async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
                results = await check_all(client, urls, CONCURRENCY)
        report = summarise(results, time.perf_counter() - started)
        if as_json:
            click.echo(json.dumps(asdict(report)))
        else:
            show(report)
        return 1 if report.broken else 0  # a broken link fails the check: scripts rely on it

    try:
        return asyncio.run(check_and_report())
    except KeyboardInterrupt as err:  # run() says "interrupted" and exits 130
        raise click.Abort() from err


def summarise(results: list[LinkResult], elapsed_s: float) -> Report:
    """The report of a check: counts, and each broken link with why."""
    failures = [
        {"url": result.url, "kind": result.broken, "detail": result.detail}
        for result in results
        if result.broken is not None
    ]
    kinds = Counter(failure["kind"] for failure in failures)
    return Report(
        checked=len(results),
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
    checked = f"{plural(report.checked, 'link')} checked in {report.elapsed_s:.2f} s"
    console.print(f"{checked}: {result}", markup=False)


# --- CLI -----------------------------------------------------------------------------------------
def checked_urls(ctx: Context, param: Parameter, texts: Sequence[str]) -> list[str]:
    """The texts, once each is known to be a plain http(s) URL; else a click.BadParameter."""
    for text in texts:
        try:  # UnicodeError: a host that is not valid IDNA (httpx decodes it on demand)
            url = httpx.URL(text)
            plain = url.scheme in ("http", "https") and url.host != ""
        except (UnicodeError, httpx.InvalidURL) as err:
            raise click.BadParameter(f"{text!r}: {err}") from err
        if url.userinfo:  # never echo a password into a log
            raise click.BadParameter(f"{url.copy_with(userinfo=None)} has credentials in it")
        if not plain:
            raise click.BadParameter(f"{text!r} is not a plain http(s) URL")
    return list(texts)


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
    return checked_urls(ctx, param, texts)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--url", "urls", multiple=True, callback=checked_urls, help="A URL to check; repeat.")
@click.option(
    "--urls-file",
    type=click.File(encoding="utf-8"),
    callback=urls_in_file,
    help="Check the links in this file, one a line; blank lines and # comments are skipped.",
)
@click.option("--timeout", type=click.IntRange(1, 300), help="Seconds per link [10; demo: 1].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def cli(
    ctx: Context, urls: list[str], urls_file: list[str], timeout: int | None, as_json: bool
) -> None:
    """Check links concurrently and list the broken ones; exit 1 if any link is broken.

    Without --url or --urls-file it checks a local demo site, some of whose links are broken.
    """
    given = [*urls, *urls_file]
    if given:
        ctx.exit(check_links(given, timeout or TIMEOUT_S, as_json))
    with demo_site() as links:
        ctx.exit(check_links(links, timeout or DEMO_TIMEOUT_S, as_json))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or the one check_links() raises
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
