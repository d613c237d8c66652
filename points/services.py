"""Writes to the ledger: recording an award or a deduction under a rule, reversing an entry, and `post`, the one
function every movement of points goes through (the supermarket and the objections use it too).

`post` locks the account row (SELECT … FOR UPDATE), refuses to take the balance below zero, writes the entry
with the balance after it, and updates the kept balance in the same transaction.
"""

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Resident, User
from governance.selectors import scope_of
from governance.uploads import check_photos

from . import selectors
from .models import Account, Entry, EntryKind, Rule, RuleKind, Scheme


def account_for(resident: Resident, scheme: Scheme) -> Account:
    """The resident's account in the scheme, created on first use, locked for the rest of the transaction.
    Call inside a transaction."""
    try:
        with transaction.atomic():
            Account.objects.get_or_create(resident=resident, scheme=scheme)
    except IntegrityError:  # created by a concurrent transaction between our get and our create
        pass
    return Account.objects.select_for_update().get(resident=resident, scheme=scheme)


def post(
    *,
    account: Account,
    kind: str,
    points: int,
    by: User | None,
    occurred_on: dt.date,
    note: str = "",
    rule: Rule | None = None,
    evidence=None,
    reverses: Entry | None = None,
    case=None,
    redemption=None,
) -> Entry:
    """Append one entry to a locked account. A balance below zero is refused (409): no overdraft, ever."""
    if points == 0:
        raise InvalidInput(_("分值不能为 0。"), field="points")
    # A reversal belongs to the account of the entry it reverses (the database also insists it names one).
    assert (kind == EntryKind.REVERSAL) == (reverses is not None) and (
        reverses is None or reverses.account_id == account.pk
    )
    new_balance = account.balance + points
    if new_balance < 0:
        raise DomainError(
            _("积分余额不足：当前 %(balance)d 分，需要 %(needed)d 分。")
            % {"balance": account.balance, "needed": -points},
            code="insufficient_balance",
        )
    entry = Entry.objects.create(
        account=account,
        kind=kind,
        rule=rule,
        points=points,
        balance_after=new_balance,
        occurred_on=occurred_on,
        recorded_by=by,
        note=note,
        evidence=evidence or "",
        reverses=reverses,
        case=case,
        redemption=redemption,
    )
    account.balance = new_balance
    if account.first_entry_on is None or occurred_on < account.first_entry_on:
        account.first_entry_on = occurred_on
    # The running totals shown on the account; a reversal takes back what its original added.
    original = reverses if kind == EntryKind.REVERSAL else entry
    sign = -1 if kind == EntryKind.REVERSAL else 1
    if original.kind == EntryKind.AWARD:
        account.earned += sign * original.points
    elif original.kind == EntryKind.DEDUCTION:
        account.deducted += sign * -original.points
    elif original.kind == EntryKind.REDEMPTION:
        account.redeemed += sign * -original.points
    account.save(update_fields=["balance", "earned", "deducted", "redeemed", "first_entry_on", "updated_at"])
    return entry


def _check_evidence_photo(photo):
    if photo is None:
        return None
    try:
        return check_photos([photo])[0]
    except InvalidInput as error:
        raise InvalidInput(error.message, field="evidence") from None


def _caps_used(account: Account, rule: Rule, day: dt.date) -> tuple[int, int]:
    """Points already counted against the rule's daily and monthly caps on `day`: the rule's entries of that day
    and of its month that were not reversed. One query for both."""
    counted = Entry.objects.filter(
        account=account,
        rule=rule,
        occurred_on__gte=day.replace(day=1),
        occurred_on__lte=_month_end(day),
        reversed_by__isnull=True,
        kind__in=[EntryKind.AWARD, EntryKind.DEDUCTION],
    ).aggregate(day=Sum("points", filter=Q(occurred_on=day)), month=Sum("points"))
    return abs(counted["day"] or 0), abs(counted["month"] or 0)


