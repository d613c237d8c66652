"""The case KPIs (`grids.stats`) on a small data set whose every figure is worked out by hand below.

November 2026 has no public holiday: working time is 09:00–18:00 Monday to Friday. The category is 乱堆乱放
(sign for within 2 hours, handle within 3 working days). The figures are read on Friday 27 November, 10:00.

    case grid  filed        path                                                          working seconds
    A    G1    Mon 2 Nov    dispatch 城管局 10:00, sign 11:00, handle Tue 11:00, ★5        sign 3,600  handle 7h+2h = 32,400
    B    G1    Mon 2 Nov    dispatch 城管局 09:30, sign 13:30, handle Fri 6 10:00 (late:   sign 14,400
                            deadline Thu 5 18:00), ★2                                    handle 4.5h+3×9h+1h = 117,000
    C    G2    Tue 3 Nov    dispatch 民政局 10:00, sign 12:00, handle Wed 12:00, check     sign 7,200
                            fails (rework), handle Thu 12:00, unrated: auto-closed        handle 6h+9h+3h = 64,800
    D    G2    Wed 4 Nov    民政局 sends back 11:00, re-dispatch 城管局 14:00, sign Thu    sign 4h+1h = 18,000
                            10:00, still open: overdue since Tue 10 18:00
    E    G1    Thu 5 Nov    closed as invalid
    F    G1    Mon 26 Oct   dispatch 城管局 10:00, never signed: overdue since 12:00 (October)
    G    G1    Fri 20 Nov   reported, nothing more
    H    G3    Fri 6 Nov    dispatch 城管局 10:00, sign 10:40, handle 16:30, ★5          sign 2,400  handle 21,000
    I    G3    Mon 9 Nov    accepted by C2, open: overdue since Thu 12 18:00
    J    G4    Mon 2 Nov    (the other street) dispatch 城管局 10:00, sign 11:30,         sign 5,400  handle 12,600
                            handle 15:00, ★1

The street assesses 城管局 ★5 on A, ★3 on B, ★4 on H, and 民政局 ★4 on C.
"""

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.http import Http404
from django.utils import timezone

from governance import services as governance_services
from governance.errors import InvalidInput, NotAllowed
from governance.models import Role
from grids import services, stats
from grids.models import CaseState, ClosedReason

from ..factories import UserFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOVEMBER = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
H = 3600


def at(day, hour, minute=0, month=11):
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def on(moment, service, **kwargs):
    """Run a service with the clock stopped at `moment`."""
    with time_machine.travel(moment, tick=False):
        return service(**kwargs)


def person(username, role, unit):
    user = UserFactory(username=username, name=username)
    governance_services.position_grant(by=None, user=user, role=role, unit=unit)
    return user


def rate(part, whole):
    return round(part / whole, 4)


def hours(*seconds):
    return round(sum(seconds) / len(seconds) / 3600, 1)


def without_unit(row):
    return {key: value for key, value in row.items() if key != "unit"}


