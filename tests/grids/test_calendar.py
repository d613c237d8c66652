"""The working-day calendar that every deadline is counted on: Chinese public holidays and the weekends worked
in exchange (调休) from the chinese-calendar package, the administrator's own days for the years it lacks, and
the case deadlines and timings built on it.

2026 as published: Spring Festival 15–23 February off, Saturdays 14 and 28 February worked; Mid-Autumn 25–27
September off; National Day 1–7 October off, Saturday 10 October worked. 2027 is not in the package."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine

from governance.models import CalendarDay
from governance.workdays import add_working_days, is_workday, working_seconds_between
from grids import services

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC


def at(*args):
    return dt.datetime(*args, tzinfo=SHANGHAI)


def days(start, end):
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)


# --- Which days are worked ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_national_day_week_is_off_and_the_saturday_after_is_worked():
    assert not any(is_workday(d) for d in days(dt.date(2026, 10, 1), dt.date(2026, 10, 7)))
    assert is_workday(dt.date(2026, 9, 30))
    assert is_workday(dt.date(2026, 10, 8))
    assert is_workday(dt.date(2026, 10, 10))  # a Saturday
    assert not is_workday(dt.date(2026, 10, 11))  # the Sunday after it


@pytest.mark.django_db
def test_spring_festival_is_off_and_its_two_saturdays_are_worked():
    assert not any(is_workday(d) for d in days(dt.date(2026, 2, 15), dt.date(2026, 2, 23)))
    assert is_workday(dt.date(2026, 2, 14))  # Saturday
    assert is_workday(dt.date(2026, 2, 28))  # Saturday
    assert is_workday(dt.date(2026, 2, 24))
    assert not is_workday(dt.date(2026, 2, 7))  # an ordinary Saturday


@pytest.mark.django_db
def test_a_year_the_package_lacks_falls_back_to_monday_to_friday():
    assert is_workday(dt.date(2027, 1, 1))  # New Year's Day: nobody has said so for 2027 yet
    assert is_workday(dt.date(2027, 3, 1))  # Monday
    assert not is_workday(dt.date(2027, 3, 6))  # Saturday


@pytest.mark.django_db
def test_the_administrators_days_override_the_package_and_the_weekdays():
    CalendarDay.objects.create(date=dt.date(2027, 1, 1), is_workday=False, note="元旦")
    CalendarDay.objects.create(date=dt.date(2027, 2, 20), is_workday=True, note="春节调休上班")  # Saturday
    CalendarDay.objects.create(date=dt.date(2026, 10, 8), is_workday=False, note="国务院调整")
    CalendarDay.objects.create(date=dt.date(2026, 10, 3), is_workday=True, note="国务院调整")
    assert not is_workday(dt.date(2027, 1, 1))
    assert is_workday(dt.date(2027, 2, 20))
    assert not is_workday(dt.date(2026, 10, 8))
    assert is_workday(dt.date(2026, 10, 3))


# --- Deadlines ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_three_working_days_from_the_eve_of_national_day_end_on_the_worked_saturday():
    # 8 Oct (Thu), 9 Oct (Fri), 10 Oct (the worked Saturday).
    assert add_working_days(at(2026, 9, 30, 10, 0), 3) == at(2026, 10, 10, 18, 0)
    assert add_working_days(at(2026, 9, 30, 10, 0), 4) == at(2026, 10, 12, 18, 0)


@pytest.mark.django_db
def test_working_days_across_spring_festival():
    # From Friday 13 Feb: the worked Saturday 14th, then nothing until Tuesday 24th.
    assert add_working_days(at(2026, 2, 13, 15, 0), 1) == at(2026, 2, 14, 18, 0)
    assert add_working_days(at(2026, 2, 13, 15, 0), 2) == at(2026, 2, 24, 18, 0)
    # From Friday 27 Feb: the worked Saturday 28th, then Monday 2 March.
    assert add_working_days(at(2026, 2, 27, 9, 0), 2) == at(2026, 3, 2, 18, 0)


@pytest.mark.django_db
def test_a_clock_started_on_a_holiday_counts_from_the_next_working_day():
    assert add_working_days(at(2026, 10, 3, 11, 0), 1) == at(2026, 10, 8, 18, 0)
    assert add_working_days(at(2026, 10, 3, 11, 0), 0) == at(2026, 10, 8, 18, 0)
    assert add_working_days(at(2026, 10, 10, 11, 0), 0) == at(2026, 10, 10, 18, 0)


@pytest.mark.django_db
def test_a_late_evening_start_still_counts_from_the_next_day():
    """The date is Beijing's: 23:30 on Friday 9 Oct in Beijing is 15:30 UTC the same day."""
    start = dt.datetime(2026, 10, 9, 15, 30, tzinfo=UTC)
    assert add_working_days(start, 1) == at(2026, 10, 10, 18, 0)


