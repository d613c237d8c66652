"""The points supermarket (积分超市): rewards kept by their community's staff; redemptions at the counter and
reserved online that take points and stock in one transaction; pick-up codes; cancellations that give both
back exactly once; and, on PostgreSQL, twenty buyers at once never overdraw a balance or a stock."""

import datetime as dt
import io
import re
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from PIL import Image

from governance import services as governance_services
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Resident, Role, User
from points import selectors, services, shop
from points.models import Account, Entry, EntryKind, Redemption, RedemptionState, Reward, Rule, RuleKind, Scheme

from ..factories import HouseholdFactory, ResidentFactory, UserFactory


@pytest.fixture(autouse=True)
def _no_drift(db):
    """Whatever a test did, every kept balance still equals the sum of its entries."""
    yield
    assert selectors.balance_drift() == []


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def photo(name="reward.jpg"):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (30, 140, 200)).save(buffer, "JPEG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")


@pytest.fixture
def reward(city, schemes, community_staff):
    """洗衣液 at C1's supermarket: 10 points, 5 in stock."""
    return shop.reward_create(
        by=community_staff, community=city.c1, scheme=schemes.resident, name="洗衣液", cost=10, stock=5
    )


@pytest.fixture
def funded(make_rule, award, resident_record):
    """张三明 with 100 points in the residents' scheme."""
    award(make_rule(points=60))
    award(make_rule(points=40))
    return resident_record


def account_of(resident, scheme):
    return Account.objects.get(resident=resident, scheme=scheme)


def stock_of(reward):
    return Reward.objects.get(pk=reward.pk).stock


# --- Rewards ------------------------------------------------------------------------------------------------


def test_community_staff_put_a_reward_on_their_communitys_shelf(city, schemes, community_staff):
    reward = shop.reward_create(
        by=community_staff,
        community=city.c1,
        scheme=schemes.resident,
        name=" 大米5斤 ",
        cost=50,
        stock=12,
        photo=photo(),
    )
    reward.refresh_from_db()
    assert (reward.community, reward.scheme, reward.name, reward.cost, reward.stock, reward.active) == (
        city.c1,
        schemes.resident,
        "大米5斤",
        50,
        12,
        True,
    )
    assert reward.photo.name.startswith("rewards/")


def test_an_administrator_may_stock_any_communitys_shop(city, schemes, admin_user):
    reward = shop.reward_create(by=admin_user, community=city.c3, scheme=schemes.party, name="党员读本", cost=5)
    assert (reward.community, reward.stock) == (city.c3, 0)


def test_only_the_communitys_staff_keep_its_shop(
    city, schemes, reward, grid_worker, secretary, street_staff, outsider, resident, community_staff
):
    for user in (grid_worker, secretary, street_staff, outsider, resident):
        with pytest.raises(NotAllowed) as refused:
            shop.reward_create(by=user, community=city.c1, scheme=schemes.resident, name="毛巾", cost=3, stock=1)
        assert refused.value.status_code == 403
        with pytest.raises(NotAllowed):
            shop.reward_update(by=user, reward=reward, name="改名")
        with pytest.raises(NotAllowed):
            shop.reward_restock(by=user, reward=reward, quantity=10)
    with pytest.raises(NotAllowed):  # staff of C1 do not keep C2's shop
        shop.reward_create(by=community_staff, community=city.c2, scheme=schemes.resident, name="毛巾", cost=3)
    reward.refresh_from_db()
    assert (Reward.objects.count(), reward.name, reward.stock) == (1, "洗衣液", 5)