@pytest.fixture
def data(
    city,
    categories,
    grid_worker,
    grid_worker_2,
    community_staff,
    street_staff,
    department_staff,
    other_department_staff,
    outsider,
):
    c2_staff = person("c2_staff", Role.COMMUNITY_STAFF, city.c2)
    c3_staff = person("c3_staff", Role.COMMUNITY_STAFF, city.c3)
    g4_worker = person("g4_worker", Role.GRID_WORKER, city.g4)
    cg, mz = city.department, city.other_department

    def file(by, grid, when):
        return on(
            when,
            services.case_file,
            by=by,
            grid=grid,
            category=categories.clutter,
            title="楼道堆放杂物",
            description="楼道堆满纸箱，影响通行。",
        )

    def escalate(case, by, when):
        return on(when, services.case_escalate, case=case, by=by, note="需部门处置")

    def dispatch(case, by, department, when):
        return on(when, services.case_dispatch, case=case, by=by, department=department)

    def sign(case, by, when):
        return on(when, services.case_sign, case=case, by=by)

    def handle(case, by, when):
        return on(when, services.case_handle, case=case, by=by, note="已清理")

    def verify(case, by, when, confirmed=True):
        return on(
            when, services.case_verify, case=case, by=by, confirmed=confirmed, note="" if confirmed else "未清理干净"
        )

    def rate_case(case, by, stars, when):
        return on(when, services.case_rate, case=case, by=by, stars=stars)

    a = file(grid_worker, city.g1, at(2, 9))
    escalate(a, community_staff, at(2, 9, 30))
    dispatch(a, street_staff, cg, at(2, 10))
    sign(a, department_staff, at(2, 11))
    handle(a, department_staff, at(3, 11))
    verify(a, grid_worker, at(3, 15))
    rate_case(a, community_staff, 5, at(4, 10))

    b = file(grid_worker, city.g1, at(2, 9))
    escalate(b, community_staff, at(2, 9, 15))
    dispatch(b, street_staff, cg, at(2, 9, 30))
    sign(b, department_staff, at(2, 13, 30))
    handle(b, department_staff, at(6, 10))
    verify(b, grid_worker, at(6, 14))
    rate_case(b, community_staff, 2, at(9, 10))

    c = file(community_staff, city.g2, at(3, 9))
    escalate(c, community_staff, at(3, 9, 30))
    dispatch(c, street_staff, mz, at(3, 10))
    sign(c, other_department_staff, at(3, 12))
    handle(c, other_department_staff, at(4, 12))
    verify(c, community_staff, at(4, 15), confirmed=False)
    handle(c, other_department_staff, at(5, 12))
    verify(c, community_staff, at(5, 15))

    d = file(community_staff, city.g2, at(4, 9))
    escalate(d, community_staff, at(4, 9, 30))
    dispatch(d, street_staff, mz, at(4, 10))
    on(at(4, 11), services.case_send_back, case=d, by=other_department_staff, note="不属于本部门职责")
    dispatch(d, street_staff, cg, at(4, 14))
    sign(d, department_staff, at(5, 10))

    e = file(grid_worker, city.g1, at(5, 9))
    on(at(5, 10), services.case_close, case=e, by=community_staff, reason=ClosedReason.INVALID, note="重复上报的测试")

    f = file(grid_worker, city.g1, at(26, 9, month=10))
    escalate(f, community_staff, at(26, 9, 30, month=10))
    dispatch(f, street_staff, cg, at(26, 10, month=10))

    g = file(grid_worker, city.g1, at(20, 9))

    h = file(grid_worker_2, city.g3, at(6, 9))
    escalate(h, c2_staff, at(6, 9, 30))
    dispatch(h, street_staff, cg, at(6, 10))
    sign(h, department_staff, at(6, 10, 40))
    handle(h, department_staff, at(6, 16, 30))
    verify(h, grid_worker_2, at(6, 17))
    rate_case(h, c2_staff, 5, at(9, 10))

    i = file(grid_worker_2, city.g3, at(9, 9))
    on(at(9, 10), services.case_accept, case=i, by=c2_staff)

    j = file(g4_worker, city.g4, at(2, 9))
    escalate(j, c3_staff, at(2, 9, 30))
    dispatch(j, outsider, cg, at(2, 10))
    sign(j, department_staff, at(2, 11, 30))
    handle(j, department_staff, at(2, 15))
    verify(j, g4_worker, at(2, 16))
    rate_case(j, c3_staff, 1, at(3, 10))

    # C was verified on Thursday 5 November and never rated: closed as unrated seven days later.
    assert on(at(13, 10), services.case_sweep)["auto_closed"] == 1
    for case, department, stars in ((a, cg, 5), (b, cg, 3), (h, cg, 4), (c, mz, 4)):
        on(at(16, 10), services.case_review_department, case=case, by=street_staff, department=department, stars=stars)

    cases = SimpleNamespace(a=a, b=b, c=c, d=d, e=e, f=f, g=g, h=h, i=i, j=j)
    for case in vars(cases).values():
        case.refresh_from_db()
    return cases