@pytest.mark.django_db
def test_the_administrators_days_move_deadlines_in_a_year_the_package_lacks():
    friday = at(2027, 2, 26, 10, 0)
    assert add_working_days(friday, 1) == at(2027, 3, 1, 18, 0)
    CalendarDay.objects.create(date=dt.date(2027, 3, 1), is_workday=False)
    assert add_working_days(friday, 1) == at(2027, 3, 2, 18, 0)
    CalendarDay.objects.create(date=dt.date(2027, 2, 27), is_workday=True)  # a Saturday worked
    assert add_working_days(friday, 1) == at(2027, 2, 27, 18, 0)
    assert add_working_days(friday, 2) == at(2027, 3, 2, 18, 0)


@pytest.mark.django_db
def test_an_override_far_into_a_long_deadline_is_honoured():
    start = at(2027, 6, 1, 10, 0)  # Tuesday
    plain = add_working_days(start, 10)
    assert plain == at(2027, 6, 15, 18, 0)
    CalendarDay.objects.create(date=dt.date(2027, 6, 14), is_workday=False, note="端午")
    assert add_working_days(start, 10) == at(2027, 6, 16, 18, 0)


# --- Working time -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_working_time_within_office_hours_of_one_day():
    assert working_seconds_between(at(2026, 3, 10, 10, 0), at(2026, 3, 10, 11, 30)) == 90 * 60
    assert working_seconds_between(at(2026, 3, 10, 7, 0), at(2026, 3, 10, 20, 0)) == 9 * 3600
    assert working_seconds_between(at(2026, 3, 10, 19, 0), at(2026, 3, 11, 8, 59)) == 0
    assert working_seconds_between(at(2026, 3, 10, 11, 0), at(2026, 3, 10, 10, 0)) == 0


@pytest.mark.django_db
def test_working_time_across_a_weekend():
    # Friday 17:00 → Monday 10:00: one hour on Friday, one on Monday.
    assert working_seconds_between(at(2026, 3, 6, 17, 0), at(2026, 3, 9, 10, 0)) == 2 * 3600


@pytest.mark.django_db
def test_working_time_across_national_day_and_its_worked_saturday():
    # 30 Sept 17:00 → 8 Oct 10:00: the holiday week counts nothing.
    assert working_seconds_between(at(2026, 9, 30, 17, 0), at(2026, 10, 8, 10, 0)) == 2 * 3600
    # Friday 9 Oct 17:00 → Monday 12 Oct 10:00: the worked Saturday counts in full.
    assert working_seconds_between(at(2026, 10, 9, 17, 0), at(2026, 10, 12, 10, 0)) == 11 * 3600


@pytest.mark.django_db
def test_working_time_honours_the_administrators_days():
    start, end = at(2027, 3, 5, 17, 0), at(2027, 3, 8, 10, 0)  # Friday → Monday
    assert working_seconds_between(start, end) == 2 * 3600
    CalendarDay.objects.create(date=dt.date(2027, 3, 6), is_workday=True)
    assert working_seconds_between(start, end) == 11 * 3600


