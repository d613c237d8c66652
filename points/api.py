"""REST API of points: covenant rules, the ledger (record, reverse), residents' accounts, the points supermarket,
the monthly tallies, the public boards and objections.

Every queryset starts from a `points.selectors.*_visible_to(user)` accessor (outside it: 404). Writes call the
services (`services`, `shop`, `tally`), which decide: 403 for the wrong role, 409 for a state, balance, stock or
cap that does not allow it, 400 for bad input (with the field).
"""

import datetime as dt
from types import SimpleNamespace

import django_filters
import django_filters.rest_framework
import orjson
from django.db import models
from django.db.models import F, OuterRef, Prefetch, Q, Subquery, TextField, When
from django.utils import timezone
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, parsers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from governance.api import UnitSubtreeFilter
from governance.api_base import DisplayField, FilterSet, LightListMixin, RowWriter, ScopedMixin
from governance.errors import InvalidInput, NotAllowed
from governance.models import Level, Resident, Unit
from governance.selectors import STEP, residents_visible_to, scope_of, units_visible_to
from governance.uploads import serve_file
from governance.validators import parse_id
from grids.api import RefSerializer
from grids.models import Case
from grids.selectors import cases_visible_to
from grids.stats import parse_month

from . import selectors, services, shop, tally
from .models import (
    Account,
    Board,
    Entry,
    EntryKind,
    Objection,
    ObjectionState,
    Redemption,
    RedemptionState,
    Reward,
    Rule,
    RuleKind,
    Scheme,
    Tally,
    TallyRun,
)

# --- Shared -------------------------------------------------------------------------------------------------


class SchemeRefSerializer(RefSerializer):
    code = serializers.CharField()


def _ref(obj) -> dict | None:
    return {"id": obj.pk, "name": str(obj.name)} if obj is not None else None


def _scheme_ref(scheme) -> dict:
    return {"id": scheme.pk, "code": scheme.code, "name": scheme.name}


def _user_ref(user) -> dict | None:
    return {"id": user.pk, "name": user.display_name} if user is not None else None


def _address(resident) -> str:
    return f"{resident.household.building.name} {resident.household.room}"


def _visible_residents(request):
    return residents_visible_to(request.user) if request else Resident.objects.none()


def renamed_field(error: InvalidInput, aliases: dict) -> InvalidInput:
    """A service's refusal with its field named as this API names it (the ledger checks an evidence photo with
    the cases' photo check, which speaks of `photos`)."""
    if error.field in aliases:
        error.field = aliases[error.field]
    return error


