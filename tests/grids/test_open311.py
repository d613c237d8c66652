"""Open311 GeoReport v2, checked against the published specification (wiki.open311.org/GeoReport_v2): the
methods, their parameters, the shapes of the answers in JSON and XML, and the errors."""

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command
from django.utils import timezone

from governance import services as governance_services
from governance.models import ApiKey
from grids.models import Case, Source

W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
}  # fmt: skip


@pytest.fixture
def key(db):
    return governance_services.api_key_create(name="12345热线")[1]


@pytest.fixture
def lift(categories):
    """A category that asks for extra attributes (a service with metadata)."""
    lift = categories.lift
    lift.attributes = [
        {"code": "floor", "description": "楼层", "datatype": "number", "required": True},
        {
            "code": "trapped",
            "description": "是否有人被困",
            "datatype": "singlevaluelist",
            "required": False,
            "values": [{"key": "yes", "name": "有人被困"}, {"key": "no", "name": "无人被困"}],
        },
    ]
    lift.save()
    return lift


def post(client, key, **fields):
    data = {"jurisdiction_id": "S1", "api_key": key, "service_code": "city-clutter", **fields}
    return client.post("/open311/v2/requests.json", data)


# --- GET services ----------------------------------------------------------------------------------------


def test_services_lists_the_active_categories_with_their_group(client, city, categories):
    response = client.get("/open311/v2/services.json", {"jurisdiction_id": "S1"})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    services = response.json()
    codes = {s["service_code"] for s in services}
    assert "city-clutter" in codes and "city" not in codes  # the top-level group is not a service itself
    clutter = next(s for s in services if s["service_code"] == "city-clutter")
    assert set(clutter) == SERVICE_FIELDS
    assert clutter["group"] == categories.group.name and clutter["type"] == "realtime" and clutter["metadata"] is False


def test_services_in_xml_follow_the_spec_elements(client, city, categories):
    response = client.get("/open311/v2/services.xml", {"jurisdiction_id": "S1"})
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(response.content)
    assert root.tag == "services"
    service = next(s for s in root.findall("service") if s.findtext("service_code") == "city-clutter")
    assert {child.tag for child in service} == SERVICE_FIELDS
    assert service.findtext("metadata") == "false"


def test_a_service_definition_lists_the_attributes_with_their_values(client, city, lift):
    services = client.get("/open311/v2/services.json", {"jurisdiction_id": "S1"}).json()
    assert next(s for s in services if s["service_code"] == lift.code)["metadata"] is True
    definition = client.get(f"/open311/v2/services/{lift.code}.json", {"jurisdiction_id": "S1"}).json()
    assert definition["service_code"] == lift.code
    floor, trapped = definition["attributes"]
    assert floor == {
        "variable": True, "code": "floor", "datatype": "number", "required": True, "datatype_description": "",
        "order": 1, "description": "楼层",
    }  # fmt: skip
    assert trapped["values"] == [{"key": "yes", "name": "有人被困"}, {"key": "no", "name": "无人被困"}]
    xml = ET.fromstring(client.get(f"/open311/v2/services/{lift.code}.xml", {"jurisdiction_id": "S1"}).content)
    assert xml.tag == "service_definition"
    assert [a.findtext("code") for a in xml.find("attributes").findall("attribute")] == ["floor", "trapped"]
    assert [v.findtext("key") for v in xml.find("attributes")[1].find("values").findall("value")] == ["yes", "no"]


# --- POST a request ----------------------------------------------------------------------------------------


def test_a_posted_request_becomes_a_case_in_the_normal_workflow(client, city, categories, key, community_staff):
    response = post(
        client,
        key,
        address_string="幸福小区3号楼门口",
        description="门口堆满了装修垃圾。",
        first_name="明",
        last_name="张",
        phone="13812345678",
    )
    assert response.status_code == 201, response.content
    (row,) = response.json()
    assert set(row) == {"service_request_id", "service_notice", "account_id"}
    case = Case.objects.get(number=row["service_request_id"])
    assert case.source == Source.OPEN311 and case.state == "reported"
    assert case.grid == city.g1  # matched by the compound name 幸福小区
    assert case.holder_unit == city.c1 and "13812345678" in case.description  # staff may call back
    assert case.events.get().action == "file"
    assert community_staff.notifications.filter(kind="case_new").exists()  # triage as for any case


