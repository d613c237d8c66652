"""The ledger: recording under rules and caps, who may record, reversals once only, append-only everywhere,
balances kept in step with the entries."""

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from governance import services as governance_services
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import ResidentTag
from points import selectors, services
from points.models import Account, Entry, EntryKind, RuleKind

from ..factories import HouseholdFactory, ResidentFactory


def balance(resident, scheme):
    return Account.objects.get(resident=resident, scheme=scheme).balance


def test_an_award_adds_to_the_balance_and_the_entry_keeps_its_points(make_rule, award, resident_record, schemes):
    rule = make_rule(points=5, name="垃圾分类")
    entry = award(rule, note="主动分类投放")
    assert (entry.kind, entry.points, entry.balance_after, entry.rule) == (EntryKind.AWARD, 5, 5, rule)
    rule.points = 50  # a changed rule never changes what was recorded
    rule.save()
    entry.refresh_from_db()
    assert entry.points == 5 and balance(resident_record, schemes.resident) == 5
    assert Account.objects.get().earned == 5


def test_who_may_record(make_rule, award, community_staff, grid_worker_2, street_staff, outsider, resident, secretary):
    rule = make_rule(points=5)
    assert award(rule, by=community_staff).points == 5  # the resident's community
    for user in (grid_worker_2, street_staff, outsider, resident, secretary):
        with pytest.raises(NotAllowed):
            award(rule, by=user)
    assert Entry.objects.count() == 1


def test_a_rule_applies_to_its_units_subtree_only(make_rule, award, city):
    other_community = make_rule(unit=city.c2, points=5)
    with pytest.raises(InvalidInput) as refused:
        award(other_community)
    assert refused.value.field == "rule"
    assert award(make_rule(unit=city.s1, points=3)).points == 3  # a street-wide rule


def test_rules_apply_only_between_their_dates(make_rule, award):
    today = timezone.localdate()
    future = make_rule(points=5, active_from=today + dt.timedelta(days=1))
    expired = make_rule(points=5, active_from=today - dt.timedelta(days=30), active_until=today - dt.timedelta(days=1))
    for rule in (future, expired):
        with pytest.raises(InvalidInput):
            award(rule)
    assert award(expired, occurred_on=today - dt.timedelta(days=2)).points == 5


def test_daily_and_monthly_caps_refuse_with_the_reason(make_rule, award):
    rule = make_rule(points=5, daily_cap=10, monthly_cap=15)
    today = timezone.localdate()
    award(rule)
    award(rule)
    with pytest.raises(DomainError) as over:
        award(rule)
    assert over.value.status_code == 409 and "每日上限" in str(over.value.message) and "10" in str(over.value.message)
    yesterday = today - dt.timedelta(days=1)
    if yesterday.month == today.month:
        award(rule, occurred_on=yesterday)
        with pytest.raises(DomainError) as over:
            award(rule, occurred_on=yesterday)
        assert "每月上限" in str(over.value.message)


def test_a_reversed_entry_no_longer_counts_against_the_cap(make_rule, award, community_staff):
    rule = make_rule(points=5, daily_cap=5)
    entry = award(rule)
    services.points_reverse(by=community_staff, entry=entry, note="记错了人")
    assert award(rule).points == 5


def test_evidence_is_required_where_the_rule_says(make_rule, award):
    rule = make_rule(points=5, evidence_required=True)
    with pytest.raises(InvalidInput) as refused:
        award(rule)
    assert refused.value.field == "note"
    assert award(rule, note="参加志愿服务2小时").points == 5


def test_party_points_only_for_party_members(make_rule, award, schemes, city, grid_worker):
    rule = make_rule(points=5, scheme=schemes.party)
    other = ResidentFactory(household=HouseholdFactory(building=city.b1, room="3单元301"))
    with pytest.raises(InvalidInput):
        award(rule, resident=other)
    other.tags.add(ResidentTag.objects.get(code=ResidentTag.PARTY_MEMBER))
    assert award(rule, resident=other).points == 5
    assert balance(other, schemes.party) == 5  # a separate balance