@pytest.mark.parametrize("unit", ["s1", "g1", "b1"])
def test_a_reward_belongs_to_a_community(unit, city, schemes, admin_user):
    with pytest.raises(InvalidInput) as refused:
        shop.reward_create(by=admin_user, community=getattr(city, unit), scheme=schemes.resident, name="毛巾", cost=3)
    assert (refused.value.status_code, refused.value.field) == (400, "community")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cost": 0}, "cost"),
        ({"cost": -5}, "cost"),
        ({"cost": "10"}, "cost"),
        ({"cost": True}, "cost"),
        ({"cost": shop.MAX_COST + 1}, "cost"),
        ({"stock": -1}, "stock"),
        ({"stock": shop.MAX_STOCK + 1}, "stock"),
        ({"name": "  "}, "name"),
        ({"name": "好" * 101}, "name"),
        ({"photo": SimpleUploadedFile("reward.jpg", b"not an image", content_type="image/jpeg")}, "photo"),
    ],
)
def test_reward_input_is_checked(fields, field, city, schemes, community_staff):
    arguments = {"name": "毛巾", "cost": 3, "stock": 1} | fields
    with pytest.raises(InvalidInput) as refused:
        shop.reward_create(by=community_staff, community=city.c1, scheme=schemes.resident, **arguments)
    assert (refused.value.status_code, refused.value.field) == (400, field)
    assert not Reward.objects.exists()


def test_a_reward_needs_an_active_scheme(city, schemes, community_staff):
    Scheme.objects.filter(pk=schemes.resident.pk).update(active=False)
    with pytest.raises(InvalidInput) as refused:
        shop.reward_create(
            by=community_staff,
            community=city.c1,
            scheme=Scheme.objects.get(pk=schemes.resident.pk),
            name="毛巾",
            cost=3,
        )
    assert refused.value.field == "scheme"


def test_updating_a_reward_changes_only_what_is_given(reward, community_staff):
    reward = shop.reward_update(by=community_staff, reward=reward, photo=photo())
    assert reward.photo
    reward = shop.reward_update(by=community_staff, reward=reward, name="洗衣液2kg", cost=15)
    reward.refresh_from_db()
    assert (reward.name, reward.cost, reward.stock, reward.active) == ("洗衣液2kg", 15, 5, True)
    assert reward.photo  # not given, kept
    reward = shop.reward_update(by=community_staff, reward=reward, active=False, photo=None)
    reward.refresh_from_db()
    assert (reward.active, reward.photo.name) == (False, "")
    with pytest.raises(InvalidInput) as refused:
        shop.reward_update(by=community_staff, reward=reward, cost=0)
    assert refused.value.field == "cost"
    with pytest.raises(TypeError):  # the stock moves by restocking and redeeming only
        shop.reward_update(by=community_staff, reward=reward, stock=50)


def test_a_changed_cost_applies_to_new_redemptions_only(reward, funded, resident, community_staff, schemes):
    reserved = shop.redemption_reserve(by=resident, reward=reward)
    shop.reward_update(by=community_staff, reward=reward, cost=30)
    shop.redemption_cancel(by=resident, redemption=reserved)
    assert account_of(funded, schemes.resident).balance == 100  # 10 taken, 10 given back
    assert shop.redemption_reserve(by=resident, reward=reward).points == 30


def test_restocking_adds_to_the_stock(reward, community_staff):
    reward = shop.reward_restock(by=community_staff, reward=reward, quantity=20)
    assert reward.stock == 25 == stock_of(reward)
    for quantity in (0, -3, "5", shop.MAX_STOCK + 1):
        with pytest.raises(InvalidInput) as refused:
            shop.reward_restock(by=community_staff, reward=reward, quantity=quantity)
        assert refused.value.field == "quantity"
    Reward.objects.filter(pk=reward.pk).update(stock=shop.MAX_STOCK - 1)
    with pytest.raises(InvalidInput):
        shop.reward_restock(by=community_staff, reward=reward, quantity=2)
    assert stock_of(reward) == shop.MAX_STOCK - 1


# --- At the counter -----------------------------------------------------------------------------------------


