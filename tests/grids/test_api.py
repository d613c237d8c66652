"""The cases API: scope (404), roles (403), states (409), input (400), filters, query counts, photos, KPIs."""

import datetime as dt

import pytest
from django.utils import timezone

from governance.models import Notification
from grids import services
from grids.models import Case, CaseState

from .conftest import photo

URL = "/api/v1/cases/"


def numbers(response):
    assert response.status_code == 200, response.content
    return {row["number"] for row in response.json()["results"]}


# --- Scope ----------------------------------------------------------------------------------------------


def test_each_persona_lists_exactly_the_cases_in_their_scope(api, personas, make_case, city, categories):
    g1 = make_case("dispatched")
    g3 = make_case(by=personas["grid_worker_2"], grid=city.g3)
    private_g1 = make_case(category=categories.neighbours, title="邻里噪音纠纷")
    everyone = {g1.number, g3.number, private_g1.number}
    expected = {
        "admin": everyone,
        "street_staff": everyone,
        "community_staff": {g1.number, private_g1.number},
        "secretary": {g1.number, private_g1.number},
        "grid_worker": {g1.number, private_g1.number},
        "grid_worker_2": {g3.number},
        "department_staff": {g1.number},
        "outsider": set(),
        "resident": {g1.number},  # the public case of their grid, not the private dispute
        "resident_2": {g3.number},
    }
    for name, wanted in expected.items():
        assert numbers(api(personas[name]).get(URL)) == wanted, name


def test_a_case_outside_the_scope_is_404_for_reading_and_for_every_action(api, personas, make_case):
    case = make_case()
    for name in ("outsider", "grid_worker_2", "department_staff", "resident_2"):
        client = api(personas[name])
        assert client.get(f"{URL}{case.pk}/").status_code == 404
        assert client.get(f"{URL}{case.pk}/events/").status_code == 404
        response = client.post(f"{URL}{case.pk}/accept/", {"note": "x"}, format="json")
        assert response.status_code == 404, name
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED


def test_the_cases_of_a_moved_grid_or_community_follow_it_to_its_new_community_and_street(
    api, personas, make_case, city, community_staff, admin_user
):
    """A case keeps its grid's community and street (`Case.community`, `Case.street`): when an administrator
    moves the grid, or its community, the case is listed where the grid now is, and no longer where it was."""
    from governance import invariants
    from governance import services as governance_services
    from tests.conftest import _person

    in_g2 = make_case(by=community_staff, grid=city.g2)
    in_g3 = make_case(by=personas["grid_worker_2"], grid=city.g3)
    c3_staff = _person("c3_staff", "第三社区工作者", role="community_staff", unit=city.c3)
    admin, street_1, street_2 = api(admin_user), api(personas["street_staff"]), api(personas["outsider"])
    assert numbers(api(community_staff).get(URL)) == {in_g2.number}
    assert numbers(api(c3_staff).get(URL)) == set()

    governance_services.unit_move(by=admin_user, unit=city.g2, parent=city.c3)  # to the other street's community
    in_g2.refresh_from_db()
    assert (in_g2.community_id, in_g2.street_id) == (city.c3.pk, city.s2.pk)
    assert numbers(api(community_staff).get(URL)) == set()
    assert numbers(api(c3_staff).get(URL)) == {in_g2.number}
    assert numbers(street_1.get(URL)) == {in_g3.number}
    assert numbers(street_2.get(URL)) == {in_g2.number}
    assert numbers(admin.get(URL, {"unit": city.c1.pk})) == set()
    assert numbers(admin.get(URL, {"unit": city.c3.pk})) == {in_g2.number}
    assert numbers(admin.get(URL, {"unit": city.s2.pk})) == {in_g2.number}
    assert numbers(admin.get(URL, {"unit": city.g2.pk})) == {in_g2.number}

    governance_services.unit_move(by=admin_user, unit=city.c2, parent=city.s2)  # a community, with its grids
    in_g3.refresh_from_db()
    assert (in_g3.community_id, in_g3.street_id) == (city.c2.pk, city.s2.pk)
    assert numbers(street_1.get(URL)) == set()
    assert numbers(street_2.get(URL)) == {in_g2.number, in_g3.number}
    assert numbers(api(personas["grid_worker_2"]).get(URL)) == {in_g3.number}
    assert numbers(admin.get(URL, {"unit": city.s1.pk})) == set()
    assert all(finding.ok for finding in invariants.run())


