"""An httpx transport that calls an ASGI app in-process as if it ran in a process of its own.

The tracing lessons' tests (test_tracing.py, test_trace_sampling.py) reach their service B through
`ElsewhereTransport`. It lives here, not in conftest.py, so that conftest imports nothing but the
standard library and pytest, and a lesson graduated without httpx does not depend on it.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

import httpx


class ElsewhereTransport(httpx.AsyncBaseTransport):
    """An app in-process, as if in a process of its own: each request runs in a fresh, empty
    context, so nothing of the caller's current span leaks into it; only the request's headers
    can link them (the tracing lessons' service B)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.asgi = httpx.ASGITransport(app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = self.asgi.handle_async_request(request)
        return await asyncio.create_task(call, context=contextvars.Context())
