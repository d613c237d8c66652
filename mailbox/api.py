"""REST API of the mailbox: letters with their log and attachments, every step, the statistics, and the public
letters (no login).

Every queryset starts from `selectors.letters_visible_to(user)` (outside it: 404), or for the public from
`selectors.public_letters()`. Each step is `POST /api/v1/letters/{id}/<step>/`; the service decides (403 for the
wrong role, 409 for the wrong state, 400 for bad input, 429 for too many letters in a day).
"""

import datetime as dt

import django_filters
import django_filters.rest_framework
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, parsers, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from governance import catalogues
from governance.api import UnitSubtreeFilter, is_small_id
from governance.api_base import (
    DeadlineField,
    DisplayField,
    FilterSet,
    LightListMixin,
    RowWriter,
    ScopedMixin,
    TransitionsMixin,
    WorkflowEventSerializer,
    add_transition_routes,
)
from governance.errors import NotAllowed
from governance.masking import mask_name
from governance.models import Department, Resident, Unit
from governance.selectors import scope_of
from governance.uploads import serve_file
from governance.validators import parse_id
from grids.api import RefSerializer
from grids.models import CaseCategory

from . import selectors, services, stats
from .models import (
    OPEN_STATES,
    AttachmentKind,
    Channel,
    ContactPreference,
    Intake,
    Letter,
    LetterAttachment,
    LetterCategory,
    LetterEvent,
    LetterState,
)

# --- Catalogue ------------------------------------------------------------------------------------------


class LetterCategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = LetterCategory
        fields = ["id", "code", "name", "active"]


class LetterCategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """What letters are about (kept in the admin)."""

    serializer_class = LetterCategorySerializer
    pagination_class = None
    queryset = LetterCategory.objects.order_by("order", "code")


# --- Letters --------------------------------------------------------------------------------------------


def _overdue(letter, now) -> bool:
    if letter.state == LetterState.SUBMITTED:
        return bool(letter.accept_deadline and letter.accept_deadline < now)
    return letter.state in OPEN_STATES and bool(letter.reply_deadline and letter.reply_deadline < now)


class LetterListSerializer(RowWriter, serializers.ModelSerializer):
    """A letter as lists show it. Lists read `LIST_COLUMNS` only (the unit and writer joined, the category
    named from `governance.catalogues`), and `to_representation` writes the row directly: what the declared
    fields give (the tests compare the two)."""

    unit = RefSerializer()
    category = serializers.SerializerMethodField()
    writer = serializers.SerializerMethodField()
    state_display = DisplayField("state")
    channel_display = DisplayField("channel")
    is_overdue = serializers.SerializerMethodField()

    class Meta:
        model = Letter
        fields = [
            "id",
            "number",
            "subject",
            "unit",
            "channel",
            "channel_display",
            "category",
            "writer",
            "state",
            "state_display",
            "created_at",
            "accept_deadline",
            "reply_deadline",
            "is_overdue",
            "rating",
            "published",
        ]

    def get_writer(self, letter) -> str:
        """The writer's name for those who handle the letter and the writer; masked for anyone else."""
        return (
            letter.writer.name if self.context.get("staff_view") or self._own(letter) else mask_name(letter.writer.name)
        )

    def _own(self, letter):
        return letter.writer_id in self.context.get("resident_ids", ())

    def get_is_overdue(self, letter) -> bool:
        return _overdue(letter, self.context["now"])

    @extend_schema_field(RefSerializer)
    def get_category(self, letter) -> dict:
        return catalogues.row(LetterCategory, letter.category_id)

    label_fields = ("state", "channel")

    def to_representation(self, letter):
        labels = self.labels
        return {
            "id": letter.pk,
            "number": letter.number,
            "subject": letter.subject,
            "unit": {"id": letter.unit_id, "name": letter.unit.name},
            "channel": letter.channel,
            "channel_display": labels["channel"].get(letter.channel, letter.channel),
            "category": self.get_category(letter),
            "writer": self.get_writer(letter),
            "state": letter.state,
            "state_display": labels["state"].get(letter.state, letter.state),
            "created_at": self.datetime(letter.created_at),
            "accept_deadline": self.datetime(letter.accept_deadline),
            "reply_deadline": self.datetime(letter.reply_deadline),
            "is_overdue": self.get_is_overdue(letter),
            "rating": letter.rating,
            "published": letter.published,
        }