def test_anonymous_gets_401(api, make_case):
    case = make_case()
    assert api().get(URL).status_code == 401
    assert api().post(f"{URL}{case.pk}/support/").status_code == 401


# --- Filing ---------------------------------------------------------------------------------------------


def test_grid_worker_files_a_case_with_a_photo(api, grid_worker, city, categories, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    response = api(grid_worker).post(
        URL,
        {
            "title": "井盖缺失",
            "description": "幸福路口井盖缺失，夜间危险。",
            "category": categories.clutter.pk,
            "building": city.b1.pk,
            "urgency": "urgent",
            "photos": [photo("a.jpg")],
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"].startswith(f"SJ-{timezone.localtime().year}-")
    assert body["state"] == "reported" and body["state_display"] == "待社区分流"
    assert body["grid"]["name"] == "第一网格"
    assert body["holder"] == {"kind": "unit", "id": city.c1.pk, "name": "第一社区"}
    assert len(body["photos"]) == 1
    assert set(body["actions"]) >= {"comment", "support", "resolve-on-site"}
    assert body["possible_duplicates"] == []
    image = api(grid_worker).get(body["photos"][0]["url"])
    assert image.status_code == 200
    assert image["Content-Type"] == "image/jpeg" and image["X-Content-Type-Options"] == "nosniff"


def test_filing_twice_offers_the_first_as_a_possible_duplicate(api, grid_worker, make_case, city, categories):
    first = make_case()
    data = {"title": "又见堆物", "description": "楼道又堆满了", "category": categories.clutter.pk, "grid": city.g1.pk}
    similar = api(grid_worker).get(f"{URL}similar/", {"grid": city.g1.pk, "category": categories.clutter.pk})
    assert [row["number"] for row in similar.json()] == [first.number]
    body = api(grid_worker).post(URL, data, format="json").json()
    assert body["possible_duplicates"] == [{"id": first.pk, "number": first.number, "title": first.title}]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"category": "group"}, "category"),
        ({"grid": "g3"}, "grid"),
        ({"grid": None}, "grid"),
        ({"latitude": 123}, "latitude"),
        ({"photos": "text"}, "photos"),
    ],
)
def test_bad_filing_input_is_a_400_naming_the_field_and_files_nothing(
    api, grid_worker, city, categories, change, field
):
    data = {"title": "标题", "description": "描述", "category": categories.clutter.pk, "grid": city.g1.pk}
    lookup = {"group": categories.group.pk, "g3": city.g3.pk}
    for key, value in change.items():
        data[key] = lookup.get(value, value) if isinstance(value, str) else value
    if field == "photos":
        response = api(grid_worker).post(
            URL,
            {**data, "photos": [photo("x.jpg").__class__("x.jpg", b"not an image", "image/jpeg")]},
            format="multipart",
        )
    else:
        response = api(grid_worker).post(URL, {k: v for k, v in data.items() if v is not None}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["errors"], body
    assert body["detail"]
    assert Case.objects.count() == 0


def test_roles_that_do_not_file_get_403(api, department_staff, resident, street_staff, city, categories):
    data = {"title": "标题", "description": "描述", "category": categories.clutter.pk, "grid": city.g1.pk}
    for user in (department_staff, street_staff):
        response = api(user).post(URL, data, format="json")
        assert response.status_code == 403, response.content
        assert "网格员" in response.json()["detail"]
    # A resident cannot even see the units to pick (a 400 on the field), and files nothing either way.
    assert api(resident).post(URL, data, format="json").status_code in (400, 403)
    assert Case.objects.count() == 0


# --- The workflow through the API -----------------------------------------------------------------------


def post(client, case, action, data=None):
    return client.post(f"{URL}{case.pk}/{action}/", data or {}, format="json")


def test_the_whole_loop_through_the_api(
    api, make_case, community_staff, street_staff, department_staff, grid_worker, resident, resident_record, city
):
    case = make_case(affected_resident=resident_record)
    assert post(api(community_staff), case, "escalate", {"note": "需要城管"}).status_code == 200
    body = post(
        api(street_staff),
        case,
        "dispatch",
        {"department": city.department.pk, "assisting": [city.other_department.pk], "note": "请处理"},
    ).json()
    assert body["state"] == "dispatched"
    assert {(d["department"]["name"], d["is_lead"]) for d in body["dispatches"]} == {
        ("城管局", True),
        ("民政局", False),
    }
    assert post(api(department_staff), case, "sign").json()["state"] == "in_progress"
    assert post(api(department_staff), case, "handle", {"note": "已清理完毕"}).json()["state"] == "handled"
    assert post(api(grid_worker), case, "verify", {"confirmed": True}).json()["state"] == "verified"
    body = post(api(resident), case, "rate", {"stars": 5, "note": "很及时"}).json()
    assert body["state"] == "closed" and body["rating"] == 5 and body["closed_reason"] == "rated"
    events = api(community_staff).get(f"{URL}{case.pk}/events/").json()
    assert [e["action"] for e in events] == ["file", "escalate", "dispatch", "sign", "handle", "verify", "rate"]
    assert events[1]["action_display"] == "吹哨上报街道"
    assert events[1]["actor"]["name"] == community_staff.display_name
    assert events[-1]["data"] == {"stars": 5}


def test_wrong_role_is_403_and_wrong_state_is_409_with_a_readable_message(
    api, make_case, grid_worker, community_staff, street_staff, city
):
    case = make_case()
    response = post(api(grid_worker), case, "escalate", {"note": "x"})
    assert response.status_code == 403
    assert "吹哨上报街道" in response.json()["detail"]
    # The street may dispatch, but not a case its community has not escalated: the state refuses.
    response = post(api(street_staff), case, "dispatch", {"department": city.department.pk})
    assert response.status_code == 409
    handled = make_case("handled")
    response = post(api(community_staff), handled, "escalate", {"note": "x"})
    assert response.status_code == 409
    assert response.json()["detail"] == "当前状态为「已办结待核查」，不能执行「吹哨上报街道」。"
    assert response.json()["code"] == "invalid_state"


def test_messages_follow_the_request_language(api, make_case, community_staff):
    handled = make_case("handled")
    response = api(community_staff).post(
        f"{URL}{handled.pk}/escalate/", {"note": "x"}, format="json", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 409
    assert "Escalate" in response.json()["detail"] or "escalate" in response.json()["detail"].lower()


@pytest.mark.parametrize(
    ("action", "data", "field"),
    [
        ("return", {"note": ""}, "note"),
        ("close", {"reason": "other"}, "reason"),
        ("close", {"reason": "duplicate", "duplicate_of": "SJ-0000-999999"}, "duplicate_of"),
        ("escalate", {}, "note"),
    ],
)
def test_bad_action_input_is_a_400_and_nothing_moves(api, make_case, community_staff, action, data, field):
    case = make_case()
    response = post(api(community_staff), case, action, data)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED and case.events.count() == 1


def test_close_as_duplicate_by_number(api, make_case, community_staff):
    original = make_case()
    copy = make_case()
    body = post(api(community_staff), copy, "close", {"reason": "duplicate", "duplicate_of": original.number}).json()
    assert body["state"] == "closed" and body["duplicate_of"] == original.number


def test_support_counts_once_per_person(api, make_case, resident, grid_worker):
    case = make_case()
    assert post(api(resident), case, "support").json()["support_count"] == 1
    assert post(api(grid_worker), case, "support").json()["support_count"] == 2
    again = post(api(resident), case, "support")
    assert again.status_code == 409 and "已附议" in again.json()["detail"]


def test_extension_request_and_decision(api, make_case, department_staff, street_staff):
    case = make_case("in_progress")
    until = (case.handle_deadline + dt.timedelta(days=5)).isoformat()
    body = post(api(department_staff), case, "request-extension", {"until": until, "note": "需采购配件"}).json()
    assert body["extension_requested_until"] is not None
    assert post(api(department_staff), case, "decide-extension", {"approve": True}).status_code == 403
    body = post(api(street_staff), case, "decide-extension", {"approve": True}).json()
    assert body["extension_requested_until"] is None
    assert body["handle_deadline"] == until.replace("+00:00", "+08:00") or body["handle_deadline"]
    case.refresh_from_db()
    assert case.handle_deadline.isoformat() == dt.datetime.fromisoformat(until).isoformat()


def test_actions_listed_on_the_case_are_the_ones_the_caller_may_take(api, make_case, community_staff, grid_worker):
    case = make_case()
    triage = set(api(community_staff).get(f"{URL}{case.pk}/").json()["actions"])
    assert {"accept", "return", "close", "escalate", "comment", "support"} <= triage
    assert "dispatch" not in triage and "sign" not in triage
    worker = set(api(grid_worker).get(f"{URL}{case.pk}/").json()["actions"])
    assert "escalate" not in worker and "resolve-on-site" in worker


# --- Filters and query counts ---------------------------------------------------------------------------


def test_filters(api, street_staff, make_case, city, categories, personas):
    reported = make_case(title="甲")
    dispatched = make_case("dispatched", title="乙")
    lift = make_case(category=categories.lift, title="电梯坏了")
    g3 = make_case(by=personas["grid_worker_2"], grid=city.g3, title="丙")
    client = api(street_staff)
    assert numbers(client.get(URL, {"state": "reported"})) == {reported.number, lift.number, g3.number}
    assert numbers(client.get(URL, {"state": ["dispatched", "reported"], "unit": city.c2.pk})) == {g3.number}
    assert numbers(client.get(URL, {"category": categories.lift.parent_id})) == {lift.number}
    assert numbers(client.get(URL, {"department": city.department.pk})) == {dispatched.number}
    assert numbers(client.get(URL, {"q": "电梯"})) == {lift.number}
    assert numbers(client.get(URL, {"q": dispatched.number})) == {dispatched.number}
    today = timezone.localdate()
    assert len(numbers(client.get(URL, {"created_after": today.isoformat()}))) == 4
    assert numbers(client.get(URL, {"created_before": (today - dt.timedelta(days=1)).isoformat()})) == set()
    # A unit outside the caller's tree is refused, not silently ignored.
    assert client.get(URL, {"unit": city.s2.pk}).status_code == 400


def test_overdue_and_mine_filters(api, make_case, department_staff, street_staff, grid_worker):
    late = make_case("dispatched")
    Case.objects.filter(pk=late.pk).update(sign_deadline=timezone.now() - dt.timedelta(hours=1))
    fresh = make_case("dispatched")
    assert numbers(api(street_staff).get(URL, {"overdue": "true"})) == {late.number}
    assert numbers(api(street_staff).get(URL, {"overdue": "false"})) == {fresh.number}
    assert numbers(api(department_staff).get(URL, {"mine": "true"})) == {late.number, fresh.number}
    assert numbers(api(grid_worker).get(URL, {"mine": "true"})) == {late.number, fresh.number}
    assert numbers(api(street_staff).get(URL, {"mine": "true"})) == set()


def test_list_query_count_does_not_grow_with_cases(api, street_staff, make_case, django_assert_max_num_queries):
    for _ in range(3):
        make_case("dispatched")
    client = api(street_staff)
    client.get(URL)
    with django_assert_max_num_queries(6):
        assert len(client.get(URL).json()["results"]) == 3
    for _ in range(12):
        make_case("closed")
    with django_assert_max_num_queries(6):
        assert len(client.get(URL).json()["results"]) == 15


def test_detail_query_count_is_bounded(api, community_staff, make_case, django_assert_max_num_queries):
    case = make_case("verified")
    with django_assert_max_num_queries(14):
        assert api(community_staff).get(f"{URL}{case.pk}/").status_code == 200


# --- Photos ---------------------------------------------------------------------------------------------


def test_photos_are_served_only_to_those_who_see_the_case(api, make_case, grid_worker, outsider, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    case = make_case(photos=[photo("p.png", fmt="PNG")])
    picture = case.photos.get()
    url = f"{URL}{case.pk}/photos/{picture.pk}/"
    response = api(grid_worker).get(url)
    assert response.status_code == 200
    # Stored re-encoded as JPEG (scaled, without EXIF), under a random name; served with its real type.
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content).startswith(b"\xff\xd8")
    assert not picture.image.name.endswith("p.png")
    assert api(outsider).get(url).status_code == 404
    assert api(grid_worker).get(f"{URL}{case.pk}/photos/{picture.pk + 99}/").status_code == 404


# --- Catalogue ------------------------------------------------------------------------------------------


def test_categories_for_staff(api, grid_worker, resident, categories):
    rows = api(grid_worker).get("/api/v1/case-categories/").json()
    clutter = next(r for r in rows if r["code"] == "city-clutter")
    assert clutter["group"] == "市容环境" and clutter["whistle_allowed"] and clutter["on_site_allowed"]
    assert api(resident).get("/api/v1/case-categories/").json() == []


# --- Notifications --------------------------------------------------------------------------------------


def test_notifications_are_private_and_can_be_marked_read(api, make_case, community_staff, grid_worker, secretary):
    make_case()  # new case → the community's staff and secretary are told
    client = api(community_staff)
    rows = client.get("/api/v1/notifications/").json()["results"]
    assert len(rows) == 1 and rows[0]["title"].startswith("新事件待分流")
    assert client.get("/api/v1/notifications/unread-count/").json() == {"unread": 1}
    mine = rows[0]["id"]
    assert api(grid_worker).post(f"/api/v1/notifications/{mine}/read/").status_code == 404
    assert client.post(f"/api/v1/notifications/{mine}/read/").json()["read_at"] is not None
    assert client.get("/api/v1/notifications/", {"unread": "true"}).json()["results"] == []
    assert api(secretary).post("/api/v1/notifications/read-all/").json() == {"marked": 1}
    assert Notification.objects.filter(read_at=None).count() == 0


# --- KPIs -----------------------------------------------------------------------------------------------


def test_stats_scope(api, street_staff, department_staff, outsider, admin_user, city, make_case, resident):
    make_case("closed", stars=4)
    body = api(street_staff).get(f"{URL}stats/").json()
    assert body["summary"]["filed"] == 1 and body["unit"]["id"] == city.s1.pk
    assert api(street_staff).get(f"{URL}stats/", {"unit": city.c1.pk, "month": "2026-13"}).status_code == 400
    assert api(outsider).get(f"{URL}stats/", {"unit": city.c1.pk}).status_code == 404
    # Department staff see their own department's row and the departments' ranking, not the units' figures.
    body = api(department_staff).get(f"{URL}stats/").json()
    assert set(body) == {"unit", "month", "by_department", "ranking"}
    assert {row["department"]["id"] for row in body["by_department"]} <= {city.department.pk}
    assert api(resident).get(f"{URL}stats/").status_code == 403
    assert api(admin_user).get(f"{URL}stats/").json()["unit"] is None


def test_service_errors_never_become_500(api, make_case, community_staff):
    case = make_case()
    for action in services.CASE_FLOW.actions:
        response = post(api(community_staff), case, action, {"note": "x", "stars": "many", "until": "soon"})
        assert response.status_code < 500, (action, response.content)


# --- Odd input is a 400 or a 404, never a 500 -----------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"created_before": "9999-12-31"},
        {"created_after": "0001-01-01"},
        {"category": "99999999999999999999"},
        {"department": "99999999999999999999"},
        {"unit": "²"},
        {"state": "nonsense"},
        {"overdue": "maybe"},
    ],
)
def test_odd_list_filters_are_refused_readably(api, street_staff, make_case, query):
    make_case()
    response = api(street_staff).get(URL, query)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("similar/", {"grid": "²", "category": "8"}),
        ("similar/", {"grid": "99999999999999999999", "category": "8"}),
        ("stats/", {"unit": "²"}),
        ("stats/", {"month": "9999-12"}),
        ("stats/", {"month": "0001-01"}),
    ],
)
def test_odd_parameters_are_400(api, street_staff, path, query):
    response = api(street_staff).get(f"{URL}{path}", query)
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


