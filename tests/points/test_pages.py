"""The points pages: a resident's own points, the staff's resident search and resident page with reversals,
recording on a phone, the board with its objections, the supermarket, objections and tally runs, and the
navigation entries."""

import datetime as dt
import re

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from governance import services as governance_services
from points import shop, tally
from points.models import Account, Board, Entry, EntryKind, Objection, Redemption, Reward, TallyRun

from ..factories import HouseholdFactory, ResidentFactory
from ..grids.conftest import photo


def login(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


# --- /points/: a resident's own points, the staff's search ----------------------------------------------------


def test_a_resident_sees_their_balances_history_and_ranks(resident, make_rule, award, schemes):
    award(make_rule(points=5, name="垃圾分类"), note="主动分类")
    award(make_rule(points=3, scheme=schemes.party, name="党员先锋"))
    response = login(resident).get("/points/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "我的积分" in html
    assert re.search(r"<dt>居民积分</dt><dd>5 <small>分</small></dd>", html)
    assert re.search(r"<dt>党员积分</dt><dd>3 <small>分</small></dd>", html)
    assert "垃圾分类" in html and "主动分类" in html and "党员先锋" in html
    assert "月度排名" in html and "月底统计后公布" in html
    assert "查找居民" not in html  # no staff search for a resident


def test_a_residents_history_is_paginated(resident, make_rule, award):
    rule = make_rule(points=1)
    for _ in range(25):
        award(rule)
    client = login(resident)
    first = client.get("/points/").content.decode()
    assert first.count('class="entry entry-award"') == 20 and "page=2" in first
    second = client.get("/points/", {"page": 2}).content.decode()
    assert second.count('class="entry entry-award"') == 5


def test_staff_search_residents_of_their_places(community_staff, resident_record, resident_2_record, city):
    ResidentFactory(household=HouseholdFactory(building=city.b2, room="5单元501"), name="赵五")
    client = login(community_staff)
    html = client.get("/points/", {"q": "张"}).content.decode()
    assert "张三明" in html and f'href="/points/residents/{resident_record.pk}/"' in html
    assert "赵五" not in html
    by_room = client.get("/points/", {"q": "501"}).content.decode()
    assert "赵五" in by_room and "张三明" not in by_room
    assert "李四" not in client.get("/points/", {"q": "李"}).content.decode()  # in the other community


def test_department_staff_have_no_points_page(department_staff):
    response = login(department_staff).get("/points/")
    assert response.status_code == 403
    assert "积分只对居民" in response.content.decode()


def test_points_pages_send_anonymous_visitors_to_login(city):
    for url in ("/points/", "/points/record/", "/points/board/", "/points/shop/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_home_queries_do_not_grow_with_residents_or_entries(
    community_staff, resident, make_rule, award, city, django_assert_max_num_queries
):
    rule = make_rule(points=1)
    for i in range(3):
        award(rule, resident=ResidentFactory(household=HouseholdFactory(building=city.b1, room=f"9单元{i}")))
        award(rule)
    staff, own = login(community_staff), login(resident)
    bound = 14
    with django_assert_max_num_queries(bound):
        assert staff.get("/points/").status_code == 200
    with django_assert_max_num_queries(bound):
        assert own.get("/points/").status_code == 200
    for i in range(20):
        award(rule, resident=ResidentFactory(household=HouseholdFactory(building=city.b1, room=f"8单元{i}")))
        award(rule)
    with django_assert_max_num_queries(bound):
        assert staff.get("/points/").status_code == 200
    with django_assert_max_num_queries(bound):
        assert own.get("/points/").status_code == 200


# --- A resident's page for staff, with reversals ---------------------------------------------------------


def test_staff_see_a_residents_page_and_outsiders_get_404(personas, resident_record, make_rule, award):
    award(make_rule(points=5, name="志愿服务"))
    url = f"/points/residents/{resident_record.pk}/"
    for name in ("grid_worker", "community_staff", "street_staff", "admin", "resident"):
        response = login(personas[name]).get(url)
        assert response.status_code == 200, name
        assert "志愿服务" in response.content.decode()
    for name in ("grid_worker_2", "outsider", "resident_2", "department_staff"):
        assert login(personas[name]).get(url).status_code == 404, name


def test_a_recorder_reverses_an_entry_from_the_residents_page(grid_worker, resident_record, make_rule, award, schemes):
    entry = award(make_rule(points=5))
    client = login(grid_worker)
    url = f"/points/residents/{resident_record.pk}/"
    html = client.get(url).content.decode()
    assert f'name="entry" value="{entry.pk}"' in html and "确认冲正" in html
    response = client.post(url, {"entry": entry.pk, f"e{entry.pk}-note": "记错了人"})
    assert response.status_code == 302
    reversal = Entry.objects.get(kind=EntryKind.REVERSAL)
    assert reversal.reverses == entry and reversal.note == "记错了人"
    assert Account.objects.get(resident=resident_record, scheme=schemes.resident).balance == 0
    html = client.get(url).content.decode()
    assert "已冲正该记录" in html and "已冲正" in html
    assert f'name="entry" value="{entry.pk}"' not in html  # reversed once: no second button


def test_a_reversal_without_a_reason_is_shown_next_to_the_field(grid_worker, resident_record, make_rule, award):
    entry = award(make_rule(points=5))
    response = login(grid_worker).post(
        f"/points/residents/{resident_record.pk}/", {"entry": entry.pk, f"e{entry.pk}-note": " "}
    )
    assert response.status_code == 400
    assert "请说明冲正的原因" in response.content.decode()
    assert not Entry.objects.filter(kind=EntryKind.REVERSAL).exists()


def test_a_reversal_the_balance_no_longer_allows_is_409(grid_worker, resident_record, make_rule, award):
    entry = award(make_rule(points=5))
    award(make_rule(points=-5))
    response = login(grid_worker).post(
        f"/points/residents/{resident_record.pk}/", {"entry": entry.pk, f"e{entry.pk}-note": "错记"}
    )
    assert response.status_code == 409
    assert "余额不足" in response.content.decode()


def test_street_staff_and_residents_may_not_reverse(street_staff, resident, resident_record, make_rule, award):
    entry = award(make_rule(points=5))
    url = f"/points/residents/{resident_record.pk}/"
    assert "确认冲正" not in login(street_staff).get(url).content.decode()
    for user in (street_staff, resident):
        response = login(user).post(url, {"entry": entry.pk, f"e{entry.pk}-note": "想撤销"})
        assert response.status_code == 403
    assert not Entry.objects.filter(kind=EntryKind.REVERSAL).exists()


def test_evidence_photos_are_served_only_within_scope(media, grid_worker, outsider, make_rule, award):
    entry = award(make_rule(points=5), evidence=photo("e.png", fmt="PNG"))
    response = login(grid_worker).get(f"/points/entries/{entry.pk}/evidence/")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"  # re-encoded on upload
    assert response["X-Content-Type-Options"] == "nosniff"
    assert login(outsider).get(f"/points/entries/{entry.pk}/evidence/").status_code == 404


# --- Recording on a phone ---------------------------------------------------------------------------------


def test_grid_worker_finds_a_resident_by_name_or_room(grid_worker, resident_record, resident_2_record, city):
    client = login(grid_worker)
    html = client.get("/points/record/").content.decode()
    assert 'name="q"' in html and 'name="rule"' not in html
    html = client.get("/points/record/", {"q": "101"}).content.decode()
    assert f'href="?resident={resident_record.pk}"' in html
    html = client.get("/points/record/", {"q": "李四"}).content.decode()  # resident_2 lives in G3
    assert f"?resident={resident_2_record.pk}" not in html and "没有找到这位居民" in html


def test_the_recording_form_offers_the_rules_that_apply_grouped_by_kind(grid_worker, resident_record, make_rule, city):
    make_rule(points=2, kind="base", name="按时缴费")
    make_rule(points=5, name="垃圾分类", daily_cap=10, monthly_cap=30, evidence_required=True)
    make_rule(points=-3, name="乱扔垃圾")
    make_rule(unit=city.c2, points=9, name="别的社区的规则")
    html = login(grid_worker).get("/points/record/", {"resident": resident_record.pk}).content.decode()
    assert html.index("基本行为") < html.index("鼓励倡导加分") < html.index("禁止反对扣分")
    assert "按时缴费" in html and "乱扔垃圾" in html and "别的社区的规则" not in html
    assert "每日上限 10 分 · 每月上限 30 分 · 须有佐证" in html
    assert ">+5<" in html and ">-3<" in html
    assert 'accept="image/*"' in html and 'capture="environment"' in html
    assert 'enctype="multipart/form-data"' in html
    assert f'value="{timezone.localdate().isoformat()}"' in html  # occurred on: today by default
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_grid_worker_records_a_point_with_a_photo_and_sees_the_new_balance(
    media, grid_worker, resident_record, make_rule, schemes
):
    rule = make_rule(points=5, name="垃圾分类")
    client = login(grid_worker)
    data = {
        "resident": resident_record.pk,
        "rule": rule.pk,
        "occurred_on": timezone.localdate().isoformat(),
        "note": "主动分类投放",
        "evidence": photo("e.jpg"),
    }
    response = client.post("/points/record/", data)
    assert response.status_code == 302
    assert response["Location"] == f"/points/record/?resident={resident_record.pk}"
    entry = Entry.objects.get()
    assert (entry.points, entry.rule, entry.recorded_by, entry.note) == (5, rule, grid_worker, "主动分类投放")
    assert entry.evidence and (media / entry.evidence.name).exists()
    html = client.get(response["Location"]).content.decode()
    assert "已为张三明记分：垃圾分类 +5 分。「居民积分」余额 5 分。" in html


def test_over_the_cap_is_a_409_with_the_reason_on_the_form(grid_worker, resident_record, make_rule, award):
    rule = make_rule(points=5, daily_cap=5, name="志愿服务")
    award(rule)
    data = {"resident": resident_record.pk, "rule": rule.pk, "occurred_on": timezone.localdate().isoformat()}
    response = login(grid_worker).post("/points/record/", data)
    assert response.status_code == 409
    html = response.content.decode()
    assert "未能记分" in html and "每日上限" in html and 'role="alert"' in html
    assert Entry.objects.count() == 1


def test_a_deduction_with_nothing_to_take_is_409(grid_worker, resident_record, make_rule):
    rule = make_rule(points=-3)
    data = {"resident": resident_record.pk, "rule": rule.pk, "occurred_on": timezone.localdate().isoformat()}
    response = login(grid_worker).post("/points/record/", data)
    assert response.status_code == 409 and "余额为 0" in response.content.decode()


def test_field_errors_are_shown_next_to_the_fields(grid_worker, resident_record, make_rule):
    rule = make_rule(points=5, evidence_required=True)
    client = login(grid_worker)
    response = client.post("/points/record/", {"resident": resident_record.pk, "occurred_on": "not a day"})
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count('class="error"') >= 2  # the rule and the day
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    response = client.post(
        "/points/record/", {"resident": resident_record.pk, "rule": rule.pk, "occurred_on": tomorrow}
    )
    assert response.status_code == 400 and "发生日期不能晚于今天" in response.content.decode()
    today = timezone.localdate().isoformat()
    response = client.post("/points/record/", {"resident": resident_record.pk, "rule": rule.pk, "occurred_on": today})
    assert response.status_code == 400 and "此规则须有佐证" in response.content.decode()
    assert not Entry.objects.exists()


def test_a_file_that_is_not_an_image_is_refused_on_the_photo_field(media, grid_worker, resident_record, make_rule):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake = SimpleUploadedFile("x.jpg", b"not an image", content_type="image/jpeg")
    data = {
        "resident": resident_record.pk,
        "rule": make_rule(points=5).pk,
        "occurred_on": timezone.localdate().isoformat(),
        "evidence": fake,
    }
    response = login(grid_worker).post("/points/record/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "不是图片文件" in html.split('name="evidence"')[1]  # next to the photo field
    assert not Entry.objects.exists()


def test_recording_is_for_grid_workers_and_community_staff(personas, resident_record, make_rule):
    rule = make_rule(points=5)
    assert login(personas["community_staff"]).get("/points/record/").status_code == 200
    data = {"resident": resident_record.pk, "rule": rule.pk, "occurred_on": timezone.localdate().isoformat()}
    for name in ("street_staff", "department_staff", "resident", "secretary", "admin"):
        client = login(personas[name])
        assert client.get("/points/record/").status_code == 403, name
        assert client.post("/points/record/", data).status_code == 403, name
    assert login(personas["grid_worker_2"]).get("/points/record/", {"resident": resident_record.pk}).status_code == 404
    assert login(personas["grid_worker_2"]).post("/points/record/", data).status_code == 404
    assert not Entry.objects.exists()


def test_a_visible_resident_outside_ones_grid_is_403(grid_worker, city, make_rule):
    governance_services.position_grant(by=None, user=grid_worker, role="street_staff", unit=city.s1)
    other = ResidentFactory(household=HouseholdFactory(building=city.b2))
    data = {"resident": other.pk, "rule": make_rule(points=5).pk, "occurred_on": timezone.localdate().isoformat()}
    response = login(grid_worker).post("/points/record/", data)
    assert response.status_code == 403 and "本网格" in response.content.decode()


def test_recording_is_csrf_protected(grid_worker, resident_record, make_rule):
    client = Client(enforce_csrf_checks=True)
    client.force_login(grid_worker)
    data = {"resident": resident_record.pk, "rule": make_rule(points=5).pk, "occurred_on": "2026-01-01"}
    assert client.post("/points/record/", data).status_code == 403
    assert not Entry.objects.exists()


# --- The points supermarket ---------------------------------------------------------------------------------


@pytest.fixture
def make_reward(city, schemes):
    def make(*, community=None, cost=10, stock=5, active=True, name="洗衣液"):
        return Reward.objects.create(
            community=community or city.c1, scheme=schemes.resident, name=name, cost=cost, stock=stock, active=active
        )

    return make


def test_a_resident_sees_the_shelf_and_reserves_with_a_pickup_code(
    resident, resident_record, make_rule, award, make_reward, schemes
):
    award(make_rule(points=25))
    soap = make_reward(name="肥皂", cost=10, stock=3)
    make_reward(name="电饭煲", cost=100)
    make_reward(name="下架的", active=False)
    client = login(resident)
    html = client.get("/points/shop/").content.decode()
    assert "肥皂" in html and "电饭煲" in html and "下架的" not in html
    assert "积分不足（现有 25 分）" in html  # the rice cooker
    assert "柜台兑换" not in html  # no counter for residents
    response = client.post("/points/shop/", {"action": "reserve", "target": soap.pk, f"reserve{soap.pk}-quantity": 2})
    assert response.status_code == 302
    redemption = Redemption.objects.get()
    assert (redemption.state, redemption.points, redemption.resident) == ("reserved", 20, resident_record)
    html = client.get("/points/shop/").content.decode()
    assert f"预约成功！取货码 {redemption.pickup_code}" in html
    assert f'<strong class="pickup-code">{redemption.pickup_code}</strong>' in html
    assert Account.objects.get(resident=resident_record, scheme=schemes.resident).balance == 5
    # and on their points page too
    assert redemption.pickup_code in client.get("/points/").content.decode()


def test_a_resident_cancels_a_reservation(resident, resident_record, make_rule, award, make_reward, schemes):
    award(make_rule(points=25))
    reward = make_reward(cost=10, stock=1)
    redemption = shop.redemption_reserve(by=resident, reward=reward)
    client = login(resident)
    response = client.post("/points/shop/", {"action": "cancel", "target": redemption.pk})
    assert response.status_code == 302
    redemption.refresh_from_db()
    assert redemption.state == "cancelled"
    assert Account.objects.get(resident=resident_record, scheme=schemes.resident).balance == 25
    again = client.post("/points/shop/", {"action": "cancel", "target": redemption.pk})
    assert again.status_code == 409 and "不能取消" in again.content.decode()


def test_reserving_beyond_the_balance_or_the_stock_is_409(resident, make_rule, award, make_reward):
    award(make_rule(points=5))
    dear = make_reward(cost=10, stock=3)
    client = login(resident)
    response = client.post("/points/shop/", {"action": "reserve", "target": dear.pk, f"reserve{dear.pk}-quantity": 1})
    assert response.status_code == 409 and "积分余额不足" in response.content.decode()
    cheap = make_reward(cost=1, stock=1)
    response = client.post("/points/shop/", {"action": "reserve", "target": cheap.pk, f"reserve{cheap.pk}-quantity": 2})
    assert response.status_code == 409 and "库存不足" in response.content.decode()
    response = client.post("/points/shop/", {"action": "reserve", "target": cheap.pk, f"reserve{cheap.pk}-quantity": 0})
    assert response.status_code == 400
    assert not Redemption.objects.exists()


def test_the_counter_finds_a_resident_and_redeems(community_staff, resident_record, make_rule, award, make_reward):
    award(make_rule(points=30))
    reward = make_reward(name="毛巾", cost=10, stock=5)
    client = login(community_staff)
    html = client.get("/points/shop/").content.decode()
    assert "柜台兑换" in html and "凭取货码发放" in html and "商品管理" in html
    html = client.get("/points/shop/", {"q": "张"}).content.decode()
    assert f"resident={resident_record.pk}" in html
    html = client.get("/points/shop/", {"resident": resident_record.pk}).content.decode()
    assert "兑换并发放" in html and re.search(r"<dt>居民积分</dt><dd>30 ", html)
    data = {"action": "redeem", "target": reward.pk, "resident": resident_record.pk, f"redeem{reward.pk}-quantity": 2}
    response = client.post(f"/points/shop/?resident={resident_record.pk}", data)
    assert response.status_code == 302
    redemption = Redemption.objects.get()
    assert (redemption.state, redemption.points) == ("fulfilled", 20)
    html = client.get(response["Location"]).content.decode()
    assert "已为张三明兑换「毛巾」× 2，扣 20 分。" in html
    response = client.post(f"/points/shop/?resident={resident_record.pk}", data)
    assert response.status_code == 409 and "积分余额不足" in response.content.decode()


def test_the_counter_fulfils_by_pickup_code(community_staff, resident, make_rule, award, make_reward):
    award(make_rule(points=30))
    redemption = shop.redemption_reserve(by=resident, reward=make_reward(name="大米", cost=10))
    client = login(community_staff)
    html = client.get("/points/shop/", {"code": redemption.pickup_code}).content.decode()
    assert "大米" in html and "张三明" in html and "确认发放" in html
    assert redemption.pickup_code not in client.get("/points/shop/").content.decode()  # not listed for staff
    wrong = "000000" if redemption.pickup_code != "000000" else "111111"
    response = client.post(
        "/points/shop/", {"action": "fulfil", "target": redemption.pk, f"fulfil{redemption.pk}-code": wrong}
    )
    assert response.status_code == 400 and "取货码不正确" in response.content.decode()
    data = {"action": "fulfil", "target": redemption.pk, f"fulfil{redemption.pk}-code": redemption.pickup_code}
    assert client.post("/points/shop/", data).status_code == 302
    redemption.refresh_from_db()
    assert redemption.state == "fulfilled"
    assert client.post("/points/shop/", data).status_code == 409


def test_community_staff_add_edit_restock_and_deactivate_rewards(media, community_staff, make_reward):
    client = login(community_staff)
    data = {
        "action": "reward-add",
        "add-scheme": "resident",
        "add-name": "酱油",
        "add-cost": 8,
        "add-stock": 4,
        "add-photo": photo("soy.jpg"),
    }
    assert client.post("/points/shop/", data).status_code == 302
    reward = Reward.objects.get(name="酱油")
    assert (reward.cost, reward.stock, reward.active) == (8, 4, True) and reward.photo
    assert client.get(f"/points/rewards/{reward.pk}/photo/").status_code == 200
    edit = {
        "action": "reward-edit",
        "target": reward.pk,
        f"edit{reward.pk}-name": "酱油 500ml",
        f"edit{reward.pk}-cost": 9,
    }
    assert client.post("/points/shop/", edit).status_code == 302
    restock = {"action": "restock", "target": reward.pk, f"restock{reward.pk}-quantity": 6}
    assert client.post("/points/shop/", restock).status_code == 302
    assert client.post("/points/shop/", {"action": "deactivate", "target": reward.pk}).status_code == 302
    reward.refresh_from_db()
    assert (reward.name, reward.cost, reward.stock, reward.active) == ("酱油 500ml", 9, 10, False)
    html = client.get("/points/shop/").content.decode()
    assert "重新上架" in html and "已下架" in html


def test_reward_input_errors_are_next_to_the_fields(community_staff):
    response = login(community_staff).post(
        "/points/shop/", {"action": "reward-add", "add-scheme": "resident", "add-name": "", "add-cost": 0}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert '<details class="step" open>' in html and html.count('class="error"') >= 2
    assert not Reward.objects.exists()


def test_shop_roles_and_scope(personas, make_reward, city):
    reward = make_reward()
    c2 = make_reward(community=city.c2)
    for name in ("grid_worker", "street_staff", "department_staff"):
        assert login(personas[name]).get("/points/shop/").status_code == 403, name
    # a resident may not keep the shop
    response = login(personas["resident"]).post("/points/shop/", {"action": "restock", "target": reward.pk})
    assert response.status_code in (400, 403)
    assert login(personas["community_staff"]).get("/points/shop/", {"community": city.c2.pk}).status_code == 404
    data = {"action": "restock", "target": c2.pk, f"restock{c2.pk}-quantity": 1}
    assert login(personas["community_staff"]).post("/points/shop/", data).status_code == 404
    reward.refresh_from_db()
    c2.refresh_from_db()
    assert reward.stock == 5 and c2.stock == 5


def test_shop_queries_do_not_grow_with_rewards(
    community_staff, resident, make_rule, award, make_reward, django_assert_max_num_queries
):
    award(make_rule(points=100))
    for _ in range(3):
        shop.redemption_reserve(by=resident, reward=make_reward(cost=1))
    staff, own = login(community_staff), login(resident)
    bound = 16
    for client in (staff, own):
        with django_assert_max_num_queries(bound):
            assert client.get("/points/shop/").status_code == 200
    for _ in range(20):
        shop.redemption_reserve(by=resident, reward=make_reward(cost=1))
    for client in (staff, own):
        with django_assert_max_num_queries(bound):
            assert client.get("/points/shop/").status_code == 200


# --- The board and objections --------------------------------------------------------------------------------


@pytest.fixture
def tallied(make_rule, award, community_staff, resident_record, city):
    """Last month: 张三明 +10 and 王小红 +5 in G1, 赵大 +15 in G2; tallied and the boards published."""
    month = tally.previous_month()
    day = month + dt.timedelta(days=2)
    rule = make_rule(points=5)
    wang = ResidentFactory(household=HouseholdFactory(building=city.b1, room="1单元102"), name="王小红")
    zhao = ResidentFactory(household=HouseholdFactory(building=city.b2, room="2单元201"), name="赵大")
    first = award(rule, occurred_on=day)
    award(rule, occurred_on=day)
    award(rule, resident=wang, occurred_on=day)
    for _ in range(3):
        award(rule, resident=zhao, occurred_on=day, by=community_staff)
    tally.tally_month(month=month)
    tally.boards_publish_all(month=month)
    return {"month": month, "entry": first, "g1": Board.objects.get(unit=city.g1, month=month)}


def test_a_resident_sees_their_grids_board_with_masked_names_and_the_notice_period(resident, tallied):
    response = login(resident).get("/points/board/")
    assert response.status_code == 200
    html = response.content.decode()
    board = tallied["g1"]
    assert "第一网格" in html and f'value="{tallied["month"]:%Y-%m}"' in html
    assert "张*明" in html and "王*红" in html
    assert "张三明" not in html.split("<main")[1].replace('class="who">张三明', "")  # only their own name, up top
    assert "王小红" not in html
    assert f"公示期至 {timezone.localtime(board.notice_until):%Y-%m-%d %H:%M}" in html
    assert "提出异议" in html and 'name="reason"' in html
    assert f'value="{tallied["entry"].pk}"' in html  # their own entry of the month, to point at


def test_the_community_board_and_staff_view(street_staff, tallied, city):
    html = login(street_staff).get("/points/board/", {"unit": city.c1.pk}).content.decode()
    rows = re.findall(r'<td class="rank">(\d+)</td><td>([^<]+)</td><td>([^<]+)</td>', html)
    assert rows == [("1", "赵*", "第二网格"), ("2", "张*明", "第一网格"), ("3", "王*红", "第一网格")]
    assert 'name="reason"' not in html  # staff do not object


def test_a_resident_files_an_objection_on_the_board(resident, tallied, city):
    board = tallied["g1"]
    client = login(resident)
    data = {"unit": city.g1.pk, "month": f"{board.month:%Y-%m}", "scheme": "resident", "reason": "加分少记了一次"}
    response = client.post("/points/board/", {**data, "entry": tallied["entry"].pk})
    assert response.status_code == 302
    objection = Objection.objects.get()
    assert (objection.board, objection.entry, objection.reason) == (board, tallied["entry"], "加分少记了一次")
    html = client.get(response["Location"]).content.decode()
    assert "异议已提交" in html and "我提出的异议" in html and "待处理" in html
    response = client.post("/points/board/", {**data, "reason": " "})
    assert response.status_code == 400 and 'class="error"' in response.content.decode()


def test_after_the_notice_period_the_board_is_final(resident, tallied, city):
    board = tallied["g1"]
    Board.objects.filter(pk=board.pk).update(notice_until=timezone.now() - dt.timedelta(hours=1))
    html = login(resident).get("/points/board/").content.decode()
    assert "公示期已结束，积分榜已确定" in html and 'name="reason"' not in html
    data = {"unit": city.g1.pk, "month": f"{board.month:%Y-%m}", "scheme": "resident", "reason": "迟到的异议"}
    response = login(resident).post("/points/board/", data)
    assert response.status_code in (403, 409)


def test_board_scope_and_input(resident_2, department_staff, outsider, resident, tallied, city):
    assert login(resident_2).get("/points/board/", {"unit": city.g1.pk}).status_code == 404
    assert login(outsider).get("/points/board/", {"unit": city.g1.pk}).status_code == 404
    assert login(department_staff).get("/points/board/").status_code == 403
    response = login(resident).get("/points/board/", {"month": "2026-13"})
    assert response.status_code == 400 and "月份格式应为 YYYY-MM" in response.content.decode()
    assert login(resident).get("/points/board/", {"unit": "²"}).status_code == 404
    html = login(resident).get("/points/board/", {"month": "2001-01"}).content.decode()
    assert "2001-01 的积分榜尚未公示" in html


def test_board_queries_are_bounded(resident, street_staff, tallied, city, django_assert_max_num_queries):
    for user in (resident, street_staff):
        client = login(user)
        with django_assert_max_num_queries(14):
            assert client.get("/points/board/", {"unit": city.c1.pk}).status_code == 200


def test_community_staff_resolve_objections(community_staff, grid_worker, resident, tallied):
    objection = tally.objection_file(by=resident, board=tallied["g1"], reason="重复记分", entry=tallied["entry"])
    html = login(grid_worker).get("/points/objections/").content.decode()
    assert "重复记分" in html and "确认处理" not in html  # grid workers see, community staff resolve
    response = login(grid_worker).post(
        "/points/objections/", {"objection": objection.pk, f"o{objection.pk}-uphold": "yes"}
    )
    assert response.status_code == 403
    client = login(community_staff)
    html = client.get("/points/objections/").content.decode()
    assert "张三明" in html and "确认处理" in html
    response = client.post("/points/objections/", {"objection": objection.pk, f"o{objection.pk}-uphold": "no"})
    assert response.status_code == 400 and "驳回异议须说明理由" in response.content.decode()
    data = {
        "objection": objection.pk,
        f"o{objection.pk}-uphold": "yes",
        f"o{objection.pk}-resolution": "核实重复，冲正",
    }
    assert client.post("/points/objections/", data).status_code == 302
    objection.refresh_from_db()
    assert objection.state == "upheld" and objection.correction.kind == "reversal"
    again = client.post("/points/objections/", data)
    assert again.status_code == 409 and "已处理" in again.content.decode()
    assert "张*明" in login(resident).get("/points/board/").content.decode()


def test_objection_pages_are_for_staff(resident, department_staff, outsider, community_staff, tallied):
    objection = tally.objection_file(by=resident, board=tallied["g1"], reason="有误")
    assert login(resident).get("/points/objections/").status_code == 403
    assert login(department_staff).get("/points/objections/").status_code == 403
    assert "有误" not in login(outsider).get("/points/objections/").content.decode()
    data = {"objection": objection.pk, f"o{objection.pk}-uphold": "no", f"o{objection.pk}-resolution": "无误"}
    assert login(outsider).post("/points/objections/", data).status_code == 404


def test_objection_queries_are_bounded(community_staff, resident, tallied, django_assert_max_num_queries):
    for i in range(3):
        tally.objection_file(by=resident, board=tallied["g1"], reason=f"异议{i}")
    client = login(community_staff)
    with django_assert_max_num_queries(12):
        assert client.get("/points/objections/").status_code == 200
    for i in range(20):
        tally.objection_file(by=resident, board=tallied["g1"], reason=f"更多{i}")
    with django_assert_max_num_queries(12):
        assert client.get("/points/objections/").status_code == 200


# --- Tally runs -----------------------------------------------------------------------------------------------


def test_an_administrator_runs_the_tally_and_publishes_the_boards(admin_user, make_rule, award, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # without a broker the run happens in the request (with one: below)
    month = tally.previous_month()
    award(make_rule(points=5), occurred_on=month + dt.timedelta(days=1))
    client = login(admin_user)
    html = client.get("/points/tallies/").content.decode()
    assert f'value="{month:%Y-%m}"' in html and "运行该月统计" in html
    response = client.post("/points/tallies/", {"month": f"{month:%Y-%m}", "action": "tally"})
    assert response.status_code == 302
    run = TallyRun.objects.get()
    assert run.rows == 1 and run.triggered_by == admin_user and run.finished_at
    html = client.get("/points/tallies/").content.decode()
    assert f"已完成 {month:%Y-%m} 的月度统计：1 行" in html and "管理员" in html
    assert client.post("/points/tallies/", {"month": f"{month:%Y-%m}", "action": "publish"}).status_code == 302
    assert Board.objects.filter(month=month).count() == 2  # G1 and C1
    response = client.post("/points/tallies/", {"month": timezone.localdate().strftime("%Y-%m"), "action": "tally"})
    assert response.status_code == 400 and "尚未结束" in response.content.decode()
    assert client.post("/points/tallies/", {"month": "2026-13"}).status_code == 400


def test_tally_runs_page_roles(community_staff, street_staff, resident, department_staff):
    for user in (community_staff, street_staff):
        html = login(user).get("/points/tallies/").content.decode()
        assert "运行记录" in html and "运行该月统计" not in html
        assert login(user).post("/points/tallies/", {"month": "2020-01"}).status_code == 403
    for user in (resident, department_staff):
        assert login(user).get("/points/tallies/").status_code == 403
    assert not TallyRun.objects.exists()


# --- Navigation, language, assets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "shown", "hidden"),
    [
        ("grid_worker", {"积分", "记分", "积分榜"}, {"积分超市", "积分异议", "月度统计"}),
        ("community_staff", {"积分", "记分", "积分榜", "积分超市", "积分异议", "月度统计"}, set()),
        ("street_staff", {"积分", "积分榜", "积分异议", "月度统计"}, {"记分", "积分超市"}),
        ("department_staff", set(), {"积分", "记分", "积分榜", "积分超市", "积分异议", "月度统计"}),
        ("resident", {"积分", "积分榜", "积分超市"}, {"记分", "积分异议", "月度统计"}),
    ],
)
def test_navigation_shows_the_points_pages_to_the_right_people(personas, persona, shown, hidden):
    """The top bar has the section, the section's tabs its pages (on any page of the section)."""
    html = login(personas[persona]).get("/points/").content.decode()
    nav = html.split("<header")[1].split("<main")[0]
    labels = set(re.findall(r">([^<]+)</a>", nav))
    assert shown <= labels, labels
    assert not hidden & labels, labels


def test_pages_render_in_english_and_reference_no_outside_assets(personas, resident_record, make_rule, award, tallied):
    award(make_rule(points=5))
    pages = [
        ("resident", "/points/"),
        ("resident", "/points/board/"),
        ("resident", "/points/shop/"),
        ("grid_worker", "/points/record/"),
        ("grid_worker", f"/points/record/?resident={resident_record.pk}"),
        ("community_staff", "/points/"),
        ("community_staff", f"/points/residents/{resident_record.pk}/"),
        ("community_staff", "/points/shop/"),
        ("community_staff", "/points/objections/"),
        ("admin", "/points/tallies/"),
    ]
    for persona, url in pages:
        client = login(personas[persona])
        client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
        response = client.get(url, headers={"accept-language": "en"})
        assert response.status_code == 200, url
        html = response.content.decode()
        assert '<html lang="en">' in html, url
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not re.match(r"^(https?:)?//", ref), (url, ref)
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/js/app.js" defer>'], url


def test_resident_page_and_record_search_queries_are_bounded(
    grid_worker, admin_user, resident_record, make_rule, award, city, django_assert_max_num_queries
):
    rule = make_rule(points=1)

    def more(n):
        for i in range(n):
            award(rule)
            ResidentFactory(household=HouseholdFactory(building=city.b1), name=f"张{i}{n}")

    more(3)
    worker, admin = login(grid_worker), login(admin_user)
    pages = [
        (worker, f"/points/residents/{resident_record.pk}/"),
        (worker, "/points/record/?q=张"),
        (admin, "/points/tallies/"),
    ]
    for client, url in pages:
        with django_assert_max_num_queries(16):
            assert client.get(url).status_code == 200, url
    more(20)
    for _ in range(3):
        tally.tally_month(month=tally.previous_month())
    for client, url in pages:
        with django_assert_max_num_queries(16):
            assert client.get(url).status_code == 200, url


BIG = "99999999999999999999"


@pytest.mark.parametrize(
    ("persona", "path", "query"),
    [
        ("community_staff", f"/points/residents/{BIG}/", {}),
        ("community_staff", f"/points/entries/{BIG}/evidence/", {}),
        ("community_staff", f"/points/rewards/{BIG}/photo/", {}),
        ("community_staff", "/points/", {"page": BIG}),
        ("community_staff", "/points/", {"q": "x" * 200}),
        ("grid_worker", "/points/record/", {"resident": BIG}),
        ("grid_worker", "/points/record/", {"resident": "²"}),
        ("community_staff", "/points/shop/", {"community": BIG}),
        ("community_staff", "/points/shop/", {"resident": "²", "code": "x" * 20}),
        ("resident", "/points/board/", {"unit": BIG, "month": "9999-12"}),
        ("resident", "/points/board/", {"month": "0001-01", "scheme": "nope"}),
        ("community_staff", "/points/objections/", {"page": "last"}),
        ("admin", "/points/tallies/", {"page": BIG}),
    ],
)
def test_odd_page_parameters_never_crash(personas, resident_record, persona, path, query):
    response = login(personas[persona]).get(path, query)
    assert response.status_code in (200, 400, 404), response.status_code


@pytest.mark.parametrize(
    ("persona", "path", "data"),
    [
        ("community_staff", "/points/residents/{r}/", {"entry": BIG}),
        ("grid_worker", "/points/record/", {"resident": BIG, "rule": BIG, "occurred_on": "9999-12-31"}),
        ("grid_worker", "/points/record/", {"resident": "{r}", "rule": BIG, "occurred_on": "0001-01-01"}),
        ("community_staff", "/points/shop/", {"action": "restock", "target": BIG}),
        ("community_staff", "/points/shop/", {"action": "explode", "target": "1"}),
        ("resident", "/points/shop/", {"action": "reserve", "target": "²"}),
        ("community_staff", "/points/objections/", {"objection": BIG}),
        ("admin", "/points/tallies/", {"month": "0001-01"}),
        ("admin", "/points/tallies/", {"month": "9999-12"}),
    ],
)
def test_odd_form_input_never_crashes(personas, resident_record, persona, path, data):
    data = {k: v.replace("{r}", str(resident_record.pk)) for k, v in data.items()}
    response = login(personas[persona]).post(path.replace("{r}", str(resident_record.pk)), data)
    assert response.status_code in (302, 400, 403, 404, 409), response.status_code


def test_a_tally_run_by_hand_goes_to_a_worker_and_the_page_follows_it(
    personas, settings, django_capture_on_commit_callbacks
):
    """With a broker, the run is queued and the page shows it running, refreshing itself until it is done."""
    from unittest import mock

    settings.CELERY_TASK_ALWAYS_EAGER = False
    admin = login(personas["admin"])

    with mock.patch("points.tasks.tally_month.delay") as queued, django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/points/tallies/", {"action": "tally", "month": "2026-10"})
    assert response.status_code == 302 and queued.call_args.args == ("2026-10-01", personas["admin"].pk)
    assert not TallyRun.objects.exists()  # nothing ran in the request
    TallyRun.objects.create(month=dt.date(2026, 10, 1), started_at=timezone.now() - dt.timedelta(seconds=12))
    page = admin.get("/points/tallies/").content.decode()
    assert 'http-equiv="refresh"' in page and "正在统计 2026-10" in page and "<progress" in page
    TallyRun.objects.update(finished_at=timezone.now(), rows=5, duration_ms=900)
    assert 'http-equiv="refresh"' not in admin.get("/points/tallies/").content.decode()
    from points.tasks import tally_month

    with mock.patch("points.tally.tally_month") as run:
        run.return_value = TallyRun.objects.get()
        assert tally_month.apply(args=("2026-10-01", personas["admin"].pk)).get()["rows"] == 5
