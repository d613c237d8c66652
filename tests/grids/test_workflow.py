"""The case workflow through its services: each action's happy path, its refusals by role (403) and by state
(409), what each persona may see, and the rules around duplicates, reopening, extensions and supports."""

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from governance import services as governance_services
from governance.errors import DomainError
from governance.models import Notification, Role
from grids import selectors, services
from grids.models import Case, CaseCategory, CaseDispatch, CaseState, CaseSupport, ClosedReason

from ..factories import UserFactory
from .conftest import photo

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = dt.datetime(2026, 3, 9, 10, 0, tzinfo=SHANGHAI)  # an ordinary working week: 9–13 March 2026

PERSONAS = [
    "grid_worker",
    "grid_worker_2",
    "community_staff",
    "secretary",
    "street_staff",
    "outsider",
    "department_staff",
    "other_department_staff",
    "resident",
    "resident_2",
    "admin_user",
]


def refused(status, call, *args, **kwargs) -> str:
    """Run `call`, expect a domain error with `status`, return its message."""
    with pytest.raises(DomainError) as info:
        call(*args, **kwargs)
    assert info.value.status_code == status, info.value.message
    return str(info.value.message)


def last_event(case):
    return case.events.order_by("-id").first()


def kinds_for(user):
    return sorted(Notification.objects.filter(user=user).values_list("kind", flat=True))


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def persona(request):
    """`persona("street_staff")`: the named persona of tests/conftest.py."""
    return request.getfixturevalue


# --- The actions a test can take, with valid input --------------------------------------------------------


def act(name, case, by, city):
    until = (case.handle_deadline or MONDAY) + dt.timedelta(days=7)
    calls = {
        "resolve-on-site": lambda: services.case_resolve_on_site(case=case, by=by, note="已现场清理", photos=[photo()]),
        "accept": lambda: services.case_accept(case=case, by=by),
        "return": lambda: services.case_return(case=case, by=by, note="请补充具体位置"),
        "resubmit": lambda: services.case_resubmit(case=case, by=by, note="已补充位置"),
        "close": lambda: services.case_close(case=case, by=by, reason=ClosedReason.INVALID, note="非本辖区"),
        "escalate": lambda: services.case_escalate(case=case, by=by, note="需城管执法"),
        "dispatch": lambda: services.case_dispatch(case=case, by=by, department=city.department),
        "sign": lambda: services.case_sign(case=case, by=by),
        "send-back": lambda: services.case_send_back(case=case, by=by, note="不属本部门职责"),
        "request-extension": lambda: services.case_request_extension(case=case, by=by, until=until, note="需采购"),
        "decide-extension": lambda: services.case_decide_extension(case=case, by=by, approve=False, note="不予延期"),
        "handle": lambda: services.case_handle(case=case, by=by, note="已清理"),
        "verify": lambda: services.case_verify(case=case, by=by, confirmed=True),
        "rate": lambda: services.case_rate(case=case, by=by, stars=4),
        "reopen": lambda: services.case_reopen(case=case, by=by, note="杂物又堆回来了"),
        "review-department": lambda: services.case_review_department(
            case=case, by=by, department=city.department, stars=4
        ),
        "comment": lambda: services.case_comment(case=case, by=by, note="已关注"),
        "support": lambda: services.case_support(case=case, by=by),
    }
    return calls[name]()


# Where each action is possible, and the personas whose role allows it there (the case is filed in G1 by the
# grid worker, in a whistle-item category that may be solved on site, with no affected resident, dispatched
# to 城管局 alone).
ALLOWED = {
    "resolve-on-site": ("reported", {"grid_worker"}),
    "accept": ("reported", {"community_staff", "secretary"}),
    "return": ("reported", {"community_staff", "secretary"}),
    "resubmit": ("returned", {"grid_worker"}),
    "close": ("reported", {"community_staff", "secretary"}),
    "escalate": ("reported", {"community_staff", "secretary"}),
    "dispatch": ("escalated", {"street_staff"}),
    "sign": ("dispatched", {"department_staff"}),
    "send-back": ("dispatched", {"department_staff"}),
    "request-extension": ("in_progress", {"department_staff"}),
    "decide-extension": ("extension_requested", {"street_staff"}),
    "handle": ("in_progress", {"department_staff"}),
    "verify": ("handled", {"grid_worker", "community_staff", "secretary"}),
    "rate": ("verified", {"community_staff", "secretary"}),
    "reopen": ("closed_low", {"community_staff", "secretary"}),
    "review-department": ("handled", {"street_staff"}),
    # Anyone who can see the case (the scope is the accessor's, see the scope tests below).
    "comment": ("reported", set(PERSONAS)),
    "support": ("reported", set(PERSONAS)),
}


@pytest.fixture
def case_in(make_case, department_staff):
    def make(where):
        if where == "extension_requested":
            case = make_case("in_progress")
            until = case.handle_deadline + dt.timedelta(days=5)
            return services.case_request_extension(case=case, by=department_staff, until=until, note="需采购配件")
        if where == "closed_low":
            return make_case("closed", stars=1)
        return make_case(where)

    return make


def test_every_action_of_the_workflow_is_covered_here():
    assert set(ALLOWED) == set(services.CASE_FLOW.actions)


@pytest.mark.parametrize("name", PERSONAS)
@pytest.mark.parametrize("action", sorted(ALLOWED))
def test_only_the_right_roles_may_take_each_action(action, name, persona, case_in, city):
    where, allowed = ALLOWED[action]
    case = case_in(where)
    user = persona(name)
    events_before = case.events.count()
    if name in allowed:
        act(action, case, user, city)
        event = last_event(case)
        assert (event.action, event.actor) == (action, user)
    else:
        message = refused(403, act, action, case, user, city)
        assert message
        fresh = Case.objects.get(pk=case.pk)
        assert fresh.state == case.state
        assert fresh.events.count() == events_before


