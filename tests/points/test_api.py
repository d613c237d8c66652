"""The points API: scope (404), roles (403), balance, cap, stock and state (409), input (400 with the field),
filters and query counts, for rules, entries, accounts, rewards, redemptions, tallies, boards and objections."""

import datetime as dt

import pytest
from django.db.models import F
from django.utils import timezone

from governance import services as governance_services
from points import services, shop, tally
from points.models import Account, Board, Entry, EntryKind, Objection, Reward

from ..factories import HouseholdFactory, ResidentFactory
from ..grids.conftest import photo

RULES = "/api/v1/points/rules/"
ENTRIES = "/api/v1/points/entries/"
ACCOUNTS = "/api/v1/points/accounts/"


def ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


def ids(response):
    return {row["id"] for row in ok(response)["results"]}


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


# --- Rules --------------------------------------------------------------------------------------------------


def test_rules_are_those_of_ones_places_read_only(api, personas, make_rule, city):
    street = make_rule(unit=city.s1, points=2, name="街道通用")
    c1 = make_rule(points=5, name="垃圾分类")
    c2 = make_rule(unit=city.c2, points=3)
    other_street = make_rule(unit=city.c3, points=4)
    assert ids(api(personas["resident"]).get(RULES)) == {street.pk, c1.pk}
    assert ids(api(personas["grid_worker_2"]).get(RULES)) == {street.pk, c2.pk}
    assert ids(api(personas["street_staff"]).get(RULES)) == {street.pk, c1.pk, c2.pk}
    assert ids(api(personas["outsider"]).get(RULES)) == {other_street.pk}
    assert ok(api(personas["outsider"]).get(f"{RULES}{c1.pk}/"), 404)
    body = ok(api(personas["grid_worker"]).get(f"{RULES}{c1.pk}/"))
    assert (body["name"], body["points"], body["kind_display"]) == ("垃圾分类", 5, "鼓励倡导加分")
    assert body["scheme"]["code"] == "resident" and body["unit"]["name"] == "第一社区"
    assert api(personas["admin"]).post(RULES, {"name": "x"}, format="json").status_code == 405


def test_rule_filters(api, street_staff, make_rule, city, schemes, resident_record):
    today = timezone.localdate()
    bonus = make_rule(points=5)
    deduction = make_rule(points=-3)
    party = make_rule(points=2, scheme=schemes.party)
    ended = make_rule(points=1, active_from=today - dt.timedelta(days=60), active_until=today - dt.timedelta(days=30))
    c2 = make_rule(unit=city.c2, points=2)
    client = api(street_staff)
    assert ids(client.get(RULES, {"kind": "deduction"})) == {deduction.pk}
    assert ids(client.get(RULES, {"scheme": "party"})) == {party.pk}
    assert ids(client.get(RULES, {"scheme": schemes.party.pk})) == {party.pk}
    assert ids(client.get(RULES, {"unit": city.c2.pk})) == {c2.pk}
    assert ended.pk not in ids(client.get(RULES, {"active_on": today.isoformat()}))
    assert ended.pk in ids(client.get(RULES, {"active_on": (today - dt.timedelta(days=40)).isoformat()}))
    assert ids(client.get(RULES, {"resident": resident_record.pk})) == {bonus.pk, deduction.pk, party.pk}
    assert client.get(RULES, {"unit": city.s2.pk}).status_code == 400


def test_rule_list_query_count_does_not_grow(api, grid_worker, make_rule, django_assert_max_num_queries):
    for _ in range(3):
        make_rule(points=5)
    client = api(grid_worker)
    with django_assert_max_num_queries(4):
        assert len(ok(client.get(RULES))["results"]) == 3
    for _ in range(17):
        make_rule(points=5)
    with django_assert_max_num_queries(4):
        assert len(ok(client.get(RULES))["results"]) == 20


# --- Entries: recording -------------------------------------------------------------------------------------


def record(client, resident, rule, **data):
    return client.post(ENTRIES, {"resident": resident.pk, "rule": rule.pk, **data}, format="json")


def test_grid_worker_records_an_award_with_a_photo(api, grid_worker, make_rule, resident_record, media):
    rule = make_rule(points=5, name="垃圾分类", evidence_required=True)
    response = api(grid_worker).post(
        ENTRIES,
        {"resident": resident_record.pk, "rule": rule.pk, "note": "", "evidence": photo("e.jpg")},
        format="multipart",
    )
    body = ok(response, 201)
    assert (body["kind"], body["points"], body["balance_after"]) == ("award", 5, 5)
    assert body["resident"] == {"id": resident_record.pk, "name": "张三明"}
    assert body["rule"]["name"] == "垃圾分类" and body["recorded_by"]["name"] == "网格员"
    assert body["occurred_on"] == timezone.localdate().isoformat()
    image = api(grid_worker).get(body["evidence"])
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert image["X-Content-Type-Options"] == "nosniff"


def test_community_staff_records_a_deduction(api, community_staff, make_rule, award, resident_record):
    award(make_rule(points=10))
    body = ok(record(api(community_staff), resident_record, make_rule(points=-4, name="乱扔垃圾")), 201)
    assert (body["kind"], body["points"], body["balance_after"]) == ("deduction", -4, 6)


def test_roles_that_do_not_record_get_403_and_nothing_is_written(
    api, make_rule, resident_record, street_staff, department_staff, resident, secretary, admin_user
):
    rule = make_rule(points=5)
    for user in (street_staff, department_staff, resident, secretary, admin_user):
        response = record(api(user), resident_record, rule)
        assert response.status_code == 403, (user, response.content)
        assert "网格员" in response.json()["detail"]
    assert not Entry.objects.exists()


