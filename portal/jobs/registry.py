"""What the workers know how to run: job handlers and scheduled jobs, declared in code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

Handler = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int
    base_delay: float  # seconds before the first retry; doubles on each further one
    max_delay: float  # ceiling of one retry delay


@dataclass(frozen=True)
class Schedule:
    name: str
    every: timedelta
    func: Callable[[], None]

    @property
    def kind(self) -> str:
        return f"scheduled:{self.name}"


KINDS: dict[str, JobKind] = {}
SCHEDULES: dict[str, Schedule] = {}


def job(name: str, *, max_attempts: int = 5, base_delay: float = 10.0,
        max_delay: float = 3600.0) -> Callable[[Handler], Handler]:
    """Register a handler: `@job("mail.send")` on a function taking the payload dict.

    Handlers must be idempotent: a worker killed after the effect but before marking the
    job done leaves it to run again after its lease.
    """

    def register(handler: Handler) -> Handler:
        KINDS[name] = JobKind(name, handler, max_attempts, base_delay, max_delay)
        return handler

    return register


def scheduled(name: str, *, every: timedelta) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a function the workers run once per `every` slot, across all of them."""

    def register(func: Callable[[], None]) -> Callable[[], None]:
        schedule = Schedule(name, every, func)
        SCHEDULES[name] = schedule
        KINDS[schedule.kind] = JobKind(
            schedule.kind, lambda _payload: func(), max_attempts=3, base_delay=5.0,
            max_delay=60.0,
        )
        return func

    return register