@pytest.mark.django_db
def test_office_hours_come_from_the_settings(settings):
    settings.WORKING_HOURS = ((8, 30), (17, 30))
    assert working_seconds_between(at(2026, 3, 10, 8, 0), at(2026, 3, 10, 9, 0)) == 30 * 60
    assert add_working_days(at(2026, 3, 10, 9, 0), 1) == at(2026, 3, 11, 17, 30)


# --- Cases on the calendar ------------------------------------------------------------------------------------


def test_a_case_accepted_on_the_eve_of_national_day_is_due_on_the_worked_saturday(make_case, community_staff):
    with time_machine.travel(at(2026, 9, 30, 10, 0), tick=False):
        case = make_case()
        services.case_accept(case=case, by=community_staff)
    case.refresh_from_db()
    assert case.accepted_at == at(2026, 9, 30, 10, 0)
    assert case.handle_deadline == at(2026, 10, 10, 18, 0)  # 乱堆乱放: three working days


def test_a_case_signed_before_spring_festival_is_due_after_it(make_case, department_staff):
    case = make_case("dispatched", now=at(2026, 2, 13, 9, 0))
    services.case_sign(case=case, by=department_staff, now=at(2026, 2, 13, 10, 0))
    case.refresh_from_db()
    # 14 Feb (worked Saturday), 24 Feb, 25 Feb.
    assert case.handle_deadline == at(2026, 2, 25, 18, 0)
    assert case.sign_seconds == 3600


def test_sign_and_handling_times_are_working_time(make_case, department_staff):
    with time_machine.travel(at(2026, 10, 9, 17, 0), tick=False):
        case = make_case("dispatched")
    with time_machine.travel(at(2026, 10, 12, 10, 0), tick=False):
        services.case_sign(case=case, by=department_staff)
    case.refresh_from_db()
    assert case.sign_seconds == 11 * 3600  # Friday's last hour, the worked Saturday, Monday's first hour
    assert case.handle_deadline == at(2026, 10, 15, 18, 0)
    with time_machine.travel(at(2026, 10, 14, 12, 0), tick=False):
        services.case_handle(case=case, by=department_staff, note="已清理")
    case.refresh_from_db()
    assert case.handle_seconds == 8 * 3600 + 9 * 3600 + 3 * 3600
    assert case.handled_on_time is True


def test_a_holiday_the_administrator_adds_moves_a_cases_deadline(make_case, community_staff):
    CalendarDay.objects.create(date=dt.date(2027, 3, 2), is_workday=False, note="临时调整")
    case = make_case(now=at(2027, 3, 1, 10, 0))
    services.case_accept(case=case, by=community_staff, now=at(2027, 3, 1, 10, 0))
    case.refresh_from_db()
    # Tuesday 2 March is off: Wednesday, Thursday, Friday.
    assert case.handle_deadline == at(2027, 3, 5, 18, 0)


def test_reopening_starts_a_fresh_deadline_on_the_calendar(make_case, community_staff):
    case = make_case("closed", stars=1, now=at(2026, 9, 28, 10, 0))
    services.case_reopen(case=case, by=community_staff, note="仍未解决", now=at(2026, 9, 30, 16, 0))
    case.refresh_from_db()
    assert case.handle_deadline == at(2026, 10, 10, 18, 0)


def test_the_admin_is_told_which_years_still_need_their_holidays(db, admin_user, client):
    from governance.models import CalendarDay
    from governance.workdays import years_needing_overrides

    assert years_needing_overrides(dt.date(2026, 11, 22)) == [2027]  # the package knows 2026, not 2027
    client.force_login(admin_user)
    page = client.get("/admin/governance/calendarday/").content.decode()
    assert "2027" in page
    CalendarDay.objects.create(date=dt.date(2027, 1, 1), is_workday=False, note="元旦")
    assert years_needing_overrides(dt.date(2026, 11, 22)) == []