def test_a_grid_worker_of_another_grid_cannot_name_the_resident(api, grid_worker_2, make_rule, resident_record, city):
    response = record(api(grid_worker_2), resident_record, make_rule(unit=city.s1, points=5))
    assert response.status_code == 400 and "resident" in response.json()["errors"]
    assert not Entry.objects.exists()


def test_a_visible_resident_one_may_not_record_for_is_403(api, grid_worker, make_rule, city):
    """A grid worker of G1 who is also street staff sees G2's residents, but records only in G1."""
    neighbour_grid = ResidentFactory(household=HouseholdFactory(building=city.b2))
    governance_services.position_grant(by=None, user=grid_worker, role="street_staff", unit=city.s1)
    response = record(api(grid_worker), neighbour_grid, make_rule(points=5))
    assert response.status_code == 403
    assert "本网格" in response.json()["detail"]


def test_over_the_cap_is_409_with_the_reason(api, grid_worker, make_rule, resident_record):
    rule = make_rule(points=5, daily_cap=5, name="志愿服务")
    client = api(grid_worker)
    ok(record(client, resident_record, rule), 201)
    response = record(client, resident_record, rule)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "over_cap" and "每日上限" in body["detail"] and "志愿服务" in body["detail"]
    assert Entry.objects.count() == 1


def test_a_deduction_with_nothing_to_take_is_409(api, grid_worker, make_rule, resident_record):
    response = record(api(grid_worker), resident_record, make_rule(points=-3))
    assert response.status_code == 409 and response.json()["code"] == "insufficient_balance"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rule": None}, "rule"),
        ({"rule": "c2"}, "rule"),
        ({"occurred_on": "tomorrow"}, "occurred_on"),
        ({"occurred_on": "future"}, "occurred_on"),
        ({"resident": 999999}, "resident"),
        ({"note": "x" * 501}, "note"),
        ({"evidence_required": True}, "note"),
    ],
)
def test_bad_recording_input_is_a_400_naming_the_field(
    api, grid_worker, make_rule, resident_record, city, change, field
):
    rule = make_rule(points=5, evidence_required=change.pop("evidence_required", False))
    data = {"resident": resident_record.pk, "rule": rule.pk}
    for key, value in change.items():
        if value == "c2":
            value = make_rule(unit=city.c2, points=5).pk
        elif value == "future":
            value = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
        data[key] = value
    response = api(grid_worker).post(ENTRIES, {k: v for k, v in data.items() if v is not None}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert response.json()["detail"]
    assert not Entry.objects.exists()


def test_a_file_that_is_not_an_image_is_a_400_on_evidence(api, grid_worker, make_rule, resident_record, media):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake = SimpleUploadedFile("x.jpg", b"not an image", content_type="image/jpeg")
    data = {"resident": resident_record.pk, "rule": make_rule(points=5).pk, "evidence": fake}
    response = api(grid_worker).post(ENTRIES, data, format="multipart")
    assert response.status_code == 400 and "evidence" in response.json()["errors"]


# --- Entries: reading and reversing -------------------------------------------------------------------------


def test_each_persona_sees_the_entries_of_their_scope(api, personas, make_rule, award, resident_2_record, city):
    mine = award(make_rule(points=5))
    theirs = services.points_record(
        by=personas["grid_worker_2"], resident=resident_2_record, rule=make_rule(unit=city.c2, points=3)
    )
    expected = {
        "admin": {mine.pk, theirs.pk},
        "street_staff": {mine.pk, theirs.pk},
        "community_staff": {mine.pk},
        "grid_worker": {mine.pk},
        "grid_worker_2": {theirs.pk},
        "department_staff": set(),
        "outsider": set(),
        "resident": {mine.pk},
        "resident_2": {theirs.pk},
    }
    for name, wanted in expected.items():
        assert ids(api(personas[name]).get(ENTRIES)) == wanted, name
    assert api(personas["outsider"]).get(f"{ENTRIES}{mine.pk}/").status_code == 404
    assert api(personas["resident_2"]).get(f"{ENTRIES}{mine.pk}/").status_code == 404


def test_entry_filters(api, community_staff, make_rule, award, resident_record, schemes, city):
    other = ResidentFactory(household=HouseholdFactory(building=city.b2))
    first = award(make_rule(points=5))
    party = award(make_rule(points=2, scheme=schemes.party))
    deduction = award(make_rule(points=-1))
    in_g2 = services.points_record(by=community_staff, resident=other, rule=make_rule(points=4))
    client = api(community_staff)
    assert ids(client.get(ENTRIES, {"resident": resident_record.pk})) == {first.pk, party.pk, deduction.pk}
    assert ids(client.get(ENTRIES, {"scheme": "party"})) == {party.pk}
    assert ids(client.get(ENTRIES, {"kind": "deduction"})) == {deduction.pk}
    assert ids(client.get(ENTRIES, {"unit": city.g2.pk})) == {in_g2.pk}
    month = timezone.localdate().strftime("%Y-%m")
    assert len(ids(client.get(ENTRIES, {"month": month}))) == 4
    assert ids(client.get(ENTRIES, {"month": "2001-01"})) == set()
    response = client.get(ENTRIES, {"month": "2026-13"})
    assert response.status_code == 400 and "month" in response.json()["errors"]


def test_entry_list_query_count_does_not_grow(api, community_staff, make_rule, award, django_assert_max_num_queries):
    rule = make_rule(points=1)
    for _ in range(3):
        award(rule)
    client = api(community_staff)
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(ENTRIES))["results"]) == 3
    entries = [award(rule) for _ in range(17)]
    services.points_reverse(by=community_staff, entry=entries[0], note="错记")
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(ENTRIES, {"page_size": 50}))["results"]) == 21


