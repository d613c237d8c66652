"""The deadline sweep (Celery beat, also `manage.py case_sweep`): reminders before a deadline, overdue marks and
the street's notice after it, closing cases left unrated, and that running it again changes nothing."""

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

from governance.errors import DomainError
from governance.models import Notification
from governance.notifications import Channel, notify, unread_count
from grids import services
from grids.models import Case, CaseDispatch, CaseEvent, CaseState, ClosedReason
from grids.tasks import sweep_case_deadlines

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = dt.datetime(2026, 3, 9, 10, 0, tzinfo=SHANGHAI)  # dispatched then; 乱堆乱放 gives 2 hours to sign
SIGN_DEADLINE = MONDAY + dt.timedelta(hours=2)
HANDLE_DEADLINE = dt.datetime(2026, 3, 12, 18, 0, tzinfo=SHANGHAI)  # signed Monday 10:00, three working days
ZERO = {"sign_reminded": 0, "sign_overdue": 0, "handle_reminded": 0, "handle_overdue": 0, "auto_closed": 0}


def sweep(now):
    return services.case_sweep(now=now)


def counts(**done):
    return {**ZERO, **done}


SWEEP_KINDS = ("case_sign_due", "case_sign_overdue", "case_handle_due", "case_handle_overdue")


def kinds(user):
    """The kinds of the sweep's notifications this user has."""
    return sorted(Notification.objects.filter(user=user, kind__in=SWEEP_KINDS).values_list("kind", flat=True))


# --- Sign-for ------------------------------------------------------------------------------------------------


def test_no_reminder_while_the_sign_deadline_is_far(make_case, department_staff):
    make_case("dispatched", now=MONDAY)
    assert sweep(MONDAY + dt.timedelta(minutes=80)) == ZERO
    assert kinds(department_staff) == []


def test_the_department_is_reminded_before_the_sign_deadline_once(
    make_case, department_staff, other_department_staff, street_staff
):
    case = make_case("dispatched", now=MONDAY)
    assert sweep(SIGN_DEADLINE - dt.timedelta(minutes=20)) == counts(sign_reminded=1)
    reminder = Notification.objects.get(user=department_staff, kind="case_sign_due")
    assert case.number in reminder.title
    assert "12:00" in reminder.body
    assert reminder.read_at is None
    assert kinds(other_department_staff) == []
    assert kinds(street_staff) == []
    assert sweep(SIGN_DEADLINE - dt.timedelta(minutes=10)) == ZERO
    assert Notification.objects.filter(kind="case_sign_due").count() == 1


def test_a_signed_case_gets_no_sign_reminder_nor_mark(make_case, department_staff):
    case = make_case("dispatched", now=MONDAY)
    services.case_sign(case=case, by=department_staff, now=MONDAY + dt.timedelta(minutes=5))
    assert sweep(SIGN_DEADLINE - dt.timedelta(minutes=20))["sign_reminded"] == 0
    assert sweep(SIGN_DEADLINE + dt.timedelta(minutes=1))["sign_overdue"] == 0
    case.refresh_from_db()
    assert case.sign_overdue is False


def test_past_the_sign_deadline_the_case_is_marked_and_the_street_told_once(
    make_case, department_staff, street_staff, outsider
):
    case = make_case("dispatched", now=MONDAY)
    late = SIGN_DEADLINE + dt.timedelta(minutes=1)
    assert sweep(late) == counts(sign_overdue=1)
    case.refresh_from_db()
    assert case.sign_overdue is True
    assert case.state == CaseState.DISPATCHED
    assert CaseDispatch.objects.get(case=case).sign_overdue is True
    event = case.events.get(action="sign-overdue")
    assert (event.actor, event.from_state, event.to_state) == (None, "dispatched", "dispatched")
    notice = Notification.objects.get(user=street_staff, kind="case_sign_overdue")
    assert case.number in notice.title
    assert kinds(outsider) == []
    assert kinds(department_staff) == []

    assert sweep(late + dt.timedelta(minutes=5)) == ZERO
    assert case.events.filter(action="sign-overdue").count() == 1
    assert Notification.objects.filter(kind="case_sign_overdue").count() == 1
    # Signing late still works; the mark stays on the record.
    services.case_sign(case=case, by=department_staff, now=late + dt.timedelta(minutes=10))
    case.refresh_from_db()
    assert (case.state, case.sign_overdue) == (CaseState.IN_PROGRESS, True)


