"""REST API of cases: the catalogue, cases with their event log and photos, every workflow step, the KPIs.

Every queryset starts from `selectors.cases_visible_to(user)` (outside it: 404). Each step is
`POST /api/v1/cases/{id}/<action>/` with a note and the action's own fields; the service decides (403 for the
wrong role, 409 for the wrong state, 400 for bad input).
"""

import django_filters
import django_filters.rest_framework
from django.db.models import Exists, OuterRef, Q
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, parsers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from governance import catalogues
from governance.api import UnitSubtreeFilter
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
from governance.models import Department, Resident, Unit
from governance.selectors import scope_of
from governance.uploads import serve_file
from governance.validators import MAX_ID, parse_id

from . import selectors, services
from .models import OPEN_STATES, Case, CaseCategory, CaseDispatch, CaseEvent, CasePhoto, CaseState, ClosedReason

# --- Catalogue ------------------------------------------------------------------------------------------


class CaseCategorySerializer(serializers.ModelSerializer):
    group = serializers.CharField(source="parent.name", default=None, read_only=True, allow_null=True)
    default_department = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = CaseCategory
        fields = [
            "id",
            "code",
            "name",
            "parent",
            "group",
            "sign_limit_hours",
            "handle_limit_days",
            "whistle_allowed",
            "on_site_allowed",
            "is_public",
            "default_department",
            "active",
        ]

    def to_representation(self, category):
        """Written directly, from a model object or a light row of `CATEGORY_COLUMNS`: what the declared fields
        give (the tests compare the two), without building them for each of the catalogue's rows."""
        return {
            "id": category.id,
            "code": category.code,
            "name": category.name,
            "parent": category.parent_id,
            "group": category.parent.name if category.parent_id else None,
            "sign_limit_hours": category.sign_limit_hours,
            "handle_limit_days": category.handle_limit_days,
            "whistle_allowed": category.whistle_allowed,
            "on_site_allowed": category.on_site_allowed,
            "is_public": category.is_public,
            "default_department": category.default_department_id,
            "active": category.active,
        }


CATEGORY_COLUMNS = [
    "id",
    "code",
    "name",
    "parent_id",
    "parent__name",
    "sign_limit_hours",
    "handle_limit_days",
    "whistle_allowed",
    "on_site_allowed",
    "is_public",
    "default_department_id",
    "active",
]


class CaseCategoryViewSet(LightListMixin, viewsets.ReadOnlyModelViewSet):
    """The two-level catalogue (edited in the admin). Leaves (with a `parent`) are what cases are filed under."""

    serializer_class = CaseCategorySerializer
    filterset_fields = ["parent", "active", "whistle_allowed"]
    list_columns = CATEGORY_COLUMNS
    pagination_class = None

    def get_queryset(self):
        return (
            selectors.categories_visible_to(self.request.user)
            .select_related("parent")
            .order_by("parent__order", "parent_id", "order", "code")
        )


# --- Cases ----------------------------------------------------------------------------------------------


class RefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class HolderSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["unit", "department"])
    id = serializers.IntegerField()
    name = serializers.CharField()


class PhotoSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = CasePhoto
        fields = ["id", "url", "event", "created_at"]

    def get_url(self, photo) -> str:
        return f"/api/v1/cases/{photo.case_id}/photos/{photo.pk}/"


