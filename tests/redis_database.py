"""A Redis database of its own for each test module that runs a lesson on a real Redis server.

The Celery lessons' tests (test_celery_pipeline.py, test_celery_redelivery.py,
test_celery_workflows.py) each define a module-scoped `redis_url` fixture that yields from
`redis_database`. It lives here, not in conftest.py, so that conftest imports nothing but the
standard library and pytest, and a lesson graduated without Redis does not depend on redis.
"""

import os
import zlib
from collections.abc import Generator

import pytest
import redis


def redis_database(request: pytest.FixtureRequest) -> Generator[str]:
    """A database of its own on the real Redis server that tests/run.py starts, emptied before and
    after. Each module gets one of the server's 256 (by a hash of its name), so modules on
    different xdist workers never share keys. Outside CI, without a server, these tests skip."""
    server = os.environ.get("TEST_REDIS_URL")
    if not server:
        if os.environ.get("CI"):
            pytest.fail("CI tests on Redis, but TEST_REDIS_URL is unset")
        pytest.skip("no Redis server: run the suite through tests/run.py, which starts one")
    url = f"{server}/{zlib.crc32(request.module.__name__.encode()) % 256}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
