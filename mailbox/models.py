"""The secretary mailbox (书记信箱) and its sibling channel "residents speak" (居民说事): letters to the secretary
of a community or a street, their handling and replies, the writer's follow-up question and rating, and the
redacted copy that is published.

The workflow (who may move a letter where) lives in `services.py`, on the shared mechanism of
`governance.workflow` that cases use too.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from governance.models import Department, Rated, Resident, Unit, WorkflowEvent


class LetterCategory(models.Model):
    """What a letter is about (环境卫生, 物业管理 …): a flat list the administrator keeps in the admin."""

    code = models.SlugField(_("编码"), max_length=40, unique=True)
    name = models.CharField(_("名称"), max_length=40)
    active = models.BooleanField(_("启用"), default=True)
    order = models.PositiveSmallIntegerField(_("排序"), default=0)

    class Meta:
        verbose_name = _("来信分类")
        verbose_name_plural = _("来信分类")
        ordering = ["order", "code"]

    def __str__(self):
        return self.name


class Channel(models.TextChoices):
    MAILBOX = "mailbox", _("书记信箱")
    SPEAK = "speak", _("居民说事")


class Intake(models.TextChoices):
    ONLINE = "online", _("网上来信")
    VISIT = "visit", _("来访代写")
    PHONE = "phone", _("来电代写")


class ContactPreference(models.TextChoices):
    APP = "app", _("网上答复即可")
    PHONE = "phone", _("电话联系")
    VISIT = "visit", _("上门面谈")


class LetterState(models.TextChoices):
    SUBMITTED = "submitted", _("待受理")
    ACCEPTED = "accepted", _("已受理")
    ASSIGNED = "assigned", _("已交办办理中")
    DRAFTED = "drafted", _("答复待书记审签")
    REPLIED = "replied", _("已答复待评价")
    FOLLOW_UP = "follow_up", _("追问待答复")
    CLOSED = "closed", _("已办结")
    REJECTED = "rejected", _("不予受理")


# Letters still being handled: the accept and reply deadlines run.
OPEN_STATES = (
    LetterState.SUBMITTED,
    LetterState.ACCEPTED,
    LetterState.ASSIGNED,
    LetterState.DRAFTED,
    LetterState.FOLLOW_UP,
)


class ClosedReason(models.TextChoices):
    RATED = "rated", _("已评价")
    UNRATED = "unrated", _("超期未评价")


class Letter(Rated):
    number = models.CharField(_("编号"), max_length=20, unique=True, null=True, blank=True)
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="letters", verbose_name=_("收信单位"))
    channel = models.CharField(_("渠道"), max_length=10, choices=Channel.choices, default=Channel.MAILBOX)
    category = models.ForeignKey(
        LetterCategory, on_delete=models.PROTECT, related_name="letters", verbose_name=_("分类")
    )
    subject = models.CharField(_("标题"), max_length=100)
    body = models.TextField(_("内容"), max_length=3000)
    writer = models.ForeignKey(Resident, on_delete=models.PROTECT, related_name="letters", verbose_name=_("来信人"))
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="submitted_letters", verbose_name=_("提交人")
    )
    intake = models.CharField(_("来信方式"), max_length=10, choices=Intake.choices, default=Intake.ONLINE)
    allow_publication = models.BooleanField(_("同意公开"), default=False)
    contact_preference = models.CharField(
        _("联系方式"), max_length=10, choices=ContactPreference.choices, default=ContactPreference.APP
    )
    state = models.CharField(_("状态"), max_length=12, choices=LetterState.choices, default=LetterState.SUBMITTED)
    closed_reason = models.CharField(_("办结方式"), max_length=10, choices=ClosedReason.choices, blank=True)
    reject_reason = models.TextField(_("不予受理理由"), blank=True)

    # Handling: staff of a unit, a department, or a grid case the letter was turned into (linked both ways).
    assignee_unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("承办单位")
    )
    assignee_department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_letters",
        verbose_name=_("承办部门"),
    )
    assign_deadline = models.DateTimeField(_("办理期限"), null=True, blank=True)
    case = models.OneToOneField(
        "grids.Case", on_delete=models.PROTECT, null=True, blank=True, related_name="letter", verbose_name=_("转办事件")
    )

    # The reply (signed by the secretary), a handler's draft awaiting sign-off, the one follow-up and its answer.
    reply = models.TextField(_("答复"), blank=True)
    replied_at = models.DateTimeField(_("答复时间"), null=True, blank=True)
    replied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("答复人"),
    )
    draft = models.TextField(_("答复草稿"), blank=True)
    drafted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("起草人"),
    )
    follow_up_question = models.TextField(_("追问"), blank=True)
    follow_up_at = models.DateTimeField(_("追问时间"), null=True, blank=True)
    follow_up_reply = models.TextField(_("追问答复"), blank=True)
    follow_up_replied_at = models.DateTimeField(_("追问答复时间"), null=True, blank=True)
    # The latest answer (reply or follow-up answer): the seven days to rate count from here.
    answered_at = models.DateTimeField(_("最近答复时间"), null=True, blank=True)

    created_at = models.DateTimeField(_("来信时间"), db_index=True)
    accepted_at = models.DateTimeField(_("受理时间"), null=True, blank=True)
    closed_at = models.DateTimeField(_("办结时间"), null=True, blank=True)
    accept_deadline = models.DateTimeField(_("受理时限"), null=True, blank=True)
    reply_deadline = models.DateTimeField(_("答复时限"), null=True, blank=True)
    accept_overdue = models.BooleanField(_("受理超期"), default=False)
    reply_overdue = models.BooleanField(_("答复超期"), default=False)
    accepted_on_time = models.BooleanField(_("按期受理"), null=True, blank=True)
    replied_on_time = models.BooleanField(_("按期答复"), null=True, blank=True)
    reopen_count = models.PositiveSmallIntegerField(_("重办次数"), default=0)

    # Publication: the redacted copy the public sees, reviewed by the secretary.
    published = models.BooleanField(_("已公开"), default=False)
    published_at = models.DateTimeField(_("公开时间"), null=True, blank=True)
    public_subject = models.CharField(_("公开标题"), max_length=100, blank=True)
    public_body = models.TextField(_("公开内容"), blank=True)
    public_reply = models.TextField(_("公开答复"), blank=True)
    public_follow_up = models.TextField(_("公开追问"), blank=True)
    public_follow_up_reply = models.TextField(_("公开追问答复"), blank=True)

    class Meta:
        verbose_name = _("来信")
        verbose_name_plural = _("来信")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["unit", "created_at"], name="letter_unit_created"),
            models.Index(fields=["state", "reply_deadline"], name="letter_state_deadline"),
            models.Index(fields=["writer", "created_at"], name="letter_writer_created"),
            models.Index(fields=["published", "published_at"], name="letter_published"),
        ]
        constraints = [
            *Rated.Meta.constraints,
            models.CheckConstraint(
                condition=Q(assignee_unit__isnull=True) | Q(assignee_department__isnull=True),
                name="letter_one_assignee",
            ),
            models.CheckConstraint(
                condition=Q(state="closed") | Q(closed_reason=""), name="letter_closed_reason_only_when_closed"
            ),
            # The writer's "keep it private" is kept by the database too: such a letter is never published.
            models.CheckConstraint(
                condition=Q(published=False) | Q(allow_publication=True), name="letter_private_never_published"
            ),
        ]

    def __str__(self):
        return f"{self.number or '—'} {self.subject}"

    def get_absolute_url(self):
        return reverse("letter-detail", args=[self.pk])

    @property
    def assignee(self):
        return self.assignee_department or self.assignee_unit


class LetterEvent(WorkflowEvent):
    letter = models.ForeignKey(Letter, on_delete=models.CASCADE, related_name="events", verbose_name=_("来信"))

    class Meta(WorkflowEvent.Meta):
        verbose_name = _("来信办理记录")
        verbose_name_plural = _("来信办理记录")
        indexes = [models.Index(fields=["letter", "created_at"], name="letter_event_letter_time")]

    def __str__(self):
        return f"{self.letter_id} {self.action}"


class AttachmentKind(models.TextChoices):
    IMAGE = "image", _("图片")
    PDF = "pdf", _("PDF 文件")


class LetterAttachment(models.Model):
    """An image (re-encoded, without EXIF) or a PDF (checked by its content) attached to a letter or a step."""

    letter = models.ForeignKey(Letter, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("来信"))
    event = models.ForeignKey(
        LetterEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="attachments", verbose_name=_("记录")
    )
    file = models.FileField(_("文件"), upload_to="letters/%Y/%m/")
    kind = models.CharField(_("类型"), max_length=8, choices=AttachmentKind.choices)
    name = models.CharField(_("文件名"), max_length=100)
    size = models.PositiveIntegerField(_("大小（字节）"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("上传人")
    )
    created_at = models.DateTimeField(_("上传时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("来信附件")
        verbose_name_plural = _("来信附件")
        ordering = ["id"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("letter-attachment", args=[self.letter_id, self.pk])
