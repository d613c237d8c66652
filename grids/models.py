"""Grid cases (网格事件): the catalogue of categories, the case with its place, holder, deadlines and state, the
dispatches to departments, the event log, photos and "me too" supports.

The workflow itself (who may move a case where) lives in `services.py`, on the shared mechanism of
`governance.workflow`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from governance.models import Department, Rated, Resident, Unit, WorkflowEvent


class CaseCategory(models.Model):
    """A two-level catalogue: top-level groups (市容环境 …) and the categories under them."""

    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children", verbose_name=_("上级分类")
    )
    code = models.SlugField(_("编码"), max_length=40, unique=True)
    name = models.CharField(_("名称"), max_length=60)
    sign_limit_hours = models.PositiveSmallIntegerField(_("签收时限（小时）"), default=2)
    handle_limit_days = models.PositiveSmallIntegerField(_("办理时限（工作日）"), default=5)
    whistle_allowed = models.BooleanField(
        _("可吹哨"), default=False, help_text=_("列入街道吹哨事项清单：街道可将此类事件派给职能部门。")
    )
    on_site_allowed = models.BooleanField(_("可现场处置"), default=False)
    is_public = models.BooleanField(
        _("居民可见"), default=True, help_text=_("本网格居民可查看并附议此类事件；矛盾纠纷等涉及隐私的请关闭。")
    )
    default_department = models.ForeignKey(
        Department, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("默认部门")
    )
    active = models.BooleanField(_("启用"), default=True)
    order = models.PositiveSmallIntegerField(_("排序"), default=0)
    description = models.CharField(_("说明"), max_length=300, blank=True)
    # What a report of this kind must say besides the description (Open311 service attributes): a list of
    # {"code", "description", "datatype": string|number|datetime|text|singlevaluelist|multivaluelist,
    #  "required": bool, "values": [{"key", "name"}]}.
    attributes = models.JSONField(_("附加信息项"), default=list, blank=True)

    class Meta:
        verbose_name = _("事件分类")
        verbose_name_plural = _("事件分类")
        ordering = ["order", "code"]
        constraints = [
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="case_category_not_own_parent"),
            models.CheckConstraint(condition=Q(handle_limit_days__gte=1), name="case_category_handle_limit_positive"),
            models.CheckConstraint(condition=Q(sign_limit_hours__gte=1), name="case_category_sign_limit_positive"),
        ]

    def __str__(self):
        return f"{self.parent.name} / {self.name}" if self.parent_id and self.parent else self.name


class CaseState(models.TextChoices):
    REPORTED = "reported", _("待社区分流")
    RETURNED = "returned", _("已退回补充")
    ESCALATED = "escalated", _("已吹哨待派单")
    DISPATCHED = "dispatched", _("已派单待签收")
    IN_PROGRESS = "in_progress", _("办理中")
    HANDLED = "handled", _("已办结待核查")
    VERIFIED = "verified", _("已核查待评价")
    CLOSED = "closed", _("已结案")


OPEN_STATES = (
    CaseState.REPORTED,
    CaseState.RETURNED,
    CaseState.ESCALATED,
    CaseState.DISPATCHED,
    CaseState.IN_PROGRESS,
)


class ClosedReason(models.TextChoices):
    RATED = "rated", _("已评价")
    UNRATED = "unrated", _("超期未评价")
    INVALID = "invalid", _("无效事件")
    DUPLICATE = "duplicate", _("重复事件")


class Urgency(models.TextChoices):
    NORMAL = "normal", _("一般")
    URGENT = "urgent", _("紧急")
    CRITICAL = "critical", _("特急")


class Source(models.TextChoices):
    PATROL = "patrol", _("网格巡查")
    RESIDENT = "resident", _("居民反映")
    LETTER = "letter", _("书记信箱")
    HOTLINE = "hotline", _("12345热线")
    OPEN311 = "open311", _("Open311")
    OTHER = "other", _("其他")


class Case(Rated):
    number = models.CharField(_("编号"), max_length=20, unique=True, null=True, blank=True)
    title = models.CharField(_("标题"), max_length=100)
    description = models.TextField(_("描述"), max_length=2000)
    category = models.ForeignKey(CaseCategory, on_delete=models.PROTECT, related_name="cases", verbose_name=_("分类"))
    grid = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="cases", verbose_name=_("网格"))
    # The grid's community and street, kept on the case (set when it is filed, moved with its grid by
    # `governance.services.unit_move`): a community's or a street's newest cases are then the first entries of
    # one index, where through the grid's path PostgreSQL walked the city's newest cases or sorted the
    # community's thousands (`selectors.cases_visible_to`; `check_invariants` checks that they agree).
    community = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="+", verbose_name=_("社区"), db_index=False
    )
    street = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="+", verbose_name=_("街道"), db_index=False)
    building = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("楼栋")
    )
    address = models.CharField(_("地点"), max_length=200, blank=True)
    latitude = models.DecimalField(_("纬度"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("经度"), max_digits=9, decimal_places=6, null=True, blank=True)
    urgency = models.CharField(_("紧急程度"), max_length=10, choices=Urgency.choices, default=Urgency.NORMAL)
    source = models.CharField(_("来源"), max_length=10, choices=Source.choices, default=Source.PATROL)
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reported_cases", verbose_name=_("上报人")
    )
    affected_resident = models.ForeignKey(
        Resident, on_delete=models.PROTECT, null=True, blank=True, related_name="cases", verbose_name=_("当事居民")
    )
    state = models.CharField(_("状态"), max_length=12, choices=CaseState.choices, default=CaseState.REPORTED)
    closed_reason = models.CharField(_("结案方式"), max_length=10, choices=ClosedReason.choices, blank=True)
    duplicate_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("重复于")
    )
    # The holder: a unit (the community, the street) or, once dispatched, the lead department.
    holder_unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("承办单位")
    )
    holder_department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="held_cases",
        verbose_name=_("承办部门"),
    )

    created_at = models.DateTimeField(_("上报时间"), db_index=True)
    accepted_at = models.DateTimeField(_("受理时间"), null=True, blank=True)
    dispatched_at = models.DateTimeField(_("派单时间"), null=True, blank=True)
    signed_at = models.DateTimeField(_("签收时间"), null=True, blank=True)
    handled_at = models.DateTimeField(_("办结时间"), null=True, blank=True)
    verified_at = models.DateTimeField(_("核查时间"), null=True, blank=True)
    closed_at = models.DateTimeField(_("结案时间"), null=True, blank=True)
    sign_deadline = models.DateTimeField(_("签收时限"), null=True, blank=True)
    handle_deadline = models.DateTimeField(_("办理时限"), null=True, blank=True)
    sign_overdue = models.BooleanField(_("签收超时"), default=False)
    handle_overdue = models.BooleanField(_("办理超期"), default=False)
    handled_on_time = models.BooleanField(_("按期办结"), null=True, blank=True)
    # Working seconds (office hours of working days), fixed when the step happens so the KPIs only average.
    sign_seconds = models.PositiveIntegerField(_("签收用时（工作秒）"), null=True, blank=True)
    handle_seconds = models.PositiveIntegerField(_("办理用时（工作秒）"), null=True, blank=True)
    extension_requested_until = models.DateTimeField(_("申请延期至"), null=True, blank=True)
    extension_reason = models.TextField(_("延期理由"), blank=True)
    rework_count = models.PositiveSmallIntegerField(_("返工次数"), default=0)
    reopen_count = models.PositiveSmallIntegerField(_("重办次数"), default=0)
    send_back_count = models.PositiveSmallIntegerField(_("退单次数"), default=0)
    support_count = models.PositiveIntegerField(_("附议人数"), default=0)

    class Meta:
        verbose_name = _("网格事件")
        verbose_name_plural = _("网格事件")
        ordering = ["-created_at", "-id"]
        indexes = [
            # With the id, a grid's, a community's or a street's newest cases are found from its index alone, and
            # only the page's rows are read from the table (`governance.api_base.ListPlan.fetch`).
            models.Index(fields=["grid", "created_at", "id"], name="case_grid_created_id"),
            models.Index(fields=["community", "created_at", "id"], name="case_community_created_id"),
            models.Index(fields=["street", "created_at", "id"], name="case_street_created_id"),
            models.Index(fields=["state", "handle_deadline"], name="case_state_deadline"),
            models.Index(fields=["holder_department", "state"], name="case_department_state"),
        ]
        constraints = [
            *Rated.Meta.constraints,
            models.CheckConstraint(
                condition=Q(holder_unit__isnull=True) | Q(holder_department__isnull=True),
                name="case_one_holder",
            ),
            models.CheckConstraint(
                condition=Q(state="closed") | Q(closed_reason=""), name="case_closed_reason_only_when_closed"
            ),
        ]

    def __str__(self):
        return f"{self.number or '—'} {self.title}"

    def get_absolute_url(self):
        return reverse("case-detail", args=[self.pk])

    @property
    def holder(self):
        return self.holder_department or self.holder_unit


class CaseDispatch(models.Model):
    """One department's part in a dispatch (派单): the lead department or an assisting one (联合处置).
    Signing, sending back and the street's assessment of the department's response are recorded here."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="dispatches", verbose_name=_("事件"))
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="dispatches", verbose_name=_("部门")
    )
    is_lead = models.BooleanField(_("牵头部门"), default=True)
    dispatched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("派单人")
    )
    dispatched_at = models.DateTimeField(_("派单时间"))
    sign_deadline = models.DateTimeField(_("签收时限"))
    signed_at = models.DateTimeField(_("签收时间"), null=True, blank=True)
    sign_seconds = models.PositiveIntegerField(_("签收用时（工作秒）"), null=True, blank=True)
    sign_overdue = models.BooleanField(_("签收超时"), default=False)
    sent_back_at = models.DateTimeField(_("退单时间"), null=True, blank=True)
    send_back_reason = models.TextField(_("退单理由"), blank=True)
    street_rating = models.PositiveSmallIntegerField(_("街道评价"), null=True, blank=True)
    street_rating_comment = models.TextField(_("街道评价意见"), blank=True)

    class Meta:
        verbose_name = _("派单")
        verbose_name_plural = _("派单")
        ordering = ["dispatched_at", "id"]
        indexes = [models.Index(fields=["department", "dispatched_at"], name="dispatch_department_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(street_rating__isnull=True) | Q(street_rating__gte=1, street_rating__lte=5),
                name="dispatch_street_rating_1_to_5",
            ),
        ]

    def __str__(self):
        return f"{self.case_id} → {self.department_id}"