# The state refusals: a persona whose role allows the action, in a state that does not.
WRONG_STATE = [
    ("resolve-on-site", "escalated", "grid_worker"),
    ("accept", "returned", "community_staff"),
    ("return", "escalated", "community_staff"),
    ("resubmit", "reported", "grid_worker"),
    ("close", "escalated", "community_staff"),
    ("escalate", "escalated", "community_staff"),
    ("dispatch", "dispatched", "street_staff"),
    ("sign", "handled", "department_staff"),
    ("send-back", "in_progress", "department_staff"),
    ("request-extension", "handled", "department_staff"),
    ("decide-extension", "handled", "street_staff"),
    ("handle", "dispatched", "department_staff"),
    ("verify", "in_progress", "grid_worker"),
    ("rate", "handled", "community_staff"),
    ("reopen", "verified", "community_staff"),
    ("review-department", "dispatched", "street_staff"),
    ("support", "closed", "resident"),
]


@pytest.mark.parametrize(("action", "state", "name"), WRONG_STATE, ids=[row[0] for row in WRONG_STATE])
def test_an_action_the_state_does_not_allow_is_a_409_naming_the_state(action, state, name, persona, make_case, city):
    case = make_case(state)
    events_before = case.events.count()
    message = refused(409, act, action, case, persona(name), city)
    assert str(CaseState(state).label) in message
    assert str(services.CASE_FLOW.actions[action].label) in message
    fresh = Case.objects.get(pk=case.pk)
    assert fresh.state == state
    assert fresh.events.count() == events_before


def test_every_action_but_comment_has_a_state_refusal():
    assert {row[0] for row in WRONG_STATE} == set(services.CASE_FLOW.actions) - {"comment"}


# --- Scope ------------------------------------------------------------------------------------------------


def test_each_persona_sees_exactly_the_cases_of_their_place(
    persona, make_case, city, categories, grid_worker_2, community_staff, street_staff, resident_record
):
    worker_g4 = UserFactory(username="grid_worker_4")
    governance_services.position_grant(by=None, user=worker_g4, role=Role.GRID_WORKER, unit=city.g4)
    public_g1 = make_case(title="G1 乱堆乱放")
    lead = make_case("dispatched", title="G1 派给城管局")
    joint = make_case("escalated", title="G1 联合处置")
    services.case_dispatch(case=joint, by=street_staff, department=city.department, assisting=[city.other_department])
    private_g1 = make_case(category=categories.neighbours, title="G1 邻里纠纷")
    concerns_resident = make_case(
        category=categories.neighbours, title="G1 张三明的纠纷", affected_resident=resident_record
    )
    g2 = make_case(by=community_staff, grid=city.g2, title="G2")
    g3 = make_case(by=grid_worker_2, grid=city.g3, title="G3")
    g4 = make_case(by=worker_g4, grid=city.g4, title="G4")

    g1 = {public_g1, lead, joint, private_g1, concerns_resident}
    everyone = g1 | {g2, g3, g4}
    expected = {
        "admin_user": everyone,
        "street_staff": g1 | {g2, g3},
        "community_staff": g1 | {g2},
        "secretary": g1 | {g2},
        "grid_worker": g1,
        "grid_worker_2": {g3},
        "outsider": {g4},
        "department_staff": {lead, joint},
        "other_department_staff": {joint},
        "resident": {public_g1, lead, joint, concerns_resident},
        "resident_2": {g3},
    }
    assert set(expected) == set(PERSONAS)
    for name, cases in expected.items():
        visible = selectors.cases_visible_to(persona(name))
        assert set(visible) == cases, name
        assert visible.count() == len(cases), f"{name}: no case listed twice"


# --- Happy paths, one action at a time --------------------------------------------------------------------


def test_grid_worker_resolves_a_simple_case_on_site(make_case, city, grid_worker, community_staff):
    case = make_case()
    now = MONDAY + dt.timedelta(minutes=30)
    services.case_resolve_on_site(case=case, by=grid_worker, note="已现场清理", photos=[photo()], now=now)
    case.refresh_from_db()
    assert case.state == CaseState.VERIFIED
    assert case.accepted_at == case.handled_at == case.verified_at == now
    assert case.handled_on_time is True
    assert case.holder_unit == city.c1
    event = last_event(case)
    assert (event.action, event.actor, event.from_state, event.to_state, event.note) == (
        "resolve-on-site",
        grid_worker,
        "reported",
        "verified",
        "已现场清理",
    )
    assert event.photos.count() == 1
    # With no affected resident, the community rates the result.
    assert "case_to_rate" in kinds_for(community_staff)
    assert "case_to_rate" not in kinds_for(grid_worker)


def test_resolving_on_site_asks_the_affected_resident_to_rate(make_case, grid_worker, resident, resident_record):
    case = make_case(affected_resident=resident_record)
    services.case_resolve_on_site(case=case, by=grid_worker, note="已现场清理", photos=[photo()])
    assert "case_to_rate" in kinds_for(resident)


def test_resolving_on_site_needs_a_note_and_a_photo(make_case, grid_worker):
    case = make_case()
    message = refused(400, services.case_resolve_on_site, case=case, by=grid_worker, note="已清理", photos=[])
    assert "照片" in message
    refused(400, services.case_resolve_on_site, case=case, by=grid_worker, note="  ", photos=[photo()])
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED


def test_a_category_that_is_not_solved_on_site_cannot_be_resolved_on_site(make_case, categories, grid_worker):
    case = make_case(category=categories.lift)
    message = refused(409, services.case_resolve_on_site, case=case, by=grid_worker, note="已修", photos=[photo()])
    assert "不能现场处置" in message
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED


def test_community_accepts_a_case_and_the_handling_clock_starts(make_case, city, community_staff):
    case = make_case()
    services.case_accept(case=case, by=community_staff, note="社区自行处理", now=MONDAY)
    case.refresh_from_db()
    assert case.state == CaseState.IN_PROGRESS
    assert (case.holder_unit, case.holder_department) == (city.c1, None)
    assert case.accepted_at == MONDAY
    # 乱堆乱放: three working days, ending at the close of Thursday.
    assert case.handle_deadline == dt.datetime(2026, 3, 12, 18, 0, tzinfo=SHANGHAI)
    assert case.handle_overdue is False
    event = last_event(case)
    assert (event.action, event.actor, event.from_state, event.to_state, event.note) == (
        "accept",
        community_staff,
        "reported",
        "in_progress",
        "社区自行处理",
    )


def test_the_street_may_accept_an_escalated_case_itself_and_handle_it(make_case, city, street_staff):
    case = make_case("escalated")
    services.case_accept(case=case, by=street_staff, now=MONDAY)
    case.refresh_from_db()
    assert (case.state, case.holder_unit) == (CaseState.IN_PROGRESS, city.s1)
    services.case_handle(case=case, by=street_staff, note="街道协调清理", now=MONDAY + dt.timedelta(hours=2))
    case.refresh_from_db()
    assert case.state == CaseState.HANDLED


def test_community_returns_a_case_to_the_reporter(make_case, community_staff, grid_worker):
    case = make_case()
    services.case_return(case=case, by=community_staff, note="请补充具体位置")
    case.refresh_from_db()
    assert case.state == CaseState.RETURNED
    event = last_event(case)
    assert (event.action, event.actor, event.from_state, event.to_state, event.note) == (
        "return",
        community_staff,
        "reported",
        "returned",
        "请补充具体位置",
    )
    returned = Notification.objects.get(user=grid_worker, kind="case_returned")
    assert case.number in returned.title
    assert returned.body == "请补充具体位置"


def test_returning_needs_a_reason(make_case, community_staff):
    case = make_case()
    refused(400, services.case_return, case=case, by=community_staff, note="")
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED


def test_the_reporter_resubmits_a_returned_case_with_more_detail(make_case, grid_worker):
    case = make_case("returned")
    services.case_resubmit(
        case=case, by=grid_worker, note="已补充位置", description="1栋2单元一楼楼道，纸箱约二十个。", photos=[photo()]
    )
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED
    assert case.description == "1栋2单元一楼楼道，纸箱约二十个。"
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "resubmit",
        "returned",
        "reported",
        "已补充位置",
    )
    assert event.photos.count() == 1


def test_community_closes_an_invalid_case_with_a_reason(make_case, community_staff):
    case = make_case()
    refused(400, services.case_close, case=case, by=community_staff, reason=ClosedReason.INVALID, note="")
    services.case_close(case=case, by=community_staff, reason=ClosedReason.INVALID, note="非本辖区", now=MONDAY)
    case.refresh_from_db()
    assert (case.state, case.closed_reason, case.closed_at, case.duplicate_of) == (
        CaseState.CLOSED,
        ClosedReason.INVALID,
        MONDAY,
        None,
    )
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == ("close", "reported", "closed", "非本辖区")
    assert event.data["reason"] == "invalid"


def test_closing_as_duplicate_links_the_original(make_case, community_staff):
    original = make_case(title="楼道堆放纸箱")
    copy = make_case("returned", title="楼道纸箱没人管")
    services.case_close(case=copy, by=community_staff, reason=ClosedReason.DUPLICATE, duplicate_of=original)
    copy.refresh_from_db()
    assert (copy.state, copy.closed_reason, copy.duplicate_of) == (
        CaseState.CLOSED,
        ClosedReason.DUPLICATE,
        original,
    )
    assert last_event(copy).data["duplicate_of"] == original.number
    original.refresh_from_db()
    assert original.state == CaseState.REPORTED


def test_a_duplicate_must_name_another_case_the_closer_can_see(make_case, city, community_staff, grid_worker_2):
    case = make_case()
    elsewhere = make_case(by=grid_worker_2, grid=city.g3)  # C2's: not visible to C1's staff
    for original in (None, case, elsewhere):
        refused(
            400,
            services.case_close,
            case=case,
            by=community_staff,
            reason=ClosedReason.DUPLICATE,
            duplicate_of=original,
        )
    refused(400, services.case_close, case=case, by=community_staff, reason=ClosedReason.RATED, note="x")
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED


def test_community_blows_the_whistle_to_the_street(make_case, city, community_staff, street_staff, outsider):
    case = make_case()
    refused(400, services.case_escalate, case=case, by=community_staff, note=" ")
    services.case_escalate(case=case, by=community_staff, note="需城管执法")
    case.refresh_from_db()
    assert (case.state, case.holder_unit) == (CaseState.ESCALATED, city.s1)
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "escalate",
        "reported",
        "escalated",
        "需城管执法",
    )
    assert "case_escalated" in kinds_for(street_staff)
    assert "case_escalated" not in kinds_for(outsider)


