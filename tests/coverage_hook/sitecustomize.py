"""Start coverage in every Python process the test suite starts, the lessons' own included.

The harness (tests/run.py) puts this folder on PYTHONPATH and names its coverage settings in
COVERAGE_PROCESS_START, so pytest, each `uv run scripts/<name>.py` and their worker processes all
record which lines of scripts/ ran. `coverage.process_startup()` does nothing without that variable.
"""

try:
    import coverage
except ImportError:  # a lesson run in its own environment alone (the isolation check)
    pass
else:
    coverage.process_startup()