class CaseListSerializer(RowWriter, serializers.ModelSerializer):
    """A case as lists show it. Lists read it with `LIST_COLUMNS` only (the grid and holder unit joined, the
    category and department named from `governance.catalogues`), and `to_representation` writes the row
    directly: what the declared fields give (the tests compare the two), at a fifth of DRF's cost (20 rows:
    0.6 ms instead of 3 ms)."""

    category = serializers.SerializerMethodField()
    grid = RefSerializer()
    state_display = DisplayField("state")
    urgency_display = DisplayField("urgency")
    source_display = DisplayField("source")
    closed_reason_display = DisplayField("closed_reason")
    holder = serializers.SerializerMethodField()
    is_overdue = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "number",
            "title",
            "category",
            "grid",
            "address",
            "urgency",
            "urgency_display",
            "source",
            "source_display",
            "state",
            "state_display",
            "closed_reason",
            "closed_reason_display",
            "holder",
            "created_at",
            "sign_deadline",
            "handle_deadline",
            "is_overdue",
            "support_count",
            "rating",
        ]

    def get_category(self, case) -> dict:
        return catalogues.row(CaseCategory, case.category_id)

    def get_holder(self, case) -> dict | None:
        if case.holder_department_id:
            department = catalogues.row(Department, case.holder_department_id)
            return {"kind": "department", "id": case.holder_department_id, "name": department["name"]}
        if case.holder_unit_id:
            return {"kind": "unit", "id": case.holder_unit_id, "name": case.holder_unit.name}
        return None

    def get_is_overdue(self, case) -> bool:
        return selectors.is_overdue_now(case, self.context.get("now"))

    label_fields = ("state", "urgency", "source", "closed_reason")

    def to_representation(self, case):
        labels = self.labels
        return {
            "id": case.pk,
            "number": case.number,
            "title": case.title,
            "category": self.get_category(case),
            "grid": {"id": case.grid_id, "name": case.grid.name},
            "address": case.address,
            "urgency": case.urgency,
            "urgency_display": labels["urgency"].get(case.urgency, case.urgency),
            "source": case.source,
            "source_display": labels["source"].get(case.source, case.source),
            "state": case.state,
            "state_display": labels["state"].get(case.state, case.state),
            "closed_reason": case.closed_reason,
            "closed_reason_display": labels["closed_reason"].get(case.closed_reason, case.closed_reason),
            "holder": self.get_holder(case),
            "created_at": self.datetime(case.created_at),
            "sign_deadline": self.datetime(case.sign_deadline),
            "handle_deadline": self.datetime(case.handle_deadline),
            "is_overdue": self.get_is_overdue(case),
            "support_count": case.support_count,
            "rating": case.rating,
        }


# What a list reads of each case (and of its grid and holder unit): the list serializer's fields and no more.
# The list reads them as values (`LightListMixin`), `similar` as model objects (`only`).
LIST_COLUMNS = [
    "id",
    "number",
    "title",
    "category_id",
    "grid_id",
    "grid__name",
    "address",
    "urgency",
    "source",
    "state",
    "closed_reason",
    "holder_unit_id",
    "holder_unit__name",
    "holder_department_id",
    "created_at",
    "sign_deadline",
    "handle_deadline",
    "support_count",
    "rating",
]


class DispatchSerializer(serializers.ModelSerializer):
    department = RefSerializer()

    class Meta:
        model = CaseDispatch
        fields = [
            "id",
            "department",
            "is_lead",
            "dispatched_at",
            "sign_deadline",
            "signed_at",
            "sign_overdue",
            "sent_back_at",
            "send_back_reason",
            "street_rating",
            "street_rating_comment",
        ]


class CaseSerializer(CaseListSerializer):
    building = RefSerializer(allow_null=True)
    reporter = serializers.SerializerMethodField()
    affected_resident = serializers.SerializerMethodField()
    duplicate_of = serializers.CharField(source="duplicate_of.number", default=None, allow_null=True)
    photos = PhotoSerializer(many=True)
    dispatches = DispatchSerializer(many=True)
    letter = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    class Meta(CaseListSerializer.Meta):
        fields = CaseListSerializer.Meta.fields + [
            "description",
            "building",
            "latitude",
            "longitude",
            "reporter",
            "affected_resident",
            "duplicate_of",
            "accepted_at",
            "dispatched_at",
            "signed_at",
            "handled_at",
            "verified_at",
            "closed_at",
            "sign_overdue",
            "handle_overdue",
            "handled_on_time",
            "extension_requested_until",
            "extension_reason",
            "rework_count",
            "reopen_count",
            "send_back_count",
            "rating_comment",
            "rated_at",
            "photos",
            "dispatches",
            "letter",
            "actions",
        ]

    def to_representation(self, case):
        # The detail goes field by field (the list's shortcut writes the list's fields only).
        return serializers.ModelSerializer.to_representation(self, case)

    def get_letter(self, case) -> dict | None:
        """The secretary-mailbox letter this case was turned from, if any (the link both ways)."""
        letter = getattr(case, "letter", None)
        return {"id": letter.pk, "number": letter.number} if letter is not None else None

    def get_reporter(self, case) -> dict:
        return {"id": case.reporter_id, "name": case.reporter.display_name}

    def get_affected_resident(self, case) -> dict | None:
        request = self.context.get("request")
        if not case.affected_resident_id or not (request and selectors.may_see_affected_resident(request.user, case)):
            return None
        return {"id": case.affected_resident_id, "name": case.affected_resident.name}

    def get_actions(self, case) -> list[str]:
        """The steps the caller may take on the case now."""
        request = self.context.get("request")
        return selectors.actions_for(request.user, case) if request else []


