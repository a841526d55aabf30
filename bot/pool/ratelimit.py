"""The pool's rate limits, shared by every worker: token buckets kept in Redis, a channel wrapper.

Each `acquire()` reserves the next free instant in one atomic Lua script, on the Redis server's
clock, so a limit of 10 messages/s holds for all workers together on any number of machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..channels import Channel
from ..config import Settings, mask_url
from ..errors import BotError, TransientSendError
from ..models import Digest, Receipt

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst (bucket size). Returns the microseconds the
# caller must wait before its message may go; the token is reserved either way, so callers
# queue in arrival order and none retries in a busy loop.
_RESERVE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(s[1]) or burst
local ts = tonumber(s[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000000) - 1
local wait = 0
if tokens < 0 then wait = math.ceil(-tokens * 1000000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return wait
"""


def ratelimit_url(settings: Settings) -> str:
    """The Redis holding the pool's rate limits: DIGESTBOT_RATELIMIT_URL, else a redis:// broker."""
    if settings.ratelimit_url:
        return settings.ratelimit_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return ""


class SharedRateLimiter:
    """At most `rate` acquisitions per second across every process using the same Redis key."""

    def __init__(
        self,
        url: str,
        key: str,
        rate: float,
        burst: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        import redis

        self.url = url
        self.key = key
        self.rate = rate
        self.burst = max(1.0, burst)
        self.sleep = sleep
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._script: Any = self._redis.register_script(_RESERVE)

    def reserve(self) -> float:
        """Take the next token; return the seconds to wait before using it."""
        import redis

        try:
            return (
                int(self._script(keys=[self.key], args=[repr(self.rate), repr(self.burst)])) / 1e6
            )
        except redis.RedisError as e:
            raise BotError(
                f"the rate-limit store {mask_url(self.url)} failed ({e}); check DIGESTBOT_RATELIMIT_URL "
                "(or DIGESTBOT_BROKER_URL) and that Redis is running"
            ) from e

    def acquire(self) -> None:
        """Block until this process may send one message."""
        wait = self.reserve()
        if wait > 0:
            self.sleep(wait)

    def close(self) -> None:
        """Release the Redis connection."""
        self._redis.close()


class RateLimited(Channel):
    """A channel whose sends wait for the pool's shared rate limit (one bucket, or one per destination)."""

    def __init__(
        self, inner: Channel, url: str, key: str, rate: float, per_destination: bool = False
    ) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.url, self.key, self.rate, self.per_destination = url, key, rate, per_destination
        self.limiters: dict[str, SharedRateLimiter] = {}

    def limiter(self, digest: Digest) -> SharedRateLimiter:
        """The bucket this digest's send draws from: the channel's, or its destination's (a Slack channel)."""
        key = f"{self.key}:{digest.subscriber.address}" if self.per_destination else self.key
        if key not in self.limiters:
            self.limiters[key] = SharedRateLimiter(self.url, key, self.rate)
        return self.limiters[key]

    def send(self, digest: Digest) -> Receipt:
        """Wait for a token shared with every worker, then send."""
        try:
            self.limiter(digest).acquire()
        except BotError as e:
            raise TransientSendError(str(e)) from e
        return self.inner.send(digest)

    def already_delivered(self, digest: Digest) -> bool:
        """As the wrapped channel says."""
        return self.inner.already_delivered(digest)

    def close(self) -> None:
        """Close the wrapped channel and the limiters' connections."""
        self.inner.close()
        for limiter in self.limiters.values():
            limiter.close()
        self.limiters.clear()
