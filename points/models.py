"""The points ledger (积分制): schemes, covenant rules, accounts with kept balances, the append-only ledger,
the points supermarket, and the monthly tally with its public board and objections.

Money-like: entries are never changed or deleted (the service refuses, the admin refuses, and on PostgreSQL
a trigger refuses); a mistake is corrected by a reversal entry. A balance is kept per resident and scheme in
the same transaction as each entry, under a row lock, and never goes below zero; neither does a stock.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from governance.models import Household, Resident, Unit


class Scheme(models.Model):
    """A separate balance: residents' covenant points, party members' points, a volunteer time bank …"""

    RESIDENT = "resident"
    PARTY = "party"

    code = models.SlugField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=50)
    party_members_only = models.BooleanField(_("仅限党员"), default=False)
    active = models.BooleanField(_("启用"), default=True)
    order = models.PositiveSmallIntegerField(_("排序"), default=0)

    class Meta:
        verbose_name = _("积分类别")
        verbose_name_plural = _("积分类别")
        ordering = ["order", "code"]

    def __str__(self):
        return self.name


class RuleKind(models.TextChoices):
    BASE = "base", _("基本行为")
    BONUS = "bonus", _("鼓励倡导加分")
    DEDUCTION = "deduction", _("禁止反对扣分")


class Rule(models.Model):
    """A rule of a unit's covenant; it applies to the unit's whole subtree. Its points are copied onto each
    entry, so changing the rule never changes what was recorded."""

    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="point_rules", verbose_name=_("制定单位"))
    scheme = models.ForeignKey(Scheme, on_delete=models.PROTECT, related_name="rules", verbose_name=_("积分类别"))
    code = models.SlugField(_("编码"), max_length=40)
    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=10, choices=RuleKind.choices)
    points = models.IntegerField(_("分值"), help_text=_("扣分规则填负数。"))
    daily_cap = models.PositiveIntegerField(
        _("每人每日上限（分）"), null=True, blank=True, help_text=_("同一居民按此规则每天最多累计的分数（绝对值）。")
    )
    monthly_cap = models.PositiveIntegerField(_("每人每月上限（分）"), null=True, blank=True)
    evidence_required = models.BooleanField(_("须有佐证"), default=False, help_text=_("记分时须填写说明或上传照片。"))
    active_from = models.DateField(_("生效日期"))
    active_until = models.DateField(_("失效日期"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("积分规则")
        verbose_name_plural = _("积分规则")
        ordering = ["unit__path", "kind", "code"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "code"], name="point_rule_code_per_unit"),
            models.CheckConstraint(
                condition=(Q(kind="deduction") & Q(points__lt=0)) | (~Q(kind="deduction") & Q(points__gt=0)),
                name="point_rule_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(active_until__isnull=True) | Q(active_until__gte=models.F("active_from")),
                name="point_rule_dates_in_order",
            ),
        ]

    def __str__(self):
        return f"{self.name}（{self.points:+d}）"


class Account(models.Model):
    """One balance: a resident in a scheme. Written only by the ledger services, under `select_for_update`."""

    resident = models.ForeignKey(
        Resident, on_delete=models.PROTECT, related_name="point_accounts", verbose_name=_("居民")
    )
    scheme = models.ForeignKey(Scheme, on_delete=models.PROTECT, related_name="accounts", verbose_name=_("积分类别"))
    balance = models.IntegerField(_("余额"), default=0)
    earned = models.IntegerField(_("累计获得"), default=0)
    deducted = models.IntegerField(_("累计扣除"), default=0)
    redeemed = models.IntegerField(_("累计兑换"), default=0)
    # The earliest day an entry of the account is dated: the first month the tally counts it in.
    first_entry_on = models.DateField(_("首笔记录日期"), null=True, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        verbose_name = _("积分账户")
        verbose_name_plural = _("积分账户")
        constraints = [
            models.UniqueConstraint(fields=["resident", "scheme"], name="point_account_one_per_scheme"),
            models.CheckConstraint(condition=Q(balance__gte=0), name="point_account_balance_not_negative"),
        ]

    def __str__(self):
        return f"{self.resident_id}/{self.scheme_id}: {self.balance}"


class EntryKind(models.TextChoices):
    AWARD = "award", _("加分")
    DEDUCTION = "deduction", _("扣分")
    REDEMPTION = "redemption", _("兑换")
    REVERSAL = "reversal", _("冲正")


class Entry(models.Model):
    """One line of the ledger. Never updated, never deleted; `reverses` points at the entry it corrects."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries", verbose_name=_("账户"))
    kind = models.CharField(_("类型"), max_length=10, choices=EntryKind.choices)
    rule = models.ForeignKey(
        Rule, on_delete=models.PROTECT, null=True, blank=True, related_name="entries", verbose_name=_("规则")
    )
    points = models.IntegerField(_("分值"))
    balance_after = models.IntegerField(_("记后余额"))
    occurred_on = models.DateField(_("发生日期"), db_index=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("记录人"),
    )
    note = models.CharField(_("说明"), max_length=500, blank=True)
    evidence = models.ImageField(_("佐证照片"), upload_to="points/%Y/%m/", blank=True)
    reverses = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversed_by",
        verbose_name=_("冲正的记录"),
    )
    case = models.ForeignKey(
        "grids.Case",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="point_entries",
        verbose_name=_("关联事件"),
    )
    redemption = models.ForeignKey(
        "Redemption", on_delete=models.PROTECT, null=True, blank=True, related_name="entries", verbose_name=_("兑换")
    )
    created_at = models.DateTimeField(_("记录时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("积分记录")
        verbose_name_plural = _("积分记录")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "occurred_on"], name="point_entry_account_day"),
            models.Index(fields=["occurred_on", "account"], name="point_entry_day_account"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(points=0), name="point_entry_not_zero"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="point_entry_balance_not_negative"),
            models.CheckConstraint(
                condition=Q(kind="reversal", reverses__isnull=False) | (~Q(kind="reversal") & Q(reverses__isnull=True)),
                name="point_entry_reversal_points_at_original",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.points:+d}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("Point entries are append-only; record a reversal instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Point entries are append-only; record a reversal instead.")