class PhotosField(serializers.ListField):
    child = serializers.ImageField()


class CaseFileSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000)
    category = serializers.PrimaryKeyRelatedField(queryset=CaseCategory.objects.all())
    grid = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.all(), required=False, allow_null=True)
    building = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.all(), required=False, allow_null=True)
    address = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    latitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True, min_value=-90, max_value=90
    )
    longitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True, min_value=-180, max_value=180
    )
    urgency = serializers.ChoiceField(choices=Case._meta.get_field("urgency").choices, required=False)
    source = serializers.ChoiceField(choices=Case._meta.get_field("source").choices, required=False)
    affected_resident = serializers.PrimaryKeyRelatedField(
        queryset=Resident.objects.select_related("household__building"), required=False, allow_null=True
    )
    photos = PhotosField(required=False, default=list)
    resolved_on_site = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text=gettext_lazy("已现场处置时填写处置情况：事件上报即办结（须有照片、分类允许现场处置）。"),
    )


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class NotePhotosSerializer(NoteSerializer):
    photos = PhotosField(required=False, default=list)


class CloseSerializer(NoteSerializer):
    reason = serializers.ChoiceField(choices=[ClosedReason.INVALID, ClosedReason.DUPLICATE])
    duplicate_of = serializers.CharField(required=False, allow_blank=True, help_text=gettext_lazy("原事件编号或 id"))


class ResubmitSerializer(NotePhotosSerializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class DispatchInputSerializer(NoteSerializer):
    department = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all())
    assisting = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all(), many=True, required=False)


class ExtensionRequestSerializer(NoteSerializer):
    until = DeadlineField()


class ExtensionDecisionSerializer(NoteSerializer):
    approve = serializers.BooleanField()
    until = DeadlineField(required=False, allow_null=True)


class VerifySerializer(NotePhotosSerializer):
    confirmed = serializers.BooleanField()


class RateSerializer(NoteSerializer):
    stars = serializers.IntegerField(min_value=1, max_value=5)


class ReviewSerializer(RateSerializer):
    department = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all())


class EmptySerializer(serializers.Serializer):
    pass


class EventSerializer(WorkflowEventSerializer):
    flow = services.CASE_FLOW
    photos = PhotoSerializer(many=True)

    class Meta(WorkflowEventSerializer.Meta):
        model = CaseEvent
        fields = WorkflowEventSerializer.Meta.fields + ["photos"]