def test_a_location_by_coordinates_is_matched_to_the_nearest_grid(client, city, categories, key):
    city.b2.latitude, city.b2.longitude = "30.657000", "104.066000"
    city.b2.save()
    response = post(client, key, lat="30.657900", long="104.066300")  # about 100 m away
    case = Case.objects.get(number=response.json()[0]["service_request_id"])
    assert (case.grid, case.building) == (city.g2, city.b2)
    assert case.latitude is not None


def test_an_unmatched_location_goes_to_the_streets_community_for_triage(client, city, categories, key):
    response = post(client, key, address_string="不知道什么地方")
    case = Case.objects.get(number=response.json()[0]["service_request_id"])
    assert case.holder_unit == city.c1 and "未能自动匹配" in case.description


def test_attributes_are_checked_against_the_definition(client, city, lift, key):
    missing = post(client, key, service_code=lift.code, address_id="G1")
    assert missing.status_code == 400 and "floor" in missing.json()[0]["description"]
    bad = post(
        client, key, service_code=lift.code, address_id="G1", **{"attribute[floor]": "5", "attribute[trapped]": "maybe"}
    )
    assert bad.status_code == 400
    good = post(
        client, key, service_code=lift.code, address_id="B1", **{"attribute[floor]": "5", "attribute[trapped]": "yes"}
    )
    assert good.status_code == 201
    case = Case.objects.get(number=good.json()[0]["service_request_id"])
    assert "楼层：5" in case.description and "是否有人被困：有人被困" in case.description and case.building == city.b1


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"api_key": ""}, 403),
        ({"api_key": "not-a-key"}, 403),
        ({"jurisdiction_id": ""}, 400),
        ({"jurisdiction_id": "NOPE"}, 404),
        ({"service_code": ""}, 400),
        ({"service_code": "no-such-service"}, 404),
        ({}, 400),  # no location at all
        ({"lat": "30.1"}, 400),  # lat without long
        ({"lat": "abc", "long": "104"}, 400),
        ({"lat": "91", "long": "104"}, 400),
    ],
)
def test_errors_are_an_array_of_code_and_description(client, city, categories, key, fields, status):
    response = post(client, key, **fields)
    assert response.status_code == status
    (error,) = response.json()
    assert error["code"] == status and error["description"]
    assert not Case.objects.exists()


def test_errors_in_xml(client, city, categories):
    response = client.post(
        "/open311/v2/requests.xml", {"jurisdiction_id": "S1", "service_code": "city-clutter", "api_key": "x"}
    )
    assert response.status_code == 403
    root = ET.fromstring(response.content)
    assert root.tag == "errors" and root.find("error").findtext("code") == "403"


def test_a_revoked_key_is_refused(client, city, categories, key):
    governance_services.api_key_revoke(key=ApiKey.objects.get())
    assert post(client, key, address_id="G1").status_code == 403


