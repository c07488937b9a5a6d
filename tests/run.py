# /// script
# requires-python = ">=3.11"
# dependencies = []
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Run the whole test suite: one pytest session, in one environment holding every lesson's deps.

Usage:  uv run tests/run.py [PYTEST ARGS]    e.g. uv run tests/run.py -k async_fetch -x
        uv run tests/run.py --env            build the environment, print its interpreter path

The environment is tests/requirements.txt plus the union of every script's PEP 723 dependencies,
resolved with the collection's exclude-newer date (this file's own, which every script shares).
uv ignores a script's own exclude-newer when the script is read as a requirements file, so the
date is passed explicitly. The environment lives in tests/.venv (git-ignored) and is synced
exactly on every run, so a dependency removed from a script is removed from it too.

The Celery lessons are tested on a real Redis too: unless TEST_REDIS_URL already names one, the
harness starts a throwaway redis-server on loopback (Debian's package; .ci/run installs it) and
stops it after the tests. Without it the Redis tests skip, except in CI, where they fail.

Every process the tests start is measured, the lessons run under `uv run` included (see
tests/coverage_hook/): after the tests it prints the line coverage of scripts/, and a whole run
fails below the `fail_under` in tests/coverage.ini.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
ENV = TESTS / ".venv"
COVERAGE_DATA = TESTS / ".coverage-data"  # one file per measured process, then combined
# coverage alone, for the processes that run in a lesson's own environment (see coverage_hook/)
COVERAGE_ONLY = ENV / "coverage-only"
BLOCK = re.compile(r"(?m)^# /// script\s*$\n(?P<body>(?:^#(?: .*)?$\n)+)^# ///\s*$")


def exclude_newer() -> str:
    """The collection's dependency cut-off date, read from this file's own PEP 723 block."""
    match = BLOCK.search(Path(__file__).read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit("tests/run.py has lost its PEP 723 block")
    body = "\n".join(
        line.removeprefix("#").removeprefix(" ") for line in match["body"].splitlines()
    )
    return tomllib.loads(body)["tool"]["uv"]["exclude-newer"]


def sync_environment() -> Path:
    """Create or update tests/.venv to exactly the union of the test and lesson dependencies."""
    scripts = sorted(str(path) for path in (ROOT / "scripts").glob("*.py"))
    pinned = ENV / "requirements.txt"
    requirements = [str(TESTS / "requirements.txt"), *scripts]
    subprocess.run(["uv", "venv", "--quiet", "--allow-existing", str(ENV)], check=True)
    compile_command = ["uv", "pip", "compile", "--quiet", "--exclude-newer", exclude_newer()]
    subprocess.run([*compile_command, *requirements, "-o", str(pinned)], check=True)
    subprocess.run(["uv", "pip", "sync", "--quiet", "--python", str(ENV), str(pinned)], check=True)
    python = ENV / "bin" / "python"
    pins = pinned.read_text(encoding="utf-8").splitlines()
    coverage = next(pin for pin in pins if pin.startswith("coverage=="))
    only = ["--python", str(python), "--target", str(COVERAGE_ONLY), coverage]
    subprocess.run(["uv", "pip", "install", "--quiet", *only], check=True)
    return python


@contextmanager
def redis_server() -> Generator[str | None]:
    """Start a throwaway Redis server on a free loopback port; yield its URL, or None."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    program = shutil.which("redis-server")
    if program is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="service-patterns-redis-") as scratch:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # In memory only, and 256 databases so that test modules can each take one of their own.
        options = ["--bind", "127.0.0.1", "--port", str(port), "--dir", scratch, "--save", ""]
        options += ["--appendonly", "no", "--databases", "256", "--loglevel", "warning"]
        server = subprocess.Popen([program, *options], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10.0
            while not ready(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)  # the poll's interval
            yield f"redis://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait()


def ready(port: int) -> bool:
    """Whether a Redis server answers PING on this loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def run_measured(python: Path, pytest_args: list[str]) -> int:
    """Run pytest with line coverage of scripts/ in every process it starts; return its exit code.

    The gate (fail_under in coverage.ini) applies to a whole run: a run narrowed with pytest
    arguments (-k, a file) prints the figure but does not fail on it.
    """
    COVERAGE_DATA.mkdir(exist_ok=True)
    for stale in COVERAGE_DATA.glob(".coverage*"):
        stale.unlink()
    env = os.environ | {
        # The hook's sitecustomize starts coverage in every Python process, the lessons included.
        "PYTHONPATH": os.pathsep.join([str(TESTS / "coverage_hook"), str(COVERAGE_ONLY)]),
        "COVERAGE_PROCESS_START": str(TESTS / "coverage.ini"),
        "COVERAGE_FILE": str(COVERAGE_DATA / ".coverage"),
    }
    pytest = [str(python), "-m", "pytest", "-c", str(TESTS / "pytest.ini"), "--rootdir", str(TESTS)]
    tests = subprocess.run([*pytest, *pytest_args], cwd=ROOT, env=env, check=False).returncode
    coverage = [str(python), "-m", "coverage"]
    settings = ["--rcfile", str(TESTS / "coverage.ini")]
    combine = [*coverage, "combine", "--quiet", *settings]
    subprocess.run(combine, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
    report = [*coverage, "report", *settings]
    if pytest_args:  # a narrowed run: print the figure, but only a whole run is held to it
        report += ["--fail-under", "0"]
    covered = subprocess.run(report, cwd=ROOT, env=env, check=False).returncode
    return tests or covered


def main() -> None:
    args = sys.argv[1:]
    try:
        python = sync_environment()
    except subprocess.CalledProcessError as err:
        sys.exit(f"could not build the test environment: {err}")
    if args == ["--env"]:
        print(python)
        return
    with redis_server() as redis_url:
        if redis_url is not None:
            os.environ["TEST_REDIS_URL"] = redis_url
        code = run_measured(python, args)
    sys.exit(code)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # pytest has already reported what it ran
        sys.exit(130)