def test_an_assisting_department_is_reminded_and_marked_on_its_own_row(
    make_case, city, street_staff, department_staff, other_department_staff
):
    case = make_case("escalated")
    services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department], now=MONDAY
    )
    services.case_sign(case=case, by=department_staff, now=MONDAY + dt.timedelta(minutes=5))
    # The lead has signed and the case is being handled; the assisting department has not signed yet.
    assert sweep(SIGN_DEADLINE - dt.timedelta(minutes=20)) == counts(sign_reminded=1)
    assert kinds(other_department_staff) == ["case_sign_due"]
    assert sweep(SIGN_DEADLINE + dt.timedelta(minutes=1)) == counts(sign_overdue=1)
    assert CaseDispatch.objects.get(case=case, department=city.other_department).sign_overdue is True
    case.refresh_from_db()
    assert case.sign_overdue is False  # the case's own mark is the lead's
    notice = Notification.objects.get(user=street_staff, kind="case_sign_overdue")
    assert "民政局" in notice.body


def test_a_dispatch_that_can_no_longer_be_signed_is_not_marked(make_case, city, street_staff, department_staff):
    """The case was handled before the assisting department's deadline: there is nothing left to sign for."""
    case = make_case("escalated")
    services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department], now=MONDAY
    )
    services.case_sign(case=case, by=department_staff, now=MONDAY + dt.timedelta(minutes=5))
    services.case_handle(case=case, by=department_staff, note="已清理", now=MONDAY + dt.timedelta(minutes=30))
    assert sweep(SIGN_DEADLINE + dt.timedelta(hours=1)) == ZERO
    assert not CaseDispatch.objects.filter(sign_overdue=True).exists()


def test_a_case_sent_back_is_not_marked_late_to_sign(make_case, department_staff):
    case = make_case("dispatched", now=MONDAY)
    services.case_send_back(case=case, by=department_staff, note="不属本部门", now=MONDAY + dt.timedelta(minutes=5))
    assert sweep(SIGN_DEADLINE + dt.timedelta(hours=1)) == ZERO


# --- Handling ------------------------------------------------------------------------------------------------


def test_the_holder_is_reminded_a_day_before_the_handling_deadline_once(make_case, department_staff, street_staff):
    case = make_case("in_progress", now=MONDAY)
    assert case.handle_deadline == HANDLE_DEADLINE
    # Due Thursday 18:00: nothing on Tuesday evening, the reminder on Wednesday (the working day before).
    assert sweep(HANDLE_DEADLINE - dt.timedelta(hours=49)) == ZERO
    assert sweep(HANDLE_DEADLINE - dt.timedelta(hours=32)) == counts(handle_reminded=1)
    reminder = Notification.objects.get(user=department_staff, kind="case_handle_due")
    assert case.number in reminder.title
    assert "2026-03-12 18:00" in reminder.body
    assert kinds(street_staff) == []
    assert sweep(HANDLE_DEADLINE - dt.timedelta(hours=2)) == ZERO
    assert Notification.objects.filter(kind="case_handle_due").count() == 1


def test_a_case_the_community_holds_reminds_the_community(make_case, community_staff, secretary, department_staff):
    case = make_case(now=MONDAY)
    services.case_accept(case=case, by=community_staff, now=MONDAY)
    assert sweep(HANDLE_DEADLINE - dt.timedelta(hours=3)) == counts(handle_reminded=1)
    assert "case_handle_due" in kinds(community_staff)
    assert "case_handle_due" in kinds(secretary)
    assert kinds(department_staff) == []


