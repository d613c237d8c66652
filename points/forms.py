"""Forms of the points pages. They read and convert the input; the rules (caps, balances, stock, who may) are
the services'. Field names are the services' keyword arguments, so a view calls `service(by=…, **cleaned_data)`.
"""

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from governance import forms as governance_forms
from governance.errors import InvalidInput
from grids.stats import parse_month

from . import selectors
from .models import RuleKind, Scheme

NOTE_ROWS = 3


def _note(label=None, required=False, max_length=500):
    return forms.CharField(
        label=label or _("说明"),
        required=required,
        max_length=max_length,
        widget=forms.Textarea(attrs={"rows": NOTE_ROWS}),
    )


class PhotoInput(forms.ClearableFileInput):
    """One photo: the phone offers its camera first."""

    def __init__(self, attrs=None):
        super().__init__({"accept": "image/*", "capture": "environment", **(attrs or {})})


ResidentSearchForm = governance_forms.ResidentSearchForm


# --- Recording ---------------------------------------------------------------------------------------------


def rule_caption(rule) -> str:
    """What the recorder should know about a rule besides its name: the caps and whether it needs evidence."""
    parts = []
    if rule.daily_cap:
        parts.append(_("每日上限 %(n)d 分") % {"n": rule.daily_cap})
    if rule.monthly_cap:
        parts.append(_("每月上限 %(n)d 分") % {"n": rule.monthly_cap})
    if rule.evidence_required:
        parts.append(_("须有佐证"))
    return " · ".join(str(p) for p in parts)


def recordable_rules(resident, day=None) -> list:
    """The rules that apply to the resident today in active schemes they take part in, by kind then scheme."""
    day = day or timezone.localdate()
    rules = list(
        selectors.rules_applying_to(resident, day)
        .filter(scheme__active=True)
        .select_related("scheme")
        .order_by("kind", "scheme__order", "unit__path", "code")
    )
    if any(r.scheme.party_members_only for r in rules) and not selectors.is_party_member(resident):
        rules = [r for r in rules if not r.scheme.party_members_only]
    return rules


