"""The worker's clock: one object the worker asks for the time, so that tests can set it.

Wall time (:meth:`Clock.wall_ms`) decides what depends on the calendar: the scheduled key
switch, the ad-statistics windows, the latency metrics. Monotonic time
(:meth:`Clock.monotonic`) measures durations: batch seconds, uptime, how long a partition
has not moved (stall detection). faust's timers keep their own schedule (they wake the
worker every so often); what they do when they wake reads this clock.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def wall_ms(self) -> int:
        """Unix time in milliseconds."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never goes back."""
        ...


class SystemClock:
    """The real clock (the default everywhere)."""

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()
