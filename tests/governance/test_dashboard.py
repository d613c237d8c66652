"""The home page's dashboards for every role, the drill-down, the wall, and the elder-friendly mode."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from governance import dashboard
from governance.models import User


def login(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def busy(make_case, make_letter, city, settings):
    """A case at each of a few stages in 第一网格, one overdue; two letters waiting."""
    settings.MAILBOX_DAILY_LIMIT = 100
    cases = {state: make_case(state) for state in ("reported", "dispatched", "handled", "closed")}
    letters = [make_letter(subject="待受理"), make_letter("assigned", subject="待答复")]
    return cases, letters


@pytest.fixture
def make_letter(city, resident, secretary):
    from mailbox import services
    from mailbox.models import LetterCategory

    def make(state="submitted", subject="来信"):
        letter, _ = services.letter_submit(
            by=resident, category=LetterCategory.objects.first(), subject=subject, body="内容"
        )
        if state == "assigned":
            letter = services.letter_accept(letter=letter, by=secretary)
            letter = services.letter_assign(letter=letter, by=secretary, unit=city.g1)
        return letter

    return make


@pytest.fixture
def make_case(city, grid_worker, community_staff, street_staff, department_staff):
    from grids import services
    from grids.models import CaseCategory

    category = CaseCategory.objects.get(code="city-clutter")

    def make(state):
        case = services.case_file(by=grid_worker, title="楼道堆物", description="纸箱", category=category, grid=city.g1)
        steps = ["escalate", "dispatch", "sign", "handle", "verify", "rate"]
        upto = {"reported": 0, "dispatched": 2, "handled": 4, "closed": 6}[state]
        for step in steps[:upto]:
            if step == "escalate":
                case = services.case_escalate(case=case, by=community_staff, note="吹哨")
            elif step == "dispatch":
                case = services.case_dispatch(case=case, by=street_staff, department=city.department)
            elif step == "sign":
                case = services.case_sign(case=case, by=department_staff)
            elif step == "handle":
                case = services.case_handle(case=case, by=department_staff, note="已清理")
            elif step == "verify":
                case = services.case_verify(case=case, by=grid_worker, confirmed=True)
            elif step == "rate":
                case = services.case_rate(case=case, by=community_staff, stars=5)
        return case

    return make


def test_the_street_leader_sees_the_streets_dashboard(busy, street_staff, city):
    figures = dashboard.unit_dashboard(city.s1)
    stages = {s["state"]: s["count"] for s in figures["cases"]["stages"]}
    assert stages["reported"] == 1 and stages["dispatched"] == 1 and stages["handled"] == 1
    assert "closed" not in stages and figures["cases"]["open"] == 3
    assert figures["letters"]["to_accept"] == 1 and figures["letters"]["to_answer"] == 1
    assert len(figures["trend"]) == 12 and figures["trend"][-1]["filed"] == 4
    assert figures["trend"][-1]["satisfaction_rate"] == 1.0
    html = login(street_staff).get("/").content.decode()
    assert "工作概况" in html and '<svg class="chart"' in html and "第一社区" in html
    assert f'href="?unit={city.c1.pk}"' in html  # drill down to the community


def test_drilling_down_stays_inside_ones_subtree(busy, street_staff, community_staff, outsider, city):
    assert "第一网格" in login(street_staff).get("/", {"unit": city.c1.pk}).content.decode()
    assert login(street_staff).get("/", {"unit": city.g1.pk}).status_code == 200
    assert login(street_staff).get("/", {"unit": city.s2.pk}).status_code == 404
    assert login(community_staff).get("/", {"unit": city.s1.pk}).status_code == 404  # above her own
    assert login(outsider).get("/", {"unit": city.c1.pk}).status_code == 404
    assert login(street_staff).get("/", {"unit": "abc"}).status_code == 404


def test_the_administrator_sees_the_city(busy, admin_user):
    html = login(admin_user).get("/").content.decode()
    assert "全市" in html and "第一街道" in html


def test_the_wall_refreshes_itself_and_is_for_leaders(busy, street_staff, resident, grid_worker, city):
    response = login(street_staff).get("/wall/", {"unit": city.s1.pk})
    html = response.content.decode()
    assert response.status_code == 200 and 'http-equiv="refresh"' in html and 'class="wall"' in html
    for user in (resident, grid_worker):
        assert login(user).get("/wall/").status_code == 403
    assert login(street_staff).get("/wall/", {"unit": city.s2.pk}).status_code == 404


def test_the_grid_worker_sees_the_to_do_list_first(busy, grid_worker):
    cases, _letters = busy
    html = login(grid_worker).get("/").content.decode()
    assert "我的待办" in html and cases["handled"].get_absolute_url() in html  # to verify on site
    assert "交办给我的来信" in html
    assert html.index("我的待办") < html.index("我的职务")


def test_department_staff_see_their_cases_with_deadlines(busy, department_staff):
    html = login(department_staff).get("/").content.decode()
    assert "部门待办" in html and "待签收" in html and "签收时限" in html
    assert busy[0]["dispatched"].get_absolute_url() in html


def test_a_resident_sees_their_points_letters_and_cases(busy, resident):
    html = login(resident).get("/").content.decode()
    assert "我的来信" in html and "待受理" in html and "写信给书记" in html
    assert "工作概况" not in html  # no subtree figures for residents


def test_the_dashboard_costs_the_same_queries_for_a_bigger_street(busy, street_staff, make_case, city):
    from django.core.cache import cache

    def count():
        cache.clear()  # the history figures are cached: count them every time
        client = login(User.objects.get(pk=street_staff.pk))
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/").status_code == 200
        return len(queries)

    before = count()
    from governance import services

    for i in range(5):
        grid = services.unit_create(by=None, name=f"新网格{i}", code=f"NG{i}", parent=city.c2)
        assert grid.pk
    for _ in range(6):
        make_case("handled")
    assert count() == before


def test_the_elder_friendly_mode_is_remembered_per_user(resident, street_staff):
    client = login(resident)
    assert 'class="elder"' not in client.get("/").content.decode()
    response = client.post("/preferences/elder/", {"on": "1", "next": "/points/"})
    assert response.status_code == 302 and response["Location"] == "/points/"
    resident.refresh_from_db()
    assert resident.elder_mode
    assert 'class="elder"' in login(resident).get("/").content.decode()  # another session, same person
    assert 'class="elder"' not in login(street_staff).get("/").content.decode()
    client.post("/preferences/elder/", {"on": "0", "next": "https://evil.example/"})
    resident.refresh_from_db()
    assert not resident.elder_mode


def test_the_elder_mode_works_before_login_too(db):
    client = Client()
    client.post("/preferences/elder/", {"on": "1", "next": "/public/letters/"})
    assert 'class="elder"' in client.get("/public/letters/").content.decode()
    assert client.get("/preferences/elder/").status_code == 302


def test_dashboards_reference_no_outside_assets(busy, street_staff, city):
    for url in ("/", "/wall/"):
        html = login(street_staff).get(url, {"unit": city.s1.pk}).content.decode()
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not re.match(r"^(https?:)?//", ref), ref


def test_the_beat_keeps_the_history_figures_warm(busy, city, django_assert_max_num_queries):
    from django.core.cache import cache

    from governance.tasks import refresh_dashboards

    cache.clear()
    assert refresh_dashboards.apply().get() == 6  # the city, two streets and three communities
    with django_assert_max_num_queries(0):
        assert dashboard.case_trend(city.s1.path, dashboard.timezone.localdate().replace(day=1))[-1]["filed"] == 4


def test_the_beat_counts_every_unit_in_a_fixed_number_of_queries_and_as_one_unit_at_a_time(
    busy, city, grid_worker, grid_worker_2, resident_2, django_assert_max_num_queries
):
    """The figures the beat keeps are the ones the dashboard counts for one unit: a grid worker who works in two
    communities of a street counts once in it; moved-out residents and other streets do not count."""
    from django.core.cache import cache

    from governance import selectors, services
    from governance.models import ResidentTag, Role
    from tests.factories import HouseholdFactory, ResidentFactory

    services.position_grant(by=None, user=grid_worker, role=Role.GRID_WORKER, unit=city.g3)  # C1 and C2 of S1
    household = HouseholdFactory(building=city.b4, room="1单元101")
    member = ResidentFactory(household=household, name="党员甲")
    member.tags.add(ResidentTag.objects.get(code=ResidentTag.PARTY_MEMBER))
    ResidentFactory(household=household, name="已迁出", moved_out_on=dt.date(2026, 1, 5))
    month = dashboard.timezone.localdate().replace(day=1)
    cache.clear()
    with django_assert_max_num_queries(8):  # the units, one query of the cases, six of the population
        dashboard.refresh_history()
    units = [city.s1, city.s2, city.c1, city.c2, city.c3]
    with django_assert_max_num_queries(0):
        kept = {u.pk: (cache.get(f"unit-stats:{u.pk}"), dashboard.case_trend(u.path, month)) for u in units}
        city_trend = dashboard.case_trend("", month)
    for unit in units:
        assert kept[unit.pk] == (selectors.unit_stats(unit), dashboard._case_trend(unit.path, month)), unit.name
    assert city_trend == dashboard._case_trend("", month)
    assert kept[city.s1.pk][0]["grid_workers"] == 2  # grid_worker in C1 and C2, grid_worker_2 in C2
    assert kept[city.c2.pk][0]["grid_workers"] == 2
    assert kept[city.s2.pk][0] == {**kept[city.c3.pk][0], "communities": 1}
    assert kept[city.c3.pk][0]["party_members"] == 1 and kept[city.c3.pk][0]["residents"] == 1
    assert sum(m["filed"] for m in kept[city.s1.pk][1]) == 4 and sum(m["filed"] for m in city_trend) == 4


def test_the_beat_keeps_every_figure_of_a_city_of_many_units_in_the_local_cache(city):
    """A city has about 160 streets and communities, two kept figures each: more than the 300 entries Django's
    local-memory cache keeps by default, which then drops a third of them at random as it fills."""
    from django.core.cache import cache

    from governance import services

    for n in range(160):
        services.unit_create(by=None, name=f"社区{n}", code=f"CX{n}", parent=city.s2)
    cache.clear()
    count = dashboard.refresh_history()
    month = dashboard.timezone.localdate().replace(day=1)
    kept = [
        key
        for unit in dashboard.Unit.objects.filter(depth__lte=2)
        for key in (f"unit-stats:{unit.pk}", f"dashboard:trend:{unit.path}:{month:%Y-%m}")
        if cache.get(key) is not None
    ]
    assert count == 166 and len(kept) == 2 * 165