def test_a_counter_redemption_takes_points_and_stock_at_once(reward, funded, community_staff, schemes):
    redemption = shop.redemption_redeem(by=community_staff, resident=funded, reward=reward, quantity=3)
    redemption.refresh_from_db()
    assert (redemption.state, redemption.quantity, redemption.points, redemption.pickup_code) == (
        RedemptionState.FULFILLED,
        3,
        30,
        "",
    )
    assert (redemption.created_by, redemption.fulfilled_by) == (community_staff, community_staff)
    assert redemption.fulfilled_at is not None and redemption.cancelled_at is None
    account = account_of(funded, schemes.resident)
    assert (account.balance, account.earned, account.redeemed) == (70, 100, 30)
    entry = Entry.objects.get(redemption=redemption)
    assert (entry.kind, entry.points, entry.balance_after, entry.account, entry.recorded_by) == (
        EntryKind.REDEMPTION,
        -30,
        70,
        account,
        community_staff,
    )
    assert entry.occurred_on == timezone.localdate() and "洗衣液" in entry.note
    assert stock_of(reward) == 2


def test_an_administrator_may_serve_at_any_counter(reward, funded, admin_user):
    assert shop.redemption_redeem(by=admin_user, resident=funded, reward=reward).state == RedemptionState.FULFILLED


def test_only_the_communitys_staff_serve_at_its_counter(
    reward, funded, grid_worker, secretary, street_staff, outsider, resident, resident_2, schemes
):
    for user in (grid_worker, secretary, street_staff, outsider, resident, resident_2):
        with pytest.raises(NotAllowed) as refused:
            shop.redemption_redeem(by=user, resident=funded, reward=reward)
        assert refused.value.status_code == 403
    assert account_of(funded, schemes.resident).balance == 100
    assert stock_of(reward) == 5 and not Redemption.objects.exists()


def test_the_counter_serves_only_residents_of_its_community(reward, resident_2_record, community_staff):
    with pytest.raises(InvalidInput) as refused:
        shop.redemption_redeem(by=community_staff, resident=resident_2_record, reward=reward)
    assert refused.value.field == "resident"
    assert stock_of(reward) == 5 and not Redemption.objects.exists()


def test_a_resident_who_moved_out_cannot_redeem(reward, funded, community_staff):
    Resident.objects.filter(pk=funded.pk).update(moved_out_on=timezone.localdate())
    with pytest.raises(DomainError) as refused:
        shop.redemption_redeem(by=community_staff, resident=funded, reward=reward)
    assert refused.value.code == "moved_out" and refused.value.status_code == 409


def test_an_insufficient_balance_is_a_409_with_the_balance(reward, make_rule, award, resident_record, community_staff):
    award(make_rule(points=25))
    with pytest.raises(DomainError) as refused:
        shop.redemption_redeem(by=community_staff, resident=resident_record, reward=reward, quantity=3)
    assert (refused.value.status_code, refused.value.code) == (409, "insufficient_balance")
    assert "25" in str(refused.value.message) and "30" in str(refused.value.message)
    account = Account.objects.get(resident=resident_record)
    assert (account.balance, account.redeemed) == (25, 0)
    assert stock_of(reward) == 5
    assert not Redemption.objects.exists() and not Entry.objects.filter(kind=EntryKind.REDEMPTION).exists()


def test_a_resident_without_an_account_has_nothing_to_redeem(reward, resident_record, community_staff):
    with pytest.raises(DomainError) as refused:
        shop.redemption_redeem(by=community_staff, resident=resident_record, reward=reward)
    assert refused.value.code == "insufficient_balance"
    assert not Account.objects.exists()  # the account opened for the attempt went with it


def test_insufficient_stock_is_a_409_saying_what_is_left(reward, funded, community_staff, schemes):
    with pytest.raises(DomainError) as refused:
        shop.redemption_redeem(by=community_staff, resident=funded, reward=reward, quantity=6)
    assert (refused.value.status_code, refused.value.code) == (409, "out_of_stock")
    assert "库存不足" in str(refused.value.message) and "5" in str(refused.value.message)
    account = account_of(funded, schemes.resident)
    assert (account.balance, account.redeemed) == (100, 0)  # the points taken before the stock came back
    assert stock_of(reward) == 5 and not Redemption.objects.exists()


