"""SLA clocks: due times per priority, in calendar or business hours, paused while the ticket
awaits the customer.

Admins keep the policies (`SlaPolicy`) and the business hours (`Setting` rows: working days,
opening and closing time, IANA time zone). All datetimes stored are naive UTC; business hours are
evaluated in the admin's time zone through `zoneinfo`, so daylight-saving changes are handled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from portal.extensions import db
from portal.tickets.models import Priority, Setting, SlaPolicy, Ticket

DEFAULT_TARGETS_MINUTES = {  # first response, resolution
    Priority.URGENT: (60, 4 * 60),
    Priority.HIGH: (4 * 60, 24 * 60),
    Priority.NORMAL: (8 * 60, 72 * 60),
    Priority.LOW: (24 * 60, 120 * 60),
}

BUSINESS_HOURS_KEY = "business_hours"
# A ticket whose next due time is this close counts as "due soon" and is escalated.
DUE_SOON = timedelta(hours=1)


@dataclass(frozen=True)
class BusinessHours:
    """Working days (0 = Monday) with one opening window per day, in a time zone."""

    days: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))
    start: time = time(9, 0)
    end: time = time(17, 0)
    time_zone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def to_json(self) -> str:
        return json.dumps(
            {
                "days": sorted(self.days),
                "start": self.start.strftime("%H:%M"),
                "end": self.end.strftime("%H:%M"),
                "time_zone": self.time_zone,
            }
        )

    @classmethod
    def from_json(cls, raw: str | None) -> BusinessHours:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                days=frozenset(int(d) for d in data["days"]),
                start=time.fromisoformat(data["start"]),
                end=time.fromisoformat(data["end"]),
                time_zone=str(data["time_zone"]),
            )
        except (ValueError, KeyError, TypeError):
            return cls()

    def _windows(self, local_day):
        """The day's open window as naive-UTC datetimes, or None on a closed day."""
        if local_day.weekday() not in self.days or self.end <= self.start:
            return None
        zone = self.zone
        opens = datetime.combine(local_day, self.start, tzinfo=zone)
        closes = datetime.combine(local_day, self.end, tzinfo=zone)
        return (
            opens.astimezone(UTC).replace(tzinfo=None),
            closes.astimezone(UTC).replace(tzinfo=None),
        )

    def add_minutes(self, start: datetime, minutes: float) -> datetime:
        """The naive-UTC moment `minutes` of business time after `start`."""
        if not self.days or self.end <= self.start:
            return start + timedelta(minutes=minutes)
        remaining = timedelta(minutes=minutes)
        local_day = start.replace(tzinfo=UTC).astimezone(self.zone).date()
        cursor = start
        for _ in range(3660):  # ten years of days: more than any SLA target
            window = self._windows(local_day)
            if window is not None:
                opens, closes = window
                begin = max(cursor, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            local_day += timedelta(days=1)
        return cursor + remaining

    def minutes_between(self, start: datetime, end: datetime) -> float:
        """Business minutes elapsed from `start` to `end` (naive UTC)."""
        if end <= start:
            return 0.0
        if not self.days or self.end <= self.start:
            return (end - start).total_seconds() / 60
        total = timedelta()
        local_day = start.replace(tzinfo=UTC).astimezone(self.zone).date()
        last_day = end.replace(tzinfo=UTC).astimezone(self.zone).date()
        while local_day <= last_day:
            window = self._windows(local_day)
            if window is not None:
                begin, finish = max(start, window[0]), min(end, window[1])
                if finish > begin:
                    total += finish - begin
            local_day += timedelta(days=1)
        return total.total_seconds() / 60


def business_hours() -> BusinessHours:
    setting = db.session.get(Setting, BUSINESS_HOURS_KEY)
    return BusinessHours.from_json(setting.value if setting else None)


def save_business_hours(hours: BusinessHours) -> None:
    setting = db.session.get(Setting, BUSINESS_HOURS_KEY)
    if setting is None:
        db.session.add(Setting(key=BUSINESS_HOURS_KEY, value=hours.to_json()))
    else:
        setting.value = hours.to_json()


def policy_for(priority: Priority) -> SlaPolicy | None:
    return db.session.scalar(select(SlaPolicy).where(SlaPolicy.priority == priority))


def targets(priority: Priority) -> tuple[int, int]:
    policy = policy_for(priority)
    if policy is None:
        return DEFAULT_TARGETS_MINUTES[priority]
    return policy.first_response_minutes, policy.resolution_minutes


def _clock(priority: Priority) -> BusinessHours | None:
    """The business hours that count for this priority, or None for calendar time."""
    policy = policy_for(priority)
    return business_hours() if policy is not None and policy.business_hours else None


def add_target(priority: Priority, start: datetime, minutes: float) -> datetime:
    hours = _clock(priority)
    if hours is None:
        return start + timedelta(minutes=minutes)
    return hours.add_minutes(start, minutes)


def apply_targets(ticket: Ticket, start: datetime) -> None:
    """Set due times from the ticket's priority, counted from `start`."""
    first, resolution = targets(ticket.priority)
    if ticket.first_response_at is None:
        ticket.first_response_due_at = add_target(ticket.priority, start, first)
    ticket.resolution_due_at = add_target(ticket.priority, start, resolution)


def pause(ticket: Ticket, now: datetime) -> None:
    if ticket.sla_paused_at is None:
        ticket.sla_paused_at = now


def resume(ticket: Ticket, now: datetime) -> None:
    """Push the due times back by however long the clock was paused (in the policy's time)."""
    if ticket.sla_paused_at is None:
        return
    hours = _clock(ticket.priority)
    if hours is None:
        paused = now - ticket.sla_paused_at

        def shift(due: datetime) -> datetime:
            return due + paused
    else:
        paused_minutes = hours.minutes_between(ticket.sla_paused_at, now)

        def shift(due: datetime) -> datetime:
            return hours.add_minutes(due, paused_minutes)

    if ticket.resolution_due_at is not None:
        ticket.resolution_due_at = shift(ticket.resolution_due_at)
    if ticket.first_response_due_at is not None and ticket.first_response_at is None:
        ticket.first_response_due_at = shift(ticket.first_response_due_at)
    ticket.sla_paused_at = None
