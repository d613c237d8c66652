"""The letter's workflow through the services: writing, each step, every refusal (state 409, role 403, input 400,
too many 429), the links to cases, and the deadline sweep."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine

from governance.errors import DomainError, InvalidInput, NotAllowed, RateLimited
from governance.models import Notification
from grids.models import Case, CaseCategory, CaseState, Source
from mailbox import services
from mailbox.models import ClosedReason, Intake, Letter, LetterState
from tests.mailbox.conftest import image, pdf

SH = ZoneInfo("Asia/Shanghai")
# A Monday in an ordinary working week.
MONDAY = dt.datetime(2026, 11, 16, 10, 0, tzinfo=SH)


# --- Writing ----------------------------------------------------------------------------------------------------


def test_a_resident_writes_to_their_communitys_secretary_by_default(make_letter, city, resident_record, secretary):
    letter = make_letter(now=MONDAY)
    assert letter.unit == city.c1 and letter.writer == resident_record and letter.state == LetterState.SUBMITTED
    assert letter.number == f"XJ-2026-{letter.pk:06d}" and letter.intake == Intake.ONLINE
    # Two working days to accept it: Monday 10:00 → Wednesday at the close of office hours.
    assert letter.accept_deadline == dt.datetime(2026, 11, 18, 18, 0, tzinfo=SH)
    assert letter.events.get().action == "submit"
    assert Notification.objects.filter(user=secretary, kind="letter_new").count() == 1


def test_a_resident_may_write_to_their_street_but_nowhere_else(make_letter, city):
    assert make_letter(unit=city.s1).unit == city.s1
    for elsewhere in (city.c2, city.s2, city.g1):
        with pytest.raises(InvalidInput) as refused:
            make_letter(unit=elsewhere)
        assert refused.value.field == "unit"


def test_subject_and_body_are_required_and_limited(resident, category):
    for subject, body, field in (("", "内容", "subject"), ("标题", "  ", "body"), ("标题", "字" * 3001, "body")):
        with pytest.raises(InvalidInput) as refused:
            services.letter_submit(by=resident, category=category, subject=subject, body=body)
        assert refused.value.field == field
    assert not Letter.objects.exists()


def test_the_same_letter_sent_twice_within_a_minute_is_one_letter(resident, category):
    with time_machine.travel(MONDAY, tick=False):
        first, created = services.letter_submit(by=resident, category=category, subject="噪音", body="楼下装修太吵")
        again, created_again = services.letter_submit(
            by=resident, category=category, subject="噪音", body="楼下装修太吵"
        )
    assert created and not created_again and again.pk == first.pk
    with time_machine.travel(MONDAY + dt.timedelta(minutes=2), tick=False):
        later, created_later = services.letter_submit(
            by=resident, category=category, subject="噪音", body="楼下装修太吵"
        )
    assert created_later and later.pk != first.pk


def test_more_than_five_letters_a_day_is_429_and_tomorrow_is_fine(resident, category):
    with time_machine.travel(MONDAY, tick=False):
        for n in range(5):
            services.letter_submit(by=resident, category=category, subject=f"第{n}件事", body="内容")
        with pytest.raises(RateLimited) as refused:
            services.letter_submit(by=resident, category=category, subject="第六件事", body="内容")
    assert refused.value.status_code == 429 and "5" in str(refused.value.message)
    assert Letter.objects.count() == 5
    with time_machine.travel(MONDAY + dt.timedelta(days=1), tick=False):
        services.letter_submit(by=resident, category=category, subject="第六件事", body="内容")
    assert Letter.objects.count() == 6


def test_staff_write_down_a_letter_for_a_resident_who_came_in(community_staff, resident_record, category, city):
    letter, _ = services.letter_submit(
        by=community_staff,
        writer=resident_record,
        intake=Intake.PHONE,
        category=category,
        subject="来电",
        body="反映问题",
    )
    assert letter.writer == resident_record and letter.submitted_by == community_staff
    assert letter.intake == Intake.PHONE and letter.unit == city.c1


def test_who_may_write_for_whom(
    resident, resident_2_record, grid_worker_2, department_staff, resident_record, category
):
    with pytest.raises(NotAllowed):  # a resident writes only for themselves
        services.letter_submit(by=resident, writer=resident_2_record, category=category, subject="s", body="b")
    with pytest.raises(InvalidInput) as refused:  # staff only for the residents of their places
        services.letter_submit(by=grid_worker_2, writer=resident_record, category=category, subject="s", body="b")
    assert refused.value.field == "writer"
    with pytest.raises(InvalidInput):
        services.letter_submit(by=department_staff, writer=resident_record, category=category, subject="s", body="b")
    with pytest.raises(InvalidInput):  # staff must say for whom
        services.letter_submit(by=grid_worker_2, category=category, subject="s", body="b")


def test_attachments_are_images_or_pdf_files_checked_by_content(resident, category):
    from django.core.files.uploadedfile import SimpleUploadedFile

    letter, _ = services.letter_submit(
        by=resident, category=category, subject="s", body="b", attachments=[image(), pdf()]
    )
    kinds = sorted(letter.attachments.values_list("kind", flat=True))
    assert kinds == ["image", "pdf"]
    assert all(not a.file.name.endswith(("photo.jpg", "材料.pdf")) for a in letter.attachments.all())  # random names
    fake = SimpleUploadedFile("发票.pdf", b"MZ\x90\x00 not a pdf at all", content_type="application/pdf")
    with pytest.raises(InvalidInput) as refused:
        services.letter_submit(by=resident, category=category, subject="s2", body="b", attachments=[fake])
    assert refused.value.field == "attachments" and "发票.pdf" in str(refused.value.message)
    with pytest.raises(InvalidInput):
        services.letter_submit(by=resident, category=category, subject="s3", body="b", attachments=[image()] * 6)


# --- Intake ------------------------------------------------------------------------------------------------------


def test_accepting_starts_the_ten_working_day_reply_deadline(make_letter, secretary, resident):
    letter = make_letter(now=MONDAY)
    letter = services.letter_accept(letter=letter, by=secretary, now=MONDAY + dt.timedelta(hours=1))
    assert letter.state == LetterState.ACCEPTED and letter.accepted_on_time
    assert letter.reply_deadline == dt.datetime(2026, 11, 30, 18, 0, tzinfo=SH)  # two weeks of working days
    assert Notification.objects.filter(user=resident, kind="letter_accepted").exists()


def test_the_reply_deadline_skips_the_national_day_holiday(make_letter, secretary):
    # Accepted on Tuesday 29 September 2026: 1–7 October are holidays, Saturday 10 October is a working day.
    moment = dt.datetime(2026, 9, 29, 10, 0, tzinfo=SH)
    letter = services.letter_accept(letter=make_letter(now=moment), by=secretary, now=moment)
    assert letter.reply_deadline.date() == dt.date(2026, 10, 19)


def test_community_staff_accept_too_but_grid_workers_and_residents_may_not(
    make_letter, community_staff, grid_worker, resident
):
    for user in (grid_worker, resident):
        with pytest.raises(NotAllowed):
            services.letter_accept(letter=make_letter(), by=user)
    assert (
        services.letter_accept(letter=make_letter(subject="另一封"), by=community_staff).state == LetterState.ACCEPTED
    )


def test_the_street_secretary_does_not_run_a_communitys_mailbox(make_letter, street_secretary):
    with pytest.raises(NotAllowed):
        services.letter_accept(letter=make_letter(), by=street_secretary)


def test_rejecting_needs_a_reason_the_writer_sees(make_letter, secretary, resident):
    letter = make_letter()
    with pytest.raises(InvalidInput):
        services.letter_reject(letter=letter, by=secretary, note=" ")
    letter = services.letter_reject(letter=letter, by=secretary, note="属于物业合同纠纷，请走法律途径")
    assert letter.state == LetterState.REJECTED and letter.reject_reason.startswith("属于物业")
    assert Notification.objects.filter(user=resident, kind="letter_rejected").exists()
    with pytest.raises(DomainError) as refused:
        services.letter_accept(letter=letter, by=secretary)
    assert refused.value.status_code == 409


def test_assigning_to_a_unit_below_or_a_department(make_letter, secretary, city, grid_worker, department_staff):
    letter = services.letter_assign(letter=make_letter("accepted"), by=secretary, unit=city.g1, note="请核实")
    assert letter.state == LetterState.ASSIGNED and letter.assignee_unit == city.g1
    assert letter.assign_deadline == letter.reply_deadline
    assert Notification.objects.filter(user=grid_worker, kind="letter_assigned").exists()
    letter = services.letter_assign(letter=letter, by=secretary, department=city.department)
    assert letter.assignee_department == city.department and letter.assignee_unit is None
    assert Notification.objects.filter(user=department_staff, kind="letter_assigned").exists()


def test_assigning_refuses_what_makes_no_sense(make_letter, secretary, city):
    letter = make_letter("accepted", now=MONDAY)
    cases = [
        ({}, "unit"),
        ({"unit": city.g1, "department": city.department}, "unit"),
        ({"unit": city.g3}, "unit"),  # another community's grid
        ({"unit": city.b1}, "unit"),  # a building: letters go to streets, communities and grids only
        ({"unit": city.g1, "deadline": MONDAY - dt.timedelta(hours=1)}, "deadline"),
        ({"unit": city.g1, "deadline": MONDAY + dt.timedelta(days=60)}, "deadline"),  # after the reply deadline
    ]
    with time_machine.travel(MONDAY + dt.timedelta(hours=2), tick=False):
        for kwargs, field in cases:
            with pytest.raises(InvalidInput) as refused:
                services.letter_assign(letter=letter, by=secretary, **kwargs)
            assert refused.value.field == field, kwargs
    with pytest.raises(DomainError):  # not accepted yet
        services.letter_assign(letter=make_letter(), by=secretary, unit=city.g1)


def test_a_letter_becomes_a_grid_case_linked_both_ways(make_letter, secretary, city, community_staff, resident_record):
    category = CaseCategory.objects.get(code="public-streetlight")
    letter = services.letter_assign(
        letter=make_letter("accepted"), by=secretary, case_grid=city.g1, case_category=category, note="请尽快"
    )
    case = Case.objects.get()
    assert letter.case == case and case.letter == letter
    assert case.source == Source.LETTER and case.state == CaseState.REPORTED and case.grid == city.g1
    assert case.affected_resident == resident_record  # the writer lives there: they rate the case too
    assert letter.number in case.description
    assert Notification.objects.filter(user=community_staff, kind="case_new").exists()
    with pytest.raises(DomainError):  # once only
        services.letter_assign(letter=letter, by=secretary, unit=city.g1)


def test_turning_into_a_case_needs_a_grid_of_the_letters_unit_and_a_category(make_letter, secretary, city):
    category = CaseCategory.objects.get(code="public-streetlight")
    letter = make_letter("accepted")
    with pytest.raises(InvalidInput) as refused:
        services.letter_assign(letter=letter, by=secretary, case_grid=city.g3, case_category=category)
    assert refused.value.field == "case_grid"
    with pytest.raises(InvalidInput) as refused:
        services.letter_assign(letter=letter, by=secretary, case_grid=city.g1)
    assert refused.value.field == "case_category"
    assert not Case.objects.exists()


# --- Replies ------------------------------------------------------------------------------------------------------


def test_the_secretary_replies_and_the_writer_is_told(make_letter, secretary, resident):
    letter = make_letter("assigned")
    letter = services.letter_reply(letter=letter, by=secretary, text="已协调物业，周五前修好。")
    assert letter.state == LetterState.REPLIED and letter.reply.startswith("已协调") and letter.replied_by == secretary
    assert letter.replied_on_time and letter.answered_at == letter.replied_at
    assert Notification.objects.filter(user=resident, kind="letter_replied").exists()


def test_a_handlers_reply_is_a_draft_the_secretary_signs_off(make_letter, secretary, grid_worker, resident):
    letter = make_letter("drafted")
    assert letter.state == LetterState.DRAFTED and letter.draft and not letter.reply
    assert letter.drafted_by == grid_worker
    assert Notification.objects.filter(user=secretary, kind="letter_draft").exists()
    assert not Notification.objects.filter(user=resident, kind="letter_replied").exists()
    with pytest.raises(NotAllowed):
        services.letter_sign_off(letter=letter, by=grid_worker, approved=True)
    letter = services.letter_sign_off(letter=letter, by=secretary, approved=True, text="已联系物业更换灯泡，今天修好。")
    assert letter.state == LetterState.REPLIED and letter.reply == "已联系物业更换灯泡，今天修好。"
    assert letter.replied_by == secretary and letter.draft == ""


def test_a_draft_sent_back_goes_back_to_its_handler(make_letter, secretary, grid_worker):
    letter = make_letter("drafted")
    with pytest.raises(InvalidInput):
        services.letter_sign_off(letter=letter, by=secretary, approved=False, note="")
    letter = services.letter_sign_off(letter=letter, by=secretary, approved=False, note="请写明更换时间")
    assert letter.state == LetterState.ASSIGNED and not letter.reply
    assert Notification.objects.filter(user=grid_worker, kind="letter_draft_returned").exists()


def test_who_may_reply(make_letter, grid_worker_2, resident, department_staff, community_staff):
    letter = make_letter("assigned")  # assigned to 第一网格
    for user in (grid_worker_2, resident, department_staff):
        with pytest.raises(NotAllowed):
            services.letter_reply(letter=letter, by=user, text="答复")
    assert services.letter_reply(letter=letter, by=community_staff, text="草稿").state == LetterState.DRAFTED
    with pytest.raises(InvalidInput):
        services.letter_reply(letter=make_letter("assigned", subject="另一封"), by=community_staff, text=" ")


def test_one_follow_up_answered_the_same_way(make_letter, resident, secretary, grid_worker):
    letter = make_letter("follow_up", now=MONDAY)
    assert letter.state == LetterState.FOLLOW_UP and letter.follow_up_question == "三天了还没修？"
    assert letter.reply_deadline == dt.datetime(2026, 11, 23, 18, 0, tzinfo=SH)  # five working days
    letter = services.letter_reply(letter=letter, by=grid_worker, text="灯泡缺货，周三到货。")
    assert letter.state == LetterState.DRAFTED
    letter = services.letter_sign_off(letter=letter, by=secretary, approved=True)
    assert letter.state == LetterState.REPLIED and letter.follow_up_reply == "灯泡缺货，周三到货。"
    assert letter.reply == "已安排物业三天内修好。"  # the first reply stays as it was
    with pytest.raises(DomainError) as refused:
        services.letter_follow_up(letter=letter, by=resident, note="还有问题")
    assert "一次" in str(refused.value.message)


def test_only_the_writer_follows_up_and_rates(make_letter, resident_2, secretary):
    letter = make_letter("replied")
    for step in (services.letter_follow_up, services.letter_rate):
        for user in (resident_2, secretary):
            with pytest.raises(NotAllowed):
                step(letter=letter, by=user, note="x", **({"stars": 5} if step is services.letter_rate else {}))


def test_a_letter_written_down_for_a_resident_without_login_is_rated_by_the_office(
    community_staff, secretary, category, city
):
    from tests.factories import HouseholdFactory, ResidentFactory

    walk_in = ResidentFactory(household=HouseholdFactory(building=city.b1, room="3单元301"), name="赵大爷")
    letter, _ = services.letter_submit(by=community_staff, writer=walk_in, category=category, subject="s", body="b")
    letter = services.letter_accept(letter=letter, by=secretary)
    letter = services.letter_reply(letter=letter, by=secretary, text="已处理")
    letter = services.letter_rate(letter=letter, by=community_staff, stars=4, note="电话回访：满意")
    assert letter.rating == 4 and letter.state == LetterState.CLOSED


def test_rating_closes_the_letter_once(make_letter, resident):
    letter = make_letter("closed", stars=4)
    assert letter.state == LetterState.CLOSED and letter.closed_reason == ClosedReason.RATED and letter.rating == 4
    with pytest.raises(DomainError) as refused:
        services.letter_rate(letter=letter, by=resident, stars=5)
    assert refused.value.status_code == 409
    for stars in (0, 6, "5", True):
        with pytest.raises(InvalidInput):
            services.letter_rate(letter=make_letter("replied", subject=f"s{stars!r}"), by=resident, stars=stars)


def test_a_low_rating_lets_the_secretary_reopen_once(make_letter, secretary, resident, grid_worker):
    letter = make_letter("closed", stars=2)
    assert Notification.objects.filter(user=secretary, kind="letter_low_rating").exists()
    with pytest.raises(NotAllowed):
        services.letter_reopen(letter=letter, by=resident, note="重办")
    with pytest.raises(InvalidInput):
        services.letter_reopen(letter=letter, by=secretary, note="")
    letter = services.letter_reopen(letter=letter, by=secretary, note="请网格员上门核实")
    assert letter.state == LetterState.ASSIGNED and letter.reopen_count == 1 and letter.closed_reason == ""
    assert Notification.objects.filter(user=grid_worker, kind="letter_assigned").count() == 2
    letter = services.letter_reply(letter=letter, by=secretary, text="已上门修好")
    letter = services.letter_rate(letter=letter, by=resident, stars=1)
    with pytest.raises(DomainError) as refused:
        services.letter_reopen(letter=letter, by=secretary, note="再办")
    assert "一次" in str(refused.value.message)


def test_a_satisfied_letter_is_not_reopened(make_letter, secretary):
    with pytest.raises(DomainError):
        services.letter_reopen(letter=make_letter("closed", stars=3), by=secretary, note="再办")


def test_every_step_writes_one_event(make_letter):
    letter = make_letter("closed")
    actions = list(letter.events.order_by("id").values_list("action", "from_state", "to_state"))
    assert actions == [
        ("submit", "", "submitted"),
        ("accept", "submitted", "accepted"),
        ("assign", "accepted", "assigned"),
        ("reply", "assigned", "replied"),
        ("rate", "replied", "closed"),
    ]


# --- The sweep ----------------------------------------------------------------------------------------------------


def test_the_sweep_reminds_then_marks_overdue_once(make_letter, secretary, street_secretary):
    letter = make_letter(now=MONDAY)  # to be accepted by Wednesday 18:00
    services.letter_sweep(now=MONDAY + dt.timedelta(hours=1))
    assert not Notification.objects.filter(kind="letter_accept_due").exists()
    tuesday = MONDAY + dt.timedelta(days=1, hours=1)
    assert services.letter_sweep(now=tuesday)["accept_reminded"] == 1
    assert services.letter_sweep(now=tuesday)["accept_reminded"] == 0  # once
    thursday = MONDAY + dt.timedelta(days=3)
    assert services.letter_sweep(now=thursday)["accept_overdue"] == 1
    assert services.letter_sweep(now=thursday)["accept_overdue"] == 0
    letter.refresh_from_db()
    assert letter.accept_overdue and letter.events.filter(action="accept-overdue").count() == 1
    assert Notification.objects.filter(user=secretary, kind="letter_overdue").count() == 1
    assert Notification.objects.filter(user=street_secretary, kind="letter_overdue").count() == 1  # the street follows
    letter = services.letter_accept(letter=letter, by=secretary, now=thursday)
    assert letter.accepted_on_time is False


def test_the_sweep_marks_a_late_reply_and_reminds_the_handler(make_letter, secretary, grid_worker):
    letter = make_letter("assigned", now=MONDAY)
    due = letter.reply_deadline
    assert services.letter_sweep(now=due - dt.timedelta(hours=2))["reply_reminded"] == 1
    assert Notification.objects.filter(user=grid_worker, kind="letter_assigned", title__startswith="催办").exists()
    assert services.letter_sweep(now=due + dt.timedelta(minutes=1))["reply_overdue"] == 1
    letter = services.letter_reply(letter=letter, by=secretary, text="迟到的答复", now=due + dt.timedelta(hours=1))
    assert letter.replied_on_time is False and letter.reply_overdue


def test_an_unanswered_rating_closes_as_unrated_after_seven_days(make_letter, resident):
    letter = make_letter("replied", now=MONDAY)
    assert services.letter_sweep(now=MONDAY + dt.timedelta(days=6))["auto_closed"] == 0
    assert services.letter_sweep(now=MONDAY + dt.timedelta(days=7, minutes=1))["auto_closed"] == 1
    letter.refresh_from_db()
    assert letter.state == LetterState.CLOSED and letter.closed_reason == ClosedReason.UNRATED and letter.rating is None
    assert letter.events.last().action == "auto-close"
    assert services.letter_sweep(now=MONDAY + dt.timedelta(days=8))["auto_closed"] == 0
    with pytest.raises(DomainError):
        services.letter_rate(letter=letter, by=resident, stars=5)


def test_the_secretary_hears_when_the_case_a_letter_became_is_handled(make_letter, secretary, city, department_staff):
    from grids import services as case_services

    category = CaseCategory.objects.get(code="public-streetlight")
    letter = services.letter_assign(
        letter=make_letter("accepted"), by=secretary, case_grid=city.g1, case_category=category
    )
    assert services.letter_sweep()["case_done"] == 0
    case = letter.case
    community = case_services.case_accept(case=case, by=secretary)
    case_services.case_handle(case=community, by=secretary, note="路灯已修复")
    assert services.letter_sweep()["case_done"] == 1
    assert services.letter_sweep()["case_done"] == 0
    assert Notification.objects.filter(user=secretary, kind="letter_case_done").count() == 1


def test_the_command_and_the_task_run_the_sweep(make_letter, capsys):
    from django.core.management import call_command

    from mailbox.tasks import sweep_letter_deadlines

    make_letter("replied", now=MONDAY - dt.timedelta(days=10))
    call_command("letter_sweep")
    assert "超期未评价办结 1 封" in capsys.readouterr().out
    assert sweep_letter_deadlines.apply().get()["auto_closed"] == 0
