"""Forms of the case pages: filing, the list filters, and one small form per workflow step.

The forms only read and convert the input (ids to objects, a date to the deadline moment); the rules are the
services'. The field names of the step forms are the keyword arguments of their service, so a view calls
`service(case=…, by=…, **form.cleaned_data)`.
"""

import datetime as dt

from django import forms
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from governance.models import Department, Level, Role, Unit
from governance.selectors import STEP, departments_visible_to, residents_visible_to, scope_of, under, units_visible_to

from . import selectors
from .models import CaseCategory, CaseState, ClosedReason, Source, Urgency

NOTE_ROWS = 3
YES_NO = [("yes", _("是")), ("no", _("否"))]


# --- Photos: several files from one <input type=file multiple> ----------------------------------------------


class PhotosInput(forms.FileInput):
    allow_multiple_selected = True

    def __init__(self, attrs=None):
        # No `capture`: with it phones open the camera only (one shot, no album); without it they offer both.
        super().__init__({"accept": "image/*", "multiple": True, **(attrs or {})})


class PhotosField(forms.FileField):
    """A list of uploaded files (possibly empty). Whether they are images is `services.check_photos`'s call."""

    widget = PhotosInput

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", _("照片"))
        kwargs.setdefault("help_text", _("可拍照或从相册选择，最多 9 张。"))
        super().__init__(**kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data]
        single = super().clean
        return [single(f, initial) for f in files if f]


def _note(label=None, required=False):
    return forms.CharField(
        label=label or _("说明"),
        required=required,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": NOTE_ROWS}),
    )


class YesNoField(forms.TypedChoiceField):
    def __init__(self, *, label, choices=YES_NO, **kwargs):
        super().__init__(
            label=label,
            choices=choices,
            coerce=lambda value: value == "yes",
            widget=forms.RadioSelect,
            **kwargs,
        )


STARS = [
    (5, _("★★★★★ 非常满意")),
    (4, _("★★★★ 满意")),
    (3, _("★★★ 一般")),
    (2, _("★★ 不满意")),
    (1, _("★ 很不满意")),
]


def _stars(label):
    return forms.TypedChoiceField(
        label=label, choices=STARS, coerce=int, widget=forms.RadioSelect(attrs={"class": "stars"})
    )


def _close_of_day(day: dt.date) -> dt.datetime:
    """A date picked on the page stands for the close of office hours that day (as the deadlines do)."""
    _, close = settings.WORKING_HOURS
    return timezone.make_aware(dt.datetime.combine(day, dt.time(*close)))


class UnitChoiceField(forms.ModelChoiceField):
    """A unit shown with its grid's name in front when there is more than one grid to tell apart."""

    def __init__(self, *args, prefixes=None, **kwargs):
        self.prefixes = prefixes or {}
        super().__init__(*args, **kwargs)

    def label_from_instance(self, unit):
        grid = self.prefixes.get(unit.path[: 3 * STEP])
        return f"{grid} · {unit.name}" if grid and unit.level == Level.BUILDING else unit.name


# --- Filing -------------------------------------------------------------------------------------------------


def filing_grids(user):
    """The grids `user` may file cases in (`selectors.may_file_in`): a grid worker's grids, and the grids of
    a community where the user is community staff."""
    scope = scope_of(user)
    community_paths = [p for p in scope.unit_paths.get(Role.COMMUNITY_STAFF, ()) if len(p) == 2 * STEP]
    paths = list(scope.paths(Role.GRID_WORKER)) + community_paths
    if not paths:
        return Unit.objects.none()
    return Unit.objects.filter(under(paths), level=Level.GRID).order_by("path")


def category_choices(user, *, groups_selectable=False):
    """Active leaf categories as <optgroup>s by their group; with `groups_selectable`, each group starts with an
    option for the whole group (for filtering)."""
    leaves = (
        selectors.categories_visible_to(user)
        .filter(active=True, parent__isnull=False)
        .select_related("parent")
        .order_by("parent__order", "parent__code", "order", "code")
    )
    grouped: dict = {}
    for leaf in leaves:
        options = grouped.setdefault(leaf.parent, [])
        if groups_selectable and not options:
            options.append((leaf.parent.pk, _("全部「%(group)s」") % {"group": leaf.parent.name}))
        options.append((leaf.pk, leaf.name))
    return [(group.name, options) for group, options in grouped.items()]


