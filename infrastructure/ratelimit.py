"""GCRA, the generic cell rate algorithm: `limit` requests per `window` seconds, refilled
smoothly, with one number (the theoretical arrival time, TAT) kept per key. Unlike fixed
windows it has no edge where twice the limit gets through, and no reset that tests or
clients can trip over."""

from __future__ import annotations

import math

from application.ports import RateDecision


def gcra(tat: float, now: float, limit: int, window: int) -> tuple[RateDecision, float]:
    """Decide one request; return the decision and the TAT to store if it was allowed."""
    interval = window / limit
    new_tat = max(tat, now) + interval
    allow_at = new_tat - window
    if now < allow_at:
        wait = math.ceil(allow_at - now)
        return RateDecision(False, limit, 0, max(1, wait)), tat
    remaining = int((now - allow_at) / interval + 1e-9)
    return RateDecision(True, limit, remaining, max(1, math.ceil(new_tat - now))), new_tat


# The same algorithm in Redis, atomically: KEYS[1] = key, ARGV = now, limit, window.
GCRA_LUA = """
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local interval = window / limit
local new_tat = math.max(tat, now) + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, tostring(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000))
return {1, tostring((now - allow_at) / interval), tostring(new_tat - now)}
"""
