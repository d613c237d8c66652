"""REST API of the hierarchy: auth, me, units, party organisations, households, residents, departments."""

from types import SimpleNamespace

import django_filters
import django_filters.rest_framework
from django.db.models import CharField, Count, Expression, Q
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from . import privacy, security, selectors, services
from .api_base import DisplayField, FilterSet, LightListMixin, ScopedMixin, iso_date
from .errors import InvalidInput, NotAllowed, RateLimited
from .masking import mask_id_number, mask_phone
from .models import (
    DEPTH_LEVEL,
    Department,
    Gender,
    GridKind,
    Household,
    Level,
    Notification,
    PartyOrg,
    Position,
    Resident,
    ResidentTag,
    Unit,
    User,
)

# --- Auth and me ----------------------------------------------------------------------------------------


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    otp_token = serializers.CharField(required=False, help_text="两步验证的 6 位数字（开启了两步验证的账号）")


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token (`Authorization: Token <token>`). A user who signs in
    with two-factor also sends `otp_token`, the six digits of the authenticator; an administrator without an
    authenticator turns it on in the browser first. Too many failures lock the username (429)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(request=TokenRequestSerializer, responses=TokenResponseSerializer)
    def post(self, request, *args, **kwargs):
        username = request.data.get("username") if hasattr(request.data, "get") else None
        minutes = security.locked_minutes(username, security.client_ip(request))
        if minutes:
            raise RateLimited(security.locked_message(minutes))
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        device = security.confirmed_device(user)
        if device is not None:
            code = str(request.data.get("otp_token") or "").strip()
            if not code:
                raise InvalidInput(_("该账号已开启两步验证，请同时提供验证器中的 6 位数字。"), field="otp_token")
            if not device.verify_token(code):
                security.count_failure(username, request)
                raise InvalidInput(_("验证码不对或已过期，请看验证器上最新的数字。"), field="otp_token")
        elif security.must_have_two_factor(user):
            raise NotAllowed(_("管理员账号须先在网页上开启两步验证，才能取得 API 令牌。"))
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class PlaceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class UnitRefSerializer(PlaceSerializer):
    level = serializers.CharField()
    code = serializers.CharField()


class PositionSerializer(serializers.ModelSerializer):
    role_display = DisplayField("role")
    unit = UnitRefSerializer(allow_null=True)
    department = PlaceSerializer(allow_null=True)
    resident = PlaceSerializer(allow_null=True)

    class Meta:
        model = Position
        fields = ["role", "role_display", "unit", "department", "resident", "grid_worker_kind"]


class MeSerializer(serializers.ModelSerializer):
    display_name = serializers.CharField()
    roles = PositionSerializer(many=True, source="positions_list")
    is_admin = serializers.BooleanField()

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "is_admin", "roles"]


