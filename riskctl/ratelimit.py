"""Per-API-key rate limits, shared by every gunicorn worker through Redis.

A fixed window per key: the first request of a window sets a counter that expires with
the window; the ``limit``-th request is the last one allowed, and every later one is
refused with the milliseconds left in the window (the ``Retry-After``). The count and the
expiry are set by one atomic script, so concurrent workers can never let ``limit + 1``
requests through.

``POST /v1/checks`` does not call this: the same lines run at the top of the check's
velocity script (:mod:`riskctl.velocity`), so a check still costs one Redis round trip,
and a refused check touches no other key. Every other ``/v1`` route makes this one call.
When Redis is unreachable the limiter fails open (a check is answered degraded anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from riskctl.errors import RateLimited

PREFIX = "rk:rl:"

# The limiter's lines, shared verbatim with the velocity script. ``rl_key``, ``rl_limit``
# and ``rl_window`` are set by the caller; on a refusal the script returns {-1, ms left}.
LUA_CHECK = """
if rl_limit > 0 then
  local used = redis.call('INCR', rl_key)
  if used == 1 then redis.call('PEXPIRE', rl_key, rl_window) end
  if used > rl_limit then
    local left = redis.call('PTTL', rl_key)
    if left < 0 then redis.call('PEXPIRE', rl_key, rl_window); left = rl_window end
    return {-1, left}
  end
end
"""

_LUA = (
    "local rl_key, rl_limit, rl_window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    + LUA_CHECK
    + "return {0, 0}\n"
)


@dataclass(frozen=True, slots=True)
class Limit:
    """What one key may do: ``requests`` per ``window_s`` seconds (0 requests = no limit)."""

    key_id: int
    requests: int
    window_s: int

    @property
    def redis_key(self) -> bytes:
        return f"{PREFIX}{self.key_id}".encode()

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000


def refused(left_ms: int, limit: Limit) -> RateLimited:
    seconds = max(1, math.ceil(left_ms / 1000))
    return RateLimited(
        f"this API key is limited to {limit.requests} requests per {limit.window_s} s; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


class RateLimiter:
    def __init__(self, client: redis.Redis, requests: int, window_s: int) -> None:
        self.client = client
        self.requests = requests
        self.window_s = window_s
        self._script = client.register_script(_LUA)

    def limit_for(self, key_id: int) -> Limit:
        return Limit(key_id, self.requests, self.window_s)

    def hit(self, key_id: int) -> None:
        """Count one request of ``key_id``; raise :class:`RateLimited` past the limit."""
        limit = self.limit_for(key_id)
        if limit.requests <= 0:
            return
        try:
            status, left = self._script(keys=[limit.redis_key], args=[limit.requests, limit.window_ms])
        except (redis.RedisError, OSError):
            return  # fail open: the limiter protects capacity, it is not an authorization
        if int(status) < 0:
            raise refused(int(left), limit)
