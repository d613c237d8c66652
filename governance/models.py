"""The governance hierarchy: units (street → community → grid → building), their party organisations,
households and residents, departments, and the positions people hold.

Business rules live in `services.py`; reads that are more than a filter live in `selectors.py`.
"""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from treebeard.mp_tree import MP_Node

from .masking import mask_id_number, mask_phone


class User(AbstractUser):
    """A login. What the person may do comes from their positions, not from Django's groups."""

    name = models.CharField(_("姓名"), max_length=50, blank=True)
    phone = models.CharField(_("手机号"), max_length=20, blank=True)
    # 适老化: larger text, higher contrast, a simpler layout — switched on by the person, kept with their login.
    elder_mode = models.BooleanField(_("长辈模式"), default=False)

    class Meta:
        verbose_name = _("用户")
        verbose_name_plural = _("用户")

    def __str__(self):
        return self.name or self.username

    @property
    def display_name(self):
        return self.name or self.get_full_name() or self.username

    def save(self, *args, **kwargs):
        """A new password revokes the API tokens (sessions end by themselves: Django keys them on the hash)."""
        password_changed = self._password is not None and self.pk is not None
        super().save(*args, **kwargs)
        if password_changed:
            from rest_framework.authtoken.models import Token

            Token.objects.filter(user=self).delete()


class Level(models.TextChoices):
    STREET = "street", _("街道")
    COMMUNITY = "community", _("社区")
    GRID = "grid", _("网格")
    BUILDING = "building", _("楼栋")


# The level of a unit is its depth in the tree; the database checks the pair (see Unit.Meta), which is what
# makes "a community only under a street, a grid only under a community, …" hold whatever writes the row.
LEVEL_DEPTH = {Level.STREET: 1, Level.COMMUNITY: 2, Level.GRID: 3, Level.BUILDING: 4}
DEPTH_LEVEL = {depth: level for level, depth in LEVEL_DEPTH.items()}
CHILD_LEVEL = {Level.STREET: Level.COMMUNITY, Level.COMMUNITY: Level.GRID, Level.GRID: Level.BUILDING}
PARENT_LEVEL = {child: parent for parent, child in CHILD_LEVEL.items()}


class GridKind(models.TextChoices):
    COMPREHENSIVE = "comprehensive", _("综合网格")
    MARKET = "market", _("专属网格（市场）")
    SCHOOL = "school", _("专属网格（学校）")
    HOSPITAL = "hospital", _("专属网格（医院）")
    ENTERPRISE = "enterprise", _("专属网格（企业）")
    OTHER = "other", _("专属网格（其他）")


