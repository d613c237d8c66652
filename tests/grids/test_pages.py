"""The case pages: the list and its filters, the filing form with its duplicate check, the case page with
its step forms, the photos, the KPI page, and the navigation entries."""

import datetime as dt
import inspect
import re

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from grids import selectors, services
from grids.forms import STEP_FORMS
from grids.models import Case, CaseDispatch, CasePhoto, CaseState

from .conftest import photo


def login(user):
    client = Client()
    client.force_login(user)
    return client


def numbers_in(html):
    return set(re.findall(r"SJ-\d{4}-\d{6}", html))


def action_forms(html):
    return set(re.findall(r'name="action" value="([a-z-]+)"', html))


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


# --- The list -----------------------------------------------------------------------------------------------


@pytest.fixture
def spread(city, categories, make_case, grid_worker_2, community_staff):
    """A public case in G1, a private one in G1, one in G3 (the other community), one dispatched from G2."""
    return {
        "g1": make_case(title="楼道堆放杂物"),
        "g1_private": make_case(category=categories.neighbours, title="邻居漏水纠纷"),
        "g3": make_case(by=grid_worker_2, grid=city.g3, title="第三网格垃圾"),
        "g2_dispatched": make_case("dispatched", by=community_staff, grid=city.g2, title="二网格占道"),
    }


@pytest.mark.parametrize(
    ("persona", "visible"),
    [
        ("grid_worker", {"g1", "g1_private"}),
        ("grid_worker_2", {"g3"}),
        ("community_staff", {"g1", "g1_private", "g2_dispatched"}),
        ("street_staff", {"g1", "g1_private", "g3", "g2_dispatched"}),
        ("department_staff", {"g2_dispatched"}),
        ("resident", {"g1"}),
        ("outsider", set()),
    ],
)
def test_list_shows_each_persona_only_the_cases_they_may_see(personas, spread, persona, visible):
    response = login(personas[persona]).get("/cases/")
    assert response.status_code == 200
    assert numbers_in(response.content.decode()) == {spread[k].number for k in visible}