def test_the_street_dispatches_to_a_lead_and_assisting_departments(
    make_case, city, street_staff, department_staff, other_department_staff
):
    case = make_case("escalated")
    services.case_dispatch(
        case=case,
        by=street_staff,
        department=city.department,
        assisting=[city.other_department, city.department, city.other_department],
        note="联合处置",
        now=MONDAY,
    )
    case.refresh_from_db()
    assert case.state == CaseState.DISPATCHED
    assert (case.holder_unit, case.holder_department) == (None, city.department)
    assert case.dispatched_at == MONDAY
    assert case.sign_deadline == MONDAY + dt.timedelta(hours=2)  # 乱堆乱放: two hours to sign for
    rows = {(row.department, row.is_lead) for row in CaseDispatch.objects.filter(case=case)}
    assert rows == {(city.department, True), (city.other_department, False)}
    assert all(row.dispatched_by == street_staff for row in case.dispatches.all())
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "dispatch",
        "escalated",
        "dispatched",
        "联合处置",
    )
    assert event.data["department"] == "城管局"
    assert "case_dispatched" in kinds_for(department_staff)
    assert "case_dispatched" in kinds_for(other_department_staff)
    assert "12:00" in Notification.objects.get(user=department_staff, kind="case_dispatched").body


def test_a_category_that_is_not_a_whistle_item_cannot_be_dispatched(make_case, city, categories, street_staff):
    case = make_case("escalated", category=categories.neighbours)
    message = refused(409, services.case_dispatch, case=case, by=street_staff, department=city.department)
    assert "吹哨事项清单" in message
    case.refresh_from_db()
    assert case.state == CaseState.ESCALATED
    assert not CaseDispatch.objects.filter(case=case).exists()
    # The street takes it on itself instead.
    services.case_accept(case=case, by=street_staff)
    case.refresh_from_db()
    assert (case.state, case.holder_unit) == (CaseState.IN_PROGRESS, city.s1)


def test_the_lead_department_signs_and_the_handling_clock_starts(make_case, city, department_staff):
    case = make_case("dispatched", now=MONDAY)
    signed = MONDAY + dt.timedelta(minutes=45)
    services.case_sign(case=case, by=department_staff, note="已签收", now=signed)
    case.refresh_from_db()
    assert (case.state, case.holder_department) == (CaseState.IN_PROGRESS, city.department)
    assert case.signed_at == signed
    assert case.sign_seconds == 45 * 60
    assert case.handle_deadline == dt.datetime(2026, 3, 12, 18, 0, tzinfo=SHANGHAI)
    row = CaseDispatch.objects.get(case=case)
    assert (row.signed_at, row.sign_seconds) == (signed, 45 * 60)
    event = last_event(case)
    assert (event.action, event.actor, event.from_state, event.to_state) == (
        "sign",
        department_staff,
        "dispatched",
        "in_progress",
    )


def test_an_assisting_department_signs_for_its_part_without_moving_the_case(
    make_case, city, street_staff, department_staff, other_department_staff
):
    case = make_case("escalated")
    services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department], now=MONDAY
    )
    services.case_sign(case=case, by=other_department_staff, now=MONDAY + dt.timedelta(minutes=10))
    case.refresh_from_db()
    assert case.state == CaseState.DISPATCHED
    assert CaseDispatch.objects.get(case=case, department=city.other_department).signed_at is not None
    assert CaseDispatch.objects.get(case=case, department=city.department).signed_at is None
    assert (last_event(case).from_state, last_event(case).to_state) == ("dispatched", "dispatched")
    # The assisting department may neither handle nor send the case back: that is the lead's.
    refused(403, services.case_send_back, case=case, by=other_department_staff, note="不归我们")
    services.case_sign(case=case, by=department_staff, now=MONDAY + dt.timedelta(minutes=20))
    case.refresh_from_db()
    assert case.state == CaseState.IN_PROGRESS
    refused(403, services.case_handle, case=case, by=other_department_staff, note="已办")


def test_an_assisting_department_may_sign_after_the_lead(
    make_case, city, street_staff, department_staff, other_department_staff
):
    case = make_case("escalated")
    services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department], now=MONDAY
    )
    services.case_sign(case=case, by=department_staff, now=MONDAY + dt.timedelta(minutes=5))
    deadline = Case.objects.get(pk=case.pk).handle_deadline
    services.case_sign(case=case, by=other_department_staff, now=MONDAY + dt.timedelta(minutes=50))
    case.refresh_from_db()
    assert (case.state, case.signed_at, case.handle_deadline) == (
        CaseState.IN_PROGRESS,
        MONDAY + dt.timedelta(minutes=5),  # the case's clock is the lead's
        deadline,
    )
    row = CaseDispatch.objects.get(case=case, department=city.other_department)
    assert row.sign_seconds == 50 * 60
    assert (last_event(case).from_state, last_event(case).to_state) == ("in_progress", "in_progress")
    refused(409, services.case_sign, case=case, by=other_department_staff)


def test_a_send_back_withdraws_the_assisting_dispatches_too(
    make_case, city, street_staff, department_staff, other_department_staff
):
    """The street dispatches afresh; the departments of the withdrawn dispatch cannot sign the old one."""
    case = make_case("escalated")
    services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department], now=MONDAY
    )
    services.case_send_back(case=case, by=department_staff, note="不属本部门职责", now=MONDAY)
    assert not CaseDispatch.objects.filter(case=case, sent_back_at=None).exists()
    refused(403, services.case_sign, case=case, by=other_department_staff)
    services.case_dispatch(case=case, by=street_staff, department=city.department, now=MONDAY + dt.timedelta(hours=1))
    refused(403, services.case_sign, case=case, by=other_department_staff)
    services.case_sign(case=case, by=department_staff, now=MONDAY + dt.timedelta(hours=1, minutes=10))
    case.refresh_from_db()
    assert case.state == CaseState.IN_PROGRESS
    open_rows = CaseDispatch.objects.filter(case=case, sent_back_at=None)
    assert [(r.department, r.signed_at is not None) for r in open_rows] == [(city.department, True)]