class Unit(MP_Node):
    """A place in the tree. Materialised path: a subtree is one indexed `path LIKE 'prefix%'` query, and the
    ancestor at any level is a prefix of the path (street = path[:4], community = path[:8], …)."""

    steplen = 4

    name = models.CharField(_("名称"), max_length=100)
    code = models.CharField(
        _("编码"), max_length=32, unique=True, help_text=_("全市唯一；街道编码同时作为 Open311 的 jurisdiction_id。")
    )
    level = models.CharField(_("层级"), max_length=16, choices=Level.choices)
    grid_kind = models.CharField(_("网格类型"), max_length=16, choices=GridKind.choices, blank=True)
    compound_name = models.CharField(_("小区名称"), max_length=100, blank=True)
    target_households = models.PositiveIntegerField(_("目标户数"), null=True, blank=True)
    address = models.CharField(_("地址"), max_length=200, blank=True)
    # Where it is (WGS-84), for grids and buildings: matches a location sent by another system to a grid.
    latitude = models.DecimalField(_("纬度"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("经度"), max_digits=9, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("组织单元")
        verbose_name_plural = _("组织单元")
        constraints = [
            models.CheckConstraint(
                name="unit_level_matches_depth",
                condition=Q(level=Level.STREET, depth=1)
                | Q(level=Level.COMMUNITY, depth=2)
                | Q(level=Level.GRID, depth=3)
                | Q(level=Level.BUILDING, depth=4),
                violation_error_message=_("层级与所在位置不符：社区只能在街道下，网格只能在社区下，楼栋只能在网格下。"),
            ),
            models.CheckConstraint(
                name="unit_grid_kind_only_on_grids",
                condition=Q(level=Level.GRID) | Q(grid_kind=""),
                violation_error_message=_("只有网格才有网格类型。"),
            ),
        ]
        indexes = [
            models.Index(fields=["level", "path"], name="unit_level_path"),
            # The streets, communities and grids of a subtree, without a street's 2,000 buildings (the units letters
            # are written and assigned to: mailbox.selectors.letters_visible_to). `path LIKE 'prefix%'` on PostgreSQL.
            models.Index(
                fields=["path"],
                name="unit_path_to_grids",
                opclasses=["varchar_pattern_ops"],
                condition=Q(depth__lte=LEVEL_DEPTH[Level.GRID]),
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_street(self):
        return self.level == Level.STREET

    def ancestor_path(self, level):
        """The path of this unit's ancestor (or itself) at `level`; None when `level` is below this unit."""
        depth = LEVEL_DEPTH[level]
        if depth > self.depth:
            return None
        return self.path[: depth * self.steplen]


class PartyOrgKind(models.TextChoices):
    STREET_COMMITTEE = "street_committee", _("街道党工委")
    COMMUNITY_COMMITTEE = "community_committee", _("社区党委")
    GRID_BRANCH = "grid_branch", _("网格党支部")
    BUILDING_GROUP = "building_group", _("楼栋党小组")


PARTY_ORG_KIND_FOR_LEVEL = {
    Level.STREET: PartyOrgKind.STREET_COMMITTEE,
    Level.COMMUNITY: PartyOrgKind.COMMUNITY_COMMITTEE,
    Level.GRID: PartyOrgKind.GRID_BRANCH,
    Level.BUILDING: PartyOrgKind.BUILDING_GROUP,
}


class PartyOrg(models.Model):
    """The party organisation of a unit: exactly one per unit, its kind following the unit's level. Its
    secretary is the holder of the unit's `secretary` position (one source of truth for roles)."""

    unit = models.OneToOneField(Unit, on_delete=models.CASCADE, related_name="party_org", verbose_name=_("所属单元"))
    name = models.CharField(_("名称"), max_length=120)
    kind = models.CharField(_("类型"), max_length=24, choices=PartyOrgKind.choices)
    founded_on = models.DateField(_("成立日期"), null=True, blank=True)

    class Meta:
        verbose_name = _("党组织")
        verbose_name_plural = _("党组织")

    def __str__(self):
        return self.name


class Household(models.Model):
    building = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        related_name="households",
        verbose_name=_("楼栋"),
        limit_choices_to={"level": Level.BUILDING},
    )
    room = models.CharField(_("房号"), max_length=32)
    is_party_central = models.BooleanField(_("党员中心户"), default=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("住户")
        verbose_name_plural = _("住户")
        constraints = [models.UniqueConstraint(fields=["building", "room"], name="household_unique_room")]

    def __str__(self):
        return self.room


class ResidentTag(models.Model):
    """A configurable label for residents (党员, 志愿者, 独居老人 …). The code `party_member` is the one the
    statistics count as party members."""

    PARTY_MEMBER = "party_member"

    code = models.SlugField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=32)
    order = models.PositiveSmallIntegerField(_("排序"), default=0)

    class Meta:
        verbose_name = _("居民标签")
        verbose_name_plural = _("居民标签")
        ordering = ["order", "id"]

    def __str__(self):
        return self.name


class Gender(models.TextChoices):
    MALE = "male", _("男")
    FEMALE = "female", _("女")


class Resident(models.Model):
    """A person living in a household. ID number and phone are stored whole and shown masked to everyone but
    the roles that need them; they never appear in `__str__` or logs. Moving out archives, never deletes."""

    household = models.ForeignKey(Household, on_delete=models.PROTECT, related_name="residents", verbose_name=_("住户"))
    name = models.CharField(_("姓名"), max_length=50)
    gender = models.CharField(_("性别"), max_length=8, choices=Gender.choices)
    birth_date = models.DateField(_("出生日期"), null=True, blank=True)
    id_number = models.CharField(_("身份证号"), max_length=18, blank=True)
    phone = models.CharField(_("手机号"), max_length=20, blank=True)
    tags = models.ManyToManyField(ResidentTag, blank=True, related_name="residents", verbose_name=_("标签"))
    moved_out_on = models.DateField(_("迁出日期"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("居民")
        verbose_name_plural = _("居民")
        constraints = [
            models.UniqueConstraint(
                fields=["id_number"],
                condition=~Q(id_number=""),
                name="resident_unique_id_number",
                violation_error_message=_("该身份证号已登记。"),
            ),
        ]
        indexes = [
            models.Index(fields=["name"], name="resident_name"),
            # The current residents of a household from the index alone: a grid's list walks its buildings'
            # households to their residents (284 for a grid of the city) without reading a row of each.
            models.Index(
                fields=["household", "id"], condition=Q(moved_out_on__isnull=True), name="resident_current_in_household"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_archived(self):
        return self.moved_out_on is not None

    @property
    def id_number_masked(self):
        return mask_id_number(self.id_number)

    @property
    def phone_masked(self):
        return mask_phone(self.phone)


class DepartmentKind(models.TextChoices):
    CITY_MANAGEMENT = "city_management", _("城管")
    COMPREHENSIVE_GOVERNANCE = "comprehensive_governance", _("综治")
    HOUSING = "housing", _("住建")
    CIVIL_AFFAIRS = "civil_affairs", _("民政")
    EMERGENCY = "emergency", _("应急")
    ENVIRONMENT = "environment", _("环保")
    HEALTH = "health", _("卫健")
    HUMAN_RESOURCES = "human_resources", _("人社")
    PUBLIC_SECURITY = "public_security", _("公安")
    MARKET_REGULATION = "market_regulation", _("市场监管")
    UTILITIES = "utilities", _("水电气")
    OTHER = "other", _("其他")


class Department(models.Model):
    name = models.CharField(_("名称"), max_length=100)
    code = models.CharField(_("编码"), max_length=32, unique=True)
    kind = models.CharField(_("类型"), max_length=32, choices=DepartmentKind.choices)
    phone = models.CharField(_("联系电话"), max_length=20, blank=True)
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("职能部门")
        verbose_name_plural = _("职能部门")
        ordering = ["code"]

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", _("系统管理员")
    STREET_STAFF = "street_staff", _("街道干部")
    COMMUNITY_STAFF = "community_staff", _("社区工作者")
    SECRETARY = "secretary", _("书记")
    GRID_WORKER = "grid_worker", _("网格员")
    DEPARTMENT_STAFF = "department_staff", _("部门工作人员")
    RESIDENT = "resident", _("居民")


# The level a unit-bound role is held at; the secretary may sit at any level.
ROLE_LEVEL = {Role.STREET_STAFF: Level.STREET, Role.COMMUNITY_STAFF: Level.COMMUNITY, Role.GRID_WORKER: Level.GRID}
UNIT_ROLES = (Role.STREET_STAFF, Role.COMMUNITY_STAFF, Role.SECRETARY, Role.GRID_WORKER)


class GridWorkerKind(models.TextChoices):
    FULL_TIME = "full_time", _("专职")
    PART_TIME = "part_time", _("兼职")


class Position(models.Model):
    """A role a user holds, and where: a unit, a department, or a resident record."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="positions", verbose_name=_("用户"))
    role = models.CharField(_("角色"), max_length=20, choices=Role.choices)
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="positions", verbose_name=_("所在单元")
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="positions",
        verbose_name=_("所在部门"),
    )
    resident = models.ForeignKey(
        Resident, on_delete=models.PROTECT, null=True, blank=True, related_name="positions", verbose_name=_("居民档案")
    )
    grid_worker_kind = models.CharField(_("网格员类型"), max_length=16, choices=GridWorkerKind.choices, blank=True)
    created_at = models.DateTimeField(_("任职时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("职务")
        verbose_name_plural = _("职务")
        constraints = [
            models.CheckConstraint(
                name="position_fields_match_role",
                condition=(
                    Q(role=Role.ADMINISTRATOR, unit=None, department=None, resident=None)
                    | Q(role__in=UNIT_ROLES, unit__isnull=False, department=None, resident=None)
                    | Q(role=Role.DEPARTMENT_STAFF, unit=None, department__isnull=False, resident=None)
                    | Q(role=Role.RESIDENT, unit=None, department=None, resident__isnull=False)
                ),
                violation_error_message=_("职务与所在单元、部门或居民档案不匹配。"),
            ),
            models.CheckConstraint(
                name="position_grid_worker_kind",
                condition=Q(role=Role.GRID_WORKER) | Q(grid_worker_kind=""),
                violation_error_message=_("只有网格员才有专职/兼职之分。"),
            ),
            models.UniqueConstraint(
                fields=["user", "role", "unit"],
                condition=Q(unit__isnull=False),
                name="position_unique_at_unit",
                violation_error_message=_("该用户已在此单元担任此职务。"),
            ),
            models.UniqueConstraint(
                fields=["user", "department"],
                condition=Q(department__isnull=False),
                name="position_unique_at_department",
                violation_error_message=_("该用户已在此部门任职。"),
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(role=Role.ADMINISTRATOR),
                name="position_unique_administrator",
                violation_error_message=_("该用户已是系统管理员。"),
            ),
            models.UniqueConstraint(
                fields=["unit"],
                condition=Q(role=Role.SECRETARY),
                name="position_one_secretary_per_unit",
                violation_error_message=_("该单元已有书记。"),
            ),
            models.UniqueConstraint(
                fields=["resident"],
                condition=Q(role=Role.RESIDENT),
                name="position_one_login_per_resident",
                violation_error_message=_("该居民已绑定账号。"),
            ),
        ]

    def __str__(self):
        where = self.unit or self.department or self.resident or ""
        return f"{self.get_role_display()} {where}".strip()


class TeamRole(models.TextChoices):
    GRID_WORKER = "grid_worker", _("全科网格员")
    COMMUNITY_WORKER = "community_worker", _("社区专职工作者")
    POLICE = "police", _("民警/辅警")
    BUILDING_HEAD = "building_head", _("楼栋长")
    HOUSEHOLD_LIAISON = "household_liaison", _("联户员")
    VOLUNTEER = "volunteer", _("志愿者")
    PROPERTY_STAFF = "property_staff", _("物业人员")
    OTHER = "other", _("其他")


class GridTeamMember(models.Model):
    """A member of a grid's service team, "1+1+1+N": one grid worker, one community worker, one police
    officer, and N others. Members need not have a login."""

    grid = models.ForeignKey(
        Unit,
        on_delete=models.CASCADE,
        related_name="team_members",
        verbose_name=_("网格"),
        limit_choices_to={"level": Level.GRID},
    )
    team_role = models.CharField(_("团队角色"), max_length=20, choices=TeamRole.choices)
    name = models.CharField(_("姓名"), max_length=50)
    phone = models.CharField(_("联系电话"), max_length=20, blank=True)
    user = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("账号"))

    class Meta:
        verbose_name = _("网格服务团队成员")
        verbose_name_plural = _("网格服务团队成员")

    def __str__(self):
        return f"{self.get_team_role_display()} {self.name}"


# --- What cases and letters share: the working-day calendar, notifications, the workflow event log ---------


class CalendarDay(models.Model):
    """An administrator's word on one date, for years the holiday package does not know yet or where the
    State Council changed the arrangement: this date is (or is not) a working day."""

    date = models.DateField(_("日期"), unique=True)
    is_workday = models.BooleanField(_("工作日"))
    note = models.CharField(_("说明"), max_length=100, blank=True, help_text=_("例如：春节调休上班"))

    class Meta:
        verbose_name = _("工作日历调整")
        verbose_name_plural = _("工作日历调整")
        ordering = ["date"]

    def __str__(self):
        kind = _("上班") if self.is_workday else _("休息")
        return f"{self.date:%Y-%m-%d} {kind}"


class Notification(models.Model):
    """An in-app message to one user. `key` makes sending idempotent: the same reminder about the same
    deadline is written once, however often the reminder job runs."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("用户"))
    kind = models.CharField(_("类型"), max_length=40)
    title = models.CharField(_("标题"), max_length=200)
    body = models.TextField(_("内容"), blank=True)
    url = models.CharField(_("链接"), max_length=300, blank=True)
    key = models.CharField(_("去重键"), max_length=200)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)
    read_at = models.DateTimeField(_("已读时间"), null=True, blank=True)
    # The outside channels (settings.NOTIFICATION_CHANNELS) still to hear of it, and when to try them next:
    # an outbox, so that a broker or a gateway being down delays a message and loses none.
    pending_channels = models.JSONField(_("待发送渠道"), default=list, blank=True)
    delivery_attempts = models.PositiveSmallIntegerField(_("发送次数"), default=0)
    next_delivery_at = models.DateTimeField(_("下次发送"), null=True, blank=True)

    class Meta:
        verbose_name = _("站内通知")
        verbose_name_plural = _("站内通知")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="notification_once_per_key")]
        indexes = [
            models.Index(fields=["user", "read_at"], name="notification_unread"),
            models.Index(
                fields=["next_delivery_at"],
                name="notification_outbox",
                condition=models.Q(next_delivery_at__isnull=False),
            ),
        ]

    def __str__(self):
        return self.title


class WorkflowEvent(models.Model):
    """One step of a workflow (a case's, a letter's): who took which action when, the state before and after,
    the note, and action-specific data. Concrete event tables add the foreign key to their object."""

    actor = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("操作人")
    )
    action = models.CharField(_("动作"), max_length=40)
    from_state = models.CharField(_("原状态"), max_length=20, blank=True)
    to_state = models.CharField(_("新状态"), max_length=20, blank=True)
    note = models.TextField(_("说明"), blank=True)
    data = models.JSONField(_("数据"), default=dict, blank=True)
    created_at = models.DateTimeField(_("时间"), default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]


class Rated(models.Model):
    """The one-to-five-star rating that closes a case or a letter."""

    rating = models.PositiveSmallIntegerField(_("评价星级"), null=True, blank=True)
    rating_comment = models.TextField(_("评价意见"), blank=True)
    rated_at = models.DateTimeField(_("评价时间"), null=True, blank=True)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5),
                name="%(app_label)s_%(class)s_rating_1_to_5",
            )
        ]


