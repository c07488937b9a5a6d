"""Put tenacity's clock and its default sleep on conftest's FakeClock, so no retry test sleeps.

The retry lessons' tests use it: test_retry_after.py and test_retry_client.py call
`tenacity_reads` around one call, and they, test_timeout_order.py and test_try_it.py use
`fake_tenacity_time` for in-process CLI runs (through a `fake_time` fixture of their own, or
directly). It lives here, not in conftest.py, so that conftest imports nothing but the standard
library and pytest, and a lesson graduated without tenacity does not depend on it.
"""

from collections.abc import Generator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import tenacity

from conftest import FakeClock


@contextmanager
def tenacity_reads(clock: FakeClock) -> Generator[None]:
    """Make tenacity's own clock (RetryCallState timestamps) the fake one, for one call."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tenacity, "time", SimpleNamespace(monotonic=clock))
        yield


def fake_tenacity_time(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """For in-process CLI runs: tenacity's clock and its default sleep, both on a fake clock."""
    clock = FakeClock()
    monkeypatch.setattr(tenacity, "time", SimpleNamespace(monotonic=clock))
    monkeypatch.setattr(tenacity.nap, "time", SimpleNamespace(sleep=clock.sleep))
    monkeypatch.setenv("COLUMNS", "200")  # rich's table on one line per row
    return clock