class MeView(APIView):
    """The caller, their roles, and the unit, department or resident record each role is held at."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        user = request.user
        user.positions_list = selectors.roles_of(user)
        user.is_admin = selectors.scope_of(user).is_admin
        return Response(MeSerializer(user).data)


# --- Units ----------------------------------------------------------------------------------------------


def _visible_units(request):
    return selectors.units_visible_to(request.user) if request else Unit.objects.none()


def is_small_id(value: str) -> bool:
    """ASCII digits that fit a database id (Python refuses to read an int of more than 4,300 digits)."""
    return value.isascii() and value.isdigit() and len(value) <= 18


class _UnitChoiceField(django_filters.fields.ModelChoiceField):
    """A unit by id, found among `known` (id -> path) without a query, or else looked up in the queryset."""

    known: dict = {}

    def to_python(self, value):
        if isinstance(value, str) and is_small_id(value) and int(value) in self.known:
            path = self.known[int(value)]
            depth = len(path) // selectors.STEP
            return Unit(pk=int(value), path=path, depth=depth, level=DEPTH_LEVEL[depth])
        return super().to_python(value)


@extend_schema_field(OpenApiTypes.INT)
class UnitSubtreeFilter(django_filters.ModelChoiceFilter):
    """`unit=<id>`: that unit and everything under it. A unit the caller cannot see is a 400. The units the
    caller's own positions are held at are known from the scope: the staff naming their own street, community
    or grid (the lists' most frequent query) cost no query for it; the filter reads the unit's id, path and
    level only."""

    field_class = _UnitChoiceField

    def __init__(self, *, lookup="path", **kwargs):
        self.path_lookup = lookup
        kwargs.setdefault("label", gettext_lazy("单元及其下级"))
        super().__init__(queryset=_visible_units, **kwargs)

    @property
    def field(self):
        field = super().field
        request = self.get_request()
        field.known = selectors.scope_of(request.user).own_units if request is not None else {}
        return field

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{f"{self.path_lookup}__startswith": value.path})


@extend_schema_field(OpenApiTypes.INT)
class UnitChildrenFilter(django_filters.ModelChoiceFilter):
    """`parent=<id>`: the direct children of that unit."""

    def __init__(self, **kwargs):
        super().__init__(queryset=_visible_units, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(path__startswith=value.path, depth=value.depth + 1)


class UnitFilter(FilterSet):
    level = django_filters.ChoiceFilter(choices=Level.choices, label=gettext_lazy("层级"))
    parent = UnitChildrenFilter(label=gettext_lazy("上级"))
    unit = UnitSubtreeFilter()
    q = django_filters.CharFilter(method="filter_q", label=gettext_lazy("名称或编码"))

    class Meta:
        model = Unit
        fields = []

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(code__iexact=value) | Q(compound_name__icontains=value))


class UnitSerializer(serializers.ModelSerializer):
    level = serializers.ChoiceField(choices=Level.choices, required=False)
    level_display = DisplayField("level")
    parent = serializers.PrimaryKeyRelatedField(
        queryset=Unit.objects.none(), required=False, allow_null=True, help_text=gettext_lazy("上级单元；街道不填")
    )
    grid_kind = serializers.ChoiceField(choices=GridKind.choices, required=False, allow_blank=True)
    children_count = serializers.IntegerField(source="numchild", read_only=True)

    class Meta:
        model = Unit
        fields = [
            "id",
            "name",
            "code",
            "level",
            "level_display",
            "parent",
            "grid_kind",
            "compound_name",
            "target_households",
            "address",
            "children_count",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["parent"].queryset = selectors.units_visible_to(request.user)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        parent_ids = self.context.get("parent_ids", {})
        data["parent"] = parent_ids.get(instance.path[: -Unit.steplen]) if instance.depth > 1 else None
        return data


class UnitUpdateSerializer(UnitSerializer):
    class Meta(UnitSerializer.Meta):
        read_only_fields = ["created_at", "level", "parent"]


class MoveSerializer(serializers.Serializer):
    parent = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.none(), help_text=gettext_lazy("新的上级单元"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["parent"].queryset = selectors.units_visible_to(request.user)


class UnitStatsSerializer(serializers.Serializer):
    communities = serializers.IntegerField()
    grids = serializers.IntegerField()
    buildings = serializers.IntegerField()
    households = serializers.IntegerField()
    residents = serializers.IntegerField()
    party_members = serializers.IntegerField()
    grid_workers = serializers.IntegerField()


def _parent_ids(units):
    paths = {u.path[: -Unit.steplen] for u in units if u.depth > 1}
    return dict(Unit.objects.filter(path__in=paths).values_list("path", "id")) if paths else {}


class UnitViewSet(ScopedMixin, viewsets.ModelViewSet):
    """The tree of streets, communities, grids and buildings. Reading follows the caller's scope; only
    administrators change the tree."""

    filterset_class = UnitFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    write_actions = ("create", "update", "partial_update", "destroy", "move")

    def get_queryset(self):
        return selectors.units_visible_to(self.request.user).order_by("path")

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return UnitUpdateSerializer
        if self.action == "move":
            return MoveSerializer
        return UnitSerializer

    def write_check(self, user):
        selectors.check_can_edit_hierarchy(user)

    def _respond(self, units, many=False):
        context = {**self.get_serializer_context(), "parent_ids": _parent_ids(units if many else [units])}
        return UnitSerializer(units, many=many, context=context).data

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self._respond(page, many=True))

    def retrieve(self, request, *args, **kwargs):
        return Response(self._respond(self.get_object()))

    def create(self, request, *args, **kwargs):
        serializer = UnitSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        unit = services.unit_create(by=request.user, **data)
        return Response(self._respond(unit), status=201)

    def update(self, request, *args, **kwargs):
        unit = self.get_object()
        serializer = UnitUpdateSerializer(unit, data=request.data, partial=True, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        unit = services.unit_update(by=request.user, unit=unit, **serializer.validated_data)
        return Response(self._respond(unit))

    def destroy(self, request, *args, **kwargs):
        services.unit_delete(by=request.user, unit=self.get_object())
        return Response(status=204)

    @extend_schema(request=MoveSerializer, responses=UnitSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Move the unit and its subtree under another unit of the level above."""
        unit = self.get_object()
        serializer = MoveSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        unit = services.unit_move(by=request.user, unit=unit, parent=serializer.validated_data["parent"])
        return Response(self._respond(unit))

    @extend_schema(responses=UnitSerializer(many=True))
    @action(detail=True, methods=["get"])
    def children(self, request, pk=None):
        """The unit's direct children that the caller may see."""
        unit = self.get_object()
        children = self.get_queryset().filter(path__startswith=unit.path, depth=unit.depth + 1)
        page = self.paginate_queryset(children)
        context = {**self.get_serializer_context(), "parent_ids": {unit.path: unit.id}}
        return self.get_paginated_response(UnitSerializer(page, many=True, context=context).data)

    @extend_schema(responses=UnitStatsSerializer)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """Counts for the unit's whole subtree, in a constant number of queries."""
        unit = self.get_object()
        selectors.check_can_see_figures(request.user, unit)
        return Response({"unit": unit.id, **selectors.unit_stats(unit)})


# --- Party organisations --------------------------------------------------------------------------------


class PartyOrgSerializer(serializers.ModelSerializer):
    unit_name = serializers.CharField(source="unit.name", read_only=True)
    kind_display = DisplayField("kind")
    secretary = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )

    class Meta:
        model = PartyOrg
        fields = ["id", "unit", "unit_name", "name", "kind", "kind_display", "founded_on", "secretary"]
        read_only_fields = ["unit", "kind"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        secretary = self.context.get("secretaries", {}).get(instance.unit_id)
        data["secretary"] = secretary.id if secretary else None
        data["secretary_name"] = secretary.display_name if secretary else None
        return data


class PartyOrgFilter(FilterSet):
    unit = UnitSubtreeFilter(lookup="unit__path")
    kind = django_filters.CharFilter()

    class Meta:
        model = PartyOrg
        fields = []


class PartyOrgViewSet(
    ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """Party organisations, one per unit. Administrators rename them and appoint secretaries."""

    serializer_class = PartyOrgSerializer
    filterset_class = PartyOrgFilter
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.party_orgs_visible_to(self.request.user).select_related("unit").order_by("unit__path")

    def write_check(self, user):
        selectors.check_can_edit_hierarchy(user)

    def _data(self, orgs, many=False):
        context = {
            **self.get_serializer_context(),
            "secretaries": services.party_org_secretaries(orgs if many else [orgs]),
        }
        return PartyOrgSerializer(orgs, many=many, context=context).data

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self._data(page, many=True))

    def retrieve(self, request, *args, **kwargs):
        return Response(self._data(self.get_object()))

    def update(self, request, *args, **kwargs):
        org = self.get_object()
        serializer = PartyOrgSerializer(org, data=request.data, partial=True, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        services.party_org_update(by=request.user, org=org, **serializer.validated_data)
        return Response(self._data(org))


# --- Households and residents ---------------------------------------------------------------------------


class HouseholdSerializer(serializers.ModelSerializer):
    building = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.none())
    building_name = serializers.CharField(source="building.name", read_only=True)
    resident_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Household
        fields = ["id", "building", "building_name", "room", "is_party_central", "resident_count"]
        validators = []  # the service checks the room, and names the field

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["building"].queryset = selectors.units_visible_to(request.user).filter(level=Level.BUILDING)


class HouseholdFilter(FilterSet):
    unit = UnitSubtreeFilter(lookup="building__path")
    room = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Household
        fields = ["is_party_central"]


class HouseholdViewSet(
    ScopedMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Households under buildings. Community staff and grid workers keep them for their area."""

    serializer_class = HouseholdSerializer
    filterset_class = HouseholdFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return (
            selectors.households_visible_to(self.request.user)
            .select_related("building")
            .annotate(resident_count=Count("residents", filter=Q(residents__moved_out_on=None)))
            .order_by("building__path", "room")
        )

    def write_check(self, user):
        if self.action == "create" and not selectors.can_keep_any_records(user):
            raise NotAllowed()

    def object_write_check(self, user, obj):
        selectors.check_can_keep_records(user, obj.building.path)

    def perform_create(self, serializer):
        serializer.instance = services.household_create(by=self.request.user, **serializer.validated_data)
        serializer.instance.resident_count = 0

    def perform_update(self, serializer):
        services.household_update(by=self.request.user, household=serializer.instance, **serializer.validated_data)


class TagField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        super().__init__(slug_field="code", queryset=ResidentTag.objects.all(), many=False, **kwargs)


class ResidentSerializer(serializers.ModelSerializer):
    """ID number and phone are whole only for administrators, the record keepers of the building and the
    resident themselves; everyone else gets them masked."""

    household = serializers.PrimaryKeyRelatedField(queryset=Household.objects.none())
    gender = serializers.ChoiceField(choices=Gender.choices)
    tags = serializers.SlugRelatedField(
        slug_field="code", queryset=ResidentTag.objects.all(), many=True, required=False
    )
    building = serializers.IntegerField(source="household.building_id", read_only=True)
    address = serializers.SerializerMethodField()
    is_archived = serializers.BooleanField(read_only=True)

    class Meta:
        model = Resident
        fields = [
            "id",
            "name",
            "gender",
            "birth_date",
            "id_number",
            "phone",
            "household",
            "building",
            "address",
            "tags",
            "is_archived",
            "moved_out_on",
        ]
        read_only_fields = ["moved_out_on"]
        extra_kwargs = {
            # uniqueness is checked by the service, with a message that names the field
            "id_number": {"required": False, "validators": []},
            "phone": {"required": False},
        }

    def get_fields(self):
        # Built when input is read (or the schema made), not for writing rows out: `to_representation` below.
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["household"].queryset = selectors.households_visible_to(request.user)
        return fields

    def get_address(self, obj) -> str:
        return f"{obj.household.building.name} {obj.household.room}"

    def declared_representation(self, instance) -> dict:
        """The row written directly: what the declared fields give (the tests compare the two), without
        building them for every response (a grid worker's page of 20: 1.3 ms less)."""
        household = instance.household
        return {
            "id": instance.id,
            "name": instance.name,
            "gender": instance.gender,
            "birth_date": iso_date(instance.birth_date),
            "id_number": instance.id_number,
            "phone": instance.phone,
            "household": instance.household_id,
            "building": household.building_id,
            "address": self.get_address(instance),
            "tags": [tag.code for tag in instance.tags.all()],
            "is_archived": instance.is_archived,
            "moved_out_on": iso_date(instance.moved_out_on),
        }

    @cached_property
    def _viewer(self):
        """The caller, their scope and whether they asked for whole values: the same for every row of an answer."""
        request = self.context["request"]
        return request.user, selectors.scope_of(request.user), privacy.wants_whole(request)

    def to_representation(self, instance):
        """ID number and phone masked by default; whole for one's own record, and for those who keep the
        building's records when they ask (`?unmask=true`), which the view then logs."""
        data = self.declared_representation(instance)
        user, scope, asked_whole = self._viewer
        if instance.id in scope.resident_ids:  # one's own record
            return data
        if asked_whole and selectors.can_see_personal_data(
            user, building_path=instance.household.building.path, resident_id=instance.id
        ):
            self.context.get("unmasked", set()).add(instance.id)
            return data
        data["id_number"] = mask_id_number(instance.id_number)
        data["phone"] = mask_phone(instance.phone)
        return data


class ResidentFilter(FilterSet):
    unit = UnitSubtreeFilter(lookup="household__building__path")
    tag = django_filters.CharFilter(field_name="tags__code", label=gettext_lazy("标签编码"))
    q = django_filters.CharFilter(method="filter_q", label=gettext_lazy("姓名或房号"))
    archived = django_filters.rest_framework.BooleanFilter(method="filter_archived", label=gettext_lazy("已迁出"))
    household = django_filters.NumberFilter(field_name="household_id")

    class Meta:
        model = Resident
        fields = []

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(household__room__icontains=value))

    def filter_archived(self, queryset, name, value):
        return queryset.filter(moved_out_on__isnull=not value)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("archived") is None:
            queryset = queryset.filter(moved_out_on=None)
        return queryset


class MoveOutSerializer(serializers.Serializer):
    moved_out_on = serializers.DateField(required=False, help_text=gettext_lazy("迁出日期，默认今天"))


# The columns a page of residents is written from (`ResidentSerializer.to_representation`), read as values
# (`LightListMixin`); the tags with them, as one column (`TagCodes`, made into rows by `ResidentViewSet.complete_rows`).
RESIDENT_LIST_COLUMNS = [
    "id",
    "name",
    "gender",
    "birth_date",
    "id_number",
    "phone",
    "household_id",
    "household__room",
    "household__building_id",
    "household__building__name",
    "household__building__path",
    "moved_out_on",
    "tag_codes",
]


class TagCodes(Expression):
    """The codes of the resident's tags, in the tags' own order (as `prefetch_related` gives them), joined by
    commas (a code is a slug): read in the page's query as a correlated subquery, where the tags of a page were
    a statement of their own. Names the outer table unaliased, as the page's rows query has it (`ListPlan`)."""

    output_field = CharField()

    def _parts(self, connection):
        """The code column, the FROM and WHERE of the resident's tags, and their order."""
        quote = connection.ops.quote_name
        links = Resident.tags.through._meta
        tag, resident = links.get_field("residenttag").column, links.get_field("resident").column
        column = ResidentTag._meta.get_field
        order = ", ".join(
            f"t.{quote(column(name.lstrip('-')).column)}{' DESC' if name.startswith('-') else ''}"
            for name in ResidentTag._meta.ordering
        )
        return (
            f"t.{quote(column('code').column)}",
            f"FROM {quote(links.db_table)} rt INNER JOIN {quote(ResidentTag._meta.db_table)} t"
            f" ON t.{quote(ResidentTag._meta.pk.column)} = rt.{quote(tag)}"
            f" WHERE rt.{quote(resident)} = {quote(Resident._meta.db_table)}.{quote(Resident._meta.pk.column)}",
            order,
        )

    def as_sql(self, compiler, connection):
        code, source, order = self._parts(connection)
        # SQLite aggregates the rows of an ordered subquery in its order (it does not flatten such a subquery).
        return f"(SELECT group_concat(code, ',') FROM (SELECT {code} {source} ORDER BY {order}))", []

    def as_postgresql(self, compiler, connection):
        code, source, order = self._parts(connection)
        return f"(SELECT string_agg({code}, ',' ORDER BY {order}) {source})", []


class RelatedRows(list):
    """Related rows read for a light row, answering `.all()` as the related manager of a model object would."""

    def all(self):
        return self


class ResidentViewSet(
    ScopedMixin,
    LightListMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Residents. Moved-out residents are archived (`?archived=true` lists them), never deleted."""

    serializer_class = ResidentSerializer
    filterset_class = ResidentFilter
    list_columns = RESIDENT_LIST_COLUMNS
    list_annotations = {"tag_codes": TagCodes()}
    http_method_names = ["get", "post", "patch", "head", "options"]
    write_actions = ("create", "update", "partial_update", "move_out")

    def get_queryset(self):
        qs = (
            selectors.residents_visible_to(self.request.user)
            .select_related("household__building")
            # No DISTINCT: nothing here joins a many-valued relation (a tag code names one tag), and DISTINCT
            # would make PostgreSQL sort the whole subtree before it can return the first page.
            .order_by("household__building__path", "household__room", "id")
        )
        return qs if self.action == "list" else qs.prefetch_related("tags")

    def complete_rows(self, rows):
        """The page's tags, read with its rows (`TagCodes`), as the related rows the serializer reads."""
        for row in rows:
            codes = row.tag_codes
            row.tags = RelatedRows(SimpleNamespace(code=code) for code in codes.split(",")) if codes else RelatedRows()
            row.is_archived = row.moved_out_on is not None
        return rows

    def write_check(self, user):
        if self.action == "create" and not selectors.can_keep_any_records(user):
            raise NotAllowed()

    def object_write_check(self, user, obj):
        selectors.check_can_keep_records(user, obj.household.building.path)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not hasattr(self, "unmasked_ids"):
            self.unmasked_ids = set()
        context["unmasked"] = self.unmasked_ids  # filled by the serializer with the rows it left whole
        return context

    def finalize_response(self, request, response, *args, **kwargs):
        """One log row per response that carried whole ID numbers or phones of others."""
        ids = getattr(self, "unmasked_ids", None)
        if ids and 200 <= response.status_code < 300:
            privacy.log_access(
                request.user, what="resident", object_ids=ids, fields=["id_number", "phone"], via="api", request=request
            )
        return super().finalize_response(request, response, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = services.resident_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        services.resident_update(by=self.request.user, resident=serializer.instance, **serializer.validated_data)

    @extend_schema(request=MoveOutSerializer, responses=ResidentSerializer)
    @action(detail=True, methods=["post"], url_path="move-out")
    def move_out(self, request, pk=None):
        """Archive a resident who moved away; the record and its history stay."""
        resident = self.get_object()
        serializer = MoveOutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.resident_move_out(by=request.user, resident=resident, **serializer.validated_data)
        return Response(ResidentSerializer(resident, context=self.get_serializer_context()).data)


# --- Departments ----------------------------------------------------------------------------------------


class DepartmentSerializer(serializers.ModelSerializer):
    kind_display = DisplayField("kind")

    class Meta:
        model = Department
        fields = ["id", "name", "code", "kind", "kind_display", "phone", "is_active"]


class DepartmentViewSet(
    ScopedMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Functional departments (职能部门) that cases are dispatched to."""

    serializer_class = DepartmentSerializer
    filterset_fields = ["kind", "is_active"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.departments_visible_to(self.request.user).order_by("code")

    def write_check(self, user):
        selectors.check_can_edit_hierarchy(user)

    def perform_create(self, serializer):
        serializer.instance = services.department_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        services.department_update(by=self.request.user, department=serializer.instance, **serializer.validated_data)


class ResidentTagViewSet(viewsets.ReadOnlyModelViewSet):
    """The configurable list of resident tags."""

    queryset = ResidentTag.objects.all()
    pagination_class = None

    class serializer_class(serializers.ModelSerializer):  # noqa: N801
        class Meta:
            model = ResidentTag
            fields = ["code", "name"]


# --- Notifications --------------------------------------------------------------------------------------


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "created_at", "read_at"]


class NotificationFilter(FilterSet):
    unread = django_filters.rest_framework.BooleanFilter(
        field_name="read_at", lookup_expr="isnull", label=gettext_lazy("未读")
    )

    class Meta:
        model = Notification
        fields = []


class NotificationViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's in-app notifications (reminders, new cases to triage, dispatches …), newest first."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter

    def get_queryset(self):
        return selectors.notifications_visible_to(self.request.user).order_by("-created_at", "-id")

    @extend_schema(
        responses=inline_serializer("UnreadCount", {"unread": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["get"], url_path="unread-count")
    def unread_count(self, request):
        return Response({"unread": self.get_queryset().filter(read_at=None).count()})

    @extend_schema(request=None, responses=NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        notification = self.get_object()
        services.notifications_mark_read(by=request.user, ids=[notification.pk])
        notification.refresh_from_db()
        return Response(NotificationSerializer(notification).data)

    @extend_schema(request=None, responses=inline_serializer("MarkedRead", {"marked": serializers.IntegerField()}))
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        return Response({"marked": services.notifications_mark_read(by=request.user)})