def test_past_the_handling_deadline_the_case_is_marked_and_the_street_told_once(
    make_case, department_staff, street_staff, outsider
):
    case = make_case("in_progress", now=MONDAY)
    late = HANDLE_DEADLINE + dt.timedelta(minutes=1)
    assert sweep(late) == counts(handle_overdue=1)
    case.refresh_from_db()
    assert (case.state, case.handle_overdue) == (CaseState.IN_PROGRESS, True)
    event = case.events.get(action="handle-overdue")
    assert (event.actor, event.from_state, event.to_state) == (None, "in_progress", "in_progress")
    notice = Notification.objects.get(user=street_staff, kind="case_handle_overdue")
    assert case.number in notice.title
    assert kinds(outsider) == []
    assert sweep(late + dt.timedelta(hours=1)) == ZERO
    assert case.events.filter(action="handle-overdue").count() == 1
    assert Notification.objects.filter(kind="case_handle_overdue").count() == 1
    # Handled late: not on time.
    services.case_handle(case=case, by=department_staff, note="已清理", now=late + dt.timedelta(hours=2))
    case.refresh_from_db()
    assert case.handled_on_time is False


def test_an_approved_extension_clears_the_mark_and_the_new_deadline_is_watched_afresh(
    make_case, department_staff, street_staff
):
    case = make_case("in_progress", now=MONDAY)
    late = HANDLE_DEADLINE + dt.timedelta(minutes=1)
    sweep(HANDLE_DEADLINE - dt.timedelta(hours=3))
    sweep(late)
    new_deadline = dt.datetime(2026, 3, 17, 18, 0, tzinfo=SHANGHAI)
    services.case_request_extension(case=case, by=department_staff, until=new_deadline, note="需采购配件")
    services.case_decide_extension(case=case, by=street_staff, approve=True, now=late + dt.timedelta(hours=1))
    case.refresh_from_db()
    assert (case.handle_deadline, case.handle_overdue) == (new_deadline, False)
    assert sweep(late + dt.timedelta(hours=2)) == ZERO
    assert sweep(new_deadline - dt.timedelta(hours=3)) == counts(handle_reminded=1)
    assert sweep(new_deadline + dt.timedelta(minutes=1)) == counts(handle_overdue=1)
    assert Notification.objects.filter(user=department_staff, kind="case_handle_due").count() == 2
    assert Notification.objects.filter(user=street_staff, kind="case_handle_overdue").count() == 2
    assert case.events.filter(action="handle-overdue").count() == 2


@pytest.mark.parametrize("state", ["handled", "verified", "closed"])
def test_a_case_past_its_handling_step_is_not_chased(state, make_case):
    make_case(state, now=MONDAY)
    assert sweep(HANDLE_DEADLINE + dt.timedelta(days=1))["handle_overdue"] == 0
    assert not Notification.objects.filter(kind__in=["case_handle_due", "case_handle_overdue"]).exists()


# --- Unrated cases ------------------------------------------------------------------------------------------


def test_a_case_left_unrated_for_seven_days_closes_as_unrated(make_case, community_staff):
    case = make_case("verified", now=MONDAY)
    week = MONDAY + dt.timedelta(days=7)
    assert sweep(week - dt.timedelta(minutes=1)) == ZERO
    assert sweep(week) == counts(auto_closed=1)
    case.refresh_from_db()
    assert (case.state, case.closed_reason, case.closed_at) == (CaseState.CLOSED, ClosedReason.UNRATED, week)
    assert case.rating is None
    event = case.events.get(action="auto-close")
    assert (event.actor, event.from_state, event.to_state, event.created_at) == (None, "verified", "closed", week)
    assert sweep(week + dt.timedelta(days=1)) == ZERO
    assert case.events.filter(action="auto-close").count() == 1
    # Unrated is not a rating: it cannot be rated now, nor reopened.
    with pytest.raises(DomainError) as info:
        services.case_rate(case=case, by=community_staff, stars=1)
    assert info.value.status_code == 409
    with pytest.raises(DomainError) as info:
        services.case_reopen(case=case, by=community_staff, note="重办")
    assert info.value.status_code == 409


