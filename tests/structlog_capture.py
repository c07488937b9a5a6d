"""Capture a structlog lesson's log lines in a StringIO, and undo its logging setup afterwards.

The structured logging lessons' tests (test_correlation_id.py, test_structured_logging.py) use
`structlog_into`. It lives here, not in conftest.py, so that conftest imports nothing but the
standard library and pytest, and a lesson graduated without structlog does not depend on it.
"""

import io
import logging
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TextIO

import structlog


@contextmanager
def structlog_into(configure: Callable[[TextIO], None]) -> Generator[io.StringIO]:
    """A lesson's logging pipeline, set up to write into a StringIO, and undone afterwards (the
    root logger's handlers and level, structlog's defaults). Use it module-scoped: a lesson's
    module-level logger is cached on first use and keeps the first stream it wrote to."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    sink = io.StringIO()
    configure(sink)
    try:
        yield sink
    finally:
        structlog.reset_defaults()
        root.handlers, root.level = saved[0], saved[1]