class CaseFileForm(forms.Form):
    grid = UnitChoiceField(queryset=Unit.objects.none(), label=_("网格"), empty_label=_("请选择网格"))
    building = UnitChoiceField(
        queryset=Unit.objects.none(), label=_("楼栋（选填）"), required=False, empty_label=_("不选（不在具体楼栋）")
    )
    category = forms.TypedChoiceField(label=_("事件分类"), coerce=int)
    title = forms.CharField(
        label=_("标题"), max_length=100, help_text=_("一句话说清楚，例如：3栋楼道堆放纸箱"), strip=True
    )
    description = forms.CharField(
        label=_("事件描述"), max_length=2000, widget=forms.Textarea(attrs={"rows": 5}), strip=True
    )
    urgency = forms.ChoiceField(
        label=_("紧急程度"), choices=Urgency.choices, initial=Urgency.NORMAL, widget=forms.RadioSelect
    )
    source = forms.ChoiceField(
        label=_("来源"), choices=[c for c in Source.choices if c[0] != Source.OPEN311], initial=Source.PATROL
    )
    address = forms.CharField(
        label=_("具体地点（选填）"), max_length=200, required=False, help_text=_("例如：2单元一楼楼道")
    )
    resident_id_number = forms.CharField(
        label=_("当事居民身份证号（选填）"),
        max_length=18,
        required=False,
        help_text=_("事件涉及具体居民时填写，办结后由该居民评价。"),
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "text"}),
    )
    photos = PhotosField()
    resolved_on_site = forms.CharField(
        label=_("已现场处置（选填）"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("简单问题已当场解决时填写处置情况，并上传处置后的照片：上报即办结，不再交社区分流。"),
    )
    not_duplicate = forms.BooleanField(label=_("确认不是重复事件，仍然上报"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        grids = list(filing_grids(user))
        names = {g.path: g.name for g in grids}
        self.fields["grid"].queryset = Unit.objects.filter(pk__in=[g.pk for g in grids]).order_by("path")
        if len(grids) == 1:
            self.fields["grid"].initial = grids[0].pk
        self.fields["building"].queryset = Unit.objects.filter(
            under([g.path for g in grids]), level=Level.BUILDING
        ).order_by("path")
        self.fields["building"].prefixes = names if len(grids) > 1 else {}
        self.fields["category"].choices = [("", _("请选择分类")), *category_choices(user)]

    def clean_category(self):
        value = self.cleaned_data["category"]
        category = CaseCategory.objects.filter(pk=value, active=True, parent__isnull=False).first()
        if category is None:
            raise forms.ValidationError(_("请选择一个具体分类。"))
        return category

    def clean(self):
        data = super().clean()
        grid, building = data.get("grid"), data.get("building")
        if grid and building and not building.path.startswith(grid.path):
            self.add_error("building", _("所选楼栋不在所选网格内。"))
        number = (data.get("resident_id_number") or "").strip().upper()
        data["affected_resident"] = None
        if number and grid:
            resident = (
                residents_visible_to(self.user)
                .filter(id_number=number, moved_out_on=None, household__building__path__startswith=grid.path)
                .select_related("household__building")
                .first()
            )
            if resident is None:
                self.add_error("resident_id_number", _("所选网格中没有登记这个身份证号的居民，请核对。"))
            data["affected_resident"] = resident
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        keys = ("grid", "building", "category", "title", "description", "urgency", "source", "address")
        return {
            **{k: data[k] for k in keys},
            "affected_resident": data["affected_resident"],
            "photos": data["photos"],
            "resolved_on_site": data.get("resolved_on_site") or "",
        }


# The service's field names that the filing form shows under another name.
FILE_FIELD_ALIASES = {"affected_resident": "resident_id_number"}


# --- The list's filters ---------------------------------------------------------------------------------------


class CaseFilterForm(forms.Form):
    q = forms.CharField(label=_("编号或标题"), required=False, max_length=100)
    state = forms.ChoiceField(label=_("状态"), required=False)
    category = forms.TypedChoiceField(label=_("分类"), required=False, coerce=int, empty_value=None)
    unit = forms.TypedChoiceField(label=_("区域"), required=False, coerce=int, empty_value=None)
    overdue = forms.BooleanField(label=_("只看超期"), required=False)
    mine = forms.BooleanField(label=_("与我有关"), required=False, help_text=_("我上报的，或由我方承办的"))
    open = forms.BooleanField(label=_("只看未办结"), required=False, help_text=_("还没有办结的，不含待核查、待评价的"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", _("全部状态")), *CaseState.choices]
        categories = category_choices(user, groups_selectable=True)
        if categories:
            self.fields["category"].choices = [("", _("全部分类")), *categories]
        else:
            del self.fields["category"]
        units = filter_units(user)
        if len(units) > 1:
            self.fields["unit"].choices = [("", _("全部区域")), *units]
        else:
            del self.fields["unit"]


def filter_units(user) -> list[tuple[int, str]]:
    """Units to filter the list by: streets and communities the user can see, and grids within the user's own
    subtrees (a whole city's grids would make a select nobody can use). Indented by level."""
    scope = scope_of(user)
    if not scope.is_staff_member:
        return []
    visible = units_visible_to(user).filter(level__in=(Level.STREET, Level.COMMUNITY, Level.GRID))
    if not scope.is_admin and not scope.department_ids:
        visible = visible.filter(under(scope.paths()))
    elif scope.paths():
        visible = visible.filter(~Q(level=Level.GRID) | under(scope.paths()))
    else:
        visible = visible.exclude(level=Level.GRID)
    indent = {Level.STREET: "", Level.COMMUNITY: "\u3000", Level.GRID: "\u3000\u3000"}
    return [(u.pk, indent[u.level] + u.name) for u in visible.only("id", "name", "level", "path").order_by("path")]


# --- One form per step ------------------------------------------------------------------------------------------


class StepForm(forms.Form):
    """A step's input. `case` and `user` are there for the choices that depend on them."""

    def __init__(self, *args, case, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.case, self.user = case, user


class NoteForm(StepForm):
    note = _note()


class RequiredNoteForm(StepForm):
    note = _note(_("说明（必填）"))


class NotePhotosForm(StepForm):
    note = _note()
    photos = PhotosField()


class ResubmitForm(StepForm):
    note = _note(_("补充说明"))
    description = forms.CharField(
        label=_("修改后的事件描述（选填）"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 4})
    )
    photos = PhotosField()


class CloseForm(StepForm):
    reason = forms.ChoiceField(
        label=_("关闭原因"),
        choices=[
            (ClosedReason.INVALID, ClosedReason.INVALID.label),
            (ClosedReason.DUPLICATE, ClosedReason.DUPLICATE.label),
        ],
        widget=forms.RadioSelect,
    )
    duplicate_of = forms.CharField(
        label=_("重复于哪一件事件（编号）"), required=False, max_length=20, help_text=_("例如 SJ-2026-000123")
    )
    note = _note()

    def clean_duplicate_of(self):
        value = self.cleaned_data["duplicate_of"].strip()
        if not value:
            return None
        found = selectors.cases_visible_to(self.user).filter(number__iexact=value).first()
        if found is None:
            raise forms.ValidationError(_("没有找到编号为 %(number)s 的事件。"), params={"number": value})
        return found


class DispatchForm(StepForm):
    department = forms.ModelChoiceField(
        label=_("牵头部门"), queryset=Department.objects.none(), empty_label=_("请选择部门")
    )
    assisting = forms.ModelMultipleChoiceField(
        label=_("协办部门（可多选）"),
        queryset=Department.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    note = _note()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        departments = departments_visible_to(self.user).filter(is_active=True).order_by("code")
        self.fields["department"].queryset = departments
        self.fields["assisting"].queryset = departments
        self.fields["department"].initial = self.case.category.default_department_id


class ExtensionRequestForm(StepForm):
    until = forms.DateField(label=_("申请延期至"), widget=forms.DateInput(attrs={"type": "date"}))
    note = _note(_("延期理由"))

    def clean_until(self):
        return _close_of_day(self.cleaned_data["until"])


class ExtensionDecisionForm(StepForm):
    approve = YesNoField(label=_("是否同意延期"), choices=[("yes", _("同意")), ("no", _("不同意"))])
    until = forms.DateField(
        label=_("新的办理时限（不填则按申请）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    note = _note()

    def clean_until(self):
        day = self.cleaned_data["until"]
        return _close_of_day(day) if day else None


class VerifyForm(StepForm):
    confirmed = YesNoField(label=_("核查结果"), choices=[("yes", _("已解决")), ("no", _("未解决，退回返工"))])
    note = _note()
    photos = PhotosField()


class RateForm(StepForm):
    stars = _stars(_("满意程度"))
    note = _note(_("评价意见（选填）"))


class ReviewDepartmentForm(StepForm):
    department = forms.ModelChoiceField(label=_("部门"), queryset=Department.objects.none(), empty_label=None)
    stars = _stars(_("响应评价"))
    note = _note(_("评价意见（选填）"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        ids = [d.department_id for d in self.case.dispatches.all() if d.sent_back_at is None]
        self.fields["department"].queryset = Department.objects.filter(pk__in=ids).order_by("code")


class SupportForm(StepForm):
    pass


STEP_FORMS = {
    "resolve-on-site": NotePhotosForm,
    "accept": NoteForm,
    "return": RequiredNoteForm,
    "resubmit": ResubmitForm,
    "close": CloseForm,
    "escalate": RequiredNoteForm,
    "dispatch": DispatchForm,
    "sign": NoteForm,
    "send-back": RequiredNoteForm,
    "request-extension": ExtensionRequestForm,
    "decide-extension": ExtensionDecisionForm,
    "handle": NotePhotosForm,
    "verify": VerifyForm,
    "rate": RateForm,
    "reopen": RequiredNoteForm,
    "review-department": ReviewDepartmentForm,
    "comment": NotePhotosForm,
    "support": SupportForm,
}