def test_a_recorder_reverses_an_entry_once(api, community_staff, make_rule, award, resident_record, schemes):
    entry = award(make_rule(points=8))
    client = api(community_staff)
    body = ok(client.post(f"{ENTRIES}{entry.pk}/reverse/", {"note": "记错了人"}, format="json"), 201)
    assert (body["kind"], body["points"], body["reverses"], body["balance_after"]) == ("reversal", -8, entry.pk, 0)
    assert ok(client.get(f"{ENTRIES}{entry.pk}/"))["reversed_by"] == body["id"]
    again = client.post(f"{ENTRIES}{entry.pk}/reverse/", {"note": "再冲一次"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_reversed"
    assert Account.objects.get(resident=resident_record, scheme=schemes.resident).balance == 0


def test_reversing_needs_a_reason_and_the_right_role(api, make_rule, award, resident, street_staff, outsider):
    entry = award(make_rule(points=8))
    url = f"{ENTRIES}{entry.pk}/reverse/"
    assert api(outsider).post(url, {"note": "x"}, format="json").status_code == 404
    for user in (resident, street_staff):
        response = api(user).post(url, {"note": ""}, format="json")
        assert response.status_code == 403, response.content
    response = api(street_staff).post(url, {"note": "x"}, format="json")
    assert response.status_code == 403 and "冲正" in response.json()["detail"]
    assert not Entry.objects.filter(kind=EntryKind.REVERSAL).exists()


def test_reversal_without_a_note_is_400(api, grid_worker, make_rule, award):
    entry = award(make_rule(points=8))
    response = api(grid_worker).post(f"{ENTRIES}{entry.pk}/reverse/", {"note": " "}, format="json")
    assert response.status_code == 400 and "note" in response.json()["errors"]


# --- Accounts -----------------------------------------------------------------------------------------------


def test_a_resident_reads_their_own_account(api, resident, resident_record, make_rule, award, schemes):
    award(make_rule(points=5))
    award(make_rule(points=3, scheme=schemes.party))
    award(make_rule(points=-2))
    body = ok(api(resident).get(f"{ACCOUNTS}{resident_record.pk}/"))
    assert body["resident"]["name"] == "张三明" and body["resident"]["address"] == "1栋 1单元101"
    balances = {row["scheme"]["code"]: row for row in body["balances"]}
    assert balances["resident"]["balance"] == 3 and balances["resident"]["deducted"] == 2
    assert balances["party"]["balance"] == 3
    assert body["totals"] == {"balance": 6, "earned": 8, "deducted": 2, "redeemed": 0}
    assert [e["points"] for e in body["latest_entries"]] == [-2, 3, 5]


def test_accounts_outside_the_scope_are_404(api, personas, resident_record):
    url = f"{ACCOUNTS}{resident_record.pk}/"
    for name in ("resident_2", "grid_worker_2", "outsider", "department_staff"):
        assert api(personas[name]).get(url).status_code == 404, name
    for name in ("grid_worker", "community_staff", "street_staff", "admin"):
        assert api(personas[name]).get(url).status_code == 200, name
    assert api(personas["grid_worker"]).get(f"{ACCOUNTS}999999/").status_code == 404


def test_a_resident_outside_the_party_sees_no_party_balance(api, resident_2, resident_2_record):
    body = ok(api(resident_2).get(f"{ACCOUNTS}{resident_2_record.pk}/"))
    assert [row["scheme"]["code"] for row in body["balances"]] == ["resident"]
    assert body["totals"]["balance"] == 0 and body["latest_entries"] == []


def test_account_list_searches_and_counts_queries(
    api, community_staff, make_rule, award, city, django_assert_max_num_queries
):
    rule = make_rule(points=2)
    for i in range(3):
        resident = ResidentFactory(household=HouseholdFactory(building=city.b1, room=f"2单元{i}"), name=f"王{i}")
        award(rule, resident=resident)
    client = api(community_staff)
    rows = ok(client.get(ACCOUNTS, {"q": "王"}))["results"]
    assert {r["resident"]["name"] for r in rows} == {"王0", "王1", "王2"}
    assert rows[0]["totals"]["balance"] == 2
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(ACCOUNTS))["results"]) == 4  # and 张三明 of the fixture
    for i in range(17):
        resident = ResidentFactory(household=HouseholdFactory(building=city.b2, room=f"3单元{i}"))
        award(rule, resident=resident, by=community_staff)
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(ACCOUNTS, {"page_size": 50}))["results"]) == 21


# --- Rewards ------------------------------------------------------------------------------------------------

REWARDS = "/api/v1/points/rewards/"
REDEMPTIONS = "/api/v1/points/redemptions/"


@pytest.fixture
def make_reward(city, schemes):
    def make(*, community=None, cost=10, stock=5, active=True, name="洗衣液", scheme=None):
        return Reward.objects.create(
            community=community or city.c1,
            scheme=scheme or schemes.resident,
            name=name,
            cost=cost,
            stock=stock,
            active=active,
        )

    return make


def test_rewards_are_seen_in_their_community(api, personas, make_reward, city):
    c1 = make_reward(name="毛巾")
    off = make_reward(name="旧商品", active=False)
    c2 = make_reward(community=city.c2, name="肥皂")
    assert ids(api(personas["resident"]).get(REWARDS)) == {c1.pk}  # on the shelf only
    assert ids(api(personas["community_staff"]).get(REWARDS)) == {c1.pk, off.pk}
    assert ids(api(personas["street_staff"]).get(REWARDS)) == {c1.pk, off.pk, c2.pk}
    assert ids(api(personas["resident_2"]).get(REWARDS)) == {c2.pk}
    assert api(personas["outsider"]).get(f"{REWARDS}{c1.pk}/").status_code == 404
    assert api(personas["resident"]).get(f"{REWARDS}{c2.pk}/").status_code == 404
    assert ids(api(personas["street_staff"]).get(REWARDS, {"unit": city.c2.pk})) == {c2.pk}
    assert ids(api(personas["street_staff"]).get(REWARDS, {"active": "false"})) == {off.pk}