class GridSubtreeFilter(UnitSubtreeFilter):
    """`unit=<id>` for cases: the cases of the grids in that subtree (of a building: filed at it), by the unit
    column of the case at its level (`selectors.in_unit`). When the caller's scope is that very subtree (staff
    listing their own street, community or grid), the condition is the scope's already and is not repeated
    (`selectors.is_exactly_the_subtree`)."""

    def filter(self, qs, value):
        if not value:
            return qs
        request = self.parent.request if self.parent is not None else None
        if request is not None and selectors.is_exactly_the_subtree(scope_of(request.user), value.path):
            return qs
        return qs.filter(selectors.in_unit(len(value.path) // Unit.steplen, value.pk))


class CaseFilter(FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=CaseState.choices, label=gettext_lazy("状态"))
    category = django_filters.NumberFilter(method="filter_category", label=gettext_lazy("分类（含下级）"))
    unit = GridSubtreeFilter(lookup="grid__path")
    department = django_filters.NumberFilter(method="filter_department", label=gettext_lazy("派往的部门"))
    overdue = django_filters.rest_framework.BooleanFilter(method="filter_overdue", label=gettext_lazy("当前超期"))
    created_after = django_filters.DateFilter(method="filter_created_after", label=gettext_lazy("上报日期起"))
    created_before = django_filters.DateFilter(method="filter_created_before", label=gettext_lazy("上报日期止"))
    mine = django_filters.rest_framework.BooleanFilter(method="filter_mine", label=gettext_lazy("我上报的或我方承办的"))
    open = django_filters.rest_framework.BooleanFilter(
        method="filter_open", label=gettext_lazy("未办结（不含待核查、待评价的）")
    )
    q = django_filters.CharFilter(method="filter_q", label=gettext_lazy("编号或标题"))

    clock_filters = ("overdue",)  # their SQL holds the moment of the request (`governance.api_base.ListPlan`)

    class Meta:
        model = Case
        fields = []

    def filter_category(self, qs, name, value):
        return qs.filter(Q(category_id=value) | Q(category__parent_id=value))

    def filter_department(self, qs, name, value):
        return qs.filter(Exists(CaseDispatch.objects.filter(case=OuterRef("pk"), department_id=value)))

    def filter_open(self, qs, name, value):
        return qs.filter(state__in=OPEN_STATES) if value else qs.exclude(state__in=OPEN_STATES)

    def filter_overdue(self, qs, name, value):
        now = timezone.now()
        late = Q(state=CaseState.DISPATCHED, sign_deadline__lt=now) | Q(state__in=OPEN_STATES, handle_deadline__lt=now)
        return qs.filter(late) if value else qs.exclude(late)

    def _local_day_start(self, day):
        return timezone.make_aware(timezone.datetime.combine(day, timezone.datetime.min.time()))

    def filter_created_after(self, qs, name, value):
        return qs.filter(created_at__gte=self._local_day_start(value))

    def filter_created_before(self, qs, name, value):
        return qs.filter(created_at__lt=self._local_day_start(value + timezone.timedelta(days=1)))

    def filter_mine(self, qs, name, value):
        if not value:
            return qs
        user = self.request.user
        scope = scope_of(user)
        q = (
            Q(reporter=user)
            | Q(holder_department_id__in=scope.department_ids)
            | Q(affected_resident_id__in=scope.resident_ids)
        )
        if scope.paths():
            q |= Q(holder_unit__path__in=scope.paths())
        return qs.filter(q)

    def filter_q(self, qs, name, value):
        return qs.filter(Q(number__icontains=value) | Q(title__icontains=value))


# Each step: the input serializer, and how to call its service with the validated data.
def _duplicate(request, value):
    if not value:
        return None
    visible = selectors.cases_visible_to(request.user)
    found = visible.filter(number=value).first()
    if found is None and value.isascii() and value.isdigit() and int(value) <= MAX_ID:
        found = visible.filter(pk=int(value)).first()
    if found is None:
        from governance.errors import InvalidInput

        raise InvalidInput(gettext_lazy("所指的原事件不存在。"), field="duplicate_of")
    return found


TRANSITIONS = {
    "resolve-on-site": (NotePhotosSerializer, services.case_resolve_on_site, None),
    "accept": (NoteSerializer, services.case_accept, None),
    "return": (NoteSerializer, services.case_return, None),
    "resubmit": (ResubmitSerializer, services.case_resubmit, None),
    "close": (
        CloseSerializer,
        services.case_close,
        lambda request, data: {**data, "duplicate_of": _duplicate(request, data.get("duplicate_of"))},
    ),
    "escalate": (NoteSerializer, services.case_escalate, None),
    "dispatch": (DispatchInputSerializer, services.case_dispatch, None),
    "sign": (NoteSerializer, services.case_sign, None),
    "send-back": (NoteSerializer, services.case_send_back, None),
    "request-extension": (ExtensionRequestSerializer, services.case_request_extension, None),
    "decide-extension": (ExtensionDecisionSerializer, services.case_decide_extension, None),
    "handle": (NotePhotosSerializer, services.case_handle, None),
    "verify": (VerifySerializer, services.case_verify, None),
    "rate": (RateSerializer, services.case_rate, None),
    "reopen": (NoteSerializer, services.case_reopen, None),
    "review-department": (ReviewSerializer, services.case_review_department, None),
    "comment": (NotePhotosSerializer, services.case_comment, None),
    "support": (EmptySerializer, services.case_support, None),
}


class CaseViewSet(
    ScopedMixin,
    TransitionsMixin,
    LightListMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Grid cases. Filing: grid workers in their grid, community staff in their community. The response to a
    filing lists `possible_duplicates`: open cases of the same category in the same grid from the last 30 days."""

    filterset_class = CaseFilter
    list_columns = LIST_COLUMNS
    flow = services.CASE_FLOW
    transitions = TRANSITIONS
    object_kwarg = "case"
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]

    def get_queryset(self):
        qs = selectors.cases_visible_to(self.request.user).select_related("grid", "holder_unit")
        if self.action in ("list", "similar"):
            qs = qs.only(*LIST_COLUMNS)
        else:
            # The building joined, the rest read by id: with all of them joined PostgreSQL spent 13 ms planning
            # the nine tables of a query it runs in 0.6 ms (each read by id: 0.1 ms).
            qs = qs.select_related("building").prefetch_related(
                "reporter", "affected_resident", "duplicate_of", "letter", "photos", "dispatches__department"
            )
        return qs.order_by("-created_at", "-id")

    def get_serializer_class(self):
        if self.action == "list":
            return CaseListSerializer
        if self.action == "create":
            return CaseFileSerializer
        return CaseSerializer

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(request=CaseFileSerializer, responses={201: CaseSerializer})
    def create(self, request, *args, **kwargs):
        serializer = CaseFileSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        case = services.case_file(by=request.user, **serializer.validated_data)
        duplicates = [
            c for c in selectors.possible_duplicates(grid=case.grid, category=case.category) if c.pk != case.pk
        ]
        data = CaseSerializer(self.get_queryset().get(pk=case.pk), context=self.get_serializer_context()).data
        data["possible_duplicates"] = [{"id": c.pk, "number": c.number, "title": c.title} for c in duplicates]
        return Response(data, status=201)

    @extend_schema(
        parameters=[OpenApiParameter("grid", int, required=True), OpenApiParameter("category", int, required=True)],
        responses=CaseListSerializer(many=True),
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def similar(self, request):
        """Possible duplicates to show before filing: open cases of the category in the grid, last 30 days."""
        grid = _int_param(request, "grid")
        category = _int_param(request, "category")
        found = Case.objects.none()
        if grid and category:
            candidates = selectors.possible_duplicates(grid=Unit(pk=grid), category=CaseCategory(pk=category))
            found = self.get_queryset().filter(pk__in=[c.pk for c in candidates])
        return Response(CaseListSerializer(found, many=True, context=self.get_serializer_context()).data)

    @extend_schema(responses=EventSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, pk=None):
        """The case's full event log, oldest first."""
        case = self.get_object()
        events = list(case.events.select_related("actor").prefetch_related("photos").order_by("created_at", "id"))
        named = selectors.names_shown_to(request.user, {e.actor_id for e in events if e.actor_id})
        return Response(EventSerializer(events, many=True, context={"named": named}).data)

    @extend_schema(responses={(200, "image/*"): bytes})
    @action(detail=True, methods=["get"], url_path=r"photos/(?P<photo_pk>[0-9]+)")
    def photo(self, request, pk=None, photo_pk=None):
        """One photo of the case (only to those who can see the case)."""
        case = self.get_object()
        photo = case.photos.filter(pk=photo_pk).first()
        if photo is None:
            raise Http404
        return serve_file(photo.image)

    @extend_schema(
        parameters=[OpenApiParameter("unit", int), OpenApiParameter("month", str, description="YYYY-MM")],
        responses=inline_serializer(
            "CaseKpis",
            {
                "unit": serializers.DictField(allow_null=True),
                "month": serializers.CharField(),
                # Absent for department staff, who see their departments' rows and the ranking only.
                "summary": serializers.DictField(required=False),
                "by_unit": serializers.ListField(child=serializers.DictField(), required=False),
                "by_department": serializers.ListField(child=serializers.DictField()),
                "ranking": serializers.DictField(),
            },
        ),
    )
    @action(detail=False, methods=["get"])
    def stats(self, request):
        """KPIs of a subtree for a month: per child unit and per department, and the monthly rankings. Department
        staff get their own departments' rows and the departments' ranking."""
        from . import stats

        month = stats.parse_month(request.query_params.get("month"))
        if stats.is_department_only(request.user):
            return Response(stats.department_kpis(request.user, month))
        unit = stats.kpi_unit_for(request.user, _int_param(request, "unit"))
        return Response(stats.case_kpis(unit=unit, month=month))

    def may_take(self, user, case, step) -> bool:
        return selectors.may(user, case, step)

    def step_response(self, request, case):
        return Response(CaseSerializer(case, context=self.get_serializer_context()).data)


def _int_param(request, name):
    return parse_id(request.query_params.get(name), field=name)


add_transition_routes(CaseViewSet, operation_prefix="cases", response_serializer=CaseSerializer)