def test_a_department_cannot_sign_twice(make_case, department_staff):
    case = make_case("in_progress")
    message = refused(409, services.case_sign, case=case, by=department_staff)
    assert "已签收" in message


def test_a_department_sends_a_case_back_to_the_street(
    make_case, city, street_staff, department_staff, other_department_staff
):
    case = make_case("escalated")
    services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department], now=MONDAY
    )
    refused(400, services.case_send_back, case=case, by=department_staff, note="")
    services.case_send_back(case=case, by=department_staff, note="不属本部门职责", now=MONDAY + dt.timedelta(hours=1))
    case.refresh_from_db()
    assert case.state == CaseState.ESCALATED
    assert (case.holder_unit, case.holder_department) == (city.s1, None)
    assert case.send_back_count == 1
    assert case.sign_deadline is None
    lead = CaseDispatch.objects.get(case=case, department=city.department)
    assert lead.sent_back_at == MONDAY + dt.timedelta(hours=1)
    assert lead.send_back_reason == "不属本部门职责"
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "send-back",
        "dispatched",
        "escalated",
        "不属本部门职责",
    )
    assert "case_sent_back" in kinds_for(street_staff)
    # The street sends it on to another department; a second send-back counts again.
    services.case_dispatch(case=case, by=street_staff, department=city.other_department)
    services.case_send_back(case=case, by=other_department_staff, note="也不归我们")
    case.refresh_from_db()
    assert case.send_back_count == 2
    # The first department may no longer act on it.
    refused(403, services.case_sign, case=case, by=department_staff)


def test_the_holder_requests_an_extension_and_the_street_hears_of_it(make_case, department_staff, street_staff):
    case = make_case("in_progress", now=MONDAY)
    deadline = case.handle_deadline
    message = refused(
        400, services.case_request_extension, case=case, by=department_staff, until=deadline, note="需采购配件"
    )
    assert "晚于" in message
    refused(
        400,
        services.case_request_extension,
        case=case,
        by=department_staff,
        until=deadline + dt.timedelta(days=3),
        note="",
    )
    until = deadline + dt.timedelta(days=3)
    services.case_request_extension(case=case, by=department_staff, until=until, note="需采购配件")
    case.refresh_from_db()
    assert (case.extension_requested_until, case.extension_reason) == (until, "需采购配件")
    assert case.handle_deadline == deadline  # unchanged until the street decides
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "request-extension",
        "in_progress",
        "in_progress",
        "需采购配件",
    )
    assert "case_extension" in kinds_for(street_staff)
    # One request at a time.
    message = refused(
        409,
        services.case_request_extension,
        case=case,
        by=department_staff,
        until=until + dt.timedelta(days=1),
        note="再延",
    )
    assert "待审批" in message


def test_the_street_approves_an_extension_and_the_deadline_moves(make_case, department_staff, street_staff):
    case = make_case("in_progress", now=MONDAY)
    old = case.handle_deadline
    until = old + dt.timedelta(days=3)
    services.case_request_extension(case=case, by=department_staff, until=until, note="需采购配件")
    services.case_decide_extension(case=case, by=street_staff, approve=True, note="同意", now=MONDAY)
    case.refresh_from_db()
    assert case.handle_deadline == until
    assert (case.extension_requested_until, case.extension_reason) == (None, "")
    assert case.handle_overdue is False
    event = last_event(case)
    assert (event.action, event.actor, event.data["approved"]) == ("decide-extension", street_staff, True)
    assert event.data["until"] == until.isoformat()
    # Nothing pending any more: no second decision.
    refused(409, services.case_decide_extension, case=case, by=street_staff, approve=True)


def test_the_street_may_approve_a_shorter_extension_than_asked(make_case, department_staff, street_staff):
    case = make_case("in_progress", now=MONDAY)
    old = case.handle_deadline
    services.case_request_extension(case=case, by=department_staff, until=old + dt.timedelta(days=7), note="需采购配件")
    refused(
        400, services.case_decide_extension, case=case, by=street_staff, approve=True, until=old - dt.timedelta(hours=1)
    )
    services.case_decide_extension(
        case=case, by=street_staff, approve=True, until=old + dt.timedelta(days=2), now=MONDAY
    )
    case.refresh_from_db()
    assert case.handle_deadline == old + dt.timedelta(days=2)


def test_the_street_denies_an_extension_with_a_reason(make_case, department_staff, street_staff):
    case = make_case("in_progress", now=MONDAY)
    old = case.handle_deadline
    services.case_request_extension(case=case, by=department_staff, until=old + dt.timedelta(days=3), note="需采购")
    refused(400, services.case_decide_extension, case=case, by=street_staff, approve=False, note="")
    services.case_decide_extension(case=case, by=street_staff, approve=False, note="现有库存可用")
    case.refresh_from_db()
    assert case.handle_deadline == old
    assert case.extension_requested_until is None
    event = last_event(case)
    assert (event.data["approved"], event.note) == (False, "现有库存可用")
    # The department may ask again after a refusal.
    services.case_request_extension(case=case, by=department_staff, until=old + dt.timedelta(days=1), note="再申请")