def test_community_staff_manage_rewards(api, community_staff, city, media):
    client = api(community_staff)
    body = ok(
        client.post(
            REWARDS,
            {
                "community": city.c1.pk,
                "scheme": "resident",
                "name": "大米 5 斤",
                "cost": 50,
                "stock": 3,
                "photo": photo("rice.jpg"),
            },
            format="multipart",
        ),
        201,
    )
    assert (body["name"], body["cost"], body["stock"], body["active"]) == ("大米 5 斤", 50, 3, True)
    assert client.get(body["photo"]).status_code == 200
    url = f"{REWARDS}{body['id']}/"
    assert ok(client.patch(url, {"cost": 40}, format="json"))["cost"] == 40
    assert ok(client.post(f"{url}restock/", {"quantity": 7}, format="json"))["stock"] == 10
    body = ok(client.patch(url, {"active": False}, format="json"))
    assert body["active"] is False and body["name"] == "大米 5 斤"


def test_who_may_not_manage_rewards(api, personas, make_reward, city):
    reward = make_reward()
    data = {"community": city.c1.pk, "scheme": "resident", "name": "x", "cost": 5}
    for name in ("grid_worker", "street_staff", "resident", "department_staff"):
        client = api(personas[name])
        assert client.post(REWARDS, data, format="json").status_code == 403, name
        if name != "department_staff":
            assert client.patch(f"{REWARDS}{reward.pk}/", {"cost": 1}, format="json").status_code == 403, name
            assert client.post(f"{REWARDS}{reward.pk}/restock/", {"quantity": 1}, format="json").status_code == 403
    assert api(personas["outsider"]).patch(f"{REWARDS}{reward.pk}/", {"cost": 1}, format="json").status_code == 404
    # Community staff of C1 cannot stock C2's shelf: C2 is outside their places, so the field refuses it.
    response = api(personas["community_staff"]).post(REWARDS, {**data, "community": city.c2.pk}, format="json")
    assert response.status_code == 400 and "community" in response.json()["errors"]
    reward.refresh_from_db()
    assert reward.cost == 10 and reward.stock == 5


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cost": 0}, "cost"),
        ({"cost": "many"}, "cost"),
        ({"name": ""}, "name"),
        ({"scheme": "nope"}, "scheme"),
        ({"stock": -1}, "stock"),
        ({"community": "g1"}, "community"),
    ],
)
def test_bad_reward_input_is_400(api, community_staff, city, data, field):
    body = {"community": city.c1.pk, "scheme": "resident", "name": "毛巾", "cost": 5, **data}
    if body["community"] == "g1":
        body["community"] = city.g1.pk
    response = api(community_staff).post(REWARDS, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


def test_reward_list_query_count_does_not_grow(api, community_staff, make_reward, django_assert_max_num_queries):
    for _ in range(3):
        make_reward()
    client = api(community_staff)
    with django_assert_max_num_queries(4):
        assert len(ok(client.get(REWARDS))["results"]) == 3
    for _ in range(17):
        make_reward()
    with django_assert_max_num_queries(4):
        assert len(ok(client.get(REWARDS))["results"]) == 20


# --- Redemptions --------------------------------------------------------------------------------------------


def balance_of(resident, scheme):
    account = Account.objects.filter(resident=resident, scheme=scheme).first()
    return account.balance if account else 0


def test_a_resident_reserves_and_gets_a_pickup_code_that_staff_fulfil(
    api, resident, resident_record, community_staff, make_rule, award, make_reward, schemes
):
    award(make_rule(points=30))
    reward = make_reward(cost=10, stock=2)
    body = ok(api(resident).post(REDEMPTIONS, {"reward": reward.pk, "quantity": 2}, format="json"), 201)
    assert (body["state"], body["points"], body["quantity"]) == ("reserved", 20, 2)
    code = body["pickup_code"]
    assert code and len(code) == 6
    assert balance_of(resident_record, schemes.resident) == 10
    reward.refresh_from_db()
    assert reward.stock == 0
    staff = api(community_staff)
    listed = ok(staff.get(REDEMPTIONS, {"pickup_code": code}))["results"]
    assert [r["id"] for r in listed] == [body["id"]]
    assert listed[0]["pickup_code"] is None  # the code is the resident's to show, not the staff's to read
    wrong = staff.post(f"{REDEMPTIONS}{body['id']}/fulfil/", {"pickup_code": "000000" if code != "000000" else "1"})
    assert wrong.status_code == 400 and "pickup_code" in wrong.json()["errors"]
    done = ok(staff.post(f"{REDEMPTIONS}{body['id']}/fulfil/", {"pickup_code": code}, format="json"))
    assert done["state"] == "fulfilled" and done["fulfilled_by"]["name"] == "社区工作者"
    again = staff.post(f"{REDEMPTIONS}{body['id']}/fulfil/", {"pickup_code": code}, format="json")
    assert again.status_code == 409


def test_staff_redeem_at_the_counter(api, community_staff, resident_record, make_rule, award, make_reward, schemes):
    award(make_rule(points=15))
    reward = make_reward(cost=10, stock=1)
    body = ok(
        api(community_staff).post(REDEMPTIONS, {"reward": reward.pk, "resident": resident_record.pk}, format="json"),
        201,
    )
    assert body["state"] == "fulfilled" and body["resident"]["name"] == "张三明"
    assert balance_of(resident_record, schemes.resident) == 5


def test_insufficient_balance_and_stock_are_409_and_nothing_moves(
    api, resident, resident_record, make_rule, award, make_reward, schemes
):
    award(make_rule(points=15))
    dear = make_reward(cost=20, stock=5)
    response = api(resident).post(REDEMPTIONS, {"reward": dear.pk}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "insufficient_balance"
    empty = make_reward(cost=5, stock=0)
    response = api(resident).post(REDEMPTIONS, {"reward": empty.pk}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "out_of_stock"
    off = make_reward(cost=5, stock=5, active=False)
    response = api(resident).post(REDEMPTIONS, {"reward": off.pk}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "reward_inactive"
    assert balance_of(resident_record, schemes.resident) == 15
    assert not Entry.objects.filter(kind=EntryKind.REDEMPTION).exists()


def test_cancelling_a_reservation_gives_points_and_stock_back_once(
    api, resident, resident_record, make_rule, award, make_reward, schemes
):
    award(make_rule(points=15))
    reward = make_reward(cost=10, stock=1)
    client = api(resident)
    body = ok(client.post(REDEMPTIONS, {"reward": reward.pk}, format="json"), 201)
    done = ok(client.post(f"{REDEMPTIONS}{body['id']}/cancel/", {}, format="json"))
    assert done["state"] == "cancelled" and done["pickup_code"] is None
    assert balance_of(resident_record, schemes.resident) == 15
    reward.refresh_from_db()
    assert reward.stock == 1
    again = client.post(f"{REDEMPTIONS}{body['id']}/cancel/", {}, format="json")
    assert again.status_code == 409


def test_redemption_roles_and_scope(api, personas, resident_record, make_rule, award, make_reward, city):
    award(make_rule(points=50))
    reward = make_reward(cost=10, stock=5)
    for name in ("grid_worker", "department_staff", "street_staff"):
        response = api(personas[name]).post(
            REDEMPTIONS, {"reward": reward.pk, "resident": resident_record.pk}, format="json"
        )
        assert response.status_code == 403, (name, response.content)
    # resident_2 lives in C2: C1's reward is not on their shelf
    response = api(personas["resident_2"]).post(REDEMPTIONS, {"reward": reward.pk}, format="json")
    assert response.status_code == 400 and "reward" in response.json()["errors"]
    reserved = ok(api(personas["resident"]).post(REDEMPTIONS, {"reward": reward.pk}, format="json"), 201)
    url = f"{REDEMPTIONS}{reserved['id']}/"
    for name in ("outsider", "resident_2", "grid_worker_2", "department_staff"):
        assert api(personas[name]).get(url).status_code == 404, name
        assert api(personas[name]).post(f"{url}cancel/", {}, format="json").status_code == 404, name
    # the grid worker sees the resident's redemptions but keeps no shop
    assert api(personas["grid_worker"]).get(url).status_code == 200
    assert api(personas["grid_worker"]).post(f"{url}fulfil/", {"pickup_code": "1"}, format="json").status_code == 403
    assert api(personas["grid_worker"]).post(f"{url}cancel/", {}, format="json").status_code == 403
    assert api(personas["resident"]).post(f"{url}fulfil/", {"pickup_code": "1"}, format="json").status_code == 403


@pytest.mark.parametrize(("data", "field"), [({"quantity": 0}, "quantity"), ({"reward": 99999}, "reward")])
def test_bad_redemption_input_is_400(api, resident, make_reward, data, field):
    reward = make_reward()
    response = api(resident).post(REDEMPTIONS, {"reward": reward.pk, **data}, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]


def test_redemption_list_query_count_does_not_grow(
    api, community_staff, resident, make_rule, award, make_reward, django_assert_max_num_queries
):
    award(make_rule(points=1000))
    reward = make_reward(cost=1, stock=100)
    for _ in range(3):
        shop.redemption_reserve(by=resident, reward=reward)
    for client in (api(community_staff), api(resident)):
        with django_assert_max_num_queries(5):
            assert len(ok(client.get(REDEMPTIONS))["results"]) == 3
    for _ in range(17):
        shop.redemption_reserve(by=resident, reward=reward)
    for client in (api(community_staff), api(resident)):
        with django_assert_max_num_queries(5):
            assert len(ok(client.get(REDEMPTIONS))["results"]) == 20


# --- Tallies, runs, boards, objections ----------------------------------------------------------------------

TALLIES = "/api/v1/points/tallies/"
RUNS = "/api/v1/points/tally-runs/"
BOARDS = "/api/v1/points/boards/"
OBJECTIONS = "/api/v1/points/objections/"


@pytest.fixture
def last_month():
    return tally.previous_month()


@pytest.fixture
def tallied(make_rule, award, community_staff, grid_worker_2, resident_record, resident_2_record, city, last_month):
    """Last month: 张三明 +10 and 王小红 +5 in G1, 赵大 +15 in G2, 李四 +3 in G3; tallied, boards published."""
    day = last_month + dt.timedelta(days=2)
    rule = make_rule(points=5, unit=city.s1)
    wang = ResidentFactory(household=HouseholdFactory(building=city.b1, room="1单元102"), name="王小红")
    zhao = ResidentFactory(household=HouseholdFactory(building=city.b2, room="2单元201"), name="赵大")
    first = award(rule, occurred_on=day)
    award(rule, occurred_on=day)
    award(rule, resident=wang, occurred_on=day)
    for _ in range(3):
        award(rule, resident=zhao, occurred_on=day, by=community_staff)
    services.points_record(
        by=grid_worker_2, resident=resident_2_record, rule=make_rule(points=3, unit=city.c2), occurred_on=day
    )
    tally.tally_month(month=last_month)
    tally.boards_publish_all(month=last_month)
    return {"entry": first, "wang": wang, "zhao": zhao, "month": f"{last_month:%Y-%m}"}


def board_of(client, unit, month):
    rows = ok(client.get(BOARDS, {"month": month, "unit": unit.pk, "scheme": "resident"}))["results"]
    return next(b for b in rows if b["unit"]["id"] == unit.pk)


def test_a_resident_sees_their_grids_and_communitys_boards_with_masked_names(api, resident, tallied, city):
    client = api(resident)
    response = client.get(BOARDS, {"month": tallied["month"]})
    assert {(b["unit"]["name"], b["scheme"]["code"]) for b in ok(response)["results"]} == {
        ("第一网格", "resident"),
        ("第一社区", "resident"),
    }
    assert "张三明" not in response.content.decode() and "王小红" not in response.content.decode()
    grid = board_of(client, city.g1, tallied["month"])
    assert [(r["rank"], r["name"], r["net"]) for r in grid["rows"]] == [(1, "张*明", 10), (2, "王*红", 5)]
    assert grid["is_final"] is False and grid["may_object"] is True and grid["notice_until"]
    community = board_of(client, city.c1, tallied["month"])
    assert [(r["rank"], r["name"], r["grid"]) for r in community["rows"]] == [
        (1, "赵*", "第二网格"),
        (2, "张*明", "第一网格"),
        (3, "王*红", "第一网格"),
    ]
    detail = ok(client.get(f"{BOARDS}{community['id']}/"))
    assert detail["rows"] == community["rows"]  # the list's batched rows are `tally.board_rows`
    assert len(ok(client.get(f"{BOARDS}{community['id']}/", {"limit": 1}))["rows"]) == 1


def test_tied_places_fill_a_board_as_its_detail_does(api, resident, tallied, city):
    """All of a community tied in first place: the list picks each board's first `limit` rows in SQL (by rank,
    then resident), the same rows as the board's own page."""
    from points.models import Tally

    Tally.objects.filter(community=city.c1).update(rank_in_community=1, rank_in_grid=1)
    client = api(resident)
    for limit in (1, 2):
        listed = ok(client.get(BOARDS, {"month": tallied["month"], "limit": limit}))["results"]
        assert len(listed) == 2
        for board in listed:
            detail = ok(client.get(f"{BOARDS}{board['id']}/", {"limit": limit}))["rows"]
            assert board["rows"] == detail and len(detail) == limit
            assert {r["rank"] for r in detail} == {1}


def test_a_board_page_read_again_shows_the_tally_as_it_is_now(api, resident, tallied, city):
    """The boards' first rows are read with the page (points.api.board_first_places), whose query is kept for the
    same request (`ListPlan`); the rows are read anew: a place that changed shows on the next read."""
    from points.models import Tally

    client = api(resident)
    first = ok(client.get(BOARDS, {"month": tallied["month"]}))["results"]
    board = next(b for b in first if len(b["rows"]) > 1)
    assert {r["rank"] for r in board["rows"]} != {1}
    Tally.objects.filter(community=city.c1).update(net=F("net") + 1000, rank_in_grid=1, rank_in_community=1)
    again = next(b for b in ok(client.get(BOARDS, {"month": tallied["month"]}))["results"] if b["id"] == board["id"])
    assert {r["rank"] for r in again["rows"]} == {1}
    assert sorted(r["net"] for r in again["rows"]) == sorted(r["net"] + 1000 for r in board["rows"])
    assert again["rows"] == ok(client.get(f"{BOARDS}{board['id']}/"))["rows"]


def test_boards_outside_the_scope_are_404(api, personas, tallied, city):
    board = board_of(api(personas["community_staff"]), city.g1, tallied["month"])
    for name in ("resident_2", "outsider", "grid_worker_2", "department_staff"):
        assert api(personas[name]).get(f"{BOARDS}{board['id']}/").status_code == 404, name
    assert api(personas["resident"]).get(f"{BOARDS}0/").status_code == 404
    staff_view = board_of(api(personas["street_staff"]), city.g1, tallied["month"])
    assert staff_view["may_object"] is False  # staff do not object
    assert api(personas["street_staff"]).get(BOARDS, {"month": "2026-13"}).status_code == 400


def test_board_list_query_count_does_not_grow(api, street_staff, tallied, city, schemes, django_assert_max_num_queries):
    client = api(street_staff)
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(BOARDS))["results"]) == 5  # G1, G2, G3, C1, C2
    now = timezone.now()
    for months_back in range(2, 5):
        month = (timezone.localdate().replace(day=1) - dt.timedelta(days=31 * months_back)).replace(day=1)
        for unit in (city.g1, city.g2, city.c1, city.c2, city.g3):
            Board.objects.create(month=month, unit=unit, scheme=schemes.resident, published_at=now, notice_until=now)
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(BOARDS))["results"]) == 20