def test_list_sends_anonymous_visitors_to_login(city):
    response = Client().get("/cases/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_list_filters_by_state_and_text(street_staff, spread):
    client = login(street_staff)
    html = client.get("/cases/", {"state": "dispatched"}).content.decode()
    assert numbers_in(html) == {spread["g2_dispatched"].number}
    html = client.get("/cases/", {"q": "垃圾"}).content.decode()
    assert numbers_in(html) == {spread["g3"].number}
    html = client.get("/cases/", {"q": spread["g1"].number}).content.decode()
    assert numbers_in(html) == {spread["g1"].number}


def test_list_filters_by_category_group_and_leaf(street_staff, spread, categories):
    client = login(street_staff)
    group = numbers_in(client.get("/cases/", {"category": categories.group.pk}).content.decode())
    assert spread["g1_private"].number not in group
    assert spread["g1"].number in group
    leaf = numbers_in(client.get("/cases/", {"category": categories.neighbours.pk}).content.decode())
    assert leaf == {spread["g1_private"].number}


def test_list_filters_by_unit_within_the_users_tree(city, street_staff, spread):
    client = login(street_staff)
    html = client.get("/cases/", {"unit": city.c2.pk}).content.decode()
    assert numbers_in(html) == {spread["g3"].number}
    html = client.get("/cases/", {"unit": city.g2.pk}).content.decode()
    assert numbers_in(html) == {spread["g2_dispatched"].number}


def test_list_ignores_a_unit_outside_the_users_tree(city, street_staff, spread):
    response = login(street_staff).get("/cases/", {"unit": city.c3.pk})
    assert response.status_code == 200
    assert len(numbers_in(response.content.decode())) == 4  # the bad filter is dropped, not applied


def test_list_filters_overdue_cases_and_marks_them(street_staff, spread):
    late = spread["g1"]
    Case.objects.filter(pk=late.pk).update(
        state=CaseState.IN_PROGRESS, handle_deadline=timezone.now() - dt.timedelta(hours=1)
    )
    html = login(street_staff).get("/cases/", {"overdue": "yes"}).content.decode()
    assert numbers_in(html) == {late.number}
    assert "已超期" in html


def test_list_mine_is_what_i_reported_or_my_side_holds(city, community_staff, grid_worker, spread):
    mine = numbers_in(login(grid_worker).get("/cases/", {"mine": "yes"}).content.decode())
    assert mine == {spread["g1"].number, spread["g1_private"].number}
    # The community holds what it has not escalated (the dispatched one is the department's now, but the
    # community filed it).
    held = numbers_in(login(community_staff).get("/cases/", {"mine": "yes"}).content.decode())
    assert held == {spread["g1"].number, spread["g1_private"].number, spread["g2_dispatched"].number}


def test_list_shows_state_holder_and_support_count(grid_worker, spread):
    html = login(grid_worker).get("/cases/").content.decode()
    assert 'class="state state-reported"' in html
    assert "待社区分流" in html
    assert "第一社区" in html  # the holder


def test_list_queries_do_not_grow_with_the_cases(street_staff, make_case, django_assert_max_num_queries):
    """The same bound for 3 cases as for 25 (a page of 20 and a second page)."""
    client = login(street_staff)
    make_case()
    make_case("dispatched")
    make_case("in_progress")
    bound = 10
    with django_assert_max_num_queries(bound):
        assert client.get("/cases/", {"mine": "yes", "overdue": ""}).status_code == 200
    with django_assert_max_num_queries(bound):
        assert client.get("/cases/").status_code == 200
    for _ in range(22):
        make_case("dispatched")
    with django_assert_max_num_queries(bound):
        html = client.get("/cases/").content.decode()
    assert len(numbers_in(html)) == 20  # one page
    assert "page=2" in html


# --- Filing -----------------------------------------------------------------------------------------------


def filing(categories, city, **overrides):
    data = {
        "grid": city.g1.pk,
        "building": "",
        "category": categories.clutter.pk,
        "title": "消防通道堆放杂物",
        "description": "1栋东侧消防通道被纸箱堵住。",
        "urgency": "urgent",
        "source": "patrol",
        "address": "1栋东侧",
        "resident_id_number": "",
    }
    return {**data, **overrides}


def test_filing_form_offers_only_the_users_grids_and_leaf_categories(grid_worker, categories, city):
    html = login(grid_worker).get("/cases/new/").content.decode()
    # Camera or album, several photos: no `capture`, which would allow the camera and one shot only.
    assert 'name="photos"' in html and "capture=" not in html and "multiple" in html and 'accept="image/*"' in html
    assert 'accept="image/*"' in html
    grid_select = html.split('name="grid"')[1].split("</select>")[0]
    assert "第一网格" in grid_select and "第二网格" not in grid_select
    assert '<optgroup label="市容环境">' in html
    assert 'enctype="multipart/form-data"' in html


def test_grid_worker_files_a_case_with_a_photo(media, grid_worker, categories, city):
    data = filing(categories, city, building=city.b1.pk, photos=[photo("a.jpg")])
    client = login(grid_worker)
    response = client.post("/cases/new/", data)
    case = Case.objects.get(title="消防通道堆放杂物")
    assert response.status_code == 302
    assert response["Location"] == f"/cases/{case.pk}/"
    assert case.holder_unit == city.c1
    assert case.building == city.b1
    assert case.urgency == "urgent"
    stored = case.photos.get()
    assert (media / stored.image.name).exists()
    html = client.get(response["Location"]).content.decode()
    assert f"事件已上报，编号 {case.number}" in html


def test_filing_names_the_affected_resident_by_id_number(grid_worker, categories, city, resident_record):
    data = filing(categories, city, resident_id_number=resident_record.id_number)
    assert login(grid_worker).post("/cases/new/", data).status_code == 302
    assert Case.objects.get().affected_resident == resident_record


def test_filing_with_an_unknown_id_number_is_a_field_error(grid_worker, categories, city, resident_2_record):
    # resident_2 lives in G3, not in the grid the case is filed in
    data = filing(categories, city, resident_id_number=resident_2_record.id_number)
    response = login(grid_worker).post("/cases/new/", data)
    assert response.status_code == 400
    assert "所选网格中没有登记这个身份证号的居民" in response.content.decode()
    assert not Case.objects.exists()


def test_filing_without_a_title_shows_the_error_next_to_the_field(grid_worker, categories, city):
    response = login(grid_worker).post("/cases/new/", filing(categories, city, title="", category=categories.group.pk))
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count('class="error"') >= 2  # the title and the category (a group is not a leaf)
    assert "消防通道被纸箱堵住" in html  # what was typed is kept
    assert not Case.objects.exists()


def test_filing_a_file_that_is_not_an_image_is_refused_by_the_service(media, grid_worker, categories, city):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake = SimpleUploadedFile("x.jpg", b"not an image", content_type="image/jpeg")
    response = login(grid_worker).post("/cases/new/", filing(categories, city, photos=[fake]))
    assert response.status_code == 400
    assert "不是图片文件" in response.content.decode()
    assert not Case.objects.exists()


def test_filing_a_building_outside_the_chosen_grid_is_an_error(community_staff, categories, city):
    response = login(community_staff).post("/cases/new/", filing(categories, city, building=city.b2.pk))
    assert response.status_code == 400
    assert "所选楼栋不在所选网格内" in response.content.decode()


def test_community_staff_may_file_in_any_grid_of_the_community(community_staff, categories, city):
    html = login(community_staff).get("/cases/new/").content.decode()
    grid_select = html.split('name="grid"')[1].split("</select>")[0]
    assert "第一网格" in grid_select and "第二网格" in grid_select and "第三网格" not in grid_select
    assert login(community_staff).post("/cases/new/", filing(categories, city, grid=city.g2.pk)).status_code == 302


def test_filing_in_a_grid_not_offered_is_refused(grid_worker, categories, city):
    response = login(grid_worker).post("/cases/new/", filing(categories, city, grid=city.g3.pk))
    assert response.status_code == 400
    assert not Case.objects.exists()


def test_possible_duplicates_are_shown_before_filing_and_can_be_overridden(
    media, grid_worker, categories, city, make_case
):
    earlier = make_case(title="早先的乱堆乱放")
    client = login(grid_worker)
    response = client.post("/cases/new/", filing(categories, city, photos=[photo()]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "可能是重复事件" in html
    assert f'href="/cases/{earlier.pk}/"' in html
    assert "确认不是重复事件，仍然上报" in html
    assert "重新选择照片" in html
    assert "消防通道被纸箱堵住" in html  # the entered values are kept
    assert Case.objects.count() == 1

    response = client.post("/cases/new/", filing(categories, city, not_duplicate="on", photos=[photo()]))
    assert response.status_code == 302
    assert Case.objects.count() == 2
    assert CasePhoto.objects.filter(case__title="消防通道堆放杂物").count() == 1


def test_department_staff_may_not_file(department_staff):
    response = login(department_staff).get("/cases/new/")
    assert response.status_code == 403
    assert "只有网格员和社区工作人员可以上报事件" in response.content.decode()


def test_filing_sends_anonymous_visitors_to_login(city):
    response = Client().get("/cases/new/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- The case page ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["outsider", "grid_worker_2", "other_department_staff"])
def test_case_page_is_404_outside_the_users_scope(request, make_case, persona):
    case = make_case()
    assert login(request.getfixturevalue(persona)).get(f"/cases/{case.pk}/").status_code == 404


@pytest.mark.parametrize("persona", ["grid_worker", "community_staff", "street_staff", "resident", "admin"])
def test_case_page_is_shown_to_the_right_people(personas, make_case, persona):
    case = make_case()
    response = login(personas[persona]).get(f"/cases/{case.pk}/")
    assert response.status_code == 200
    assert case.title in response.content.decode()


def test_case_page_shows_the_timeline_and_dispatches(community_staff, make_case):
    case = make_case("in_progress")
    html = login(community_staff).get(f"/cases/{case.pk}/").content.decode()
    assert "办理过程" in html
    for label in ("上报", "吹哨上报街道", "派单", "签收"):
        assert f"<strong>{label}</strong>" in html
    assert "需城管执法" in html  # the escalation's note
    assert "待社区分流 → 已吹哨待派单" in html
    assert "城管局" in html and "牵头" in html
    assert "街道干部" in html  # who dispatched it


def test_community_staff_gets_the_triage_forms_on_a_reported_case(community_staff, make_case):
    case = make_case()
    html = login(community_staff).get(f"/cases/{case.pk}/").content.decode()
    expected = {"accept", "return", "close", "escalate", "comment", "support"}
    assert action_forms(html) == expected == set(selectors.actions_for(community_staff, case))
    assert "我也遇到（附议）" in html


def test_grid_worker_gets_no_triage_forms(grid_worker, make_case):
    case = make_case()
    html = login(grid_worker).get(f"/cases/{case.pk}/").content.decode()
    forms = action_forms(html)
    assert forms == {"resolve-on-site", "comment", "support"}
    assert not forms & {"accept", "return", "close", "escalate", "dispatch"}


def test_street_staff_dispatch_form_preselects_the_default_department(city, street_staff, make_case, categories):
    categories.clutter.default_department = city.department
    categories.clutter.save()
    case = make_case("escalated")
    html = login(street_staff).get(f"/cases/{case.pk}/").content.decode()
    assert "dispatch" in action_forms(html)
    assert f'<option value="{city.department.pk}" selected>城管局</option>' in html


def test_community_staff_escalates_through_the_page(community_staff, make_case):
    case = make_case()
    client = login(community_staff)
    response = client.post(f"/cases/{case.pk}/", {"action": "escalate", "note": "需要城管联合执法"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state == CaseState.ESCALATED
    assert case.events.last().note == "需要城管联合执法"
    assert "「吹哨上报街道」已完成" in client.get(response["Location"]).content.decode()


def test_a_step_without_its_required_note_shows_the_services_message(community_staff, make_case):
    case = make_case()
    response = login(community_staff).post(f"/cases/{case.pk}/", {"action": "escalate", "note": " "})
    assert response.status_code == 400
    assert "请说明需要街道协调的原因" in response.content.decode()
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED


def test_grid_worker_may_not_dispatch(city, grid_worker, make_case):
    case = make_case("escalated")
    response = login(grid_worker).post(f"/cases/{case.pk}/", {"action": "dispatch", "department": city.department.pk})
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.state == CaseState.ESCALATED
    assert not CaseDispatch.objects.exists()


def test_a_step_the_state_does_not_allow_is_409_with_the_message(community_staff, make_case):
    case = make_case("handled")
    response = login(community_staff).post(f"/cases/{case.pk}/", {"action": "escalate", "note": "再吹一次"})
    assert response.status_code == 409
    assert "当前状态为「已办结待核查」，不能执行「吹哨上报街道」。" in response.content.decode()
    case.refresh_from_db()
    assert case.state == CaseState.HANDLED


def test_every_step_form_matches_its_services_keyword_arguments():
    for name, form_class in STEP_FORMS.items():
        service = getattr(services, "case_" + name.replace("-", "_"))
        accepted = set(inspect.signature(service).parameters)
        assert set(form_class.base_fields) <= accepted, name


def test_an_unknown_step_is_a_bad_request(community_staff, make_case):
    case = make_case()
    assert login(community_staff).post(f"/cases/{case.pk}/", {"action": "explode"}).status_code == 400


def test_posting_to_an_invisible_case_is_404(grid_worker_2, make_case):
    case = make_case()
    response = login(grid_worker_2).post(f"/cases/{case.pk}/", {"action": "comment", "note": "看看"})
    assert response.status_code == 404


def test_street_staff_dispatches_with_assisting_departments(city, street_staff, make_case):
    case = make_case("escalated")
    data = {"action": "dispatch", "department": city.department.pk, "assisting": [city.other_department.pk]}
    assert login(street_staff).post(f"/cases/{case.pk}/", data).status_code == 302
    case.refresh_from_db()
    assert case.state == CaseState.DISPATCHED
    assert case.holder_department == city.department
    assert {(d.department_id, d.is_lead) for d in case.dispatches.all()} == {
        (city.department.pk, True),
        (city.other_department.pk, False),
    }


def test_dispatch_without_a_department_shows_the_field_error(street_staff, make_case):
    case = make_case("escalated")
    response = login(street_staff).post(f"/cases/{case.pk}/", {"action": "dispatch"})
    assert response.status_code == 400
    html = response.content.decode()
    assert '<details class="step" id="step-dispatch" open>' in html
    assert "该字段是必填项" in html


def test_community_staff_closes_a_case_as_a_duplicate_by_number(community_staff, make_case):
    original, copy = make_case(), make_case()
    data = {"action": "close", "reason": "duplicate", "duplicate_of": original.number}
    assert login(community_staff).post(f"/cases/{copy.pk}/", data).status_code == 302
    copy.refresh_from_db()
    assert copy.state == CaseState.CLOSED
    assert copy.duplicate_of == original


def test_closing_as_a_duplicate_of_an_unknown_number_is_a_field_error(community_staff, make_case):
    case = make_case()
    data = {"action": "close", "reason": "duplicate", "duplicate_of": "SJ-1999-000001"}
    response = login(community_staff).post(f"/cases/{case.pk}/", data)
    assert response.status_code == 400
    assert "没有找到编号为 SJ-1999-000001 的事件" in response.content.decode()


def test_department_requests_an_extension_with_a_date(department_staff, make_case):
    case = make_case("in_progress")
    until = (timezone.localtime(case.handle_deadline) + dt.timedelta(days=5)).date()
    data = {"action": "request-extension", "until": until.isoformat(), "note": "需要采购配件"}
    assert login(department_staff).post(f"/cases/{case.pk}/", data).status_code == 302
    case.refresh_from_db()
    assert timezone.localtime(case.extension_requested_until).date() == until


def test_the_affected_resident_rates_with_stars(resident, resident_record, make_case):
    case = make_case("verified", affected_resident=resident_record)
    client = login(resident)
    html = client.get(f"/cases/{case.pk}/").content.decode()
    assert "rate" in action_forms(html)
    assert 'type="radio" name="stars" value="5"' in html
    response = client.post(f"/cases/{case.pk}/", {"action": "rate", "stars": "4", "note": "处理得很快"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.state, case.rating, case.rating_comment) == (CaseState.CLOSED, 4, "处理得很快")
    assert "★★★★☆" in client.get(f"/cases/{case.pk}/").content.decode()


def test_a_resident_says_me_too_once(resident, make_case):
    case = make_case()
    client = login(resident)
    assert client.post(f"/cases/{case.pk}/", {"action": "support"}).status_code == 302
    case.refresh_from_db()
    assert case.support_count == 1
    html = client.get(f"/cases/{case.pk}/").content.decode()
    assert "您已附议过此事件" in html
    response = client.post(f"/cases/{case.pk}/", {"action": "support"})
    assert response.status_code == 409
    assert "您已附议过此事件" in response.content.decode()


@pytest.fixture
def neighbour(city):
    """Another resident of G1, following the grid's public cases."""
    from governance import services as governance_services

    from ..factories import HouseholdFactory, ResidentFactory, UserFactory

    record = ResidentFactory(household=HouseholdFactory(building=city.b1, room="3单元303"), name="王邻居")
    user = UserFactory(username="neighbour", name="王邻居")
    governance_services.position_grant(by=None, user=user, role="resident", resident=record)
    return user


def test_neighbours_see_neither_the_person_concerned_nor_each_other_by_name(
    resident, resident_record, neighbour, grid_worker, make_case
):
    case = make_case(affected_resident=resident_record)
    services.case_support(case=case, by=resident)
    html = login(neighbour).get(f"/cases/{case.pk}/").content.decode()
    assert "张三明" not in html
    assert "网格员" in html  # staff are named
    assert "居民" in html
    own = login(resident).get(f"/cases/{case.pk}/").content.decode()
    assert "张三明" in own
    assert "张三明" in login(grid_worker).get(f"/cases/{case.pk}/").content.decode()


def test_mine_for_a_resident_is_the_cases_about_them(resident, resident_record, make_case):
    about_me, other = make_case(affected_resident=resident_record), make_case()
    html = login(resident).get("/cases/", {"mine": "yes"}).content.decode()
    assert numbers_in(html) == {about_me.number}
    assert other.number in login(resident).get("/cases/").content.decode()


def test_a_comment_with_a_photo_shows_in_the_timeline(media, grid_worker, make_case):
    case = make_case()
    client = login(grid_worker)
    data = {"action": "comment", "note": "现场又多了几箱", "photos": [photo("more.jpg")]}
    assert client.post(f"/cases/{case.pk}/", data).status_code == 302
    added = case.photos.get()
    html = client.get(f"/cases/{case.pk}/").content.decode()
    assert "现场又多了几箱" in html
    assert f'src="/cases/{case.pk}/photos/{added.pk}/"' in html


def test_steps_are_csrf_protected(community_staff, make_case):
    case = make_case()
    client = Client(enforce_csrf_checks=True)
    client.force_login(community_staff)
    response = client.post(f"/cases/{case.pk}/", {"action": "escalate", "note": "没有令牌"})
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED


def test_case_page_queries_are_bounded(community_staff, make_case, django_assert_max_num_queries):
    case = make_case("in_progress")
    client = login(community_staff)
    with django_assert_max_num_queries(14):
        assert client.get(f"/cases/{case.pk}/").status_code == 200


# --- Photos -----------------------------------------------------------------------------------------------


def test_photo_is_served_with_safe_headers_to_those_who_see_the_case(media, grid_worker, outsider, make_case):
    case = make_case(photos=[photo("p.png", fmt="PNG")])
    stored = case.photos.get()
    response = login(grid_worker).get(f"/cases/{case.pk}/photos/{stored.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"  # stored re-encoded, served by its content
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == "inline"
    assert b"".join(response.streaming_content).startswith(b"\xff\xd8")
    assert login(outsider).get(f"/cases/{case.pk}/photos/{stored.pk}/").status_code == 404


def test_photo_of_another_case_is_404(media, grid_worker, make_case):
    case, other = make_case(photos=[photo()]), make_case()
    stored = case.photos.get()
    assert login(grid_worker).get(f"/cases/{other.pk}/photos/{stored.pk}/").status_code == 404


# --- The KPI page -----------------------------------------------------------------------------------------


def test_stats_page_shows_the_streets_figures(city, street_staff, make_case):
    make_case("closed", stars=5)
    make_case("closed", stars=2)
    make_case()
    response = login(street_staff).get("/cases/stats/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "第一街道" in html
    assert re.search(r"<dt>上报事件</dt><dd>3</dd>", html)
    assert re.search(r"<dt>满意率</dt><dd>50.0%</dd>", html)
    assert f'href="?unit={city.c1.pk}&amp;month=' in html  # drill down to the community
    assert "城管局" in html  # the department table and ranking
    assert "社区排名" in html


def test_stats_page_drills_down_to_a_community(city, street_staff, make_case):
    make_case("closed", stars=5)
    month = timezone.localtime().strftime("%Y-%m")
    html = login(street_staff).get("/cases/stats/", {"unit": city.c1.pk, "month": month}).content.decode()
    assert "考核统计 · 第一社区" in html
    assert f'href="?unit={city.g1.pk}&amp;month={month}"' in html
    assert "100.0%" in html


def test_stats_page_shows_department_staff_their_department_only(department_staff, make_case, resident):
    make_case("in_progress")
    response = login(department_staff).get("/cases/stats/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "城管局" in body and "部门排名" in body and "社区排名" not in body
    assert login(resident).get("/cases/stats/").status_code == 403


def test_stats_page_is_404_for_another_streets_unit(city, street_staff):
    assert login(street_staff).get("/cases/stats/", {"unit": city.s2.pk}).status_code == 404


def test_stats_page_asks_someone_working_in_two_streets_to_choose(city, street_staff, make_case):
    from governance import services as governance_services

    governance_services.position_grant(by=None, user=street_staff, role="street_staff", unit=city.s2)
    response = login(street_staff).get("/cases/stats/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "您在多个单元任职，请选择要查看的单元" in html
    assert "第二街道" in html.split('name="unit"')[1].split("</select>")[0]


def test_stats_page_shows_a_bad_month_next_to_the_field(street_staff):
    response = login(street_staff).get("/cases/stats/", {"month": "2026-13"})
    assert response.status_code == 400
    assert "月份格式应为 YYYY-MM" in response.content.decode()


# --- Navigation and language ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "shown", "hidden"),
    [
        ("grid_worker", {"网格事件", "上报事件", "考核统计"}, set()),
        ("community_staff", {"网格事件", "上报事件", "考核统计"}, set()),
        ("street_staff", {"网格事件", "考核统计"}, {"上报事件"}),
        ("department_staff", {"网格事件", "考核统计"}, {"上报事件"}),
        ("resident", {"网格事件"}, {"上报事件", "考核统计"}),
    ],
)
def test_navigation_shows_the_case_pages_to_the_right_people(personas, persona, shown, hidden):
    """The top bar has the section, the section's tabs its pages (on any page of the section)."""
    html = login(personas[persona]).get("/cases/").content.decode()
    nav = html.split("<header")[1].split("<main")[0]
    for label in shown:
        assert label in nav
    for label in hidden:
        assert label not in nav


def test_pages_render_in_english(city, street_staff, community_staff, make_case):
    case = make_case()
    for user, url in [
        (street_staff, "/cases/"),
        (street_staff, f"/cases/{case.pk}/"),
        (street_staff, "/cases/stats/"),
        (community_staff, "/cases/new/"),
    ]:
        client = login(user)
        client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
        response = client.get(url, headers={"accept-language": "en"})
        assert response.status_code == 200, url
        assert '<html lang="en">' in response.content.decode(), url


def test_pages_reference_no_outside_assets(grid_worker, make_case):
    case = make_case()
    client = login(grid_worker)
    for url in ("/cases/", "/cases/new/", f"/cases/{case.pk}/", "/cases/stats/"):
        html = client.get(url).content.decode()
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not re.match(r"^(https?:)?//", ref), (url, ref)
        # The one script is the app's own file (the pages work without it: it only submits a select's form).
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/js/app.js" defer>']


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/cases/stats/", {"unit": "²"}),
        ("/cases/stats/", {"month": "9999-12"}),
        ("/cases/stats/", {"month": "0001-01"}),
        ("/cases/", {"category": "99999999999999999999"}),
        ("/cases/", {"unit": "99999999999999999999"}),
        ("/cases/", {"page": "99999999999999999999"}),
    ],
)
def test_odd_page_parameters_never_crash(street_staff, make_case, path, query):
    make_case()
    response = login(street_staff).get(path, query)
    assert response.status_code in (200, 400), response.status_code


def test_uploads_are_not_served_from_the_media_url(media, grid_worker, make_case, client):
    case = make_case(photos=[photo()])
    stored = case.photos.get()
    assert client.get(f"/media/{stored.image.name}").status_code == 404


def test_community_staff_accept_several_cases_at_once(make_case, community_staff, grid_worker, street_staff):
    first, second = make_case(), make_case(title="第二件")
    escalated = make_case("escalated", title="已吹哨")
    client = login(community_staff)
    page = client.get("/cases/").content.decode()
    assert f'name="ids" value="{first.pk}"' in page and f'name="ids" value="{escalated.pk}"' not in page
    response = client.post("/cases/", {"bulk": "accept", "ids": [first.pk, second.pk, escalated.pk]}, follow=True)
    assert "已批量受理 2 件" in response.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == second.state == CaseState.IN_PROGRESS
    third = make_case(title="第三件")
    login(grid_worker).post("/cases/", {"bulk": "accept", "ids": [third.pk]})
    third.refresh_from_db()
    assert third.state == CaseState.REPORTED  # a grid worker does not triage
    assert 'name="ids"' not in login(street_staff).get("/cases/").content.decode()


def test_the_case_list_sorts_by_deadline(make_case, community_staff):
    make_case("in_progress", title="办理中的")
    make_case(title="刚上报的")
    html = login(community_staff).get("/cases/", {"sort": "deadline"}).content.decode()
    assert html.index("办理中的") < html.index("刚上报的")


def test_list_shows_only_the_unfinished_cases_when_asked(street_staff, spread, make_case):
    closed = make_case("closed", title="已办结的")
    client = login(street_staff)
    html = client.get("/cases/").content.decode()
    assert closed.number in html and "只看未办结" in html
    html = client.get("/cases/", {"open": "on"}).content.decode()
    assert numbers_in(html) == {c.number for c in spread.values()}
    assert "清除全部筛选" in html
