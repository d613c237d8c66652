"""The one working-day calendar that every deadline is counted on (cases, letters).

Which dates are working days comes from three sources, the first that knows winning:
1. `CalendarDay` rows the administrator entered in the admin (a year the package does not know yet, or a
   change to the published arrangement);
2. the `chinese_calendar` package: public holidays and the weekends worked in exchange (调休);
3. Monday to Friday, for years neither knows.

Working time is the office hours `WORKING_HOURS` (settings, default 09:00–18:00) of working days; time to
sign or to handle a case is measured in it. A deadline of N working days ends at the close of the N-th
working day after the day the clock started.
"""

import datetime as dt
from functools import lru_cache

import chinese_calendar
from django.conf import settings
from django.utils import timezone

from .models import CalendarDay


def _package_says(day: dt.date):
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year the package has no data for
        return None


@lru_cache(maxsize=4096)
def _package_or_weekdays(day: dt.date) -> bool:
    said = _package_says(day)
    return day.weekday() < 5 if said is None else said


class Calendar:
    """Working days between two dates, with the administrator's overrides read once for the whole span."""

    def __init__(self, start: dt.date, end: dt.date):
        self.overrides = dict(
            CalendarDay.objects.filter(date__gte=start, date__lte=end).values_list("date", "is_workday")
        )
        self.start, self.end = start, end

    def is_workday(self, day: dt.date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        return _package_or_weekdays(day)


def is_workday(day: dt.date) -> bool:
    return Calendar(day, day).is_workday(day)


def _office_hours():
    start, end = settings.WORKING_HOURS
    return dt.time(*start), dt.time(*end)


def _local(moment: dt.datetime) -> dt.datetime:
    return timezone.localtime(moment)


def add_working_days(start: dt.datetime, days: int) -> dt.datetime:
    """The end of the `days`-th working day after `start`'s date (the close of office hours that day).
    With `days` = 0: the close of `start`'s own day if it is a working day, else of the next working day."""
    local = _local(start)
    day = local.date()
    # A year and a bit is far more than any time limit; the overrides are read once for that span.
    calendar = Calendar(day, day + dt.timedelta(days=days * 3 + 30))
    counted = 0
    if days == 0:
        while not calendar.is_workday(day):
            day += dt.timedelta(days=1)
    while counted < days:
        day += dt.timedelta(days=1)
        if calendar.is_workday(day):
            counted += 1
    _, close = _office_hours()
    return timezone.make_aware(dt.datetime.combine(day, close), local.tzinfo)


def working_seconds_between(start: dt.datetime, end: dt.datetime) -> int:
    """Seconds of office hours on working days between two moments (0 when `end` is not after `start`)."""
    if end <= start:
        return 0
    start, end = _local(start), _local(end)
    calendar = Calendar(start.date(), end.date())
    opening, closing = _office_hours()
    total = 0.0
    day = start.date()
    while day <= end.date():
        if calendar.is_workday(day):
            day_open = timezone.make_aware(dt.datetime.combine(day, opening), start.tzinfo)
            day_close = timezone.make_aware(dt.datetime.combine(day, closing), start.tzinfo)
            lo, hi = max(start, day_open), min(end, day_close)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += dt.timedelta(days=1)
    return int(total)


def add_working_hours(start: dt.datetime, hours: float) -> dt.datetime:
    """The moment `hours` of office time after `start`: a two-hour sign-for limit given at 17:30 on a Friday
    ends at 10:30 on the next working day, not at 19:30 that evening."""
    local = _local(start)
    opening, closing = _office_hours()
    remaining = dt.timedelta(hours=hours)
    day = local.date()
    calendar = Calendar(day, day + dt.timedelta(days=int(hours // 8) * 3 + 30))
    moment = local
    while True:
        if calendar.is_workday(day):
            day_open = timezone.make_aware(dt.datetime.combine(day, opening), local.tzinfo)
            day_close = timezone.make_aware(dt.datetime.combine(day, closing), local.tzinfo)
            begin = max(moment, day_open)
            if begin < day_close:
                if begin + remaining <= day_close:
                    return begin + remaining
                remaining -= day_close - begin
        day += dt.timedelta(days=1)
        moment = timezone.make_aware(dt.datetime.combine(day, dt.time.min), local.tzinfo)


def years_needing_overrides(today: dt.date | None = None) -> list[int]:
    """This year and next, where neither the package nor the administrator knows the holidays yet (deadlines
    counted into such a year fall back to Monday–Friday)."""
    today = today or timezone.localdate()
    missing = []
    for year in (today.year, today.year + 1):
        known = _package_says(dt.date(year, 1, 1)) is not None
        entered = CalendarDay.objects.filter(date__year=year).exists()
        if not known and not entered:
            missing.append(year)
    return missing