def test_the_data_set_is_what_the_table_says(data):
    """The hand-worked seconds and states of the table above, as the services recorded them."""
    assert [data.a.sign_seconds, data.b.sign_seconds, data.c.sign_seconds, data.d.sign_seconds] == [
        1 * H,
        4 * H,
        2 * H,
        5 * H,
    ]
    assert [data.a.handle_seconds, data.b.handle_seconds, data.c.handle_seconds, data.h.handle_seconds] == [
        9 * H,
        32.5 * H,
        18 * H,
        21_000,
    ]
    assert (data.h.sign_seconds, data.j.sign_seconds, data.j.handle_seconds) == (2_400, 5_400, 3.5 * H)
    assert (data.a.handled_on_time, data.b.handled_on_time, data.c.handled_on_time) == (True, False, True)
    assert (data.c.closed_reason, data.c.rework_count, data.d.send_back_count) == (ClosedReason.UNRATED, 1, 1)
    assert data.d.state == data.i.state == CaseState.IN_PROGRESS and data.f.state == CaseState.DISPATCHED


def test_street_figures(data, city):
    kpis = stats.case_kpis(unit=city.s1, month=NOVEMBER, now=NOW)
    assert kpis["unit"] == {"id": city.s1.pk, "name": "第一街道", "level": "street"}
    assert kpis["month"] == "2026-11"
    # A B C D E G in C1, H I in C2; F was filed in October, J is in the other street.
    assert kpis["summary"] == {
        "filed": 8,
        "completed": 4,  # A B C H
        "completion_rate": rate(4, 8 - 1),  # E, closed as invalid, is left out
        "on_time": 3,  # not B
        "on_time_rate": 0.5,  # of the six due: A B C H handled, D and I overdue
        "avg_sign_hours": hours(1 * H, 4 * H, 2 * H, 5 * H, 2_400),  # A B C D H: 2.5
        "avg_handle_hours": hours(9 * H, 32.5 * H, 18 * H, 21_000),  # A B C H: 16.3
        "rated": 3,  # A ★5, B ★2, H ★5
        "satisfied": 2,
        "satisfaction_rate": rate(2, 3),
        "unrated": 1,  # C
        "send_back_rate": rate(1, 5),  # D, of A B C D H
        "rework_rate": 0.25,  # C, of A B C H
        "overdue_now": 3,  # D and I past the handling deadline, F never signed for (filed in October)
    }
    c1, c2 = kpis["by_unit"]
    assert c1["unit"] == {"id": city.c1.pk, "name": "第一社区", "level": "community"}
    assert without_unit(c1) == {
        "filed": 6,
        "completed": 3,
        "completion_rate": 0.6,
        "on_time": 2,
        "on_time_rate": 0.5,  # A C of A B C handled and D overdue
        "avg_sign_hours": 3.0,  # (1 + 4 + 2 + 5) / 4
        "avg_handle_hours": hours(9 * H, 32.5 * H, 18 * H),  # 19.8
        "rated": 2,
        "satisfied": 1,
        "satisfaction_rate": 0.5,
        "unrated": 1,
        "send_back_rate": 0.25,
        "rework_rate": rate(1, 3),
        "overdue_now": 2,
    }
    assert without_unit(c2) == {
        "filed": 2,
        "completed": 1,
        "completion_rate": 0.5,
        "on_time": 1,
        "on_time_rate": 0.5,  # H, and I is overdue
        "avg_sign_hours": hours(2_400),  # 0.7
        "avg_handle_hours": hours(21_000),  # 5.8
        "rated": 1,
        "satisfied": 1,
        "satisfaction_rate": 1.0,
        "unrated": 0,
        "send_back_rate": 0.0,
        "rework_rate": 0.0,
        "overdue_now": 1,
    }
    # The street's row is exactly its communities' rows added up (no average of averages).
    assert kpis["summary"]["filed"] == c1["filed"] + c2["filed"]


