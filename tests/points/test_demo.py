"""The demo city comes with a points ledger in use, written through the real services."""

import io

from django.core.management import call_command

from governance.models import User
from points import selectors
from points.models import Board, Entry, Objection, Redemption, RedemptionState, Reward, Rule, Tally


def test_the_demo_city_has_rules_entries_a_shop_and_a_published_board(db):
    call_command("seed_demo", "--scale", "tiny", "--password", "pw-123456", stdout=io.StringIO())
    assert Rule.objects.filter(unit__level="community").exists() and Rule.objects.filter(unit__level="street").exists()
    assert Entry.objects.count() >= 40
    assert selectors.balance_drift() == []  # every kept balance is the sum of its entries
    assert Reward.objects.filter(stock__gt=0).exists()
    assert Redemption.objects.filter(state=RedemptionState.FULFILLED).exists()
    assert Tally.objects.exists() and Board.objects.exists()
    assert Objection.objects.filter(state="open").count() == 1
    resident = User.objects.get(username="resident")
    assert selectors.accounts_visible_to(resident).filter(earned__gt=0).exists()
    assert selectors.boards_visible_to(resident).exists()
    for username in ("grid_worker", "community_staff", "street_staff"):
        assert selectors.entries_visible_to(User.objects.get(username=username)).exists(), username


def test_a_reset_rebuilds_the_same_ledger(db):
    call_command("seed_demo", "--scale", "tiny", "--password", "pw-123456", stdout=io.StringIO())
    first = sorted(Entry.objects.values_list("account__resident__id_number", "points", "occurred_on"))
    call_command("seed_demo", "--reset", "--scale", "tiny", "--password", "pw-123456", stdout=io.StringIO())
    assert sorted(Entry.objects.values_list("account__resident__id_number", "points", "occurred_on")) == first