def test_odd_step_input_is_400(api, make_case, community_staff, department_staff):
    case = make_case()
    response = post(api(community_staff), case, "close", {"reason": "duplicate", "duplicate_of": "²"})
    assert response.status_code == 400
    in_progress = make_case("in_progress")
    response = post(
        api(department_staff), in_progress, "request-extension", {"until": "0001-01-01T00:00:00", "note": "x"}
    )
    assert response.status_code == 400


def test_a_photo_whose_file_is_gone_is_404(api, make_case, grid_worker, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    case = make_case(photos=[photo()])
    stored = case.photos.get()
    stored.image.delete(save=False)
    assert api(grid_worker).get(f"{URL}{case.pk}/photos/{stored.pk}/").status_code == 404


def test_filing_a_case_already_fixed_on_the_spot(api, grid_worker, city, categories, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    response = api(grid_worker).post(
        URL,
        {
            "title": "楼道纸箱",
            "description": "楼道堆放纸箱",
            "category": categories.clutter.pk,
            "grid": city.g1.pk,
            "photos": [photo()],
            "resolved_on_site": "已现场清理",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "verified"


def test_an_extension_to_a_date_runs_to_the_close_of_that_day(api, make_case, department_staff):
    case = make_case("in_progress")
    day = (timezone.localtime(case.handle_deadline) + dt.timedelta(days=7)).date()
    body = post(api(department_staff), case, "request-extension", {"until": day.isoformat(), "note": "等配件"}).json()
    assert body["extension_requested_until"] == f"{day.isoformat()}T18:00:00+08:00"


def test_the_open_filter_keeps_the_cases_not_yet_handled(api, make_case, street_staff):
    cases = {state: make_case(state) for state in ("reported", "in_progress", "handled", "closed")}
    client = api(street_staff)
    assert numbers(client.get(URL, {"open": "true"})) == {cases["reported"].number, cases["in_progress"].number}
    assert numbers(client.get(URL, {"open": "false"})) == {cases["handled"].number, cases["closed"].number}
    assert (
        numbers(client.get(URL, {"open": "1"}))
        == numbers(client.get(URL, {"open": "TRUE"}))
        == {
            cases["reported"].number,
            cases["in_progress"].number,
        }
    )
    assert numbers(client.get(URL, {"open": "0"})) == {cases["handled"].number, cases["closed"].number}
    refused = client.get(URL, {"open": "perhaps"})
    assert refused.status_code == 400 and refused.json()["detail"].endswith("只能填 true 或 false。")
    assert client.get(URL, {"overdue": "ture"}).status_code == 400  # not every case, as if it were not asked