# What a list reads of each letter (and of its unit and writer): the list serializer's fields and no more, as
# values (`LightListMixin`).
LIST_COLUMNS = [
    "id",
    "number",
    "subject",
    "unit_id",
    "unit__name",
    "channel",
    "category_id",
    "writer_id",
    "writer__name",
    "state",
    "created_at",
    "accept_deadline",
    "reply_deadline",
    "rating",
    "published",
]


class AttachmentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = LetterAttachment
        fields = ["id", "name", "kind", "size", "event", "url"]

    def get_url(self, attachment) -> str:
        return f"/api/v1/letters/{attachment.letter_id}/attachments/{attachment.pk}/"


class LetterSerializer(LetterListSerializer):
    writer_detail = serializers.SerializerMethodField()
    intake_display = DisplayField("intake")
    contact_preference_display = DisplayField("contact_preference")
    closed_reason_display = DisplayField("closed_reason")
    assignee = serializers.SerializerMethodField()
    case = serializers.SerializerMethodField()
    replied_by = serializers.SerializerMethodField()
    draft = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(many=True)
    actions = serializers.SerializerMethodField()

    class Meta(LetterListSerializer.Meta):
        fields = LetterListSerializer.Meta.fields + [
            "body",
            "writer_detail",
            "intake",
            "intake_display",
            "allow_publication",
            "contact_preference",
            "contact_preference_display",
            "reject_reason",
            "assignee",
            "assign_deadline",
            "case",
            "reply",
            "replied_at",
            "replied_by",
            "replied_on_time",
            "draft",
            "follow_up_question",
            "follow_up_at",
            "follow_up_reply",
            "follow_up_replied_at",
            "answered_at",
            "accepted_at",
            "accepted_on_time",
            "closed_at",
            "closed_reason",
            "closed_reason_display",
            "rating_comment",
            "rated_at",
            "reopen_count",
            "published_at",
            "attachments",
            "actions",
        ]

    def to_representation(self, letter):
        # The detail goes field by field (the list's shortcut writes the list's fields only).
        return serializers.ModelSerializer.to_representation(self, letter)

    def get_writer_detail(self, letter) -> dict:
        """Name and phone (masked unless the viewer keeps the writer's records), for calling back."""
        request = self.context["request"]
        phone = selectors.writer_phone_shown(request.user, letter, request=request, via="api")
        return {"id": letter.writer_id, "name": self.get_writer(letter), "phone": phone}

    def get_assignee(self, letter) -> dict | None:
        if letter.assignee_department_id:
            return {"kind": "department", "id": letter.assignee_department_id, "name": letter.assignee_department.name}
        if letter.assignee_unit_id:
            return {"kind": "unit", "id": letter.assignee_unit_id, "name": letter.assignee_unit.name}
        return None

    def get_case(self, letter) -> dict | None:
        if not letter.case_id:
            return None
        case = letter.case
        return {"id": case.pk, "number": case.number, "state": case.state, "state_display": case.get_state_display()}

    def get_replied_by(self, letter) -> str | None:
        return letter.replied_by.display_name if letter.replied_by_id else None

    def get_draft(self, letter) -> str:
        """A draft awaiting the secretary is for staff only; the writer sees the signed reply."""
        return letter.draft if self.context.get("staff_view") else ""

    def get_actions(self, letter) -> list[str]:
        return selectors.actions_for(self.context["request"].user, letter)


class AttachmentsField(serializers.ListField):
    child = serializers.FileField()


class LetterSubmitSerializer(serializers.Serializer):
    unit = serializers.PrimaryKeyRelatedField(
        queryset=Unit.objects.all(),
        required=False,
        allow_null=True,
        help_text=gettext_lazy("写给哪位书记：所在社区（默认）或所在街道"),
    )
    channel = serializers.ChoiceField(choices=Channel.choices, required=False, default=Channel.MAILBOX)
    category = serializers.PrimaryKeyRelatedField(queryset=LetterCategory.objects.all())
    subject = serializers.CharField(max_length=services.MAX_SUBJECT)
    body = serializers.CharField(max_length=services.MAX_BODY)
    writer = serializers.PrimaryKeyRelatedField(
        queryset=Resident.objects.all(),
        required=False,
        allow_null=True,
        help_text=gettext_lazy("工作人员代写时：来信的居民"),
    )
    intake = serializers.ChoiceField(choices=Intake.choices, required=False, default=Intake.ONLINE)
    allow_publication = serializers.BooleanField(required=False, default=False)
    contact_preference = serializers.ChoiceField(
        choices=ContactPreference.choices, required=False, default=ContactPreference.APP
    )
    attachments = AttachmentsField(required=False, default=list)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=3000)