def test_the_holder_hears_the_decision_on_an_extension(make_case, department_staff, street_staff):
    case = make_case("in_progress", now=MONDAY)
    services.case_request_extension(
        case=case, by=department_staff, until=case.handle_deadline + dt.timedelta(days=3), note="需采购"
    )
    until = case.handle_deadline + dt.timedelta(days=3)
    services.case_decide_extension(case=case, by=street_staff, approve=True)
    approved = Notification.objects.get(user=department_staff, kind="case_extension_decided")
    assert "批准" in approved.title
    assert timezone.localtime(until).strftime("%Y-%m-%d %H:%M") in approved.body
    services.case_request_extension(case=case, by=department_staff, until=until + dt.timedelta(days=1), note="再延")
    services.case_decide_extension(case=case, by=street_staff, approve=False, note="不再延期")
    denied = Notification.objects.filter(user=department_staff, kind="case_extension_decided").order_by("-id")[0]
    assert "未获批准" in denied.title
    assert denied.body == "不再延期"


def test_the_holder_reports_the_result_and_the_grid_is_asked_to_verify(
    make_case, department_staff, grid_worker, grid_worker_2
):
    case = make_case("in_progress", now=MONDAY)
    services.case_request_extension(
        case=case, by=department_staff, until=case.handle_deadline + dt.timedelta(days=1), note="可能需要延期"
    )
    refused(400, services.case_handle, case=case, by=department_staff, note="")
    handled = MONDAY + dt.timedelta(days=1)  # Tuesday 10:00: a working day after signing
    services.case_handle(case=case, by=department_staff, note="已清理完毕", photos=[photo(), photo()], now=handled)
    case.refresh_from_db()
    assert case.state == CaseState.HANDLED
    assert case.handled_at == handled
    assert case.handled_on_time is True
    assert case.handle_seconds == 9 * 3600  # one day of office hours
    assert case.extension_requested_until is None  # a pending request lapses with the result
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "handle",
        "in_progress",
        "handled",
        "已清理完毕",
    )
    assert event.photos.count() == 2
    assert "case_to_verify" in kinds_for(grid_worker)
    assert "case_to_verify" not in kinds_for(grid_worker_2)


def test_a_result_after_the_deadline_is_not_on_time(make_case, department_staff):
    case = make_case("in_progress", now=MONDAY)
    services.case_handle(
        case=case, by=department_staff, note="已清理", now=case.handle_deadline + dt.timedelta(minutes=1)
    )
    case.refresh_from_db()
    assert case.handled_on_time is False


def test_the_grid_worker_confirms_the_result_on_site(make_case, grid_worker, community_staff):
    case = make_case("handled", now=MONDAY)
    verified = MONDAY + dt.timedelta(hours=3)
    services.case_verify(case=case, by=grid_worker, confirmed=True, note="现场已清空", photos=[photo()], now=verified)
    case.refresh_from_db()
    assert (case.state, case.verified_at) == (CaseState.VERIFIED, verified)
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.data) == (
        "verify",
        "handled",
        "verified",
        {"confirmed": True},
    )
    assert event.photos.count() == 1
    assert "case_to_rate" in kinds_for(community_staff)


def test_a_result_not_fixed_goes_back_to_the_same_holder_as_rework(
    make_case, city, grid_worker, department_staff, community_staff
):
    case = make_case("handled", now=MONDAY)
    deadline = case.handle_deadline
    refused(400, services.case_verify, case=case, by=grid_worker, confirmed=False, note="")
    services.case_verify(case=case, by=grid_worker, confirmed=False, note="楼道仍有纸箱")
    case.refresh_from_db()
    assert case.state == CaseState.IN_PROGRESS
    assert case.holder_department == city.department
    assert case.rework_count == 1
    assert (case.handled_at, case.handled_on_time) == (None, None)
    assert case.handle_deadline == deadline
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "verify",
        "handled",
        "in_progress",
        "楼道仍有纸箱",
    )
    rework = Notification.objects.get(user=department_staff, kind="case_rework")
    assert rework.body == "楼道仍有纸箱"
    # Rework is counted each time.
    services.case_handle(case=case, by=department_staff, note="再次清理")
    services.case_verify(case=case, by=community_staff, confirmed=False, note="还是没清")
    case.refresh_from_db()
    assert case.rework_count == 2


def test_the_community_rates_a_case_with_no_affected_resident(make_case, community_staff):
    case = make_case("verified", now=MONDAY)
    for stars in (0, 6, "5", True, None):
        refused(400, services.case_rate, case=case, by=community_staff, stars=stars)
    rated = MONDAY + dt.timedelta(days=1)
    services.case_rate(case=case, by=community_staff, stars=4, note=" 处理及时 ", now=rated)
    case.refresh_from_db()
    assert (case.state, case.closed_reason, case.closed_at) == (CaseState.CLOSED, ClosedReason.RATED, rated)
    assert (case.rating, case.rating_comment, case.rated_at) == (4, "处理及时", rated)
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.data) == (
        "rate",
        "verified",
        "closed",
        {"stars": 4},
    )


def test_the_affected_resident_rates_and_the_community_may_not(
    make_case, resident, resident_2, resident_record, community_staff
):
    case = make_case("verified", affected_resident=resident_record)
    refused(403, services.case_rate, case=case, by=community_staff, stars=5)
    refused(403, services.case_rate, case=case, by=resident_2, stars=5)
    services.case_rate(case=case, by=resident, stars=2, note="不太满意")
    case.refresh_from_db()
    assert (case.state, case.rating) == (CaseState.CLOSED, 2)