@transaction.atomic
def points_record(
    *,
    by: User,
    resident: Resident,
    rule: Rule,
    occurred_on: dt.date | None = None,
    note: str = "",
    evidence=None,
    case=None,
) -> Entry:
    """Record an award or a deduction for a resident under a rule of their place, within the rule's caps.

    A deduction larger than the balance takes what is there (the balance never goes below zero) and says so
    in the note; with nothing left to take it is refused."""
    scope = scope_of(by)
    resident = Resident.objects.select_related("household__building").get(pk=resident.pk)
    if not selectors.may_record_for(scope, resident):
        raise NotAllowed(_("只有本网格的网格员或本社区的工作人员可以为该居民记分。"))
    if resident.moved_out_on is not None:
        raise DomainError(_("该居民已迁出，不能再记分。"), code="moved_out")
    today = timezone.localdate()
    occurred_on = occurred_on or today
    if occurred_on > today:
        raise InvalidInput(_("发生日期不能晚于今天。"), field="occurred_on")
    if not selectors.rules_applying_to(resident, occurred_on).filter(pk=rule.pk).exists():
        raise InvalidInput(_("该规则不适用于此居民所在的单位，或在发生日期不在有效期内。"), field="rule")
    if not rule.scheme.active:
        raise InvalidInput(_("该积分类别已停用。"), field="rule")
    if rule.scheme.party_members_only and not selectors.is_party_member(resident):
        raise InvalidInput(_("「%(scheme)s」只为党员记分。") % {"scheme": rule.scheme.name}, field="resident")
    note = (note or "").strip()
    evidence = _check_evidence_photo(evidence)
    if rule.evidence_required and not note and evidence is None:
        raise InvalidInput(_("此规则须有佐证：请填写说明或上传照片。"), field="note")

    account = account_for(resident, rule.scheme)
    points = rule.points
    if rule.daily_cap is not None or rule.monthly_cap is not None:
        used_today, used_this_month = _caps_used(account, rule, occurred_on)
        for cap, used, label in (
            (rule.daily_cap, used_today, _("每日")),
            (rule.monthly_cap, used_this_month, _("每月")),
        ):
            if cap is not None and used + abs(points) > cap:
                raise DomainError(
                    _("超过规则「%(rule)s」的%(span)s上限：上限 %(cap)d 分，已记 %(used)d 分，本次 %(points)d 分。")
                    % {"rule": rule.name, "span": label, "cap": cap, "used": used, "points": abs(points)},
                    code="over_cap",
                )
    kind = EntryKind.DEDUCTION if rule.kind == RuleKind.DEDUCTION else EntryKind.AWARD
    if kind == EntryKind.DEDUCTION and account.balance < -points:
        if account.balance == 0:
            raise DomainError(_("该居民积分余额为 0，无法扣分。"), code="insufficient_balance")
        note = (note + " " if note else "") + _("（余额不足，规则扣 %(rule)d 分，实扣 %(actual)d 分）") % {
            "rule": -points,
            "actual": account.balance,
        }
        points = -account.balance
    return post(
        account=account,
        kind=kind,
        points=points,
        by=by,
        occurred_on=occurred_on,
        note=note,
        rule=rule,
        evidence=evidence,
        case=case,
    )


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


@transaction.atomic
def points_reverse(*, by: User, entry: Entry, note: str) -> Entry:
    """Correct a mistaken award or deduction by a reversal entry (once per entry). Redemptions are undone by
    cancelling the redemption; a reversal is not itself reversed."""
    note = (note or "").strip()
    if not note:
        raise InvalidInput(_("请说明冲正的原因。"), field="note")
    entry = Entry.objects.select_related("account__resident__household__building", "account__scheme").get(pk=entry.pk)
    scope = scope_of(by)
    if not selectors.may_record_for(scope, entry.account.resident):
        raise NotAllowed(_("只有本网格的网格员或本社区的工作人员可以冲正该居民的积分。"))
    if entry.kind not in (EntryKind.AWARD, EntryKind.DEDUCTION):
        raise DomainError(_("只能冲正加分或扣分记录；兑换请取消兑换。"), code="not_reversible")
    account = Account.objects.select_for_update().get(pk=entry.account_id)
    if Entry.objects.filter(reverses=entry).exists():
        raise DomainError(_("该记录已冲正过，不能重复冲正。"), code="already_reversed")
    try:
        with transaction.atomic():
            return post(
                account=account,
                kind=EntryKind.REVERSAL,
                points=-entry.points,
                by=by,
                occurred_on=timezone.localdate(),
                note=note,
                rule=entry.rule,
                reverses=entry,
            )
    except IntegrityError:  # the one-to-one on `reverses`: someone reversed it a moment ago
        raise DomainError(_("该记录已冲正过，不能重复冲正。"), code="already_reversed") from None