def test_a_rated_case_is_not_closed_again(make_case):
    case = make_case("closed", stars=4, now=MONDAY)
    assert sweep(MONDAY + dt.timedelta(days=30)) == ZERO
    case.refresh_from_db()
    assert (case.closed_reason, case.rating) == (ClosedReason.RATED, 4)


# --- The whole sweep, its command and its task ------------------------------------------------------------------


SWEEP_AT = dt.datetime(2026, 3, 12, 16, 30, tzinfo=SHANGHAI)  # Thursday afternoon, in office hours


@pytest.fixture
def busy_street(make_case):
    """One case for each kind of work the sweep does at `SWEEP_AT`."""
    make_case("dispatched", now=SWEEP_AT - dt.timedelta(hours=1, minutes=45))  # sign deadline in 15 minutes
    make_case("dispatched", now=SWEEP_AT - dt.timedelta(hours=3))  # sign deadline an hour ago
    make_case("in_progress", now=dt.datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI))  # due Friday 18:00
    make_case("in_progress", now=dt.datetime(2026, 3, 6, 10, 0, tzinfo=SHANGHAI))  # was due Wednesday 18:00
    make_case("verified", now=SWEEP_AT - dt.timedelta(days=8))  # unrated for over a week
    return SWEEP_AT


EVERYTHING = {"sign_reminded": 1, "sign_overdue": 1, "handle_reminded": 1, "handle_overdue": 1, "auto_closed": 1}


def snapshot():
    """Everything the sweep may write: notifications, marks, events, states."""
    return (
        sorted(Notification.objects.values_list("user_id", "key")),
        sorted(CaseDispatch.objects.values_list("pk", "sign_overdue")),
        sorted(CaseEvent.objects.values_list("case_id", "action")),
        sorted(Case.objects.values_list("pk", "state", "sign_overdue", "handle_overdue", "closed_reason")),
    )


def test_running_the_sweep_twice_does_everything_once(busy_street):
    now = busy_street
    assert sweep(now) == EVERYTHING
    after_first = snapshot()
    assert sweep(now) == ZERO
    assert sweep(now + dt.timedelta(minutes=5)) == ZERO
    assert snapshot() == after_first


def test_the_command_and_the_task_share_the_sweep_and_its_idempotence(busy_street):
    with time_machine.travel(busy_street, tick=False):
        out = io.StringIO()
        call_command("case_sweep", stdout=out)
        assert "签收催办 1 件" in out.getvalue()
        assert "超期未评价结案 1 件" in out.getvalue()
        after_command = snapshot()
        assert sweep_case_deadlines.apply().get() == ZERO
        out = io.StringIO()
        call_command("case_sweep", stdout=out)
        assert "签收催办 0 件，签收超时 0 件，办理催办 0 件，办理超期 0 件，超期未评价结案 0 件" in out.getvalue()
    assert snapshot() == after_command


def test_the_task_does_the_work_when_it_runs_first(busy_street):
    with time_machine.travel(busy_street, tick=False):
        assert sweep_case_deadlines.apply().get() == EVERYTHING
        assert sweep_case_deadlines.apply().get() == ZERO


def test_unread_counts_follow_the_reminders(make_case, department_staff):
    make_case("in_progress", now=MONDAY)
    assert unread_count(department_staff) == 1  # the dispatch
    sweep(HANDLE_DEADLINE - dt.timedelta(hours=3))
    sweep(HANDLE_DEADLINE - dt.timedelta(hours=2))
    assert unread_count(department_staff) == 2
    Notification.objects.filter(user=department_staff).update(read_at=MONDAY)
    assert unread_count(department_staff) == 0


# --- Extra channels (SMS, WeChat …) ---------------------------------------------------------------------------


class RecordingChannel(Channel):
    sent: list = []

    def send(self, notification):
        RecordingChannel.sent.append(
            (notification.pk, notification.user_id, notification.kind, notification.key, notification.title)
        )