def test_street_departments_and_rankings(data, city):
    kpis = stats.case_kpis(unit=city.s1, month=NOVEMBER, now=NOW)
    cg = {
        "department": {"id": city.department.pk, "name": "城管局"},
        "dispatched": 4,  # A B D H
        "signed": 4,
        "sent_back": 0,
        "send_back_rate": 0.0,
        "avg_sign_hours": hours(1 * H, 4 * H, 5 * H, 2_400),  # 2.7
        "handled": 3,  # A B H
        "completion_rate": 0.75,  # of A B D H led
        "on_time_rate": 0.5,  # A H, of A B H handled and D overdue
        "avg_handle_hours": hours(9 * H, 32.5 * H, 21_000),
        "satisfaction_rate": rate(2, 3),
        "unrated": 0,
        "rework_rate": 0.0,
        "street_rating_avg": 4.0,  # (5 + 3 + 4) / 3
        "overdue_now": 2,  # D, and F from October
        "score": round(20 * 0.75 + 25 * 0.5 + 25 * 2 / 3 + 15 * 1 + 15 * 4 / 5, 1),  # 71.2
    }
    mz = {
        "department": {"id": city.other_department.pk, "name": "民政局"},
        "dispatched": 2,  # C, and D sent back
        "signed": 1,
        "sent_back": 1,
        "send_back_rate": 0.5,
        "avg_sign_hours": 2.0,
        "handled": 1,
        "completion_rate": 1.0,  # C (D was sent back)
        "on_time_rate": 1.0,
        "avg_handle_hours": 18.0,
        "satisfaction_rate": None,  # C was not rated: its weight goes to the other parts
        "unrated": 1,
        "rework_rate": 1.0,
        "street_rating_avg": 4.0,
        "overdue_now": 0,
        "score": round(100 * (20 * 1 + 25 * 1 + 15 * 0.5 + 15 * 4 / 5) / 75, 1),  # 86.0
    }
    assert kpis["by_department"] == [cg, mz]
    assert (cg["score"], mz["score"]) == (71.2, 86.0)
    assert kpis["ranking"]["departments"] == [mz | {"rank": 1}, cg | {"rank": 2}]

    c1, c2 = kpis["by_unit"]
    communities = kpis["ranking"]["communities"]
    assert [(row["unit"]["name"], row["score"], row["rank"]) for row in communities] == [
        ("第二社区", 70.0, 1),  # 30 × 0.5 + 30 × 0.5 + 30 × 1 + 10 × 1
        ("第一社区", round(30 * 0.6 + 30 * 0.5 + 30 * 0.5 + 10 * (1 - rate(1, 3)), 1), 2),  # 54.7
    ]
    assert communities[1] == c1 | {"score": 54.7, "rank": 2}


def test_community_figures(data, city):
    kpis = stats.case_kpis(unit=city.c1, month=NOVEMBER, now=NOW)
    street = stats.case_kpis(unit=city.s1, month=NOVEMBER, now=NOW)
    assert kpis["summary"] == without_unit(street["by_unit"][0])
    g1, g2 = kpis["by_unit"]
    assert (g1["unit"]["name"], g2["unit"]["name"]) == ("第一网格", "第二网格")
    assert (g1["filed"], g1["completed"], g1["completion_rate"], g1["on_time_rate"]) == (4, 2, rate(2, 3), 0.5)
    assert (g1["avg_sign_hours"], g1["avg_handle_hours"]) == (2.5, hours(9 * H, 32.5 * H))
    assert (g1["satisfaction_rate"], g1["unrated"], g1["send_back_rate"], g1["rework_rate"]) == (0.5, 0, 0.0, 0.0)
    assert g1["overdue_now"] == 1  # F
    assert (g2["filed"], g2["completed"], g2["completion_rate"], g2["on_time_rate"]) == (2, 1, 0.5, 0.5)
    assert (g2["avg_sign_hours"], g2["avg_handle_hours"]) == (3.5, 18.0)
    assert (g2["satisfaction_rate"], g2["unrated"], g2["send_back_rate"], g2["rework_rate"]) == (None, 1, 0.5, 1.0)
    assert g2["overdue_now"] == 1  # D

    cg, mz = kpis["by_department"]
    assert (cg["dispatched"], cg["handled"], cg["on_time_rate"], cg["satisfaction_rate"]) == (3, 2, rate(1, 3), 0.5)
    assert (cg["avg_sign_hours"], cg["street_rating_avg"], cg["overdue_now"]) == (hours(1 * H, 4 * H, 5 * H), 4.0, 2)
    assert cg["score"] == 61.2  # 20 × 2/3 + 25 × 1/3 + 25 × 0.5 + 15 + 15 × 0.8
    assert mz == street["by_department"][1]
    assert [row["unit"]["id"] for row in kpis["ranking"]["communities"]] == [city.c1.pk]
    assert kpis["ranking"]["communities"][0]["rank"] == 1


