"""/api/v1/units/: what each persona sees, what they may change, and the subtree figures."""

import pytest

from governance.models import Unit

from ..factories import HouseholdFactory, ResidentFactory

URL = "/api/v1/units/"


def names(response):
    return {row["name"] for row in response.json()["results"]}


def test_anonymous_callers_get_401_with_a_chinese_message(city, api):
    response = api().get(URL)
    assert response.status_code == 401
    assert "身份认证信息" in response.json()["detail"]


def test_the_message_follows_accept_language(city, api):
    response = api().get(URL, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    assert "credentials" in response.json()["detail"]


def test_administrator_sees_the_whole_tree(personas, city, api):
    response = api(personas["admin"]).get(URL, {"page_size": 200})
    assert response.json()["count"] == Unit.objects.count() == 13


def test_street_staff_see_their_street_and_not_the_other(personas, city, api):
    seen = names(api(personas["street_staff"]).get(URL, {"page_size": 200}))
    assert {"第一街道", "第一社区", "第二社区", "第三网格", "3栋"} <= seen
    assert not seen & {"第二街道", "第三社区", "第四网格", "4栋"}


def test_grid_worker_sees_their_grid_and_the_chain_above_it(personas, city, api):
    seen = names(api(personas["grid_worker"]).get(URL, {"page_size": 200}))
    assert seen == {"第一街道", "第一社区", "第一网格", "1栋"}


def test_resident_sees_only_the_chain_to_their_building(personas, city, api):
    seen = names(api(personas["resident"]).get(URL, {"page_size": 200}))
    assert seen == {"第一街道", "第一社区", "第一网格", "1栋"}


@pytest.mark.parametrize("persona", ["street_staff", "outsider", "grid_worker_2"])
def test_units_outside_the_scope_are_404(personas, city, api, persona):
    other = {"street_staff": city.g4, "outsider": city.g1, "grid_worker_2": city.g1}[persona]
    client = api(personas[persona])
    assert client.get(f"{URL}{other.pk}/").status_code == 404
    assert client.get(f"{URL}{other.pk}/stats/").status_code == 404
    assert client.get(f"{URL}{other.pk}/children/").status_code == 404
    assert client.patch(f"{URL}{other.pk}/", {"name": "x"}, format="json").status_code == 404
    assert client.post(f"{URL}{other.pk}/move/", {"parent": city.c2.pk}, format="json").status_code == 404


@pytest.mark.parametrize(
    "persona", ["street_staff", "community_staff", "secretary", "grid_worker", "resident", "department_staff"]
)
def test_only_administrators_change_the_tree(personas, city, api, persona):
    client = api(personas[persona])
    assert client.post(URL, {"name": "新社区", "code": "NEW", "parent": city.s1.pk}, format="json").status_code == 403
    response = client.patch(f"{URL}{city.g1.pk}/", {"name": "改名"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "您的角色无权执行此操作。"
    assert client.post(f"{URL}{city.g1.pk}/move/", {"parent": city.c1.pk}, format="json").status_code == 403
    assert client.delete(f"{URL}{city.b1.pk}/").status_code == 403
    city.g1.refresh_from_db()
    assert city.g1.name == "第一网格"


def test_administrator_creates_a_grid_under_a_community(personas, city, api):
    response = api(personas["admin"]).post(
        URL, {"name": "第五网格", "code": "G5", "parent": city.c1.pk, "compound_name": "阳光小区"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["level"] == "grid"
    assert body["level_display"] == "网格"
    assert body["parent"] == city.c1.pk
    assert body["grid_kind"] == "comprehensive"


def test_a_wrong_level_is_a_400_naming_the_field(personas, city, api):
    response = api(personas["admin"]).post(
        URL, {"name": "某楼", "code": "X", "parent": city.c1.pk, "level": "building"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert "level" in body["errors"]
    assert "网格" in body["detail"]


def test_missing_fields_are_listed(personas, city, api):
    response = api(personas["admin"]).post(URL, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) >= {"name", "code"}
    assert response.json()["detail"].startswith("输入有误")


def test_move_a_grid_and_refuse_an_impossible_move(personas, city, api):
    client = api(personas["admin"])
    response = client.post(f"{URL}{city.g2.pk}/move/", {"parent": city.c3.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["parent"] == city.c3.pk
    refused = client.post(f"{URL}{city.g2.pk}/move/", {"parent": city.s1.pk}, format="json")
    assert refused.status_code == 409
    assert "只能移动到社区下" in refused.json()["detail"]


def test_deleting_a_unit_with_children_is_a_409(personas, city, api):
    response = api(personas["admin"]).delete(f"{URL}{city.c1.pk}/")
    assert response.status_code == 409
    assert "下级单元" in response.json()["detail"]
    assert api(personas["admin"]).delete(f"{URL}{city.b2.pk}/").status_code == 204


def test_filters_level_parent_unit_and_q(personas, city, api):
    client = api(personas["admin"])
    assert names(client.get(URL, {"level": "grid", "page_size": 200})) == {
        "第一网格",
        "第二网格",
        "第三网格",
        "第四网格",
    }
    assert names(client.get(URL, {"parent": city.s1.pk})) == {"第一社区", "第二社区"}
    assert names(client.get(URL, {"unit": city.c2.pk})) == {"第二社区", "第三网格", "3栋"}
    assert names(client.get(URL, {"q": "幸福"})) == {"第一网格"}


def test_unit_filter_outside_the_scope_is_refused(personas, city, api):
    response = api(personas["grid_worker"]).get(URL, {"unit": city.g4.pk})
    assert response.status_code == 400


def test_children_lists_the_direct_children(personas, city, api):
    response = api(personas["street_staff"]).get(f"{URL}{city.s1.pk}/children/")
    assert response.status_code == 200
    assert names(response) == {"第一社区", "第二社区"}


def test_stats_count_the_whole_subtree(personas, city, api, grid_worker, resident):
    ResidentFactory(household=HouseholdFactory(building=city.b2))
    moved = ResidentFactory(household=HouseholdFactory(building=city.b2))
    moved.moved_out_on = moved.created_at.date()
    moved.save()
    response = api(personas["street_staff"]).get(f"{URL}{city.s1.pk}/stats/")
    assert response.status_code == 200
    assert response.json() == {
        "unit": city.s1.pk,
        "communities": 2,
        "grids": 3,
        "buildings": 3,
        "households": 4,  # resident's, resident_2's, and two in 2栋
        "residents": 3,  # the moved-out one is archived
        "party_members": 1,
        "grid_workers": 2,
    }


def test_stats_take_the_same_number_of_queries_whatever_the_subtree_size(
    personas, city, api, django_assert_num_queries, django_assert_max_num_queries
):
    client = api(personas["admin"])
    with django_assert_num_queries(7) as small:  # scope, the unit, five counts
        client.get(f"{URL}{city.g4.pk}/stats/")
    for i in range(30):
        ResidentFactory(household=HouseholdFactory(building=city.b1, room=f"r{i}"))
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(f"{URL}{city.s1.pk}/stats/")


def test_the_list_query_count_does_not_grow_with_the_page(personas, city, api, django_assert_max_num_queries):
    client = api(personas["admin"])
    with django_assert_max_num_queries(6):
        response = client.get(URL, {"page_size": 200})
    assert len(response.json()["results"]) == 13


def test_list_rows_carry_their_parent(personas, city, api):
    rows = {r["code"]: r for r in api(personas["admin"]).get(URL, {"page_size": 200}).json()["results"]}
    assert rows["S1"]["parent"] is None
    assert rows["C1"]["parent"] == city.s1.pk
    assert rows["B1"]["parent"] == city.g1.pk


@pytest.mark.parametrize("persona", ["community_staff", "grid_worker", "resident", "department_staff"])
def test_figures_of_a_unit_above_ones_own_are_403(personas, city, api, persona):
    """The street is visible to them by name, but its figures are not theirs."""
    client = api(personas[persona])
    assert client.get(f"{URL}{city.s1.pk}/").status_code == 200
    assert client.get(f"{URL}{city.s1.pk}/stats/").status_code == 403


def test_grid_worker_reads_the_figures_of_their_grid(personas, city, api, resident):
    response = api(personas["grid_worker"]).get(f"{URL}{city.g1.pk}/stats/")
    assert response.status_code == 200
    assert response.json()["residents"] == 1