class Reward(models.Model):
    """A good of a community's points supermarket (积分超市)."""

    community = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="rewards", verbose_name=_("社区"))
    scheme = models.ForeignKey(Scheme, on_delete=models.PROTECT, related_name="rewards", verbose_name=_("积分类别"))
    name = models.CharField(_("名称"), max_length=100)
    photo = models.ImageField(_("图片"), upload_to="rewards/", blank=True)
    cost = models.PositiveIntegerField(_("所需积分"))
    stock = models.IntegerField(_("库存"), default=0)
    active = models.BooleanField(_("上架"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("积分超市商品")
        verbose_name_plural = _("积分超市商品")
        ordering = ["community__path", "cost", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="reward_stock_not_negative"),
            models.CheckConstraint(condition=Q(cost__gt=0), name="reward_cost_positive"),
        ]

    def __str__(self):
        return self.name


class RedemptionState(models.TextChoices):
    RESERVED = "reserved", _("已预约待领取")
    FULFILLED = "fulfilled", _("已领取")
    CANCELLED = "cancelled", _("已取消")


class Redemption(models.Model):
    resident = models.ForeignKey(Resident, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("居民"))
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("商品"))
    quantity = models.PositiveSmallIntegerField(_("数量"), default=1)
    points = models.PositiveIntegerField(_("积分"))
    state = models.CharField(_("状态"), max_length=10, choices=RedemptionState.choices)
    pickup_code = models.CharField(_("取货码"), max_length=8, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("办理人")
    )
    created_at = models.DateTimeField(_("兑换时间"), auto_now_add=True)
    fulfilled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("发放人"),
    )
    fulfilled_at = models.DateTimeField(_("领取时间"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("取消时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("积分兑换")
        verbose_name_plural = _("积分兑换")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="redemption_quantity_positive"),
            models.UniqueConstraint(
                fields=["reward", "pickup_code"],
                condition=Q(state="reserved"),
                name="redemption_open_pickup_code_unique",
            ),
        ]

    def __str__(self):
        return f"{self.reward_id} × {self.quantity}"


class TallyRun(models.Model):
    """One run of the monthly tally: when, how long, how many rows. A run that did not finish is re-run."""

    month = models.DateField(_("月份"))
    started_at = models.DateTimeField(_("开始时间"))
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    rows = models.PositiveIntegerField(_("行数"), default=0)
    duration_ms = models.PositiveIntegerField(_("用时（毫秒）"), null=True, blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("发起人"),
    )

    class Meta:
        verbose_name = _("月度统计运行")
        verbose_name_plural = _("月度统计运行")
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.started_at:%Y-%m-%d %H:%M}"


# The most places a board shows (its API caps `limit` at this, see points.api).
BOARD_MAX_ROWS = 100

# The references of the tallies (derived data, see `Tally`): no database foreign key, no index of their own.
DERIVED = {"db_constraint": False, "db_index": False}