def test_a_low_rating_reopens_the_case_once_to_the_same_holder(
    make_case, city, community_staff, department_staff, grid_worker
):
    case = make_case("closed", stars=1, now=MONDAY)
    reopened = MONDAY + dt.timedelta(days=7)  # the following Monday
    refused(400, services.case_reopen, case=case, by=community_staff, note="")
    services.case_reopen(case=case, by=community_staff, note="杂物又堆回来了", now=reopened)
    case.refresh_from_db()
    assert case.state == CaseState.IN_PROGRESS
    assert case.holder_department == city.department
    assert (case.closed_reason, case.closed_at, case.handled_at, case.verified_at) == ("", None, None, None)
    assert case.reopen_count == 1
    assert case.handle_deadline == dt.datetime(2026, 3, 19, 18, 0, tzinfo=SHANGHAI)  # three working days on
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state, event.note) == (
        "reopen",
        "closed",
        "in_progress",
        "杂物又堆回来了",
    )
    assert "case_reopened" in kinds_for(department_staff)
    # Handled, verified and rated low again: no second reopening.
    services.case_handle(case=case, by=department_staff, note="再次清理")
    services.case_verify(case=case, by=grid_worker, confirmed=True)
    services.case_rate(case=case, by=community_staff, stars=1)
    message = refused(409, services.case_reopen, case=case, by=community_staff, note="还是不行")
    assert "重办过一次" in message
    case.refresh_from_db()
    assert case.state == CaseState.CLOSED


@pytest.mark.parametrize("stars", [3, 4, 5])
def test_a_rating_of_three_or_more_does_not_reopen(stars, make_case, community_staff):
    case = make_case("closed", stars=stars)
    message = refused(409, services.case_reopen, case=case, by=community_staff, note="再看看")
    assert "一星或二星" in message


def test_a_case_closed_as_invalid_does_not_reopen(make_case, community_staff):
    case = make_case()
    services.case_close(case=case, by=community_staff, reason=ClosedReason.INVALID, note="无效")
    refused(409, services.case_reopen, case=case, by=community_staff, note="重开")


def test_the_affected_resident_reopens_after_a_low_rating(make_case, resident, resident_record):
    case = make_case("verified", affected_resident=resident_record)
    services.case_rate(case=case, by=resident, stars=2, note="没解决")
    services.case_reopen(case=case, by=resident, note="请重新处理")
    case.refresh_from_db()
    assert (case.state, case.reopen_count) == (CaseState.IN_PROGRESS, 1)


def test_the_street_rates_each_departments_response_once(
    make_case, city, street_staff, department_staff, other_department_staff
):
    case = make_case("escalated")
    services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department], now=MONDAY
    )
    services.case_sign(case=case, by=department_staff, now=MONDAY)
    services.case_handle(case=case, by=department_staff, note="已清理", now=MONDAY + dt.timedelta(hours=2))
    refused(400, services.case_review_department, case=case, by=street_staff, department=city.department, stars=9)
    services.case_review_department(case=case, by=street_staff, department=city.department, stars=5, note="响应快")
    services.case_review_department(case=case, by=street_staff, department=city.other_department, stars=2)
    ratings = dict(CaseDispatch.objects.filter(case=case).values_list("department__code", "street_rating"))
    assert ratings == {"CG": 5, "MZ": 2}
    event = last_event(case)
    assert (event.action, event.from_state, event.to_state) == ("review-department", "handled", "handled")
    message = refused(
        409, services.case_review_department, case=case, by=street_staff, department=city.department, stars=1
    )
    assert "已评价" in message
    assert CaseDispatch.objects.get(case=case, department=city.department).street_rating == 5


def test_a_department_that_never_held_the_case_cannot_be_rated(make_case, city, street_staff):
    case = make_case("handled")
    refused(400, services.case_review_department, case=case, by=street_staff, department=city.other_department, stars=3)


@pytest.mark.parametrize("state", [s.value for s in CaseState])
def test_a_comment_may_be_left_in_any_state(state, make_case, resident):
    case = make_case(state)
    services.case_comment(case=case, by=resident, note="我家门口也有", photos=[photo()])
    event = last_event(case)
    assert (event.action, event.actor, event.from_state, event.to_state, event.note) == (
        "comment",
        resident,
        state,
        state,
        "我家门口也有",
    )
    assert event.photos.count() == 1
    assert Case.objects.get(pk=case.pk).state == state


def test_an_empty_comment_is_refused(make_case, resident):
    case = make_case()
    refused(400, services.case_comment, case=case, by=resident, note="   ")
    assert not case.events.filter(action="comment").exists()


def test_support_is_counted_once_per_person(make_case, resident, grid_worker, street_staff):
    case = make_case("dispatched")
    services.case_support(case=case, by=resident)
    services.case_support(case=case, by=grid_worker)
    message = refused(409, services.case_support, case=case, by=resident)
    assert "已附议" in message
    case.refresh_from_db()
    assert case.support_count == 2
    assert set(CaseSupport.objects.filter(case=case).values_list("user__username", flat=True)) == {
        "resident",
        "grid_worker",
    }
    assert case.events.filter(action="support").count() == 2
    services.case_support(case=case, by=street_staff)
    case.refresh_from_db()
    assert case.support_count == 3


@pytest.mark.parametrize("state", ["handled", "verified"])
def test_support_is_still_possible_until_the_case_is_closed(state, make_case, resident):
    case = make_case(state)
    services.case_support(case=case, by=resident)
    case.refresh_from_db()
    assert case.support_count == 1