def test_grid_figures_rank_the_whole_community(data, city):
    kpis = stats.case_kpis(unit=city.g2, month=NOVEMBER, now=NOW)
    assert kpis["unit"]["level"] == "grid" and kpis["by_unit"] == []
    assert (kpis["summary"]["filed"], kpis["summary"]["unrated"], kpis["summary"]["overdue_now"]) == (2, 1, 1)
    # C went to 民政局; D was sent back by 民政局 and went to 城管局.
    names = [(row["department"]["name"], row["dispatched"], row["sent_back"]) for row in kpis["by_department"]]
    assert names == [("城管局", 1, 0), ("民政局", 2, 1)]
    (community,) = kpis["ranking"]["communities"]
    assert community["unit"]["id"] == city.c1.pk and community["filed"] == 6 and community["score"] == 54.7


def test_city_figures(data, city):
    kpis = stats.case_kpis(unit=None, month=NOVEMBER, now=NOW)
    assert kpis["unit"] is None
    summary = kpis["summary"]
    assert (summary["filed"], summary["completed"], summary["completion_rate"]) == (9, 5, 0.625)
    assert (summary["on_time"], summary["on_time_rate"]) == (4, rate(4, 7))  # 5 handled, D and I overdue
    assert summary["avg_sign_hours"] == hours(1 * H, 4 * H, 2 * H, 5 * H, 2_400, 5_400)  # 2.4
    assert summary["avg_handle_hours"] == hours(9 * H, 32.5 * H, 18 * H, 21_000, 3.5 * H)  # 13.8
    assert (summary["rated"], summary["satisfied"], summary["satisfaction_rate"], summary["unrated"]) == (4, 2, 0.5, 1)
    assert (summary["send_back_rate"], summary["rework_rate"], summary["overdue_now"]) == (rate(1, 6), 0.2, 3)

    s1, s2 = kpis["by_unit"]
    assert s1 == {"unit": s1["unit"], **stats.case_kpis(unit=city.s1, month=NOVEMBER, now=NOW)["summary"]}
    assert s2["unit"] == {"id": city.s2.pk, "name": "第二街道", "level": "street"}
    assert (s2["filed"], s2["completion_rate"], s2["satisfaction_rate"], s2["avg_handle_hours"]) == (1, 1.0, 0.0, 3.5)

    cg, mz = kpis["by_department"]
    assert (cg["dispatched"], cg["signed"], cg["handled"], cg["on_time_rate"]) == (5, 5, 4, 0.6)
    assert (cg["satisfaction_rate"], cg["street_rating_avg"], cg["score"]) == (0.5, 4.0, 70.5)
    assert [(row["department"]["name"], row["rank"]) for row in kpis["ranking"]["departments"]] == [
        ("民政局", 1),
        ("城管局", 2),
    ]
    # C3 (J: handled on time, ★1) scores 30 + 30 + 0 + 10 = 70.0, as C2 does: they share the first place.
    assert [(row["unit"]["name"], row["score"], row["rank"]) for row in kpis["ranking"]["communities"]] == [
        ("第二社区", 70.0, 1),
        ("第三社区", 70.0, 1),
        ("第一社区", 54.7, 3),
    ]


