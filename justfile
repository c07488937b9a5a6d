# Recipes for working on the collection. `just` alone lists them and the lessons.
# Everything runs through uv; the only other requirement is Python 3.11 on PATH.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

# uv must never download an interpreter: the machines here have Python 3.11 and no internet.
export UV_PYTHON_DOWNLOADS := "never"

# Linters are pinned here, not by the date, so a new ruff or ty release never turns CI red.
ruff := "uvx ruff@0.17.5"
ty := "uvx ty@0.0.104"

# List the recipes and the lessons.
default:
    @just --list --unsorted
    @echo
    @just lessons

# Run a lesson: just run async_fetch --concurrency 5
run name *args:
    uv run "scripts/$1.py" "${@:2}"

# Run the whole test suite (extra arguments go to pytest): just test -k starter -x
test *args:
    uv run tests/run.py "$@"

# Lint and check formatting.
lint:
    {{ ruff }} check .
    {{ ruff }} format --check .

# Format and apply safe lint fixes.
fmt:
    {{ ruff }} format .
    {{ ruff }} check --fix .

# Type-check each lesson against its own environment, and the tests against the test environment.
typecheck:
    #!/usr/bin/env bash
    set -euo pipefail
    for script in scripts/*.py; do
        uv sync --quiet --script "$script"
        {{ ty }} check --no-progress --python "$(uv python find --script "$script")" "$script"
    done
    {{ ty }} check --no-progress --python "$(uv run tests/run.py --env)" \
        --extra-search-path scripts --extra-search-path tests tests

# Everything CI runs: lint, type checks, tests.
check: lint typecheck test

# Start a lesson from the starter: scripts/NAME.py, tests/test_NAME.py and a README catalog row.
new name:
    #!/usr/bin/env python3
    import re, sys
    from pathlib import Path
    name = "{{ name }}"
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        sys.exit(f"error: NAME must be a snake_case module name, got {name!r}")
    script, test = Path(f"scripts/{name}.py"), Path(f"tests/test_{name}.py")
    for path in (script, test):
        if path.exists():
            sys.exit(f"error: {path} already exists")
    def rename(text: str) -> str:
        return re.sub(r"\bstarter\b", name, text)
    script.write_text(rename(Path("scripts/starter.py").read_text()))
    test.write_text(rename(Path("tests/test_starter.py").read_text()))
    readme = Path("README.md")
    rows = readme.read_text().splitlines()
    end = starter = next(i for i, row in enumerate(rows) if row.startswith("| [starter]"))
    while end + 1 < len(rows) and rows[end + 1].startswith("|"):
        end += 1  # the new row goes at the end of the catalog table
    rows.insert(end + 1, rename(rows[starter]))
    readme.write_text("\n".join(rows) + "\n")
    print(f"created {script}, {test} and a README catalog row: edit all three")

# Build every lesson's environment now, so that afterwards `UV_OFFLINE=1 uv run ...` works.
warm:
    #!/usr/bin/env bash
    set -euo pipefail
    for script in scripts/*.py; do
        echo "warming $script"
        uv sync --quiet --script "$script"
    done
    uv run tests/run.py --env > /dev/null
    echo "done: every lesson now runs with UV_OFFLINE=1"

# Move the shared exclude-newer date in every script and the harness, then run the full check.
upgrade date:
    #!/usr/bin/env bash
    set -euo pipefail
    [[ "$1" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:]+Z)?$ ]] || { echo "error: DATE must look like 2026-11-20 or 2026-11-20T00:00:00Z" >&2; exit 2; }
    date="$1"; [[ "$date" == *T* ]] || date="${date}T00:00:00Z"
    sed -i -E "s/^# exclude-newer = \".*\"$/# exclude-newer = \"$date\"/" scripts/*.py tests/run.py
    echo "exclude-newer is now $date in $(ls scripts/*.py tests/run.py | wc -l) files"
    just check

# Run the benchmark scenarios RUNS times, interleaved: one --json line per run, then the medians.
bench runs="3":
    #!/usr/bin/env python3
    import json, statistics, subprocess
    # (lesson, arguments, the figures that judge it). Figures in nested JSON are dotted paths
    # (clients.0.ratio). The machine is noisy, so judge medians of runs made in the same minutes.
    SCENARIOS = [
        ("async_fetch", "--requests 200 --concurrency 20 --fail-percent 0", ["ratio"]),
        ("async_fetch", "--requests 1000 --concurrency 100 --fail-percent 0", ["ratio"]),
        ("async_fetch", "--requests 5000 --concurrency 500 --fail-percent 0", ["ratio", "elapsed_s"]),
        (
            "http_client_pools",
            "--requests 5000 --concurrency 500 --client aiohttp",
            ["clients.0.ratio", "clients.0.elapsed_s"],
        ),
        ("http_client_pools", "", ["clients.0.ratio", "clients.1.ratio", "clients.2.ratio"]),
        ("process_pool", "", ["speedup", "bare_map_speedup"]),
        ("process_pool", "--workers 1", ["speedup", "bare_map_speedup"]),
        ("retry_client", "", ["elapsed_s"]),
        ("retry_after", "", ["elapsed_s"]),
        ("retry_jitter", "--mode none", ["second_round_spread_s"]),
        ("retry_jitter", "", ["second_round_spread_s"]),
        ("retry_jitter", "--mode retry-after-jitter", ["second_round_spread_s"]),
        ("async_queue", "--workers 50 --items 2000 --latency-ms 50", ["ratio", "peak_depth"]),
        ("async_pagination", "--take 200", ["elapsed_s"]),
        ("async_pagination", "--take 200 --prefetch", ["elapsed_s"]),
        ("async_offload", "", ["modes.1.lag_p99_ms", "modes.3.lag_p99_ms", "modes.2.lag_max_ms"]),
        ("async_cancellation", "", ["cancelled", "cleaned_up"]),
        ("async_shutdown", "--run-ms 500", ["shutdown_s", "cancelled", "cleaned_up"]),
        ("fail_safe", "", ["fallbacks", "last_good_served", "elapsed_s"]),
        ("timeout_order", "", ["orders.0.elapsed_s", "orders.1.attempts", "orders.1.elapsed_s"]),
        (
            "circuit_breaker",
            "",
            ["fewer_reached", "runs.0.p50_outage_ms", "runs.1.p50_outage_ms", "runs.0.recovery_s"],
        ),
        ("batch_result", "", ["failed", "retries", "writes", "elapsed_s"]),
        ("validation", "--rows 10000 --bad-percent 0", ["valid"]),
        (
            "error_groups",
            "--missing 0 --malformed 0 --slow 0 --down 0 --good 50",
            ["ok", "elapsed_s"],
        ),
        ("correlation_id", "--requests 300", ["lines_without_id", "ids_mixed"]),
        ("metrics", "--ids 3000", ["series", "series_raw_path"]),
        ("latency_histograms", "", ["p95_hist_ms", "p95_true_ms"]),
        ("trace_sampling", "--requests 400", ["kept", "partial"]),
        (
            "observability_overhead",
            "--requests 2000 --rounds 7",
            ["extra_us.logging", "extra_us.metrics", "extra_us.tracing"],
        ),
        ("job_queue", "--jobs 100", ["jobs_per_s", "lost", "duplicate_effects"]),
        ("celery_pipeline", "", ["roundtrip_p50_ms", "retried", "dead_lettered"]),
        ("celery_workflows", "--chord 200", ["tasks_per_s"]),
    ]
    # Figures set side by side, run by run: (label, (scenario index, figure), (index, figure)).
    VERSUS = [
        (
            "async_fetch 5000/500 against raw aiohttp (elapsed)",
            (2, "elapsed_s"),
            (3, "clients.0.elapsed_s"),
        ),
        (
            "process_pool: map_bounded against a bare Executor.map (speed-up)",
            (5, "speedup"),
            (5, "bare_map_speedup"),
        ),
    ]

    def figure(result, path):
        for key in path.split("."):
            result = result[int(key)] if key.isdigit() else result[key]
        return result

    values = {(i, path): [] for i, (_, _, paths) in enumerate(SCENARIOS) for path in paths}
    for _ in range(int("{{ runs }}")):
        for i, (lesson, args, paths) in enumerate(SCENARIOS):
            command = ["uv", "run", "--quiet", f"scripts/{lesson}.py", *args.split(), "--json"]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            print(f"{lesson} {args}: {out.strip()}", flush=True)
            for path in paths:
                values[i, path].append(figure(json.loads(out), path))
    print("\nmedians:")
    for (i, path), runs in values.items():
        lesson, args, _ = SCENARIOS[i]
        print(f"  {lesson} {args}: median {path} {statistics.median(runs)}")
    for label, mine, theirs in VERSUS:  # run by run, each pair minutes apart at most
        ratios = [a / b for a, b in zip(values[mine], values[theirs], strict=True)]
        print(f"  {label}: median {statistics.median(ratios):.3f} of {ratios}")

# Graduate every lesson that has a click CLI into a package of its own, tests and wheel included.
graduate-all:
    #!/usr/bin/env python3
    import json, subprocess, sys, tempfile, time
    from pathlib import Path
    # graduate.py itself stays out: its tests graduate the collection's lessons, which a package
    # of graduate alone does not have. Redis tests (the Celery lessons) need TEST_REDIS_URL.
    lessons = [
        path.stem
        for path in sorted(Path("scripts").glob("*.py"))
        if "\nimport click\n" in path.read_text(encoding="utf-8") and path.stem != "graduate"
    ]
    failed = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="graduate-all-") as scratch:
        for lesson in lessons:
            command = ["uv", "run", "--quiet", "scripts/graduate.py", f"scripts/{lesson}.py"]
            command += ["--to", f"{scratch}/{lesson}", "--json"]
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            steps = json.loads(proc.stdout)["steps"] if proc.stdout else []
            seconds = sum(step["seconds"] for step in steps)
            verdict = "ok    " if proc.returncode == 0 else "FAILED"
            why = "" if proc.returncode == 0 else f": {proc.stderr.strip().splitlines()[-1]}"
            print(f"{verdict} {lesson} ({len(steps)} steps, {seconds:.1f} s){why}", flush=True)
            if proc.returncode != 0:
                failed.append(lesson)
    total = time.perf_counter() - started
    print(f"{len(lessons) - len(failed)} of {len(lessons)} lessons graduated in {total:.0f} s")
    sys.exit(1 if failed else 0)

# Run every lesson's default run in the workshop path's order: a verdict a line, the total at the end.
tour:
    #!/usr/bin/env python3
    import subprocess, sys, time
    # (lesson, arguments, the exit code its default run ends with). The order is README's path;
    # link_check, validation and error_groups exit 1 on purpose: their demos hold failures.
    TOUR = [
        ("starter", "", 0), ("cli_click", "", 0), ("cli_argparse", "", 0), ("atomic_write", "", 0),
        ("async_fetch", "", 0), ("async_queue", "", 0), ("async_pagination", "", 0),
        ("async_cancellation", "", 0), ("async_shutdown", "", 0), ("async_offload", "", 0),
        ("link_check", "", 1), ("http_client_pools", "", 0), ("process_pool", "", 0),
        ("retry_client", "", 0), ("retry_after", "", 0), ("retry_jitter", "", 0),
        ("timeout_order", "", 0), ("fail_safe", "", 0), ("circuit_breaker", "--outage-ms 800", 0),
        ("error_groups", "", 1), ("validation", "", 1), ("batch_result", "", 0),
        ("settings", "", 0), ("structured_logging", "", 0), ("correlation_id", "", 0),
        ("metrics", "", 0), ("latency_histograms", "", 0), ("tracing", "", 0),
        ("trace_sampling", "", 0), ("observability_overhead", "", 0), ("job_queue", "", 0),
        ("jobs_api", "", 0), ("celery_pipeline", "", 0), ("celery_redelivery", "", 0),
        ("celery_workflows", "", 0), ("graduate", "", 0),
    ]
    started = time.monotonic()
    failed = 0
    for number, (lesson, args, expected) in enumerate(TOUR, start=1):
        began = time.monotonic()
        command = ["uv", "run", "--quiet", f"scripts/{lesson}.py", *args.split(), "--json"]
        if lesson == "graduate":
            command.remove("--json")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        ok = done.returncode == expected
        if not ok:
            failed += 1
        verdict = "ok" if ok else f"FAILED (exit {done.returncode}, expected {expected})"
        print(f"{number:2}. {lesson:<22} {time.monotonic() - began:5.1f} s  {verdict}", flush=True)
    total = time.monotonic() - started
    print(f"{len(TOUR)} lessons in {total:.0f} s; {failed or 'none'} failed")
    sys.exit(1 if failed else 0)

# The lessons with their one-line summaries.
[private]
lessons:
    #!/usr/bin/env python3
    import ast
    from pathlib import Path
    print("Lessons (just run NAME):")
    for path in sorted(Path("scripts").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        print(f"    {path.stem:<16} {doc.partition(chr(10))[0]}")