class LoginFailure(models.Model):
    """A failed login: counted to lock out guessing (governance.security). Kept for the window only."""

    username = models.CharField(_("用户名"), max_length=150)
    ip = models.GenericIPAddressField(_("IP 地址"), null=True, blank=True)
    at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("登录失败")
        verbose_name_plural = _("登录失败")
        indexes = [models.Index(fields=["username", "at"])]

    def __str__(self):
        return f"{self.username} @ {self.ip or '-'} {self.at:%Y-%m-%d %H:%M}"


class AccessVia(models.TextChoices):
    API = "api", _("接口")
    PAGE = "page", _("页面")
    ADMIN = "admin", _("管理后台")
    EXPORT = "export", _("导出")


class PersonalDataAccess(models.Model):
    """Who saw whole personal data (ID numbers, phones) or exported it, when, and of whom: written by
    `governance.privacy.log_access` wherever a value leaves unmasked. Append-only; administrators read it."""

    user = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, related_name="personal_data_accesses", verbose_name=_("用户")
    )
    at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)
    via = models.CharField(_("途径"), max_length=10, choices=AccessVia.choices)
    what = models.CharField(_("对象"), max_length=40)
    object_ids = models.JSONField(_("对象编号"), default=list)
    fields = models.JSONField(_("字段"), default=list)
    path = models.CharField(_("地址"), max_length=300, blank=True)
    ip = models.GenericIPAddressField(_("IP 地址"), null=True, blank=True)

    class Meta:
        verbose_name = _("个人信息查看记录")
        verbose_name_plural = _("个人信息查看记录")
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.user} {self.get_via_display()} {self.what} {self.at:%Y-%m-%d %H:%M}"