class CaseEvent(WorkflowEvent):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events", verbose_name=_("事件"))

    class Meta(WorkflowEvent.Meta):
        verbose_name = _("事件记录")
        verbose_name_plural = _("事件记录")
        indexes = [models.Index(fields=["case", "created_at"], name="case_event_case_time")]

    def __str__(self):
        return f"{self.case_id} {self.action}"


class CasePhoto(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="photos", verbose_name=_("事件"))
    event = models.ForeignKey(
        CaseEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="photos", verbose_name=_("记录")
    )
    image = models.ImageField(_("照片"), upload_to="cases/%Y/%m/")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("上传人")
    )
    created_at = models.DateTimeField(_("上传时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("事件照片")
        verbose_name_plural = _("事件照片")
        ordering = ["id"]

    def __str__(self):
        return self.image.name

    def get_absolute_url(self):
        return reverse("case-photo", args=[self.case_id, self.pk])


class CaseSupport(models.Model):
    """ "Me too" (附议): one per person and case."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="supports", verbose_name=_("事件"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("附议人")
    )
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("附议")
        verbose_name_plural = _("附议")
        constraints = [models.UniqueConstraint(fields=["case", "user"], name="case_support_once")]

    def __str__(self):
        return f"{self.case_id} +1 {self.user_id}"