def test_the_last_items_sell_and_then_the_shelf_is_empty(reward, funded, community_staff, schemes):
    shop.redemption_redeem(by=community_staff, resident=funded, reward=reward, quantity=5)
    assert stock_of(reward) == 0
    with pytest.raises(DomainError) as refused:
        shop.redemption_redeem(by=community_staff, resident=funded, reward=reward)
    assert refused.value.code == "out_of_stock" and "仅剩 0 件" in str(refused.value.message)
    assert account_of(funded, schemes.resident).balance == 50


def test_an_inactive_reward_cannot_be_redeemed(reward, funded, community_staff, resident):
    shop.reward_update(by=community_staff, reward=reward, active=False)
    for redeem in (
        lambda: shop.redemption_redeem(by=community_staff, resident=funded, reward=reward),
        lambda: shop.redemption_reserve(by=resident, reward=reward),
    ):
        with pytest.raises(DomainError) as refused:
            redeem()
        assert (refused.value.status_code, refused.value.code) == (409, "reward_inactive")
    assert stock_of(reward) == 5 and not Redemption.objects.exists()


@pytest.mark.parametrize("quantity", [0, -1, shop.MAX_QUANTITY + 1, "2", 1.5])
def test_the_quantity_is_checked(quantity, reward, funded, community_staff, resident):
    with pytest.raises(InvalidInput) as refused:
        shop.redemption_redeem(by=community_staff, resident=funded, reward=reward, quantity=quantity)
    assert refused.value.field == "quantity"
    with pytest.raises(InvalidInput) as refused:
        shop.redemption_reserve(by=resident, reward=reward, quantity=quantity)
    assert refused.value.field == "quantity"


# --- Reserved online, fulfilled at pick-up ------------------------------------------------------------------


def test_a_resident_reserves_online_and_gets_a_pickup_code(reward, funded, resident, schemes):
    redemption = shop.redemption_reserve(by=resident, reward=reward, quantity=2)
    redemption.refresh_from_db()
    assert (redemption.resident, redemption.state, redemption.points, redemption.created_by) == (
        funded,
        RedemptionState.RESERVED,
        20,
        resident,
    )
    assert re.fullmatch(r"\d{6}", redemption.pickup_code)
    assert redemption.fulfilled_by is None and redemption.fulfilled_at is None
    account = account_of(funded, schemes.resident)
    assert (account.balance, account.redeemed) == (80, 20)
    entry = Entry.objects.get(redemption=redemption)
    assert (entry.kind, entry.points, entry.balance_after, entry.recorded_by) == (
        EntryKind.REDEMPTION,
        -20,
        80,
        resident,
    )
    assert stock_of(reward) == 3


def test_only_a_resident_of_the_community_may_reserve(
    reward, funded, community_staff, grid_worker, outsider, resident_2, admin_user
):
    for user in (community_staff, grid_worker, outsider, resident_2, admin_user):
        with pytest.raises(NotAllowed) as refused:
            shop.redemption_reserve(by=user, reward=reward)
        assert refused.value.status_code == 403
    assert stock_of(reward) == 5 and not Redemption.objects.exists()


def test_a_resident_who_moved_out_may_no_longer_reserve(reward, funded, resident):
    Resident.objects.filter(pk=funded.pk).update(moved_out_on=timezone.localdate())
    with pytest.raises(NotAllowed):
        shop.redemption_reserve(by=User.objects.get(pk=resident.pk), reward=reward)


def test_a_reservation_beyond_the_balance_is_refused(reward, make_rule, award, resident_record, resident):
    award(make_rule(points=15))
    shop.redemption_reserve(by=resident, reward=reward)
    with pytest.raises(DomainError) as refused:
        shop.redemption_reserve(by=resident, reward=reward)
    assert refused.value.code == "insufficient_balance" and "5" in str(refused.value.message)
    assert Redemption.objects.count() == 1 and stock_of(reward) == 4


