"""A bandwidth limit around any backend: puts and gets wait for their bytes' tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from ...ports import Backend, ObjectInfo


class TokenBucket:
    """``rate`` bytes per second on average, bursts up to one second's worth."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep):  # noqa: ANN001
        self.rate, self._clock, self._sleep = float(rate), clock, sleep
        self._tokens = self.rate
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            self._sleep(wait)


class RateLimited:
    """``ports.Backend`` that moves at most ``rate`` bytes per second through ``inner``."""

    def __init__(self, inner: Backend, rate: float):
        self.inner = inner
        self.bucket = TokenBucket(rate)
        self.url = inner.url
        self.capabilities = inner.capabilities

    def put(self, key: str, data: bytes) -> None:
        self.bucket.take(len(data))
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, offset, length)
        self.bucket.take(len(data))
        return data

    def stat(self, key: str) -> ObjectInfo | None:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def flush(self) -> None:
        self.inner.flush()
