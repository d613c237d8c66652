"""Party organisations, households, residents, departments, auth and me: scope (404), role (403), masking."""

import logging

import pytest

from governance.models import PersonalDataAccess, Resident, Role

from ..factories import HouseholdFactory, ResidentFactory

RESIDENTS = "/api/v1/residents/"
HOUSEHOLDS = "/api/v1/households/"
PARTY_ORGS = "/api/v1/party-orgs/"
DEPARTMENTS = "/api/v1/departments/"


# --- auth and me ----------------------------------------------------------------------------------------


def test_token_login_and_use(city, grid_worker, api):
    response = api().post(
        "/api/v1/auth/token/", {"username": "grid_worker", "password": "pass-word-123"}, format="json"
    )
    assert response.status_code == 200
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    me = client.get("/api/v1/me/").json()
    assert me["username"] == "grid_worker"
    assert me["roles"] == [
        {
            "role": "grid_worker",
            "role_display": "网格员",
            "unit": {"id": city.g1.pk, "name": "第一网格", "level": "grid", "code": "G1"},
            "department": None,
            "resident": None,
            "grid_worker_kind": "full_time",
        }
    ]


def test_a_wrong_password_is_a_400_with_a_readable_message(city, grid_worker, api):
    response = api().post("/api/v1/auth/token/", {"username": "grid_worker", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert "无法使用提供的认证信息登录" in response.json()["detail"]


def test_me_lists_every_role_of_a_person_with_several(city, api, community_staff):
    from governance import services

    services.position_grant(by=None, user=community_staff, role=Role.SECRETARY, unit=city.c1)
    roles = {r["role"] for r in api(community_staff).get("/api/v1/me/").json()["roles"]}
    assert roles == {"community_staff", "secretary"}


# --- residents ------------------------------------------------------------------------------------------


def test_community_staff_see_their_residents_masked_and_whole_when_they_ask_which_is_logged(
    personas, city, api, resident_record, resident_2_record
):
    staff = personas["community_staff"]
    rows = api(staff).get(RESIDENTS).json()["results"]
    assert [r["name"] for r in rows] == ["张三明"]
    assert rows[0]["id_number"] == "5106**********1237" and rows[0]["phone"] == "138****5678"  # by default
    assert rows[0]["tags"] == ["party_member"]
    assert rows[0]["address"] == "1栋 1单元101"
    assert not PersonalDataAccess.objects.exists()

    rows = api(staff).get(RESIDENTS, {"unmask": "true"}).json()["results"]
    assert rows[0]["id_number"] == "510603198001011237" and rows[0]["phone"] == "13812345678"
    log = PersonalDataAccess.objects.get()
    assert (log.user, log.via, log.what, log.object_ids) == (staff, "api", "resident", [resident_record.pk])
    assert log.fields == ["id_number", "phone"] and "unmask=true" in log.path
    assert "510603198001011237" not in str(log.__dict__)  # the log names the record, never the value


def test_asking_for_whole_values_without_the_role_gets_them_masked_and_logs_nothing(personas, api, resident_record):
    row = api(personas["street_staff"]).get(f"{RESIDENTS}{resident_record.pk}/", {"unmask": "1"}).json()
    assert row["id_number"] == "5106**********1237"
    assert not PersonalDataAccess.objects.exists()


def test_opening_a_resident_in_the_admin_is_logged(client, admin_user, resident_record):
    client.force_login(admin_user)
    page = client.get(f"/admin/governance/resident/{resident_record.pk}/change/")
    assert page.status_code == 200 and "510603198001011237" in page.content.decode()
    assert PersonalDataAccess.objects.get().via == "admin"
    client.get("/admin/governance/resident/")  # the list is masked: nothing to log
    assert PersonalDataAccess.objects.count() == 1


def test_street_staff_and_secretary_see_residents_masked(personas, resident_record, api):
    for persona in ("street_staff", "secretary"):
        row = api(personas[persona]).get(f"{RESIDENTS}{resident_record.pk}/").json()
        assert row["id_number"] == "5106**********1237"
        assert row["phone"] == "138****5678"


def test_a_resident_sees_themselves_whole_and_nobody_else(personas, resident_record, resident_2_record, api):
    client = api(personas["resident"])
    rows = client.get(RESIDENTS).json()["results"]
    assert [r["id"] for r in rows] == [resident_record.pk]
    assert rows[0]["id_number"] == "510603198001011237"
    assert client.get(f"{RESIDENTS}{resident_2_record.pk}/").status_code == 404


@pytest.mark.parametrize("persona", ["grid_worker_2", "outsider", "department_staff", "resident_2"])
def test_residents_outside_the_scope_are_404(personas, resident_record, api, persona):
    client = api(personas[persona])
    assert client.get(f"{RESIDENTS}{resident_record.pk}/").status_code == 404
    assert client.patch(f"{RESIDENTS}{resident_record.pk}/", {"name": "x"}, format="json").status_code == 404
    assert client.post(f"{RESIDENTS}{resident_record.pk}/move-out/", {}, format="json").status_code == 404
    assert resident_record.pk not in [r["id"] for r in client.get(RESIDENTS).json()["results"]]


@pytest.mark.parametrize("persona", ["street_staff", "secretary", "resident"])
def test_residents_in_scope_are_read_only_for_roles_that_do_not_keep_records(personas, resident_record, api, persona):
    client = api(personas[persona])
    assert client.patch(f"{RESIDENTS}{resident_record.pk}/", {"name": "改名"}, format="json").status_code == 403
    assert client.post(f"{RESIDENTS}{resident_record.pk}/move-out/", {}, format="json").status_code == 403
    resident_record.refresh_from_db()
    assert resident_record.name == "张三明"


@pytest.mark.parametrize("persona", ["street_staff", "secretary", "resident", "department_staff"])
def test_roles_that_do_not_keep_records_cannot_register_residents(personas, city, api, persona):
    household = HouseholdFactory(building=city.b1)
    response = api(personas[persona]).post(
        RESIDENTS, {"name": "新居民", "gender": "male", "household": household.pk}, format="json"
    )
    assert response.status_code == 403


def test_grid_worker_registers_a_resident_in_their_grid(personas, city, api):
    household = HouseholdFactory(building=city.b1)
    response = api(personas["grid_worker"]).post(
        RESIDENTS,
        {
            "name": "王五",
            "gender": "male",
            "household": household.pk,
            "id_number": "11010519491231002x",
            "phone": "13900002222",
            "tags": ["volunteer"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["id_number"] == "1101**********002X"  # masked in the answer too
    assert Resident.objects.get(name="王五").id_number == "11010519491231002X"
    assert Resident.objects.get(name="王五").tags.get().code == "volunteer"


def test_a_household_outside_the_grid_is_a_field_error(personas, city, api):
    household = HouseholdFactory(building=city.b2)
    response = api(personas["grid_worker"]).post(
        RESIDENTS, {"name": "王五", "gender": "male", "household": household.pk}, format="json"
    )
    assert response.status_code == 400
    assert "household" in response.json()["errors"]


@pytest.mark.parametrize(
    ("id_number", "message"),
    [
        ("510603198001011235", "校验位"),
        ("51060319800101123", "18位"),
        ("510603198013011235", "出生日期"),
    ],
)
def test_bad_id_numbers_are_refused_with_the_reason(personas, city, api, id_number, message):
    household = HouseholdFactory(building=city.b1)
    response = api(personas["grid_worker"]).post(
        RESIDENTS, {"name": "王五", "gender": "male", "household": household.pk, "id_number": id_number}, format="json"
    )
    assert response.status_code == 400
    assert message in response.json()["errors"]["id_number"][0]
    assert not Resident.objects.filter(name="王五").exists()


def test_a_duplicate_id_number_is_refused(personas, city, api, resident_record):
    household = HouseholdFactory(building=city.b1)
    response = api(personas["grid_worker"]).post(
        RESIDENTS,
        {"name": "冒名", "gender": "male", "household": household.pk, "id_number": resident_record.id_number},
        format="json",
    )
    assert response.status_code == 400
    assert "已登记" in response.json()["errors"]["id_number"][0]


def test_a_bad_phone_is_refused(personas, city, api, resident_record):
    response = api(personas["community_staff"]).patch(
        f"{RESIDENTS}{resident_record.pk}/", {"phone": "12345"}, format="json"
    )
    assert response.status_code == 400
    assert "phone" in response.json()["errors"]


def test_moving_out_archives_and_hides_from_the_default_list(personas, api, resident_record):
    client = api(personas["grid_worker"])
    response = client.post(f"{RESIDENTS}{resident_record.pk}/move-out/", {"moved_out_on": "2026-11-01"}, format="json")
    assert response.status_code == 200
    assert response.json()["is_archived"] is True
    assert client.get(RESIDENTS).json()["count"] == 0
    assert [r["id"] for r in client.get(RESIDENTS, {"archived": "true"}).json()["results"]] == [resident_record.pk]
    again = client.post(f"{RESIDENTS}{resident_record.pk}/move-out/", {}, format="json")
    assert again.status_code == 409
    assert client.patch(f"{RESIDENTS}{resident_record.pk}/", {"name": "x"}, format="json").status_code == 409
    assert Resident.objects.filter(pk=resident_record.pk).exists()


def test_residents_cannot_be_deleted(personas, api, resident_record):
    assert api(personas["admin"]).delete(f"{RESIDENTS}{resident_record.pk}/").status_code == 405


def test_resident_filters(personas, city, api, resident_record, resident_2_record):
    client = api(personas["street_staff"])
    assert [r["name"] for r in client.get(RESIDENTS, {"unit": city.c2.pk}).json()["results"]] == ["李四"]
    assert [r["name"] for r in client.get(RESIDENTS, {"tag": "party_member"}).json()["results"]] == ["张三明"]
    assert [r["name"] for r in client.get(RESIDENTS, {"q": "2单元"}).json()["results"]] == ["李四"]


def test_resident_list_queries_are_bounded(personas, city, api, django_assert_max_num_queries):
    for i in range(40):
        ResidentFactory(household=HouseholdFactory(building=city.b1, room=f"x{i}")).tags.add(1, 2)
    with django_assert_max_num_queries(5):
        response = api(personas["admin"]).get(RESIDENTS, {"page_size": 100})
    assert len(response.json()["results"]) == Resident.objects.count() == 42


def test_personal_data_never_reaches_the_logs(personas, api, resident_record, caplog):
    with caplog.at_level(logging.DEBUG):
        api(personas["grid_worker"]).get(f"{RESIDENTS}{resident_record.pk}/")
        api(personas["grid_worker"]).patch(f"{RESIDENTS}{resident_record.pk}/", {"phone": "bad"}, format="json")
    assert "510603198001011237" not in caplog.text
    assert "13812345678" not in caplog.text
    assert "510603198001011237" not in str(resident_record)


# --- households -----------------------------------------------------------------------------------------


def test_households_follow_the_scope(personas, city, api, resident_record, resident_2_record):
    rows = api(personas["grid_worker"]).get(HOUSEHOLDS).json()["results"]
    assert [(r["room"], r["resident_count"]) for r in rows] == [("1单元101", 1)]
    other = resident_2_record.household
    assert api(personas["grid_worker"]).get(f"{HOUSEHOLDS}{other.pk}/").status_code == 404
    assert (
        api(personas["street_staff"]).patch(f"{HOUSEHOLDS}{other.pk}/", {"room": "x"}, format="json").status_code == 403
    )


def test_grid_worker_adds_a_household_and_a_duplicate_room_is_refused(personas, city, api):
    client = api(personas["grid_worker"])
    response = client.post(HOUSEHOLDS, {"building": city.b1.pk, "room": "3单元501"}, format="json")
    assert response.status_code == 201
    again = client.post(HOUSEHOLDS, {"building": city.b1.pk, "room": "3单元501"}, format="json")
    assert again.status_code == 400
    assert "room" in again.json()["errors"]


def test_households_only_under_buildings(personas, city, api):
    response = api(personas["admin"]).post(HOUSEHOLDS, {"building": city.g1.pk, "room": "1"}, format="json")
    assert response.status_code == 400
    assert "building" in response.json()["errors"]


# --- party organisations --------------------------------------------------------------------------------


def test_party_orgs_show_their_secretary(personas, city, api):
    rows = api(personas["community_staff"]).get(PARTY_ORGS, {"unit": city.c1.pk}).json()["results"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["第一社区党委"]["secretary"] == personas["secretary"].pk
    assert by_name["第一社区党委"]["secretary_name"] == "书记"
    assert by_name["第一网格党支部"]["kind_display"] == "网格党支部"


def test_administrator_appoints_a_secretary(personas, city, api):
    org = city.c2.party_org
    response = api(personas["admin"]).patch(
        f"{PARTY_ORGS}{org.pk}/", {"secretary": personas["grid_worker_2"].pk, "founded_on": "2001-07-01"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["secretary"] == personas["grid_worker_2"].pk
    assert personas["grid_worker_2"].positions.filter(role=Role.SECRETARY, unit=city.c2).exists()


def test_party_orgs_out_of_scope_404_and_in_scope_403(personas, city, api):
    assert api(personas["outsider"]).get(f"{PARTY_ORGS}{city.c1.party_org.pk}/").status_code == 404
    response = api(personas["street_staff"]).patch(f"{PARTY_ORGS}{city.c1.party_org.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 403


def test_party_org_list_queries_are_bounded(personas, city, api, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        response = api(personas["admin"]).get(PARTY_ORGS, {"page_size": 100})
    assert response.json()["count"] == 13


# --- departments ----------------------------------------------------------------------------------------


def test_staff_read_departments_and_residents_do_not(personas, api, city):
    assert api(personas["grid_worker"]).get(DEPARTMENTS).json()["count"] == 2
    assert api(personas["resident"]).get(DEPARTMENTS).json()["count"] == 0
    assert api(personas["resident"]).get(f"{DEPARTMENTS}{city.department.pk}/").status_code == 404


def test_only_administrators_keep_departments(personas, api, city):
    payload = {"name": "应急管理局", "code": "YJ", "kind": "emergency"}
    assert api(personas["street_staff"]).post(DEPARTMENTS, payload, format="json").status_code == 403
    assert (
        api(personas["department_staff"])
        .patch(f"{DEPARTMENTS}{city.department.pk}/", {"phone": "1"}, format="json")
        .status_code
        == 403
    )
    response = api(personas["admin"]).post(DEPARTMENTS, payload, format="json")
    assert response.status_code == 201
    duplicate = api(personas["admin"]).post(DEPARTMENTS, payload, format="json")
    assert duplicate.status_code == 400


def test_an_address_under_the_api_that_matches_nothing_answers_json(api, personas):
    response = api(personas["community_staff"]).get("/api/v1/units/12/photos/not-a-number/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "找不到该页面或记录，或它不在您的范围内。", "code": "not_found"}
    assert api(personas["community_staff"]).get("/api/v1/units/not-a-number/").json()["code"] == "not_found"


def test_a_page_that_does_not_exist_answers_a_page(client, community_staff):
    client.force_login(community_staff)
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and "找不到该页面" in response.content.decode()


def test_a_department_can_be_created_inactive(api, personas):
    response = api(personas["admin"]).post(
        "/api/v1/departments/",
        {"name": "水务局", "code": "SW", "kind": "environment", "is_active": False},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["is_active"] is False


def test_the_schema_documents_the_error_answers_of_every_operation():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert {"400", "403", "404", "409", "429"} <= set(operation["responses"]), (method, path)