def test_open_reservations_of_a_reward_never_share_a_code(reward, funded, resident, community_staff, monkeypatch):
    draws = iter([123456, 123456, 123456, 4321, 123456])
    monkeypatch.setattr(shop.secrets, "randbelow", lambda n: next(draws))
    first = shop.redemption_reserve(by=resident, reward=reward)
    second = shop.redemption_reserve(by=resident, reward=reward)  # 123456 is taken twice, then 004321
    assert (first.pickup_code, second.pickup_code) == ("123456", "004321")
    shop.redemption_fulfil(by=community_staff, redemption=first, pickup_code="123456")
    third = shop.redemption_reserve(by=resident, reward=reward)  # a fulfilled one's code is free again
    assert third.pickup_code == "123456"
    assert Redemption.objects.count() == 3 and stock_of(reward) == 2


def test_a_reservation_gives_up_when_no_code_is_free(reward, funded, resident, monkeypatch, schemes):
    monkeypatch.setattr(shop.secrets, "randbelow", lambda n: 7)
    assert shop.redemption_reserve(by=resident, reward=reward).pickup_code == "000007"
    with pytest.raises(DomainError) as refused:
        shop.redemption_reserve(by=resident, reward=reward)
    assert refused.value.code == "pickup_code_exhausted"
    assert account_of(funded, schemes.resident).balance == 90 and stock_of(reward) == 4


def test_staff_hand_over_a_reservation_against_its_code(reward, funded, resident, community_staff, schemes):
    redemption = shop.redemption_reserve(by=resident, reward=reward)
    wrong = "000000" if redemption.pickup_code != "000000" else "111111"
    for code in (wrong, "", None, redemption.pickup_code[:5]):
        with pytest.raises(InvalidInput) as refused:
            shop.redemption_fulfil(by=community_staff, redemption=redemption, pickup_code=code)
        assert (refused.value.status_code, refused.value.field) == (400, "pickup_code")
    assert Redemption.objects.get(pk=redemption.pk).state == RedemptionState.RESERVED
    redemption = shop.redemption_fulfil(
        by=community_staff, redemption=redemption, pickup_code=f" {redemption.pickup_code} "
    )
    redemption.refresh_from_db()
    assert (redemption.state, redemption.fulfilled_by) == (RedemptionState.FULFILLED, community_staff)
    assert redemption.fulfilled_at is not None
    account = account_of(funded, schemes.resident)
    assert (account.balance, account.redeemed) == (90, 10)  # taken at the reservation, not again
    assert Entry.objects.filter(redemption=redemption).count() == 1 and stock_of(reward) == 4
    with pytest.raises(DomainError) as refused:
        shop.redemption_fulfil(by=community_staff, redemption=redemption, pickup_code=redemption.pickup_code)
    assert (refused.value.status_code, refused.value.code) == (409, "not_reserved")


def test_only_the_communitys_staff_hand_over(reward, funded, resident, grid_worker, outsider, secretary):
    redemption = shop.redemption_reserve(by=resident, reward=reward)
    for user in (resident, grid_worker, outsider, secretary):
        with pytest.raises(NotAllowed):
            shop.redemption_fulfil(by=user, redemption=redemption, pickup_code=redemption.pickup_code)
    assert Redemption.objects.get(pk=redemption.pk).state == RedemptionState.RESERVED


def test_a_cancelled_reservation_cannot_be_handed_over(reward, funded, resident, community_staff):
    redemption = shop.redemption_reserve(by=resident, reward=reward)
    shop.redemption_cancel(by=resident, redemption=redemption)
    with pytest.raises(DomainError) as refused:
        shop.redemption_fulfil(by=community_staff, redemption=redemption, pickup_code=redemption.pickup_code)
    assert refused.value.code == "not_reserved"


# --- Cancelling ---------------------------------------------------------------------------------------------


