"""Who may ask, and how often: optional API keys and a per-client rate limit.

* **API keys** (``api.api_keys``, SecretStr): when any is set, every ``/v1`` request
  sends one in ``X-API-Key``; a missing or wrong key is a 401. Each configured key is
  compared in constant time (``hmac.compare_digest``), all of them every time, so
  neither the time taken nor the log says which key came close. No key is logged.
* **Rate limit** (``api.rate_limit``, e.g. ``120/minute``): a moving window per
  client, counted by the ``limits`` library in this process's memory. The client is
  its key when keys are set (the digest of it, never the key), else its address.
  Over the limit is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import SecretStr

KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="needed when the server sets api.api_keys",
)


class Guard:
    """The API's dependency for ``/v1``: checks the key, then counts the request."""

    def __init__(self, keys: Sequence[SecretStr], rate_limit: str) -> None:
        self._keys = [k.get_secret_value().encode() for k in keys]
        self._limits: list[RateLimitItem] = parse_many(rate_limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(
        self, request: Request, key: Annotated[str | None, Security(KEY_HEADER)] = None
    ) -> None:
        client = self._client(request, key)
        for limit in self._limits:
            if not self._limiter.hit(limit, client):
                reset = self._limiter.get_window_stats(limit, client).reset_time
                retry = max(1, math.ceil(reset - time.time()))
                raise HTTPException(
                    429,
                    f"rate limit of {limit} exceeded; retry in {retry} s",
                    headers={"Retry-After": str(retry)},
                )

    def _client(self, request: Request, key: str | None) -> str:
        if not self._keys:
            return f"addr:{request.client.host if request.client else 'unknown'}"
        given = (key or "").encode()
        matched = False
        for known in self._keys:  # every key, every time: constant time overall
            matched |= hmac.compare_digest(given, known)
        if not matched:
            raise HTTPException(
                401,
                "a valid API key is needed in the X-API-Key header",
                headers={"WWW-Authenticate": "APIKey"},
            )
        return "key:" + hashlib.sha256(given).hexdigest()[:16]