class ApiKey(models.Model):
    """A key another system (a 12345 hotline bridge, a reporting app) sends in with its requests (Open311's
    `api_key`). Only the SHA-256 of the key is stored: it is shown once, when made. Revoked keys are kept, so the
    cases they brought in still name where they came from. Each key acts as its own service account."""

    name = models.CharField(_("名称"), max_length=100)
    prefix = models.CharField(_("前缀"), max_length=8, help_text=_("密钥的前 8 位，用于辨认"))
    key_hash = models.CharField(_("密钥摘要"), max_length=64, unique=True)
    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="api_key", verbose_name=_("服务账号"))
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("吊销时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("接口密钥")
        verbose_name_plural = _("接口密钥")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ImportState(models.TextChoices):
    QUEUED = "queued", _("排队中")
    RUNNING = "running", _("导入中")
    DONE = "done", _("已完成")
    FAILED = "failed", _("有错误，未导入")


class ImportJob(models.Model):
    """One import of a file (governance/imports.py), run by a worker so that a large file neither holds a web
    request nor hits its time limit; the admin page follows its progress."""

    kind = models.CharField(_("导入内容"), max_length=20)
    filename = models.CharField(_("文件名"), max_length=200)
    file = models.FileField(_("文件"), upload_to="imports/%Y/%m/")
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", verbose_name=_("导入人"))
    created_at = models.DateTimeField(_("提交时间"), auto_now_add=True)
    state = models.CharField(_("状态"), max_length=10, choices=ImportState.choices, default=ImportState.QUEUED)
    rows_total = models.PositiveIntegerField(_("总行数"), default=0)
    rows_checked = models.PositiveIntegerField(_("已检查"), default=0)
    created = models.PositiveIntegerField(_("新增"), default=0)
    unchanged = models.PositiveIntegerField(_("已存在"), default=0)
    errors = models.JSONField(_("错误"), default=list, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("导入任务")
        verbose_name_plural = _("导入任务")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.filename} ({self.get_state_display()})"

    @property
    def percent(self) -> int:
        return int(100 * self.rows_checked / self.rows_total) if self.rows_total else 0
