"""RATE_LIMIT: requests per caller and window, over the limit answered 429 (Litestar's
rate-limit middleware: its configuration, exclusions, headers and 429).

A caller is its API key, else its bearer token, else its address. The stock middleware keeps
a timestamp per request in a JSON document it decodes and encodes again on every request, which
costs more than a prediction at the limits a model service needs; here each caller has one
counter per fixed window in memory (one process serves; each replica limits on its own).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from time import time
from typing import Any

from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    CacheObject,
    RateLimitConfig,
    RateLimitMiddleware,
)

# Answered whatever the load: probes, scrapes and documentation.
UNLIMITED = ["^/health", "^/ready", "^/metrics", "^/schema", "^/ping", "^/v2/health", "^/v2$"]
_KEY, _AUTHORIZATION = b"x-api-key", b"authorization"
_MAX_CALLERS = 100_000  # windows kept before the expired ones are swept


class Count:
    """Stands for CacheObject.history: only its length (requests in the window) is read."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def __len__(self) -> int:
        return self.n


@dataclass
class CallerLimit(RateLimitConfig):
    """The configuration, holding the windows every route's middleware counts in (Litestar
    makes one middleware per route; the limit is per caller, whatever the endpoint)."""

    windows: dict[str, CacheObject] = field(default_factory=dict)


class CountingRateLimit(RateLimitMiddleware):
    """Litestar's RateLimitMiddleware with a counter per caller and window, and without its
    lock: counting here never suspends, and the lock's checkpoint cost every request a turn
    of the event loop."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = scope["litestar_app"].request_class(scope)
        window = await self.retrieve_cached_history(self.cache_key_from_request(request), None)
        if len(window.history) >= self.max_requests:
            raise TooManyRequestsException(headers=self.create_response_headers(window))
        window.history.n += 1  # type: ignore[attr-defined]
        await self.app(scope, receive, self.create_send_wrapper(send, window))

    async def retrieve_cached_history(self, key: str, store: Any) -> CacheObject:
        now = int(time())
        windows = self.config.windows
        window = windows.get(key)
        if window is None or window.reset <= now:
            if len(windows) >= _MAX_CALLERS:
                for old in [k for k, w in windows.items() if w.reset <= now]:
                    del windows[old]
            window = windows[key] = CacheObject(history=Count(),  # type: ignore[arg-type]
                                                reset=now + DURATION_VALUES[self.unit])
        return window

    def create_send_wrapper(self, send: Any, cache_object: CacheObject) -> Any:
        """The RateLimit-* headers appended to the answer's (none of them is there yet; the
        stock wrapper searches the headers once per header it sets)."""
        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *(
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in self.create_response_headers(cache_object).items())]
            await send(message)

        return send_wrapper


def caller(request: Any) -> str:
    """Who the limit counts: the API key, else the bearer token (digests, never the secret
    itself), else the client address."""
    for name, value in request.scope["headers"]:
        if name == _KEY or name == _AUTHORIZATION:
            return hashlib.blake2b(name + b"\0" + value, digest_size=12).hexdigest()
    client = request.scope.get("client")
    return f"address:{client[0]}" if client else "address:unknown"


def config(limit: tuple[int, str]) -> CallerLimit:
    """The middleware for `limit` (requests, unit) per caller."""
    requests, unit = limit
    return CallerLimit(rate_limit=(unit, requests), exclude=UNLIMITED,  # type: ignore[arg-type]
                       identifier_for_request=caller, middleware_class=CountingRateLimit)