def test_requests_through_a_key_are_rate_limited(client, city, categories, key, settings):
    settings.OPEN311_RATE_PER_MINUTE = 3
    statuses = [post(client, key, address_id="G1", description=f"第{i}件").status_code for i in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert Case.objects.count() == 3


def test_the_key_command_prints_the_key_on_its_last_line_and_stores_only_its_hash(capsys, db):
    call_command("create_open311_key", "城市管理平台")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    stored = ApiKey.objects.get(name="城市管理平台")
    assert raw not in stored.key_hash and stored.prefix == raw[:8] and len(stored.key_hash) == 64
    assert governance_services.api_key_for(raw) == stored


# --- GET requests ------------------------------------------------------------------------------------------


def test_requests_list_public_cases_of_the_jurisdiction_redacted(client, city, categories, make_case):
    shown = make_case("in_progress", description="张三明说1栋2单元楼道堆满纸箱，电话13812345678。")
    make_case(category=categories.neighbours, title="邻里纠纷")  # a private category: never shown
    rows = client.get("/open311/v2/requests.json", {"jurisdiction_id": "S1"}).json()
    assert [r["service_request_id"] for r in rows] == [shown.number]
    (row,) = rows
    assert set(row) == REQUEST_FIELDS
    assert row["status"] == "open" and row["status_notes"] == "办理中"
    assert "13812345678" not in row["description"] and "2单元" not in row["description"]
    assert row["agency_responsible"] == city.department.name
    for field in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert W3C.match(row[field]), (field, row[field])
    assert row["address_id"] == "G1"
    assert client.get("/open311/v2/requests.json", {"jurisdiction_id": "S2"}).json() == []


def test_requests_filters_of_the_spec(client, city, make_case):
    now = timezone.now()
    old = make_case("closed", now=now - dt.timedelta(days=120), title="旧事件")
    recent = make_case("in_progress", title="新事件", description="另一件：小区门口积水。")
    closed = make_case("closed", title="已结案", description="第三件：路灯不亮。")

    def ids(**params):
        rows = client.get("/open311/v2/requests.json", {"jurisdiction_id": "S1", **params}).json()
        return {r["service_request_id"] for r in rows}

    assert ids() == {recent.number, closed.number}  # the last 90 days by default
    assert ids(status="open") == {recent.number}
    assert ids(status="closed") == {closed.number}
    assert ids(status="open,closed") == {recent.number, closed.number}
    start = (now - dt.timedelta(days=200)).astimezone(dt.timezone(dt.timedelta(hours=8))).replace(microsecond=0)
    assert old.number in ids(start_date=start.isoformat())
    assert ids(end_date=(now - dt.timedelta(days=100)).isoformat(), start_date=start.isoformat()) == {old.number}
    assert ids(service_request_id=f"{old.number},{recent.number}") == {old.number, recent.number}  # others ignored
    assert ids(service_code="no-such") == set()
    bad = client.get("/open311/v2/requests.json", {"jurisdiction_id": "S1", "status": "pending"})
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400
    bad = client.get("/open311/v2/requests.json", {"jurisdiction_id": "S1", "start_date": "yesterday"})
    assert bad.status_code == 400


def test_at_most_a_thousand_requests(client, city, make_case, monkeypatch):
    from grids import open311

    monkeypatch.setattr(open311, "MAX_REQUESTS", 2)
    for i in range(3):
        make_case(title=f"事件{i}", description=f"第{i}件：楼道堆物。")
    assert len(client.get("/open311/v2/requests.json", {"jurisdiction_id": "S1"}).json()) == 2


def test_a_single_request_in_json_and_xml_and_the_404(client, city, make_case):
    case = make_case("closed")
    (row,) = client.get(f"/open311/v2/requests/{case.number}.json", {"jurisdiction_id": "S1"}).json()
    assert row["status"] == "closed" and "已结案" in row["status_notes"]
    root = ET.fromstring(client.get(f"/open311/v2/requests/{case.number}.xml", {"jurisdiction_id": "S1"}).content)
    assert root.tag == "service_requests" and root.find("request").findtext("service_request_id") == case.number
    missing = client.get("/open311/v2/requests/SJ-1999-000001.json", {"jurisdiction_id": "S1"})
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404
    other_street = client.get(f"/open311/v2/requests/{case.number}.json", {"jurisdiction_id": "S2"})
    assert other_street.status_code == 404


def test_a_format_other_than_json_or_xml_is_a_404(client, city):
    assert client.get("/open311/v2/services.html", {"jurisdiction_id": "S1"}).status_code == 404


def test_the_discovery_document(client, db):
    body = client.get("/open311/discovery.json").json()
    assert body["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert body["endpoints"][0]["url"].endswith("/open311/v2/")
    assert ET.fromstring(client.get("/open311/discovery.xml").content).tag == "discovery"


def test_an_administrator_revokes_a_key_in_the_admin(client, admin_user, key):
    stored = ApiKey.objects.get()
    client.force_login(admin_user)
    response = client.post("/admin/governance/apikey/", {"action": "revoke", "_selected_action": [stored.pk]})
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.revoked_at is not None and governance_services.api_key_for(key) is None