# --- Concurrency (PostgreSQL's row locks) -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_supports_and_signs_keep_the_count_and_sign_once(city, grid_worker, community_staff, street_staff):
    """Eight people say "me too" while eight department staff press 签收 at the same moment: every support is
    counted, exactly one signature takes, the others are refused."""
    # A category of its own: an earlier transactional test may have flushed the migrated catalogue.
    group = CaseCategory.objects.create(code="race-group", name="并发")
    category = CaseCategory.objects.create(parent=group, code="race-leaf", name="并发事件", whistle_allowed=True)
    case = services.case_file(by=grid_worker, category=category, grid=city.g1, title="并发", description="并发测试")
    services.case_escalate(case=case, by=community_staff, note="吹哨")
    services.case_dispatch(case=case, by=street_staff, department=city.department)
    supporters = [UserFactory(username=f"supporter{i}") for i in range(8)]
    signers = []
    for i in range(8):
        user = UserFactory(username=f"signer{i}")
        governance_services.position_grant(by=None, user=user, role=Role.DEPARTMENT_STAFF, department=city.department)
        signers.append(user)
    barrier = threading.Barrier(16)
    outcomes = {"support": [], "sign": []}

    def run(kind, call, user):
        try:
            barrier.wait()
            call(case=Case.objects.get(pk=case.pk), by=user)
            outcomes[kind].append("ok")
        except DomainError as exc:
            outcomes[kind].append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=("support", services.case_support, u)) for u in supporters]
    threads += [threading.Thread(target=run, args=("sign", services.case_sign, u)) for u in signers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes["support"] == ["ok"] * 8
    assert outcomes["sign"].count("ok") == 1
    assert all(isinstance(o, DomainError) and o.status_code == 409 for o in outcomes["sign"] if o != "ok")
    case.refresh_from_db()
    assert case.support_count == 8 == CaseSupport.objects.filter(case=case).count()
    assert case.state == CaseState.IN_PROGRESS
    assert case.events.filter(action="sign").count() == 1
    assert CaseDispatch.objects.get(case=case).signed_at == case.signed_at


def test_a_reopened_case_counts_its_handling_time_from_the_reopening(make_case, community_staff, department_staff):
    start = timezone.make_aware(dt.datetime(2026, 11, 2, 9, 0))  # a Monday
    case = make_case("closed", stars=1, now=start)
    reopened_at = start + dt.timedelta(days=7)
    with time_machine.travel(reopened_at, tick=False):
        services.case_reopen(case=case, by=community_staff, note="没修好")
    case = services.case_handle(
        case=case, by=department_staff, note="重新修好", now=reopened_at + dt.timedelta(hours=2)
    )
    assert case.handle_seconds == 2 * 3600


def test_sign_is_offered_only_while_the_department_has_something_to_sign(
    make_case, department_staff, other_department_staff, street_staff, city
):
    case = make_case("escalated")
    case = services.case_dispatch(
        case=case, by=street_staff, department=city.department, assisting=[city.other_department]
    )
    assert "sign" in selectors.actions_for(department_staff, case)
    assert "sign" in selectors.actions_for(other_department_staff, case)
    case = services.case_sign(case=case, by=department_staff)
    assert "sign" not in selectors.actions_for(department_staff, case)
    assert "sign" in selectors.actions_for(other_department_staff, case)  # the assisting part is still open
    case = services.case_sign(case=case, by=other_department_staff)
    assert "sign" not in selectors.actions_for(other_department_staff, case)


def test_the_sign_for_limit_counts_office_hours(make_case, street_staff, city):
    friday_evening = dt.datetime(2026, 11, 27, 17, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    case = make_case("escalated", now=friday_evening)
    case = services.case_dispatch(case=case, by=street_staff, department=city.department, now=friday_evening)
    # 2 office hours from Friday 17:30: half an hour on Friday, an hour and a half on Monday.
    assert timezone.localtime(case.sign_deadline) == dt.datetime(2026, 11, 30, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_the_community_rates_for_a_resident_without_a_login(make_case, community_staff, city):
    from ..factories import HouseholdFactory, ResidentFactory

    no_login = ResidentFactory(household=HouseholdFactory(building=city.b1, room="5单元501"))
    case = make_case("verified", affected_resident=no_login)
    assert selectors.may(community_staff, case, "rate")
    assert services.case_rate(case=case, by=community_staff, stars=4, note="电话回访：满意").rating == 4


def test_a_resident_with_a_login_rates_for_themselves(make_case, community_staff, resident, resident_record):
    case = make_case("verified", affected_resident=resident_record)
    assert not selectors.may(community_staff, case, "rate")
    assert selectors.may(resident, case, "rate")


def test_an_inactive_department_cannot_be_dispatched_to(make_case, street_staff, city):
    from governance.errors import InvalidInput

    city.department.is_active = False
    city.department.save()
    with pytest.raises(InvalidInput) as refused:
        services.case_dispatch(case=make_case("escalated"), by=street_staff, department=city.department)
    assert refused.value.field == "department"


def test_a_duplicate_of_a_duplicate_points_at_the_original(make_case, community_staff):
    original, first_copy, second_copy = make_case(), make_case(), make_case()
    services.case_close(case=first_copy, by=community_staff, reason="duplicate", duplicate_of=original)
    closed = services.case_close(case=second_copy, by=community_staff, reason="duplicate", duplicate_of=first_copy)
    assert closed.duplicate_of == original


def test_a_resubmitted_case_tells_the_community(make_case, grid_worker, community_staff):
    case = make_case("returned")
    Notification.objects.all().delete()
    services.case_resubmit(case=case, by=grid_worker, note="已补充照片")
    assert Notification.objects.filter(user=community_staff, kind="case_resubmitted").count() == 1