def test_community_staff_publish_a_tallied_months_board(api, community_staff, grid_worker, tallied, city, last_month):
    Board.objects.filter(unit=city.g2).delete()
    data = {"month": tallied["month"], "unit": city.g2.pk, "scheme": "resident"}
    assert api(grid_worker).post(BOARDS, data, format="json").status_code == 403
    body = ok(api(community_staff).post(BOARDS, data, format="json"), 201)
    assert body["unit"]["id"] == city.g2.pk and body["rows"][0]["name"] == "赵*"
    untallied = {**data, "month": (last_month - dt.timedelta(days=1)).strftime("%Y-%m")}
    response = api(community_staff).post(BOARDS, untallied, format="json")
    assert response.status_code == 409 and response.json()["code"] == "not_tallied"
    response = api(community_staff).post(BOARDS, {**data, "unit": city.b1.pk}, format="json")
    assert response.status_code == 400 and "unit" in response.json()["errors"]


def test_a_resident_objects_during_the_notice_period(api, resident, tallied, city):
    board = board_of(api(resident), city.g1, tallied["month"])
    data = {"board": board["id"], "reason": "我那天没有参加活动", "entry": tallied["entry"].pk}
    body = ok(api(resident).post(OBJECTIONS, data, format="json"), 201)
    assert body["state"] == "open" and body["resident"]["name"] == "张三明"
    assert body["board"]["unit"]["name"] == "第一网格"