class PublicCopySerializer(serializers.Serializer):
    """The secretary's reviewed public copy (redacted once more when saved); empty fields: redacted original."""

    public_subject = serializers.CharField(required=False, allow_blank=True, max_length=100)
    public_body = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_BODY)
    public_reply = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_REPLY)
    public_follow_up = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_BODY)
    public_follow_up_reply = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_REPLY)


class AssignSerializer(NoteSerializer):
    unit = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.all(), required=False, allow_null=True)
    department = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all(), required=False, allow_null=True)
    deadline = DeadlineField(required=False, allow_null=True)
    case_grid = serializers.PrimaryKeyRelatedField(
        queryset=Unit.objects.all(),
        required=False,
        allow_null=True,
        help_text=gettext_lazy("转为网格事件：事件所在的网格"),
    )
    case_category = serializers.PrimaryKeyRelatedField(
        queryset=CaseCategory.objects.filter(parent__isnull=False, active=True),
        required=False,
        allow_null=True,
        help_text=gettext_lazy("转为网格事件：事件分类（二级分类）"),
    )


class ReplySerializer(PublicCopySerializer):
    text = serializers.CharField(max_length=services.MAX_REPLY)
    attachments = AttachmentsField(required=False, default=list)


class SignOffSerializer(PublicCopySerializer, NoteSerializer):
    approved = serializers.BooleanField()
    text = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=services.MAX_REPLY,
        help_text=gettext_lazy("修改后的答复；不填则按草稿"),
    )


class RateSerializer(NoteSerializer):
    stars = serializers.IntegerField(min_value=1, max_value=5)


class LetterEventSerializer(WorkflowEventSerializer):
    flow = services.LETTER_FLOW

    class Meta(WorkflowEventSerializer.Meta):
        model = LetterEvent


class LetterUnitFilter(UnitSubtreeFilter):
    """`unit=<id>`: the letters to the units of that subtree. When the caller's scope is one office position at
    that very unit, the list's queryset is those letters already (`LetterViewSet.get_queryset`,
    `selectors.office_letters_of`) and the filter adds nothing."""

    def filter(self, qs, value):
        request = self.parent.request if self.parent is not None else None
        if value and request is not None and getattr(request, "_office_letters_of", None) == value.path:
            return qs
        return super().filter(qs, value)


class LetterFilter(FilterSet):
    state = django_filters.ChoiceFilter(choices=LetterState.choices)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    category = django_filters.ModelChoiceFilter(queryset=LetterCategory.objects.all())
    unit = LetterUnitFilter(lookup="unit__path")
    overdue = django_filters.rest_framework.BooleanFilter(method="filter_overdue")
    open = django_filters.rest_framework.BooleanFilter(
        method="filter_open", label=gettext_lazy("未办结（受理、承办或审核中）")
    )
    published = django_filters.rest_framework.BooleanFilter()
    created_after = django_filters.DateFilter(method="filter_created_after")
    created_before = django_filters.DateFilter(method="filter_created_before")
    q = django_filters.CharFilter(method="filter_q", help_text=gettext_lazy("编号或标题中的文字"))

    clock_filters = ("overdue",)  # their SQL holds the moment of the request (`governance.api_base.ListPlan`)

    class Meta:
        model = Letter
        fields = []

    def filter_overdue(self, qs, name, value):
        q = overdue_q(timezone.now())
        return qs.filter(q) if value else qs.exclude(q)

    def filter_open(self, qs, name, value):
        return qs.filter(state__in=OPEN_STATES) if value else qs.exclude(state__in=OPEN_STATES)

    def _day_start(self, day):
        return timezone.make_aware(dt.datetime.combine(day, dt.time.min))

    def filter_created_after(self, qs, name, value):
        return qs.filter(created_at__gte=self._day_start(value))

    def filter_created_before(self, qs, name, value):
        return qs.filter(created_at__lt=self._day_start(value + dt.timedelta(days=1)))

    def filter_q(self, qs, name, value):
        value = value.strip()
        return qs.filter(Q(number__icontains=value) | Q(subject__icontains=value)) if value else qs