@extend_schema_field(OpenApiTypes.STR)
class SchemeFilter(django_filters.CharFilter):
    """`scheme=<id or code>`."""

    def __init__(self, *, lookup="scheme", **kwargs):
        self.scheme_lookup = lookup
        kwargs.setdefault("label", gettext_lazy("积分类别（编号或编码）"))
        super().__init__(**kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        value = str(value).strip()
        if value.isascii() and value.isdigit():
            return qs.filter(**{f"{self.scheme_lookup}_id": parse_id(value, field="scheme")})
        return qs.filter(**{f"{self.scheme_lookup}__code": value})


@extend_schema_field(OpenApiTypes.STR)
class MonthFilter(django_filters.CharFilter):
    """`month=YYYY-MM` on a date field: the days of that month (or, with `exact`, the month's first day)."""

    def __init__(self, *, field_name, exact=False, **kwargs):
        self.exact = exact
        kwargs.setdefault("label", gettext_lazy("月份（YYYY-MM）"))
        super().__init__(field_name=field_name, **kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        month = parse_month(value)
        if self.exact:
            return qs.filter(**{self.field_name: month})
        following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return qs.filter(**{f"{self.field_name}__gte": month, f"{self.field_name}__lt": following})


@extend_schema_field(OpenApiTypes.INT)
class VisibleResidentFilter(django_filters.ModelChoiceFilter):
    """`resident=<id>` among the residents the caller may see (another is a 400)."""

    def __init__(self, **kwargs):
        super().__init__(queryset=_visible_residents, **kwargs)


# --- Rules --------------------------------------------------------------------------------------------------


class RuleSerializer(serializers.ModelSerializer):
    unit = RefSerializer()
    scheme = SchemeRefSerializer()
    kind_display = DisplayField("kind")

    class Meta:
        model = Rule
        fields = [
            "id",
            "code",
            "name",
            "unit",
            "scheme",
            "kind",
            "kind_display",
            "points",
            "daily_cap",
            "monthly_cap",
            "evidence_required",
            "active_from",
            "active_until",
        ]


class RuleFilter(FilterSet):
    scheme = SchemeFilter()
    kind = django_filters.ChoiceFilter(choices=RuleKind.choices, label=gettext_lazy("类型"))
    unit = UnitSubtreeFilter(lookup="unit__path")
    active_on = django_filters.DateFilter(method="filter_active_on", label=gettext_lazy("在该日有效"))
    resident = VisibleResidentFilter(
        method="filter_resident", label=gettext_lazy("适用于该居民（今天或 active_on 当天）")
    )

    class Meta:
        model = Rule
        fields = []

    def filter_active_on(self, qs, name, value):
        return qs.filter(active_from__lte=value).filter(Q(active_until__isnull=True) | Q(active_until__gte=value))

    def filter_resident(self, qs, name, value):
        day = self.form.cleaned_data.get("active_on") or timezone.localdate()
        resident = Resident.objects.select_related("household__building").get(pk=value.pk)
        return qs.filter(pk__in=selectors.rules_applying_to(resident, day).values("pk"))


class RuleViewSet(viewsets.ReadOnlyModelViewSet):
    """The covenant rules that apply in the caller's places (and those made below them). Rules are agreed with
    the residents and kept in the admin; here they are read-only. `resident=<id>` lists the rules that apply to
    that resident, as the recording form offers them."""

    serializer_class = RuleSerializer
    filterset_class = RuleFilter

    def get_queryset(self):
        return (
            selectors.rules_visible_to(self.request.user)
            .select_related("unit", "scheme")
            .order_by("unit__path", "kind", "code", "id")
        )


# --- Entries ------------------------------------------------------------------------------------------------


class EntrySerializer(serializers.ModelSerializer):
    resident = serializers.SerializerMethodField()
    scheme = serializers.SerializerMethodField()
    kind_display = DisplayField("kind")
    rule = serializers.SerializerMethodField()
    recorded_by = serializers.SerializerMethodField()
    evidence = serializers.SerializerMethodField()
    reversed_by = serializers.SerializerMethodField()

    class Meta:
        model = Entry
        fields = [
            "id",
            "resident",
            "scheme",
            "kind",
            "kind_display",
            "rule",
            "points",
            "balance_after",
            "occurred_on",
            "recorded_by",
            "note",
            "evidence",
            "reverses",
            "reversed_by",
            "case",
            "redemption",
            "created_at",
        ]

    def get_resident(self, entry) -> dict:
        return _ref(entry.account.resident)

    def get_scheme(self, entry) -> dict:
        return _scheme_ref(entry.account.scheme)

    def get_rule(self, entry) -> dict | None:
        if entry.rule_id is None:
            return None
        return {"id": entry.rule_id, "code": entry.rule.code, "name": entry.rule.name}

    def get_recorded_by(self, entry) -> dict | None:
        return _user_ref(entry.recorded_by)

    def get_evidence(self, entry) -> str | None:
        return f"/api/v1/points/entries/{entry.pk}/evidence/" if entry.evidence else None

    def get_reversed_by(self, entry) -> int | None:
        try:
            return entry.reversed_by.pk
        except Entry.reversed_by.RelatedObjectDoesNotExist:
            return None


class EntryRecordSerializer(serializers.Serializer):
    resident = serializers.PrimaryKeyRelatedField(queryset=Resident.objects.none())
    rule = serializers.PrimaryKeyRelatedField(queryset=Rule.objects.none())
    occurred_on = serializers.DateField(required=False, allow_null=True, help_text=gettext_lazy("发生日期，默认今天"))
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    evidence = serializers.ImageField(required=False, allow_null=True, help_text=gettext_lazy("佐证照片"))
    case = serializers.PrimaryKeyRelatedField(
        queryset=Case.objects.none(), required=False, allow_null=True, help_text=gettext_lazy("关联的网格事件")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            user = request.user
            self.fields["resident"].queryset = residents_visible_to(user).select_related("household__building")
            self.fields["rule"].queryset = selectors.rules_visible_to(user).select_related("scheme")
            self.fields["case"].queryset = cases_visible_to(user)


class ReverseSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class EntryFilter(FilterSet):
    resident = django_filters.NumberFilter(field_name="account__resident_id", label=gettext_lazy("居民"))
    scheme = SchemeFilter(lookup="account__scheme")
    kind = django_filters.ChoiceFilter(choices=EntryKind.choices, label=gettext_lazy("类型"))
    rule = django_filters.NumberFilter(field_name="rule_id", label=gettext_lazy("规则"))
    month = MonthFilter(field_name="occurred_on")
    unit = UnitSubtreeFilter(lookup="account__resident__household__building__path")

    class Meta:
        model = Entry
        fields = []


def check_may_record_somewhere(user):
    """Grid workers and community staff record points; everyone else is refused before their input is read."""
    if not scope_of(user).paths(*selectors.RECORDERS):
        raise NotAllowed(gettext_lazy("只有网格员和社区工作人员可以记分。"))


class EntryViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The ledger, newest first. `POST` records an award or a deduction under a rule (multipart for the evidence
    photo); entries are never changed: a mistake is corrected by `reverse` (once per entry)."""

    serializer_class = EntrySerializer
    filterset_class = EntryFilter
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]
    write_actions = ("create", "reverse")

    def get_queryset(self):
        return (
            selectors.entries_visible_to(self.request.user)
            .select_related("account__resident", "account__scheme", "rule", "recorded_by", "reversed_by")
            .order_by("-created_at", "-id")
        )

    def write_check(self, user):
        if self.action == "create":
            check_may_record_somewhere(user)

    def object_write_check(self, user, entry):
        scope = scope_of(user)
        resident = Resident.objects.select_related("household__building").get(pk=entry.account.resident_id)
        if not (scope.is_admin or selectors.may_record_for(scope, resident)):
            raise NotAllowed(gettext_lazy("只有本网格的网格员或本社区的工作人员可以冲正该居民的积分。"))

    def _respond(self, entry, status=200):
        return Response(EntrySerializer(self.get_queryset().get(pk=entry.pk)).data, status=status)

    @extend_schema(request=EntryRecordSerializer, responses={201: EntrySerializer})
    def create(self, request, *args, **kwargs):
        serializer = EntryRecordSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        try:
            entry = services.points_record(by=request.user, **serializer.validated_data)
        except InvalidInput as error:
            raise renamed_field(error, {"photos": "evidence"}) from None
        return self._respond(entry, status=201)

    @extend_schema(request=ReverseSerializer, responses={201: EntrySerializer})
    @action(detail=True, methods=["post"])
    def reverse(self, request, pk=None):
        """Correct a mistaken award or deduction with a reversal entry that points at it (once per entry); the
        note says why. Returns the reversal."""
        entry = self.get_object()
        serializer = ReverseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reversal = services.points_reverse(by=request.user, entry=entry, note=serializer.validated_data["note"])
        return self._respond(reversal, status=201)

    @extend_schema(responses={(200, "image/*"): bytes})
    @action(detail=True, methods=["get"])
    def evidence(self, request, pk=None):
        """The entry's evidence photo (only to those who can see the entry)."""
        return _image_response(self.get_object().evidence)


# --- Accounts -----------------------------------------------------------------------------------------------

LATEST_ENTRIES = 10


class BalanceSerializer(serializers.Serializer):
    scheme = SchemeRefSerializer()
    balance = serializers.IntegerField()
    earned = serializers.IntegerField()
    deducted = serializers.IntegerField()
    redeemed = serializers.IntegerField()


class TotalsSerializer(serializers.Serializer):
    balance = serializers.IntegerField()
    earned = serializers.IntegerField()
    deducted = serializers.IntegerField()
    redeemed = serializers.IntegerField()


class ResidentRefSerializer(RefSerializer):
    address = serializers.CharField()


class AccountSummarySerializer(serializers.Serializer):
    resident = ResidentRefSerializer()
    balances = BalanceSerializer(many=True)
    totals = TotalsSerializer()


class AccountSerializer(AccountSummarySerializer):
    latest_entries = EntrySerializer(many=True)


def balances_of(accounts, schemes=()) -> tuple[list[dict], dict]:
    """Per-scheme balances (schemes without an account yet show zeros) and their totals."""
    by_scheme = {a.scheme_id: a for a in accounts}
    rows = []
    for scheme in [*schemes, *[a.scheme for a in accounts if a.scheme_id not in {s.pk for s in schemes}]]:
        account = by_scheme.get(scheme.pk)
        rows.append(
            {
                "scheme": _scheme_ref(scheme),
                "balance": account.balance if account else 0,
                "earned": account.earned if account else 0,
                "deducted": account.deducted if account else 0,
                "redeemed": account.redeemed if account else 0,
            }
        )
    totals = {key: sum(row[key] for row in rows) for key in ("balance", "earned", "deducted", "redeemed")}
    return rows, totals


def schemes_for(resident) -> list[Scheme]:
    """The active schemes a resident takes part in: every open one, the party members' only for party members."""
    schemes = list(Scheme.objects.filter(active=True).order_by("order", "code"))
    if any(s.party_members_only for s in schemes) and not selectors.is_party_member(resident):
        schemes = [s for s in schemes if not s.party_members_only]
    return schemes


class AccountFilter(FilterSet):
    unit = UnitSubtreeFilter(lookup="household__building__path")
    q = django_filters.CharFilter(method="filter_q", label=gettext_lazy("姓名或房号"))

    class Meta:
        model = Resident
        fields = []

    def filter_q(self, qs, name, value):
        return qs.filter(Q(name__icontains=value) | Q(household__room__icontains=value))


class AccountViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Residents' points. `GET /accounts/{resident_id}/`: that resident's balance per scheme with totals and the
    latest entries (a resident sees their own, staff their subtree's). The list gives the balances of the
    residents in the caller's scope (`q` for a name or a room)."""

    filterset_class = AccountFilter
    lookup_url_kwarg = "resident_id"
    serializer_class = AccountSerializer

    def get_queryset(self):
        qs = residents_visible_to(self.request.user).select_related("household__building")
        if not self.detail:
            qs = qs.filter(moved_out_on=None).prefetch_related(
                Prefetch("point_accounts", queryset=Account.objects.select_related("scheme").order_by("scheme__order"))
            )
        return qs.order_by("household__building__path", "household__room", "id")

    def _summary(self, resident, accounts, schemes=()):
        rows, totals = balances_of(accounts, schemes)
        return {
            "resident": {"id": resident.pk, "name": resident.name, "address": _address(resident)},
            "balances": rows,
            "totals": totals,
        }

    @extend_schema(responses=AccountSummarySerializer(many=True))
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        data = [self._summary(r, list(r.point_accounts.all())) for r in page]
        return self.get_paginated_response(AccountSummarySerializer(data, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("resident_id", int, OpenApiParameter.PATH, description=gettext_lazy("居民编号"))],
        responses=AccountSerializer,
    )
    def retrieve(self, request, *args, **kwargs):
        resident = self.get_object()
        accounts = list(Account.objects.filter(resident=resident).select_related("scheme"))
        data = self._summary(resident, accounts, schemes_for(resident))
        latest = (
            selectors.entries_visible_to(request.user)
            .filter(account__resident=resident)
            .select_related("account__resident", "account__scheme", "rule", "recorded_by", "reversed_by")
            .order_by("-created_at", "-id")[:LATEST_ENTRIES]
        )
        data["latest_entries"] = EntrySerializer(latest, many=True).data
        return Response(data)


# --- The points supermarket ---------------------------------------------------------------------------------


def _may_keep_any_shop(scope) -> bool:
    return scope.is_admin or bool(scope.paths(*selectors.SHOPKEEPERS))


class RewardSerializer(serializers.ModelSerializer):
    community = RefSerializer()
    scheme = SchemeRefSerializer()
    photo = serializers.SerializerMethodField()

    class Meta:
        model = Reward
        fields = ["id", "community", "scheme", "name", "photo", "cost", "stock", "active", "created_at"]

    def get_photo(self, reward) -> str | None:
        return f"/api/v1/points/rewards/{reward.pk}/photo/" if reward.photo else None


class RewardCreateSerializer(serializers.Serializer):
    community = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.none())
    scheme = serializers.SlugRelatedField(slug_field="code", queryset=Scheme.objects.all())
    name = serializers.CharField(max_length=100)
    cost = serializers.IntegerField(min_value=1)
    stock = serializers.IntegerField(min_value=0, required=False, default=0)
    photo = serializers.ImageField(required=False, allow_null=True)
    active = serializers.BooleanField(required=False, default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["community"].queryset = units_visible_to(request.user).filter(level=Level.COMMUNITY)


class RewardUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    cost = serializers.IntegerField(min_value=1, required=False)
    photo = serializers.ImageField(required=False, allow_null=True, help_text=gettext_lazy("传 null 删除图片"))
    active = serializers.BooleanField(required=False)


class RestockSerializer(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1, help_text=gettext_lazy("补货数量（在现有库存上增加）"))


class RewardFilter(FilterSet):
    unit = UnitSubtreeFilter(lookup="community__path")
    scheme = SchemeFilter()
    active = django_filters.rest_framework.BooleanFilter()
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label=gettext_lazy("名称"))

    class Meta:
        model = Reward
        fields = []


class RewardViewSet(
    ScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The goods of the communities' points supermarkets. Residents see what is on the shelf in their community;
    the community staff put goods on it, change them, restock and take them off (`active: false`)."""

    serializer_class = RewardSerializer
    filterset_class = RewardFilter
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]
    http_method_names = ["get", "post", "patch", "head", "options"]
    write_actions = ("create", "update", "partial_update", "restock")

    def get_queryset(self):
        qs = selectors.rewards_visible_to(self.request.user).select_related("community", "scheme")
        if not scope_of(self.request.user).is_staff_member:
            qs = qs.filter(active=True)  # residents see the shelf, not what was taken off it
        return qs.order_by("community__path", "cost", "id")

    def write_check(self, user):
        if not _may_keep_any_shop(scope_of(user)):
            raise NotAllowed(gettext_lazy("只有社区工作人员可以管理积分超市。"))

    def object_write_check(self, user, reward):
        if not selectors.may_keep_shop(scope_of(user), reward.community):
            raise NotAllowed(gettext_lazy("只有本社区的工作人员可以管理积分超市。"))

    def _respond(self, reward, status=200):
        return Response(RewardSerializer(self.get_queryset().get(pk=reward.pk)).data, status=status)

    @extend_schema(request=RewardCreateSerializer, responses={201: RewardSerializer})
    def create(self, request, *args, **kwargs):
        serializer = RewardCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        reward = shop.reward_create(by=request.user, **serializer.validated_data)
        return self._respond(reward, status=201)

    @extend_schema(request=RewardUpdateSerializer, responses=RewardSerializer)
    def update(self, request, *args, **kwargs):
        reward = self.get_object()
        serializer = RewardUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # Only what was sent changes (`photo: null` removes the photo).
        reward = shop.reward_update(by=request.user, reward=reward, **serializer.validated_data)
        return self._respond(reward)

    @extend_schema(request=RestockSerializer, responses=RewardSerializer)
    @action(detail=True, methods=["post"])
    def restock(self, request, pk=None):
        """Add goods to the stock (an addition: redemptions made meanwhile are kept)."""
        reward = self.get_object()
        serializer = RestockSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reward = shop.reward_restock(by=request.user, reward=reward, **serializer.validated_data)
        return self._respond(reward)

    @extend_schema(responses={(200, "image/*"): bytes})
    @action(detail=True, methods=["get"])
    def photo(self, request, pk=None):
        """The reward's photo."""
        return _image_response(self.get_object().photo)


def _image_response(image):
    return serve_file(image)


class RedemptionSerializer(serializers.ModelSerializer):
    resident = RefSerializer()
    reward = serializers.SerializerMethodField()
    # A plain string in the schema: an enum named "state" would collide with the cases' states.
    state = serializers.CharField(read_only=True, help_text="reserved | fulfilled | cancelled")
    state_display = DisplayField("state")
    pickup_code = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    fulfilled_by = serializers.SerializerMethodField()

    class Meta:
        model = Redemption
        fields = [
            "id",
            "resident",
            "reward",
            "quantity",
            "points",
            "state",
            "state_display",
            "pickup_code",
            "created_by",
            "created_at",
            "fulfilled_by",
            "fulfilled_at",
            "cancelled_at",
        ]

    def get_reward(self, redemption) -> dict:
        reward = redemption.reward
        return {"id": reward.pk, "name": reward.name, "community": _ref(reward.community)}

    def get_pickup_code(self, redemption) -> str | None:
        """Shown to the resident who reserved only: at the counter the code is what proves it is them."""
        if redemption.state != RedemptionState.RESERVED:
            return None
        return redemption.pickup_code if redemption.resident_id in self.context.get("own_resident_ids", ()) else None

    def get_created_by(self, redemption) -> dict | None:
        return _user_ref(redemption.created_by)

    def get_fulfilled_by(self, redemption) -> dict | None:
        return _user_ref(redemption.fulfilled_by)


class RedeemSerializer(serializers.Serializer):
    reward = serializers.PrimaryKeyRelatedField(queryset=Reward.objects.none())
    resident = serializers.PrimaryKeyRelatedField(
        queryset=Resident.objects.none(),
        required=False,
        allow_null=True,
        help_text=gettext_lazy("在柜台为居民兑换时填写；居民本人在线预约时不填"),
    )
    quantity = serializers.IntegerField(min_value=1, required=False, default=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["reward"].queryset = selectors.rewards_visible_to(request.user)
            self.fields["resident"].queryset = residents_visible_to(request.user)


class FulfilSerializer(serializers.Serializer):
    pickup_code = serializers.CharField(max_length=8, allow_blank=True, help_text=gettext_lazy("居民出示的取货码"))


class CancelSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class RedemptionFilter(FilterSet):
    state = django_filters.ChoiceFilter(choices=RedemptionState.choices, label=gettext_lazy("状态"))
    resident = django_filters.NumberFilter(field_name="resident_id", label=gettext_lazy("居民"))
    reward = django_filters.NumberFilter(field_name="reward_id", label=gettext_lazy("商品"))
    unit = UnitSubtreeFilter(lookup="reward__community__path")
    pickup_code = django_filters.CharFilter(label=gettext_lazy("取货码"))

    class Meta:
        model = Redemption
        fields = []


class RedemptionViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Redemptions, newest first. `POST` with a `resident`: the community staff redeem at the counter (handed
    over at once). Without: a resident reserves for themselves and gets a pick-up code; `fulfil` hands it over
    against the code, `cancel` gives the points and the stock back."""

    serializer_class = RedemptionSerializer
    filterset_class = RedemptionFilter
    write_actions = ("create", "fulfil", "cancel")

    def get_queryset(self):
        return (
            selectors.redemptions_visible_to(self.request.user)
            .select_related("resident", "reward__community", "created_by", "fulfilled_by")
            .order_by("-created_at", "-id")
        )

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "own_resident_ids": scope_of(self.request.user).resident_ids}

    def write_check(self, user):
        scope = scope_of(user)
        if self.action == "create" and not (_may_keep_any_shop(scope) or scope.resident_ids):
            raise NotAllowed(gettext_lazy("只有社区工作人员和居民可以兑换积分。"))

    def object_write_check(self, user, redemption):
        if self.action == "fulfil" and not selectors.may_keep_shop(scope_of(user), redemption.reward.community):
            raise NotAllowed(gettext_lazy("只有本社区的工作人员可以发放兑换的商品。"))

    def _respond(self, redemption, status=200):
        data = RedemptionSerializer(self.get_queryset().get(pk=redemption.pk), context=self.get_serializer_context())
        return Response(data.data, status=status)

    @extend_schema(request=RedeemSerializer, responses={201: RedemptionSerializer})
    def create(self, request, *args, **kwargs):
        serializer = RedeemSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("resident") is not None:
            redemption = shop.redemption_redeem(
                by=request.user, resident=data["resident"], reward=data["reward"], quantity=data["quantity"]
            )
        else:
            redemption = shop.redemption_reserve(by=request.user, reward=data["reward"], quantity=data["quantity"])
        return self._respond(redemption, status=201)

    @extend_schema(request=FulfilSerializer, responses=RedemptionSerializer)
    @action(detail=True, methods=["post"])
    def fulfil(self, request, pk=None):
        """Hand over a reserved reward against the pick-up code the resident shows."""
        redemption = self.get_object()
        serializer = FulfilSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        redemption = shop.redemption_fulfil(by=request.user, redemption=redemption, **serializer.validated_data)
        return self._respond(redemption)

    @extend_schema(request=CancelSerializer, responses=RedemptionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a reservation (the resident, or the community staff): points and stock come back."""
        redemption = self.get_object()
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        redemption = shop.redemption_cancel(by=request.user, redemption=redemption, **serializer.validated_data)
        return self._respond(redemption)


# --- Monthly tallies and their runs -------------------------------------------------------------------------


class MonthField(serializers.Field):
    """A month as "YYYY-MM" (stored as its first day)."""

    def to_representation(self, value) -> str:
        return f"{value:%Y-%m}"

    def to_internal_value(self, data):
        if data in (None, ""):
            self.fail("required")
        try:
            return parse_month(str(data))
        except InvalidInput as error:
            raise serializers.ValidationError(str(error.message)) from None


extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-10"})(MonthField)


class TallySerializer(serializers.ModelSerializer):
    month = MonthField()
    resident = RefSerializer()
    scheme = SchemeRefSerializer()
    grid = RefSerializer()
    community = RefSerializer()

    class Meta:
        model = Tally
        fields = [
            "id",
            "month",
            "resident",
            "scheme",
            "household",
            "grid",
            "community",
            "earned",
            "deducted",
            "redeemed",
            "net",
            "balance",
            "rank_in_grid",
            "rank_in_community",
        ]


class TallyFilter(FilterSet):
    month = MonthFilter(field_name="month", exact=True)
    unit = UnitSubtreeFilter(lookup="grid__path")
    scheme = SchemeFilter()
    resident = django_filters.NumberFilter(field_name="resident_id", label=gettext_lazy("居民"))

    class Meta:
        model = Tally
        fields = []


class TallyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The monthly tally per resident and scheme: earned, deducted, redeemed, net, the balance at the month's
    end, and the ranks in the grid and the community (ties share a rank; 0 for a resident who had moved out).
    Staff see their subtree's residents by name; a resident sees their own rows."""

    serializer_class = TallySerializer
    filterset_class = TallyFilter

    def get_queryset(self):
        return (
            selectors.tallies_visible_to(self.request.user)
            .select_related("resident", "scheme", "grid", "community")
            .order_by("-month", "scheme__order", "community__path", "rank_in_community", "resident_id")
        )


class TallyRunSerializer(serializers.ModelSerializer):
    month = MonthField()
    triggered_by = serializers.SerializerMethodField()

    class Meta:
        model = TallyRun
        fields = ["id", "month", "started_at", "finished_at", "rows", "duration_ms", "triggered_by"]

    def get_triggered_by(self, run) -> dict | None:
        return _user_ref(run.triggered_by)


class TallyRunInputSerializer(serializers.Serializer):
    month = MonthField(help_text=gettext_lazy("要统计的月份（已结束的月份）"))


class TallyRunViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The runs of the monthly tally (month, started, finished, rows, duration), for staff. `POST {month}`:
    an administrator runs (or re-runs) the tally of an ended month; it is idempotent and takes seconds."""

    serializer_class = TallyRunSerializer

    def get_queryset(self):
        scope = scope_of(self.request.user)
        runs = TallyRun.objects.select_related("triggered_by").order_by("-started_at", "-id")
        return runs if _is_staff(scope) else runs.none()

    def write_check(self, user):
        if not scope_of(user).is_admin:
            raise NotAllowed(gettext_lazy("只有系统管理员可以运行月度统计。"))

    @extend_schema(request=TallyRunInputSerializer, responses={201: TallyRunSerializer})
    def create(self, request, *args, **kwargs):
        serializer = TallyRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = tally.tally_month(month=serializer.validated_data["month"], by=request.user)
        return Response(TallyRunSerializer(run).data, status=201)


def _is_staff(scope) -> bool:
    return scope.is_admin or bool(scope.paths())


# --- Boards and objections ----------------------------------------------------------------------------------

BOARD_ROWS = 20
MAX_BOARD_ROWS = 100


class BoardRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    name = serializers.CharField(help_text=gettext_lazy("姓名（已打码）"))
    grid = serializers.CharField()
    earned = serializers.IntegerField()
    deducted = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    net = serializers.IntegerField()
    balance = serializers.IntegerField()


class BoardSerializer(RowWriter, serializers.ModelSerializer):
    """A public board. `to_representation` writes it directly: what the declared fields give (the tests compare
    the two), without DRF building the fields of every board of a page anew."""

    month = MonthField()
    unit = serializers.SerializerMethodField()
    scheme = SchemeRefSerializer()
    is_final = serializers.SerializerMethodField()
    may_object = serializers.SerializerMethodField()
    rows = serializers.SerializerMethodField()

    class Meta:
        model = Board
        fields = ["id", "month", "unit", "scheme", "published_at", "notice_until", "is_final", "may_object", "rows"]

    def get_unit(self, board) -> dict:
        return {"id": board.unit_id, "name": board.unit.name, "level": board.unit.level}

    def get_is_final(self, board) -> bool:
        return tally.board_is_final(board, self.context.get("now"))

    def get_may_object(self, board) -> bool:
        """Whether the caller may file an objection now: a resident of the board's place, in the notice period."""
        paths = self.context.get("resident_paths", ())
        return not self.get_is_final(board) and any(p.startswith(board.unit.path) for p in paths)

    @extend_schema_field(BoardRowSerializer(many=True))
    def get_rows(self, board) -> list:
        rows = getattr(board, "top_rows", None)  # a list's page has them, read for all its boards at once
        return rows if rows is not None else tally.board_rows(board, self.context.get("limit", BOARD_ROWS))

    def to_representation(self, board):
        scheme = board.scheme
        return {
            "id": board.pk,
            "month": f"{board.month:%Y-%m}",
            "unit": self.get_unit(board),
            "scheme": {"id": scheme.id, "name": str(scheme.name), "code": str(scheme.code)},
            "published_at": self.datetime(board.published_at),
            "notice_until": self.datetime(board.notice_until),
            "is_final": self.get_is_final(board),
            "may_object": self.get_may_object(board),
            "rows": self.get_rows(board),
        }


class PlacesJSON(Subquery):
    """A subquery's rows as one JSON array of arrays (its columns in order), as text: what PostgreSQL's `json_agg`
    or SQLite's `json_group_array` make of them."""

    output_field = TextField()

    def _wrap(self, compiler, connection, aggregate, array):
        sql, params = super().as_sql(compiler, connection)
        columns = ", ".join(f"p.{connection.ops.quote_name(name)}" for name in self.query.annotation_select)
        return f"(SELECT {aggregate}({array}({columns})) FROM {sql} p)", params

    def as_sql(self, compiler, connection, template=None, **extra_context):
        return self._wrap(compiler, connection, "json_group_array", "json_array")

    def as_postgresql(self, compiler, connection, template=None, **extra_context):
        sql, params = self._wrap(compiler, connection, "json_agg", "json_build_array")
        return f"({sql}::text)", params


def board_first_places(limit: int):
    """Each board's first `limit` places, read in the page's query (`first_places`): for a grid's board and a
    community's, `tally.board_first` of the board the row is (its own index, `limit` entries: places tied within
    the first ranks are not all read), as [rank, resident id, name, grid name, earned, deducted, redeemed, net,
    balance] per place (`PlacesJSON`), where a page's boards had a statement of their own for their rows."""

    def first(level):
        board = SimpleNamespace(
            month=OuterRef("month"),
            scheme_id=OuterRef("scheme_id"),
            unit_id=OuterRef("unit_id"),
            unit=SimpleNamespace(level=level),
        )
        _place, rank = tally.board_place(board)
        columns = (rank, "resident_id", *tally.BOARD_ROW_COLUMNS)
        return PlacesJSON(tally.board_first(board).values(**{f"c{i}": F(n) for i, n in enumerate(columns)})[:limit])

    return models.Case(When(unit__level=Level.GRID, then=first(Level.GRID)), default=first(Level.COMMUNITY))


def first_places(board, text, limit: int) -> list:
    """The rows of a board as `tally.board_rows` gives them (same order, same masking), from its `first_places`."""
    _place, rank = tally.board_place(board)
    places = sorted(orjson.loads(text) if text else ())
    return [
        tally.board_row(
            dict(zip((rank, "resident_id", *tally.BOARD_ROW_COLUMNS), place, strict=True)),
            rank,
        )
        for place in places[:limit]
        if 1 <= place[0] <= limit
    ]


class BoardPublishSerializer(serializers.Serializer):
    month = MonthField()
    unit = serializers.PrimaryKeyRelatedField(queryset=Unit.objects.none(), help_text=gettext_lazy("网格或社区"))
    scheme = serializers.SlugRelatedField(slug_field="code", queryset=Scheme.objects.all())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["unit"].queryset = units_visible_to(request.user)


class BoardFilter(FilterSet):
    month = MonthFilter(field_name="month", exact=True)
    unit = UnitSubtreeFilter(lookup="unit__path")
    scheme = SchemeFilter()

    class Meta:
        model = Board
        fields = []


def _limit_param(request) -> int:
    value = parse_id(request.query_params.get("limit"), field="limit")
    return min(max(value or BOARD_ROWS, 1), MAX_BOARD_ROWS)


# The columns a page of boards is written from (`BoardSerializer`), read as values (`LightListMixin`).
BOARD_LIST_COLUMNS = [
    "id",
    "month",
    "unit_id",
    "unit__name",
    "unit__level",
    "unit__path",
    "scheme_id",
    "scheme__id",
    "scheme__code",
    "scheme__name",
    "published_at",
    "notice_until",
    "first_places",
]


class BoardViewSet(
    ScopedMixin, LightListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The public boards (张榜公示): per grid and community and month, the top residents with their names
    masked (张*明), the notice period during which residents of the place may object, and whether the board is
    final. `?month=YYYY-MM&unit=&scheme=`; `limit` rows per board (default 20, at most 100). `POST`: the
    community staff publish a tallied month's board of a grid or community."""

    serializer_class = BoardSerializer
    filterset_class = BoardFilter
    list_columns = BOARD_LIST_COLUMNS

    def get_queryset(self):
        return (
            selectors.boards_visible_to(self.request.user)
            .select_related("unit", "scheme")
            .order_by("-month", "unit__path", "scheme__order")
        )

    def get_serializer_context(self):
        scope = scope_of(self.request.user)
        return {
            **super().get_serializer_context(),
            "now": timezone.now(),
            "resident_paths": scope.resident_building_paths,
            "limit": _limit_param(self.request) if self.request else BOARD_ROWS,
        }

    def write_check(self, user):
        if not _may_keep_any_shop(scope_of(user)):
            raise NotAllowed(gettext_lazy("只有社区工作人员可以公示积分榜。"))

    @property
    def list_annotations(self):
        """Each board's first places, read with the page (`board_first_places`)."""
        return {"first_places": board_first_places(_limit_param(self.request))}

    def complete_rows(self, rows):
        """The top rows of every board of the page, from its `first_places`."""
        limit = _limit_param(self.request)
        for board in rows:
            board.top_rows = first_places(board, board.first_places, limit)
        return rows

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description=gettext_lazy("每张榜的行数（默认 20，最多 100）"))]
    )
    def list(self, request, *args, **kwargs):
        _limit_param(request)  # a wrong `limit` is a 400 before anything is read
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[OpenApiParameter("limit", int, description=gettext_lazy("行数（默认 20，最多 100）"))])
    def retrieve(self, request, *args, **kwargs):
        return Response(BoardSerializer(self.get_object(), context=self.get_serializer_context()).data)

    @extend_schema(request=BoardPublishSerializer, responses={201: BoardSerializer})
    def create(self, request, *args, **kwargs):
        serializer = BoardPublishSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        board = tally.board_publish(by=request.user, **serializer.validated_data)
        board = self.get_queryset().get(pk=board.pk)
        return Response(BoardSerializer(board, context=self.get_serializer_context()).data, status=201)


class ObjectionSerializer(serializers.ModelSerializer):
    board = serializers.SerializerMethodField()
    resident = RefSerializer()
    state = serializers.CharField(read_only=True, help_text="open | upheld | dismissed")
    state_display = DisplayField("state")
    resolved_by = serializers.SerializerMethodField()

    class Meta:
        model = Objection
        fields = [
            "id",
            "board",
            "resident",
            "entry",
            "reason",
            "state",
            "state_display",
            "created_at",
            "resolved_by",
            "resolved_at",
            "resolution",
            "correction",
        ]

    def get_board(self, objection) -> dict:
        board = objection.board
        return {
            "id": board.pk,
            "month": f"{board.month:%Y-%m}",
            "unit": _ref(board.unit),
            "scheme": _scheme_ref(board.scheme),
            "notice_until": serializers.DateTimeField().to_representation(board.notice_until),
        }

    def get_resolved_by(self, objection) -> dict | None:
        return _user_ref(objection.resolved_by)


class ObjectionFileSerializer(serializers.Serializer):
    board = serializers.PrimaryKeyRelatedField(queryset=Board.objects.none())
    reason = serializers.CharField(max_length=1000, allow_blank=True)
    entry = serializers.PrimaryKeyRelatedField(
        queryset=Entry.objects.none(), required=False, allow_null=True, help_text=gettext_lazy("所涉的积分记录")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["board"].queryset = selectors.boards_visible_to(request.user)
            self.fields["entry"].queryset = selectors.entries_visible_to(request.user)


class ObjectionResolveSerializer(serializers.Serializer):
    uphold = serializers.BooleanField(help_text=gettext_lazy("true：异议成立；false：驳回"))
    resolution = serializers.CharField(max_length=2000, allow_blank=True, help_text=gettext_lazy("处理意见"))
    correction_points = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=-100_000,
        max_value=100_000,
        help_text=gettext_lazy("异议成立时的更正分值（正数加分，负数扣分）"),
    )


class ObjectionFilter(FilterSet):
    state = django_filters.ChoiceFilter(choices=ObjectionState.choices, label=gettext_lazy("状态"))
    board = django_filters.NumberFilter(field_name="board_id", label=gettext_lazy("积分榜"))
    month = MonthFilter(field_name="board__month", exact=True)
    unit = UnitSubtreeFilter(lookup="board__unit__path")

    class Meta:
        model = Objection
        fields = []


class ObjectionViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Objections (异议) to boards. `POST`: a resident of the board's place during its notice period. `resolve`:
    the board's community staff uphold it (reverse the entry objected to and/or post a correction, then
    re-tally) or dismiss it with a reason."""

    serializer_class = ObjectionSerializer
    filterset_class = ObjectionFilter
    write_actions = ("create", "resolve")

    def get_queryset(self):
        return (
            selectors.objections_visible_to(self.request.user)
            .select_related("board__unit", "board__scheme", "resident", "resolved_by")
            .order_by("-created_at", "-id")
        )

    def write_check(self, user):
        if self.action == "create" and not scope_of(user).resident_ids:
            raise NotAllowed(gettext_lazy("只有居民可以对积分榜提出异议。"))

    def object_write_check(self, user, objection):
        scope = scope_of(user)
        community_path = objection.board.unit.path[: 2 * STEP]
        if not (scope.is_admin or scope.covers(community_path, *selectors.SHOPKEEPERS)):
            raise NotAllowed(gettext_lazy("只有该社区的工作人员可以处理积分榜异议。"))

    def _respond(self, objection, status=200):
        return Response(ObjectionSerializer(self.get_queryset().get(pk=objection.pk)).data, status=status)

    @extend_schema(request=ObjectionFileSerializer, responses={201: ObjectionSerializer})
    def create(self, request, *args, **kwargs):
        serializer = ObjectionFileSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        objection = tally.objection_file(by=request.user, **serializer.validated_data)
        return self._respond(objection, status=201)

    @extend_schema(request=ObjectionResolveSerializer, responses=ObjectionSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """Uphold (with a correction) or dismiss (with a reason) an open objection."""
        objection = self.get_object()
        serializer = ObjectionResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        objection = tally.objection_resolve(by=request.user, objection=objection, **serializer.validated_data)
        return self._respond(objection)