def test_objection_input_roles_and_the_end_of_the_notice_period(api, personas, tallied, city):
    resident = api(personas["resident"])
    board = board_of(resident, city.g1, tallied["month"])
    response = resident.post(OBJECTIONS, {"board": board["id"], "reason": " "}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["errors"]
    response = api(personas["resident_2"]).post(OBJECTIONS, {"board": board["id"], "reason": "x"}, format="json")
    assert response.status_code == 400 and "board" in response.json()["errors"]  # not their board
    response = api(personas["grid_worker"]).post(OBJECTIONS, {"board": board["id"], "reason": "x"}, format="json")
    assert response.status_code == 403
    Board.objects.filter(pk=board["id"]).update(notice_until=timezone.now() - dt.timedelta(minutes=1))
    response = resident.post(OBJECTIONS, {"board": board["id"], "reason": "太晚了"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "notice_over"
    assert board_of(resident, city.g1, tallied["month"])["is_final"] is True
    assert not Objection.objects.exists()


def test_community_staff_uphold_an_objection_and_the_board_is_retallied(
    api, personas, resident, tallied, city, community_staff
):
    board = board_of(api(resident), city.g1, tallied["month"])
    objection = tally.objection_file(
        by=resident, board=Board.objects.get(pk=board["id"]), reason="重复记分", entry=tallied["entry"]
    )
    url = f"{OBJECTIONS}{objection.pk}/resolve/"
    data = {"uphold": True, "resolution": "核实为重复记分，予以冲正"}
    assert api(personas["outsider"]).post(url, data, format="json").status_code == 404
    assert api(personas["resident_2"]).post(url, data, format="json").status_code == 404
    for name in ("grid_worker", "resident", "street_staff"):
        assert api(personas[name]).post(url, data, format="json").status_code == 403, name
    body = ok(api(community_staff).post(url, data, format="json"))
    assert body["state"] == "upheld" and body["correction"] and body["resolved_by"]["name"] == "社区工作者"
    grid = board_of(api(resident), city.g1, tallied["month"])
    assert [(r["name"], r["net"]) for r in grid["rows"]] == [("张*明", 5), ("王*红", 5)]
    again = api(community_staff).post(url, data, format="json")
    assert again.status_code == 409


def test_dismissing_needs_a_reason(api, resident, community_staff, tallied, city):
    board = Board.objects.get(unit=city.g1, month=tally.previous_month(), scheme__code="resident")
    objection = tally.objection_file(by=resident, board=board, reason="名次不对")
    url = f"{OBJECTIONS}{objection.pk}/resolve/"
    response = api(community_staff).post(url, {"uphold": False, "resolution": ""}, format="json")
    assert response.status_code == 400 and "resolution" in response.json()["errors"]
    response = api(community_staff).post(url, {"uphold": "maybe", "resolution": "x"}, format="json")
    assert response.status_code == 400 and "uphold" in response.json()["errors"]
    body = ok(api(community_staff).post(url, {"uphold": False, "resolution": "名次按规则计算，无误"}, format="json"))
    assert body["state"] == "dismissed"


def test_objections_are_listed_within_scope_with_bounded_queries(
    api, personas, resident, tallied, city, django_assert_max_num_queries
):
    board = Board.objects.get(unit=city.g1, month=tally.previous_month(), scheme__code="resident")
    for i in range(3):
        tally.objection_file(by=resident, board=board, reason=f"异议{i}")
    staff = api(personas["community_staff"])
    with django_assert_max_num_queries(5):
        assert len(ok(staff.get(OBJECTIONS))["results"]) == 3
    for i in range(17):
        tally.objection_file(by=resident, board=board, reason=f"更多{i}")
    with django_assert_max_num_queries(5):
        assert len(ok(staff.get(OBJECTIONS, {"state": "open"}))["results"]) == 20
    assert ok(api(personas["resident_2"]).get(OBJECTIONS))["results"] == []
    assert ok(api(personas["outsider"]).get(OBJECTIONS))["results"] == []
    assert len(ok(api(personas["resident"]).get(OBJECTIONS, {"month": tallied["month"]}))["results"]) == 20


def test_tallies_are_scoped_ranked_and_filtered(api, personas, tallied, city, django_assert_max_num_queries):
    own = ok(api(personas["resident"]).get(TALLIES, {"month": tallied["month"]}))["results"]
    assert [(t["resident"]["name"], t["net"], t["rank_in_grid"], t["rank_in_community"]) for t in own] == [
        ("张三明", 10, 1, 2)
    ]
    staff = api(personas["community_staff"])
    with django_assert_max_num_queries(5):
        rows = ok(staff.get(TALLIES, {"month": tallied["month"], "scheme": "resident"}))["results"]
    assert [r["resident"]["name"] for r in rows] == ["赵大", "张三明", "王小红"]
    assert ids(staff.get(TALLIES, {"unit": city.g2.pk})) == {rows[0]["id"]}
    assert ok(api(personas["outsider"]).get(TALLIES))["results"] == []
    assert api(personas["outsider"]).get(f"{TALLIES}{rows[0]['id']}/").status_code == 404
    assert staff.get(TALLIES, {"month": "last"}).status_code == 400


def test_tally_query_count_does_not_grow(
    api, street_staff, make_rule, award, city, last_month, django_assert_max_num_queries
):
    rule = make_rule(points=1, unit=city.s1)
    day = last_month + dt.timedelta(days=1)

    def residents(n):
        for _ in range(n):
            award(rule, resident=ResidentFactory(household=HouseholdFactory(building=city.b1)), occurred_on=day)
        tally.tally_month(month=last_month)

    residents(3)
    client = api(street_staff)
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(TALLIES))["results"]) == 3
    residents(17)
    with django_assert_max_num_queries(5):
        assert len(ok(client.get(TALLIES))["results"]) == 20


def test_administrators_run_the_tally_and_staff_see_the_runs(api, personas, tallied, last_month):
    body = ok(api(personas["admin"]).post(RUNS, {"month": tallied["month"]}, format="json"), 201)
    assert body["month"] == tallied["month"] and body["rows"] == 4 and body["finished_at"]
    assert body["triggered_by"]["name"] == "管理员"
    for name in ("community_staff", "street_staff", "resident"):
        assert api(personas[name]).post(RUNS, {"month": tallied["month"]}, format="json").status_code == 403
    this_month = timezone.localdate().strftime("%Y-%m")
    response = api(personas["admin"]).post(RUNS, {"month": this_month}, format="json")
    assert response.status_code == 400 and "month" in response.json()["errors"]
    response = api(personas["admin"]).post(RUNS, {"month": "2026-13"}, format="json")
    assert response.status_code == 400 and "month" in response.json()["errors"]
    assert len(ok(api(personas["street_staff"]).get(RUNS))["results"]) == 2
    assert ok(api(personas["resident"]).get(RUNS))["results"] == []


def test_tally_run_list_query_count_does_not_grow(api, street_staff, last_month, django_assert_max_num_queries):
    for _ in range(3):
        tally.tally_month(month=last_month)
    client = api(street_staff)
    with django_assert_max_num_queries(4):
        assert len(ok(client.get(RUNS))["results"]) == 3
    for _ in range(17):
        tally.tally_month(month=last_month)
    with django_assert_max_num_queries(4):
        assert len(ok(client.get(RUNS))["results"]) == 20


BIG = "99999999999999999999"


@pytest.mark.parametrize(
    ("url", "query"),
    [
        (RULES, {"scheme": "²", "active_on": "9999-99-99", "resident": BIG}),
        (ENTRIES, {"resident": BIG, "month": "9999-12", "scheme": BIG}),
        (ENTRIES, {"month": "0000-00", "unit": "²"}),
        (ACCOUNTS, {"unit": BIG, "page": BIG}),
        (f"{ACCOUNTS}{BIG}/", {}),
        (f"{ENTRIES}{BIG}/evidence/", {}),
        (REWARDS, {"scheme": BIG, "active": "perhaps"}),
        (REDEMPTIONS, {"pickup_code": "x" * 50, "reward": BIG}),
        (TALLIES, {"month": "2026-1", "resident": BIG}),
        (BOARDS, {"limit": BIG, "month": "1999-00"}),
        (BOARDS, {"limit": "²"}),
        (OBJECTIONS, {"board": BIG, "state": "pending"}),
    ],
)
def test_odd_query_parameters_never_crash(api, community_staff, url, query):
    response = api(community_staff).get(url, query)
    assert response.status_code in (200, 400, 404), (response.status_code, response.content)
    assert response.json()["detail"] if response.status_code != 200 else True


@pytest.mark.parametrize(
    ("url", "data"),
    [
        (ENTRIES, {"resident": BIG, "rule": BIG, "occurred_on": "0001-01-01"}),
        (REWARDS, {"community": BIG, "scheme": "resident", "name": "x", "cost": BIG, "stock": BIG}),
        (REDEMPTIONS, {"reward": BIG, "resident": BIG, "quantity": BIG}),
        (BOARDS, {"month": "9999-12", "unit": BIG, "scheme": "resident"}),
        (OBJECTIONS, {"board": BIG, "reason": "x"}),
        (RUNS, {"month": "0001-01"}),
    ],
)
def test_odd_bodies_never_crash(api, community_staff, admin_user, url, data):
    for user in (community_staff, admin_user):
        response = api(user).post(url, data, format="json")
        assert response.status_code in (400, 403, 404, 409), (url, response.status_code, response.content)


def test_board_rows_match_the_declared_fields(tallied, resident, api):
    """The board serializer writes its boards directly: what DRF's declared fields give."""
    from rest_framework import serializers

    from points.api import BoardSerializer
    from points.models import Board

    response = api(resident).get("/api/v1/points/boards/", {"month": tallied["month"]})
    assert response.status_code == 200
    listed = response.json()["results"]
    assert listed and any(board["rows"] for board in listed)
    paths = tuple(
        p.resident.household.building.path for p in resident.positions.select_related("resident__household__building")
    )
    serializer = BoardSerializer(context={"now": timezone.now(), "resident_paths": paths, "limit": 20})
    for board in listed:
        expected = serializers.ModelSerializer.to_representation(
            serializer, Board.objects.select_related("unit", "scheme").get(pk=board["id"])
        )
        assert board == expected
        assert list(board) == BoardSerializer.Meta.fields
    assert any(board["may_object"] for board in listed)  # the resident's own places, in their notice period
