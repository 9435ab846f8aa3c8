"""Retry delays: exponential from 1 s by 1.5, with jitter, capped at 60 s."""

from __future__ import annotations

import random

INITIAL = 1.0
FACTOR = 1.5
CAP = 60.0
# Each delay is shortened by up to this fraction, so that many jobs started by
# one outage do not retry in lockstep.
JITTER = 0.5


class Backoff:
    def __init__(
        self,
        *,
        initial: float = INITIAL,
        factor: float = FACTOR,
        cap: float = CAP,
        jitter: float = JITTER,
    ) -> None:
        self._next = initial
        self._factor = factor
        self._cap = cap
        self._jitter = jitter

    def next_delay(self) -> float:
        delay = self._next * (1.0 - self._jitter * random.random())
        self._next = min(self._next * self._factor, self._cap)
        return delay