def test_a_deduction_never_takes_the_balance_below_zero(make_rule, award, resident_record, schemes):
    award(make_rule(points=5))
    entry = award(make_rule(points=-20, kind=RuleKind.DEDUCTION))
    assert entry.points == -5 and entry.balance_after == 0
    assert "实扣 5 分" in entry.note
    with pytest.raises(DomainError) as refused:
        award(make_rule(points=-2))
    assert refused.value.code == "insufficient_balance"
    assert balance(resident_record, schemes.resident) == 0


def test_future_dates_and_moved_out_residents_are_refused(make_rule, award, resident_record, community_staff):
    rule = make_rule(points=5)
    with pytest.raises(InvalidInput):
        award(rule, occurred_on=timezone.localdate() + dt.timedelta(days=1))
    governance_services.resident_move_out(by=community_staff, resident=resident_record)
    with pytest.raises(DomainError):
        award(rule)


def test_a_reversal_points_at_the_original_and_happens_once(
    make_rule, award, community_staff, resident_record, schemes
):
    entry = award(make_rule(points=8))
    reversal = services.points_reverse(by=community_staff, entry=entry, note="重复记分")
    assert (reversal.kind, reversal.points, reversal.reverses, reversal.balance_after) == ("reversal", -8, entry, 0)
    with pytest.raises(DomainError) as again:
        services.points_reverse(by=community_staff, entry=entry, note="再来一次")
    assert again.value.code == "already_reversed"
    with pytest.raises(DomainError):
        services.points_reverse(by=community_staff, entry=reversal, note="冲正冲正")
    account = Account.objects.get()
    assert (account.balance, account.earned) == (0, 0)


def test_reversing_an_award_already_spent_is_refused(make_rule, award, community_staff, resident_record, schemes):
    entry = award(make_rule(points=8))
    account = Account.objects.get()
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        services.post(
            account=locked, kind=EntryKind.REDEMPTION, points=-6, by=community_staff, occurred_on=timezone.localdate()
        )
    with pytest.raises(DomainError) as refused:
        services.points_reverse(by=community_staff, entry=entry, note="错记")
    assert "余额不足" in str(refused.value.message)


def test_a_reversal_needs_a_reason_and_a_recorder(make_rule, award, grid_worker_2, community_staff):
    entry = award(make_rule(points=8))
    with pytest.raises(InvalidInput):
        services.points_reverse(by=community_staff, entry=entry, note=" ")
    with pytest.raises(NotAllowed):
        services.points_reverse(by=grid_worker_2, entry=entry, note="不是我的网格")


def test_entries_cannot_be_changed_or_deleted_through_the_model(make_rule, award):
    entry = award(make_rule(points=5))
    entry.points = 500
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    assert Entry.objects.get().points == 5


@pytest.mark.postgres
def test_the_database_refuses_updates_and_deletes_of_entries(make_rule, award):
    entry = award(make_rule(points=5))
    for statement in ("UPDATE points_entry SET points = 500", "DELETE FROM points_entry"):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    with pytest.raises(IntegrityError), transaction.atomic():
        Entry.objects.filter(pk=entry.pk).update(points=500)
    assert Entry.objects.get().points == 5


def test_the_ledger_verification_finds_drift(make_rule, award):
    award(make_rule(points=5))
    assert selectors.balance_drift() == []
    Account.objects.update(balance=7)
    account = Account.objects.get()
    assert selectors.balance_drift() == [(account.pk, 7, 5)]


def test_the_balance_is_never_negative_in_the_database(make_rule, award):
    award(make_rule(points=5))
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.update(balance=-1)


@time_machine.travel(dt.datetime(2026, 11, 18, 10, 0, tzinfo=dt.UTC), tick=False)
def test_the_monthly_cap_counts_the_whole_month_even_when_it_equals_the_daily_cap(make_rule, award):
    rule = make_rule(points=5, daily_cap=5, monthly_cap=5)
    award(rule)  # today
    with pytest.raises(DomainError) as over:
        award(rule, occurred_on=dt.date(2026, 11, 17))  # backdated: the month is already full
    assert "每月上限" in str(over.value.message)


def test_the_demo_reset_empties_the_ledger_even_where_the_database_guards_it(make_rule, award):
    from governance.management.commands.seed_demo import reset_governance_data

    award(make_rule(points=5))
    reset_governance_data()
    assert not Entry.objects.exists() and not Account.objects.exists()