def test_cancelling_a_reservation_gives_points_and_stock_back_once(reward, funded, resident, schemes):
    redemption = shop.redemption_reserve(by=resident, reward=reward, quantity=3)
    original = Entry.objects.get(redemption=redemption)
    redemption = shop.redemption_cancel(by=resident, redemption=redemption, note="不需要了")
    redemption.refresh_from_db()
    assert redemption.state == RedemptionState.CANCELLED and redemption.cancelled_at is not None
    account = account_of(funded, schemes.resident)
    assert (account.balance, account.earned, account.redeemed) == (100, 100, 0)
    reversal = Entry.objects.get(reverses=original)
    assert (reversal.kind, reversal.points, reversal.balance_after, reversal.redemption, reversal.note) == (
        EntryKind.REVERSAL,
        30,
        100,
        redemption,
        "不需要了",
    )
    assert stock_of(reward) == 5
    with pytest.raises(DomainError) as refused:
        shop.redemption_cancel(by=resident, redemption=redemption)
    assert (refused.value.status_code, refused.value.code) == (409, "not_reserved")
    assert account_of(funded, schemes.resident).balance == 100 and stock_of(reward) == 5
    assert Entry.objects.filter(kind=EntryKind.REVERSAL).count() == 1


def test_the_communitys_staff_may_cancel_a_reservation(reward, funded, resident, community_staff, schemes):
    redemption = shop.redemption_reserve(by=resident, reward=reward)
    shop.redemption_cancel(by=community_staff, redemption=redemption)
    assert Entry.objects.get(kind=EntryKind.REVERSAL).recorded_by == community_staff
    assert Entry.objects.get(kind=EntryKind.REVERSAL).note == "取消兑换"
    assert account_of(funded, schemes.resident).balance == 100 and stock_of(reward) == 5


def test_no_one_else_may_cancel_a_reservation(reward, funded, resident, resident_2, grid_worker, outsider, secretary):
    redemption = shop.redemption_reserve(by=resident, reward=reward)
    for user in (resident_2, grid_worker, outsider, secretary):
        with pytest.raises(NotAllowed) as refused:
            shop.redemption_cancel(by=user, redemption=redemption)
        assert refused.value.status_code == 403
    assert Redemption.objects.get(pk=redemption.pk).state == RedemptionState.RESERVED
    assert stock_of(reward) == 4


def test_a_fulfilled_redemption_cannot_be_cancelled(reward, funded, resident, community_staff, schemes):
    at_counter = shop.redemption_redeem(by=community_staff, resident=funded, reward=reward)
    picked_up = shop.redemption_reserve(by=resident, reward=reward)
    shop.redemption_fulfil(by=community_staff, redemption=picked_up, pickup_code=picked_up.pickup_code)
    for redemption in (at_counter, picked_up):
        with pytest.raises(DomainError) as refused:
            shop.redemption_cancel(by=community_staff, redemption=redemption)
        assert (refused.value.status_code, refused.value.code) == (409, "not_reserved")
    assert account_of(funded, schemes.resident).balance == 80 and stock_of(reward) == 3
    assert not Entry.objects.filter(kind=EntryKind.REVERSAL).exists()


def test_a_redemption_entry_cannot_be_reversed_outside_a_cancellation(reward, funded, community_staff):
    redemption = shop.redemption_redeem(by=community_staff, resident=funded, reward=reward)
    with pytest.raises(DomainError):
        services.points_reverse(by=community_staff, entry=Entry.objects.get(redemption=redemption), note="退货")


def test_a_reservation_of_a_reward_taken_off_sale_can_still_be_cancelled(reward, funded, resident, community_staff):
    redemption = shop.redemption_reserve(by=resident, reward=reward, quantity=2)
    shop.reward_update(by=community_staff, reward=reward, active=False)
    shop.redemption_cancel(by=resident, redemption=redemption)
    assert stock_of(reward) == 5


# --- PostgreSQL: twenty buyers at the same moment -----------------------------------------------------------


def _funded_residents(city, grid_worker, *, count, points):
    """Residents of B1 with `points` each, recorded through the ledger. Built here, not from the migrated
    schemes: a transactional test runs on a database an earlier one may have flushed."""
    scheme, _created = Scheme.objects.get_or_create(code=Scheme.RESIDENT, defaults={"name": "居民积分"})
    rule = Rule.objects.create(
        unit=city.c1,
        scheme=scheme,
        code="race-fund",
        name="并发测试",
        kind=RuleKind.BONUS,
        points=points,
        active_from=timezone.localdate() - dt.timedelta(days=1),
    )
    residents = [ResidentFactory(household=HouseholdFactory(building=city.b1)) for _i in range(count)]
    for resident in residents:
        services.points_record(by=grid_worker, resident=resident, rule=rule)
    return scheme, residents