class RecordForm(forms.Form):
    rule = forms.TypedChoiceField(label=_("积分规则"), coerce=int, widget=forms.RadioSelect)
    occurred_on = forms.DateField(
        label=_("发生日期"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    note = _note(_("说明（选填）"))
    evidence = forms.FileField(label=_("佐证照片（选填）"), required=False, widget=PhotoInput)

    def __init__(self, *args, resident, **kwargs):
        super().__init__(*args, **kwargs)
        today = timezone.localdate()
        self.rules = {r.pk: r for r in recordable_rules(resident, today)}
        order = {RuleKind.BASE: 0, RuleKind.BONUS: 1, RuleKind.DEDUCTION: 2}
        groups: dict = {}
        for rule in sorted(self.rules.values(), key=lambda r: order.get(r.kind, 9)):
            groups.setdefault(rule.kind, []).append(rule)
        self.rule_groups = [
            {"label": RuleKind(kind).label, "kind": kind, "rules": [(r, rule_caption(r)) for r in rules]}
            for kind, rules in groups.items()
        ]
        self.fields["rule"].choices = [(r.pk, r.name) for r in self.rules.values()]
        self.fields["occurred_on"].initial = today
        self.fields["occurred_on"].widget.attrs["max"] = today.isoformat()

    def clean_rule(self):
        return self.rules[self.cleaned_data["rule"]]

    def clean_evidence(self):
        return self.cleaned_data.get("evidence") or None


# The service's field names that the recording form shows under another name (the photo check is the cases').
RECORD_FIELD_ALIASES = {"photos": "evidence"}


class ReverseForm(forms.Form):
    note = _note(_("冲正原因"))


# --- Scheme choice (board, shop) ----------------------------------------------------------------------------


def scheme_choices():
    return [(s.code, s.name) for s in Scheme.objects.filter(active=True).order_by("order", "code")]


# --- The points supermarket -----------------------------------------------------------------------------------


def _quantity(label=None, max_value=99):
    return forms.IntegerField(
        label=label or _("数量"),
        min_value=1,
        max_value=max_value,
        initial=1,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


class ReserveForm(forms.Form):
    quantity = _quantity()


class RedeemForm(forms.Form):
    quantity = _quantity()


class PickupCodeForm(forms.Form):
    code = forms.CharField(
        label=_("取货码"),
        max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "placeholder": "123456"}),
    )


class ConfirmForm(forms.Form):
    """A button with nothing to fill in (take a reward off the shelf, put it back)."""


class CancelForm(forms.Form):
    note = forms.CharField(label=_("取消原因（选填）"), required=False, max_length=500)


class RewardForm(forms.Form):
    """A new reward for a community's shelf."""

    scheme = forms.ChoiceField(label=_("积分类别"))
    name = forms.CharField(label=_("商品名称"), max_length=100)
    cost = forms.IntegerField(
        label=_("所需积分"), min_value=1, widget=forms.NumberInput(attrs={"inputmode": "numeric"})
    )
    stock = forms.IntegerField(
        label=_("初始库存"), min_value=0, initial=0, widget=forms.NumberInput(attrs={"inputmode": "numeric"})
    )
    photo = forms.FileField(label=_("图片（选填）"), required=False, widget=PhotoInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = scheme_choices()
        self.fields["scheme"].choices = choices
        if choices:
            self.fields["scheme"].initial = choices[0][0]

    def clean_scheme(self):
        return Scheme.objects.get(code=self.cleaned_data["scheme"])

    def clean_photo(self):
        return self.cleaned_data.get("photo") or None


class RewardEditForm(forms.Form):
    name = forms.CharField(label=_("商品名称"), max_length=100)
    cost = forms.IntegerField(
        label=_("所需积分"), min_value=1, widget=forms.NumberInput(attrs={"inputmode": "numeric"})
    )
    photo = forms.FileField(label=_("更换图片（选填）"), required=False, widget=PhotoInput)
    remove_photo = forms.BooleanField(label=_("删除现有图片"), required=False)

    def service_kwargs(self) -> dict:
        """What `shop.reward_update` should change: the name and cost, and the photo only when asked to."""
        data = self.cleaned_data
        changes = {"name": data["name"], "cost": data["cost"]}
        if data.get("photo"):
            changes["photo"] = data["photo"]
        elif data.get("remove_photo"):
            changes["photo"] = None
        return changes


class RestockForm(forms.Form):
    quantity = _quantity(_("补货数量"), max_value=1_000_000)


# --- The board, objections, tally runs -------------------------------------------------------------------------


class MonthInput(forms.TextInput):
    input_type = "month"

    def __init__(self, attrs=None):
        super().__init__({"placeholder": "YYYY-MM", "pattern": r"[0-9]{4}-[0-9]{2}", **(attrs or {})})


class MonthField(forms.CharField):
    """A month as "YYYY-MM"; cleaned to its first day."""

    widget = MonthInput

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            return parse_month(value)
        except InvalidInput as error:
            raise forms.ValidationError(str(error.message)) from None


class ObjectionForm(forms.Form):
    entry = forms.TypedChoiceField(label=_("涉及的积分记录（选填）"), required=False, coerce=int, empty_value=None)
    reason = forms.CharField(
        label=_("异议内容"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("请写明哪里不对，例如：某天的加分没有记上、扣分有误。"),
    )

    def __init__(self, *args, entries=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.entries = {e.pk: e for e in entries}
        self.fields["entry"].choices = [("", _("不针对具体记录"))] + [
            (e.pk, f"{e.occurred_on:%m-%d} {e.rule.name if e.rule else e.get_kind_display()} {e.points:+d}")
            for e in entries
        ]
        if not entries:
            del self.fields["entry"]

    def clean_entry(self):
        value = self.cleaned_data.get("entry")
        return self.entries.get(value) if value else None


class ResolveForm(forms.Form):
    uphold = forms.TypedChoiceField(
        label=_("处理结果"),
        choices=[("yes", _("异议成立，予以更正")), ("no", _("异议不成立，驳回"))],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    resolution = _note(_("处理意见"), required=False, max_length=2000)
    correction_points = forms.IntegerField(
        label=_("更正分值（选填）"),
        required=False,
        min_value=-100_000,
        max_value=100_000,
        help_text=_("异议成立时：正数为补加，负数为扣减；指向具体记录的异议会自动冲正该记录。"),
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


class TallyRunForm(forms.Form):
    month = MonthField(label=_("月份"))