def test_units_without_cases_are_listed_and_ranked_last(data, city):
    kpis = stats.case_kpis(unit=city.s1, month=dt.date(2026, 10, 1), now=NOW)
    c1, c2 = kpis["by_unit"]
    assert (c1["filed"], c1["completion_rate"], c1["overdue_now"]) == (1, 0.0, 2)  # F; D is overdue as well
    assert (c2["filed"], c2["completion_rate"], c2["avg_sign_hours"], c2["overdue_now"]) == (0, None, None, 1)
    # Both score 0 (C1: nothing completed, F overdue; C2: nothing to measure), but C2 had no case at all.
    assert [(row["unit"]["name"], row["score"], row["rank"]) for row in kpis["ranking"]["communities"]] == [
        ("第一社区", 0.0, 1),
        ("第二社区", 0.0, 2),
    ]
    assert [(row["department"]["name"], row["dispatched"], row["overdue_now"]) for row in kpis["by_department"]] == [
        ("城管局", 1, 2)
    ]


def test_a_department_with_only_overdue_cases_is_listed_and_ranked_last(data, city):
    kpis = stats.case_kpis(unit=city.c1, month=dt.date(2026, 12, 1), now=NOW)
    assert kpis["summary"]["filed"] == 0 and kpis["summary"]["overdue_now"] == 2
    (cg,) = kpis["ranking"]["departments"]
    assert (cg["department"]["name"], cg["dispatched"], cg["overdue_now"], cg["rank"]) == ("城管局", 0, 2, 1)
    assert cg["send_back_rate"] is None and cg["avg_sign_hours"] is None


def test_month_boundaries_are_local_time(city, make_case):
    """A case filed at 23:30 on 31 October in Shanghai (15:30 UTC) is October's; one at 00:10 on 1 November
    (16:10 UTC on 31 October) is November's."""
    make_case(now=dt.datetime(2026, 10, 31, 23, 30, tzinfo=SHANGHAI))
    make_case(now=dt.datetime(2026, 11, 1, 0, 10, tzinfo=SHANGHAI))
    make_case(now=dt.datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI))
    october = stats.case_kpis(unit=city.c1, month=dt.date(2026, 10, 1), now=NOW)
    november = stats.case_kpis(unit=city.c1, month=NOVEMBER, now=NOW)
    assert (october["summary"]["filed"], november["summary"]["filed"]) == (1, 2)


def test_no_cases_at_all(city):
    kpis = stats.case_kpis(unit=None, month=NOVEMBER, now=NOW)
    assert kpis["summary"]["filed"] == 0 and kpis["summary"]["completion_rate"] is None
    assert [row["unit"]["name"] for row in kpis["by_unit"]] == ["第一街道", "第二街道"]
    assert kpis["by_department"] == [] and kpis["ranking"]["departments"] == []
    assert [row["rank"] for row in kpis["ranking"]["communities"]] == [1, 1, 1]


# --- A constant number of queries ---------------------------------------------------------------------


def _kpis_everywhere(city):
    for unit in (None, city.s1, city.c1, city.g1):
        stats.case_kpis(unit=unit, month=NOVEMBER, now=NOW)


@pytest.mark.parametrize("extra", [0, 27])
def test_the_number_of_queries_does_not_grow_with_the_cases(
    extra, city, make_case, grid_worker, django_assert_max_num_queries
):
    now = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)
    make_case("closed", stars=5, now=now)
    make_case("in_progress", now=now)
    make_case("reported", now=now)
    for n in range(extra):
        make_case(("dispatched", "handled", "reported")[n % 3], now=now)
    # Per call: the units' names, the month's cases, the overdue cases, the dispatches, the departments' names.
    with django_assert_max_num_queries(5 * 4):
        _kpis_everywhere(city)
    assert stats.case_kpis(unit=city.s1, month=NOVEMBER, now=NOW)["summary"]["filed"] == 3 + extra