def _at_once(calls):
    """Run each call in its own thread and connection, released together; a DomainError is an outcome."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            outcomes[i] = call()
        except DomainError as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_buyers_at_once_never_overdraw_a_balance(city, community_staff, grid_worker):
    """Ten counter sales and ten online reservations of one resident's 75 points, at 10 points each, all at
    the same moment: exactly seven go through, the others are refused for the balance, and 5 points remain."""
    scheme, (buyer,) = _funded_residents(city, grid_worker, count=1, points=75)
    login = UserFactory(username="race-buyer")
    governance_services.position_grant(by=None, user=login, role=Role.RESIDENT, resident=buyer)
    reward = shop.reward_create(by=community_staff, community=city.c1, scheme=scheme, name="香皂", cost=10, stock=100)

    def at_counter():
        return shop.redemption_redeem(by=User.objects.get(pk=community_staff.pk), resident=buyer, reward=reward)

    def online():
        return shop.redemption_reserve(by=User.objects.get(pk=login.pk), reward=reward)

    outcomes = _at_once([at_counter, online] * 10)

    done = [o for o in outcomes if isinstance(o, Redemption)]
    refused = [o for o in outcomes if not isinstance(o, Redemption)]
    assert len(done) == 7 and len(refused) == 13
    assert all(isinstance(o, DomainError) and o.code == "insufficient_balance" for o in refused)
    account = Account.objects.get(resident=buyer, scheme=scheme)
    assert (account.balance, account.redeemed) == (5, 70)
    assert Reward.objects.get(pk=reward.pk).stock == 93
    assert Redemption.objects.count() == 7
    entries = Entry.objects.filter(account=account, kind=EntryKind.REDEMPTION)
    assert sorted(entries.values_list("balance_after", flat=True)) == [5, 15, 25, 35, 45, 55, 65]
    reserved = Redemption.objects.filter(state=RedemptionState.RESERVED).values_list("pickup_code", flat=True)
    assert len(set(reserved)) == len(reserved)
    assert selectors.balance_drift() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_buyers_at_once_never_take_more_than_the_stock(city, community_staff, grid_worker):
    """Four residents with plenty of points, twenty purchases of the last five items at the same moment:
    exactly five go through, the others are refused for the stock, and each buyer paid for what they got."""
    scheme, buyers = _funded_residents(city, grid_worker, count=4, points=100)
    logins = []
    for i, buyer in enumerate(buyers):
        login = UserFactory(username=f"race-buyer-{i}")
        governance_services.position_grant(by=None, user=login, role=Role.RESIDENT, resident=buyer)
        logins.append(login)
    reward = shop.reward_create(by=community_staff, community=city.c1, scheme=scheme, name="大米", cost=7, stock=5)

    def at_counter(buyer):
        return lambda: shop.redemption_redeem(by=User.objects.get(pk=community_staff.pk), resident=buyer, reward=reward)

    def online(login):
        return lambda: shop.redemption_reserve(by=User.objects.get(pk=login.pk), reward=reward)

    calls = [at_counter(buyers[i % 4]) if i % 2 else online(logins[i % 4]) for i in range(20)]
    outcomes = _at_once(calls)

    done = [o for o in outcomes if isinstance(o, Redemption)]
    refused = [o for o in outcomes if not isinstance(o, Redemption)]
    assert len(done) == 5 and len(refused) == 15
    assert all(isinstance(o, DomainError) and o.code == "out_of_stock" for o in refused)
    assert Reward.objects.get(pk=reward.pk).stock == 0
    for buyer in buyers:
        got = Redemption.objects.filter(resident=buyer).count()
        account = Account.objects.get(resident=buyer, scheme=scheme)
        assert (account.balance, account.redeemed) == (100 - 7 * got, 7 * got)
    assert Redemption.objects.count() == 5 == Entry.objects.filter(kind=EntryKind.REDEMPTION).count()
    assert selectors.balance_drift() == []