class BrokenChannel(Channel):
    def send(self, notification):
        raise ConnectionError("SMS gateway down")


@pytest.fixture
def channel(settings):
    RecordingChannel.sent = []
    settings.NOTIFICATION_CHANNELS = [f"{__name__}.RecordingChannel"]
    return RecordingChannel


def test_extra_channels_hear_of_a_notification_only_after_commit(
    channel, busy_street, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as pending:
        sweep(busy_street)
    assert channel.sent == []  # nothing leaves before the transaction commits
    assert pending
    for callback in pending:
        callback()
    assert len(channel.sent) == Notification.objects.filter(kind__in=SWEEP_KINDS).count() > 0


def test_each_reminder_reaches_the_channel_once_with_the_stored_row(
    channel, make_case, department_staff, django_capture_on_commit_callbacks
):
    make_case("dispatched", now=MONDAY)
    RecordingChannel.sent = []
    with django_capture_on_commit_callbacks(execute=True):
        sweep(SIGN_DEADLINE - dt.timedelta(minutes=20))
        sweep(SIGN_DEADLINE - dt.timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        sweep(SIGN_DEADLINE - dt.timedelta(minutes=5))
    stored = Notification.objects.get(kind="case_sign_due")
    assert channel.sent == [(stored.pk, department_staff.pk, "case_sign_due", stored.key, stored.title)]


def test_the_whole_sweep_reaches_the_channel_once_per_notification(
    channel, busy_street, django_capture_on_commit_callbacks
):
    before = Notification.objects.count()
    RecordingChannel.sent = []
    with django_capture_on_commit_callbacks(execute=True):
        sweep(busy_street)
    with django_capture_on_commit_callbacks(execute=True):
        sweep(busy_street)
    written = list(Notification.objects.order_by("id")[before:].values_list("pk", "user_id", "kind", "key", "title"))
    assert written
    assert sorted(channel.sent) == sorted(written)


def test_a_broken_channel_does_not_undo_the_notification_nor_silence_the_others(
    settings, make_case, department_staff, django_capture_on_commit_callbacks
):
    RecordingChannel.sent = []
    settings.NOTIFICATION_CHANNELS = [f"{__name__}.BrokenChannel", f"{__name__}.RecordingChannel"]
    with django_capture_on_commit_callbacks(execute=True):
        notify([department_staff], kind="test", key="test:1", title="测试")
    assert Notification.objects.filter(user=department_staff, key="test:1").count() == 1
    assert [row[3] for row in RecordingChannel.sent] == ["test:1"]


def test_notify_writes_once_per_user_and_key(department_staff, street_staff):
    first = notify([department_staff, street_staff, None], kind="test", key="k", title="标题")
    again = notify([department_staff, street_staff], kind="test", key="k", title="标题")
    assert {n.user_id for n in first} == {department_staff.pk, street_staff.pk}
    assert all(n.pk for n in first)
    assert again == []
    assert Notification.objects.filter(key="k").count() == 2


def test_beat_runs_the_sweep_every_few_minutes():
    from django.conf import settings

    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["case-deadlines"]
    assert entry["task"] == "grids.sweep_case_deadlines" and entry["task"] in app.tasks
    assert entry["schedule"] <= 600


def test_a_monday_deadline_is_reminded_on_friday_not_on_sunday(make_case):
    friday = dt.datetime(2026, 3, 6, 10, 0, tzinfo=SHANGHAI)
    case = make_case("in_progress", now=friday)
    Case.objects.filter(pk=case.pk).update(handle_deadline=dt.datetime(2026, 3, 9, 18, 0, tzinfo=SHANGHAI))
    assert sweep(dt.datetime(2026, 3, 5, 10, 0, tzinfo=SHANGHAI)) == ZERO  # Thursday: two working days ahead
    assert sweep(friday) == counts(handle_reminded=1)
    assert sweep(dt.datetime(2026, 3, 8, 10, 0, tzinfo=SHANGHAI)) == ZERO  # Sunday: already reminded, once