# --- Whose figures: kpi_unit_for, parse_month ---------------------------------------------------------


def test_street_staff_default_to_their_street(street_staff, city):
    assert stats.kpi_unit_for(street_staff, None) == city.s1
    assert stats.kpi_unit_for(street_staff, city.c2.pk) == city.c2


def test_administrators_default_to_the_city(admin_user, city):
    assert stats.kpi_unit_for(admin_user, None) is None
    assert stats.kpi_unit_for(admin_user, city.s2.pk) == city.s2


def test_a_unit_outside_ones_scope_is_missing(outsider, city):
    with pytest.raises(Http404):
        stats.kpi_unit_for(outsider, city.c1.pk)
    with pytest.raises(Http404):
        stats.kpi_unit_for(outsider, 999_999)


def test_the_unit_above_ones_own_is_visible_by_name_only(community_staff, city):
    assert stats.kpi_unit_for(community_staff, None) == city.c1
    with pytest.raises(NotAllowed):
        stats.kpi_unit_for(community_staff, city.s1.pk)


def test_department_staff_and_residents_see_no_figures(department_staff, resident, city):
    for user in (department_staff, resident):
        with pytest.raises(NotAllowed):
            stats.kpi_unit_for(user, None)
    with pytest.raises(NotAllowed):
        stats.kpi_unit_for(department_staff, city.s1.pk)


def test_several_subtrees_must_choose(city):
    both = person("both", Role.COMMUNITY_STAFF, city.c1)
    governance_services.position_grant(by=None, user=both, role=Role.COMMUNITY_STAFF, unit=city.c2)
    with pytest.raises(InvalidInput) as refused:
        stats.kpi_unit_for(both, None)
    assert refused.value.field == "unit"
    assert stats.kpi_unit_for(both, city.c2.pk) == city.c2


def test_a_position_inside_another_is_one_subtree(city):
    nested = person("nested", Role.STREET_STAFF, city.s1)
    governance_services.position_grant(by=None, user=nested, role=Role.COMMUNITY_STAFF, unit=city.c1)
    assert stats.kpi_unit_for(nested, None) == city.s1


def test_buildings_have_no_case_figures(admin_user, city):
    with pytest.raises(InvalidInput) as refused:
        stats.kpi_unit_for(admin_user, city.b1.pk)
    assert refused.value.field == "unit"


def test_parse_month():
    assert stats.parse_month("2026-11") == dt.date(2026, 11, 1)
    assert stats.parse_month(" 2026-02 ") == dt.date(2026, 2, 1)
    # 17:00 UTC on 30 November is already 1 December in Shanghai.
    assert stats.parse_month(None, now=dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)) == dt.date(2026, 12, 1)
    assert stats.parse_month("", now=NOW) == NOVEMBER


@pytest.mark.parametrize("value", ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "november", "0000-01"])
def test_parse_month_refuses_bad_values(value):
    with pytest.raises(InvalidInput) as refused:
        stats.parse_month(value)
    assert refused.value.field == "month"
    assert "YYYY-MM" in str(refused.value.message)


def test_a_send_back_counts_against_the_lead_not_the_assisting_department(
    city, make_case, street_staff, department_staff
):
    case = make_case("escalated")
    services.case_dispatch(case=case, by=street_staff, department=city.department, assisting=[city.other_department])
    services.case_send_back(case=case, by=department_staff, note="不属于我局职责")
    month = timezone.localdate().replace(day=1)
    rows = {r["department"]["name"]: r for r in stats.case_kpis(unit=city.s1, month=month)["by_department"]}
    assert (rows["城管局"]["sent_back"], rows["城管局"]["send_back_rate"]) == (1, 1.0)
    assert (rows["民政局"]["sent_back"], rows["民政局"]["send_back_rate"]) == (0, 0.0)