class Tally(models.Model):
    """A resident's month in one scheme, with ranks in their grid and community (ties share a rank).

    Derived data, rebuilt by the tally from the ledger at any time: its references carry no database foreign
    keys and only the indexes its readers use (the boards', the resident's own months), because checking six
    foreign keys and maintaining ten indexes for a city's million rows made the monthly run four times slower
    (docs/PERFORMANCE.md). The rows are written only by `points.tally`, from rows that exist."""

    month = models.DateField(_("月份"))
    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        related_name="tallies",
        verbose_name=_("账户"),
        db_constraint=False,
        db_index=False,
    )
    resident = models.ForeignKey(
        Resident, on_delete=models.CASCADE, related_name="+", verbose_name=_("居民"), db_constraint=False
    )
    scheme = models.ForeignKey(
        Scheme, on_delete=models.CASCADE, related_name="+", verbose_name=_("积分类别"), **DERIVED
    )
    household = models.ForeignKey(
        Household, on_delete=models.CASCADE, related_name="+", verbose_name=_("住户"), **DERIVED
    )
    grid = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="+", verbose_name=_("网格"), **DERIVED)
    community = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="+", verbose_name=_("社区"), **DERIVED)
    earned = models.IntegerField(_("获得"))
    deducted = models.IntegerField(_("扣除"))
    redeemed = models.IntegerField(_("兑换"))
    net = models.IntegerField(_("净得"))
    balance = models.IntegerField(_("月末余额"))
    rank_in_grid = models.PositiveIntegerField(_("网格排名"))
    rank_in_community = models.PositiveIntegerField(_("社区排名"))

    class Meta:
        verbose_name = _("月度积分统计")
        verbose_name_plural = _("月度积分统计")
        constraints = [
            models.UniqueConstraint(fields=["month", "account"], name="tally_one_per_account_month"),
        ]
        indexes = [
            # The boards read the first BOARD_MAX_ROWS places only: a million rows a month need not all be indexed.
            # In the boards' order (place, then resident: `tally.board_first`), so a board's first rows
            # are its first index entries, with no sort of the residents sharing a place.
            models.Index(
                fields=["month", "scheme", "community", "rank_in_community", "resident"],
                name="tally_board_community",
                condition=Q(rank_in_community__gte=1, rank_in_community__lte=BOARD_MAX_ROWS),
            ),
            models.Index(
                fields=["month", "scheme", "grid", "rank_in_grid", "resident"],
                name="tally_board_grid",
                condition=Q(rank_in_grid__gte=1, rank_in_grid__lte=BOARD_MAX_ROWS),
            ),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.resident_id} {self.net:+d}"


class HouseholdTally(models.Model):
    """The sums of a household's residents' rows for a month (derived data, like `Tally`)."""

    month = models.DateField(_("月份"))
    household = models.ForeignKey(
        Household, on_delete=models.CASCADE, related_name="+", verbose_name=_("住户"), **DERIVED
    )
    scheme = models.ForeignKey(
        Scheme, on_delete=models.CASCADE, related_name="+", verbose_name=_("积分类别"), **DERIVED
    )
    grid = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="+", verbose_name=_("网格"), **DERIVED)
    earned = models.IntegerField(_("获得"))
    deducted = models.IntegerField(_("扣除"))
    redeemed = models.IntegerField(_("兑换"))
    net = models.IntegerField(_("净得"))
    balance = models.IntegerField(_("月末余额"))

    class Meta:
        verbose_name = _("住户月度积分统计")
        verbose_name_plural = _("住户月度积分统计")
        constraints = [
            models.UniqueConstraint(fields=["month", "household", "scheme"], name="household_tally_one_per_month"),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.household_id} {self.net:+d}"


class Board(models.Model):
    """The public ranking of a grid or community for a month (张榜公示): open to objections during the notice
    period, final after it."""

    month = models.DateField(_("月份"))
    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="boards", verbose_name=_("单元"))
    scheme = models.ForeignKey(Scheme, on_delete=models.CASCADE, related_name="+", verbose_name=_("积分类别"))
    published_at = models.DateTimeField(_("公示时间"))
    notice_until = models.DateTimeField(_("公示截止"))

    class Meta:
        verbose_name = _("积分榜")
        verbose_name_plural = _("积分榜")
        ordering = ["-month", "unit__path"]
        constraints = [models.UniqueConstraint(fields=["month", "unit", "scheme"], name="board_one_per_unit_month")]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.unit_id}"


class ObjectionState(models.TextChoices):
    OPEN = "open", _("待处理")
    UPHELD = "upheld", _("异议成立")
    DISMISSED = "dismissed", _("异议不成立")


class Objection(models.Model):
    """A resident's objection (异议) to a board during its notice period, resolved by community staff."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="objections", verbose_name=_("积分榜"))
    resident = models.ForeignKey(Resident, on_delete=models.PROTECT, related_name="+", verbose_name=_("提出人"))
    entry = models.ForeignKey(
        Entry, on_delete=models.PROTECT, null=True, blank=True, related_name="objections", verbose_name=_("涉及的记录")
    )
    reason = models.TextField(_("异议内容"), max_length=1000)
    state = models.CharField(_("状态"), max_length=10, choices=ObjectionState.choices, default=ObjectionState.OPEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("提交人")
    )
    created_at = models.DateTimeField(_("提出时间"), auto_now_add=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("处理人"),
    )
    resolved_at = models.DateTimeField(_("处理时间"), null=True, blank=True)
    resolution = models.TextField(_("处理意见"), blank=True)
    correction = models.ForeignKey(
        Entry, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("更正记录")
    )

    class Meta:
        verbose_name = _("积分异议")
        verbose_name_plural = _("积分异议")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.board_id} {self.get_state_display()}"