def overdue_q(now) -> Q:
    """Overdue now: not accepted in time, or not answered in time (the test of `_overdue`, as a query)."""
    waiting = [s for s in OPEN_STATES if s != LetterState.SUBMITTED]
    return Q(state=LetterState.SUBMITTED, accept_deadline__lt=now) | Q(state__in=waiting, reply_deadline__lt=now)


TRANSITIONS = {
    "accept": (NoteSerializer, services.letter_accept, None),
    "reject": (NoteSerializer, services.letter_reject, None),
    "assign": (AssignSerializer, services.letter_assign, None),
    "reply": (ReplySerializer, services.letter_reply, None),
    "sign-off": (SignOffSerializer, services.letter_sign_off, None),
    "follow-up": (NoteSerializer, services.letter_follow_up, None),
    "rate": (RateSerializer, services.letter_rate, None),
    "reopen": (NoteSerializer, services.letter_reopen, None),
    "publish": (PublicCopySerializer, services.letter_publish, None),
    "unpublish": (NoteSerializer, services.letter_unpublish, None),
    "make-private": (NoteSerializer, services.letter_make_private, None),
}


class LetterViewSet(
    ScopedMixin,
    TransitionsMixin,
    LightListMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Letters to the secretary. Residents write their own (`writer` empty); staff write down a letter for a
    resident of their places who came in or phoned (`writer`, `intake`). The same letter sent again within a
    minute answers 200 with the letter already there; more than five a day from one resident is a 429."""

    filterset_class = LetterFilter
    list_columns = LIST_COLUMNS
    # The letters' scope is two arrays of unit ids (`letters_visible_to`) whose letters PostgreSQL cannot count
    # ahead: it walked the city's newest letters for a community's page (6 ms on the city); a list counted small
    # is sorted from its own rows instead.
    sort_small_lists = True
    flow = services.LETTER_FLOW
    transitions = TRANSITIONS
    object_kwarg = "letter"
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]

    def get_queryset(self):
        qs = selectors.letters_visible_to(self.request.user).select_related("unit", "writer")
        if self.action == "list":
            office = self._office_letters()
            qs = (qs if office is None else office).only(*LIST_COLUMNS)
        else:
            qs = qs.select_related(
                "writer__household__building", "assignee_unit", "assignee_department", "case", "replied_by"
            ).prefetch_related("attachments")
        return qs.order_by("-created_at", "-id")

    def _office_letters(self):
        """The scope and `unit=` asked as one (`selectors.office_letters_of`), when `unit=` names the unit of the
        caller's one office position; the filter then leaves it (`LetterUnitFilter`)."""
        request = self.request
        scope = scope_of(request.user)
        named = request.query_params.get("unit", "")
        path = scope.own_units.get(int(named)) if is_small_id(named) else None
        found = selectors.office_letters_of(scope, path) if path else None
        if found is not None:
            request._office_letters_of = path
            return found.select_related("unit", "writer")
        return None

    def get_serializer_class(self):
        if self.action == "list":
            return LetterListSerializer
        if self.action == "create":
            return LetterSubmitSerializer
        return LetterSerializer

    def get_serializer_context(self):
        scope = scope_of(self.request.user)
        return {
            **super().get_serializer_context(),
            "now": timezone.now(),
            "staff_view": scope.is_staff_member,
            "resident_ids": scope.resident_ids,
        }

    @extend_schema(request=LetterSubmitSerializer, responses={201: LetterSerializer, 200: LetterSerializer})
    def create(self, request, *args, **kwargs):
        serializer = LetterSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        letter, created = services.letter_submit(by=request.user, **serializer.validated_data)
        data = LetterSerializer(self.get_queryset().get(pk=letter.pk), context=self.get_serializer_context()).data
        return Response(data, status=201 if created else 200)

    @extend_schema(responses=LetterEventSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, pk=None):
        """The letter's full log, oldest first."""
        letter = self.get_object()
        events = letter.events.select_related("actor").order_by("created_at", "id")
        return Response(LetterEventSerializer(events, many=True).data)

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"], url_path=r"attachments/(?P<attachment_pk>[0-9]+)")
    def attachment(self, request, pk=None, attachment_pk=None):
        """One attachment (only to those who can see the letter)."""
        return attachment_response(self.get_object(), attachment_pk)

    @extend_schema(
        responses=inline_serializer(
            "LetterRedaction",
            {
                "writer": serializers.CharField(),
                "public_subject": serializers.CharField(),
                "public_body": serializers.CharField(),
                "public_reply": serializers.CharField(),
                "removed": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    @action(detail=True, methods=["get"])
    def redaction(self, request, pk=None):
        """What publishing would show and what the redaction removed, for the secretary to review."""
        letter = self.get_object()
        if not selectors.is_secretary(scope_of(request.user), letter):
            raise NotAllowed(gettext_lazy("只有收信单位的书记可以审阅公开内容。"))
        return Response(services.redaction_preview(letter))

    @extend_schema(
        parameters=[OpenApiParameter("unit", int), OpenApiParameter("month", str, description="YYYY-MM")],
        responses=inline_serializer("LetterStats", {"summary": serializers.DictField()}),
    )
    @action(detail=False, methods=["get"])
    def stats(self, request):
        """Statistics of the letters to a street or community (and the units under it) written in a month."""
        month = stats.parse_month(request.query_params.get("month"))
        unit = stats.stats_unit_for(request.user, parse_id(request.query_params.get("unit"), field="unit"))
        return Response(stats.letter_stats(unit=unit, month=month))

    def may_take(self, user, letter, step) -> bool:
        return selectors.may(user, letter, step)

    def step_response(self, request, letter):
        return Response(LetterSerializer(letter, context=self.get_serializer_context()).data)


add_transition_routes(LetterViewSet, operation_prefix="letters", response_serializer=LetterSerializer)


def attachment_response(letter, attachment_pk):
    attachment = letter.attachments.filter(pk=attachment_pk).first()
    if attachment is None:
        raise Http404
    # A PDF is downloaded, never shown inside the app's origin; photos inline (governance.uploads.serve_file).
    return serve_file(attachment.file, pdf_name=attachment.name if attachment.kind == AttachmentKind.PDF else None)


# --- The public letters -----------------------------------------------------------------------------------


class PublicLetterSerializer(serializers.ModelSerializer):
    """A published letter: the redacted copy only, the writer's name masked, no attachment, no contact."""

    subject = serializers.CharField(source="public_subject")
    body = serializers.CharField(source="public_body")
    reply = serializers.CharField(source="public_reply")
    follow_up_question = serializers.CharField(source="public_follow_up")
    follow_up_reply = serializers.CharField(source="public_follow_up_reply")
    writer = serializers.SerializerMethodField()
    unit = RefSerializer()
    category = RefSerializer()
    channel_display = DisplayField("channel")

    class Meta:
        model = Letter
        fields = [
            "id",
            "number",
            "subject",
            "body",
            "writer",
            "unit",
            "category",
            "channel",
            "channel_display",
            "created_at",
            "reply",
            "replied_at",
            "follow_up_question",
            "follow_up_reply",
            "rating",
            "published_at",
        ]

    def get_writer(self, letter) -> str:
        return mask_name(letter.writer.name)


class PublicUnitFilter(django_filters.ModelChoiceFilter):
    """`unit=<id>`: the letters to that unit and the units under it (every unit's name is public)."""

    def filter(self, qs, value):
        return qs.filter(unit__path__startswith=value.path) if value else qs


class PublicLetterFilter(FilterSet):
    unit = PublicUnitFilter(queryset=Unit.objects.all())
    category = django_filters.ModelChoiceFilter(queryset=LetterCategory.objects.all())
    channel = django_filters.ChoiceFilter(choices=Channel.choices)

    class Meta:
        model = Letter
        fields = []


class PublicLetterViewSet(viewsets.ReadOnlyModelViewSet):
    """Published letters, readable without logging in: redacted, the writer's name masked. A letter the writer
    kept private is never among them."""

    serializer_class = PublicLetterSerializer
    filterset_class = PublicLetterFilter
    permission_classes = [permissions.AllowAny]
    authentication_classes = []

    def get_queryset(self):
        return selectors.public_letters().select_related("writer", "unit", "category").order_by("-published_at", "-id")

    def list(self, request, *args, **kwargs):
        """The same page for everyone, so it is kept in the cache: until any letter changes (its log gains an
        event, or it is saved) and at most PUBLIC_LETTERS_CACHE_SECONDS (a unit or category renamed)."""
        key = selectors.public_letters_cache_key(request)
        data = cache.get(key)
        if data is None:
            data = super().list(request, *args, **kwargs).data
            cache.set(key, data, settings.PUBLIC_LETTERS_CACHE_SECONDS)
        return Response(data)
