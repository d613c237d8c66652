"""Forms of the mailbox pages: writing a letter, the inbox filters, and one small form per step.

The forms only read and convert the input; the rules are the services'. The field names of the step forms are
the keyword arguments of their service, so a view calls `service(letter=…, by=…, **form.cleaned_data)`.
"""

from django import forms
from django.utils.translation import gettext_lazy as _

from governance.models import Department, Level, Unit
from governance.selectors import under
from grids.forms import STARS, YesNoField, _close_of_day, category_choices

from . import selectors
from .models import Channel, ContactPreference, Intake, LetterCategory, LetterState
from .services import MAX_BODY, MAX_REPLY, MAX_SUBJECT

TEXT_ROWS = 6


class AttachmentsInput(forms.FileInput):
    allow_multiple_selected = True

    def __init__(self, attrs=None):
        super().__init__({"accept": "image/*,application/pdf", "multiple": True, **(attrs or {})})


class AttachmentsField(forms.FileField):
    """Several files from one input (possibly none). Whether they are images or PDF files is the service's call."""

    widget = AttachmentsInput

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", _("附件（选填）"))
        kwargs.setdefault("help_text", _("照片或 PDF 文件，最多 5 个，每个不超过 10 MB。"))
        super().__init__(**kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data]
        single = super().clean
        return [single(f, initial) for f in files if f]


def _text(label, *, required=False, rows=3, max_length=MAX_BODY, help_text=""):
    return forms.CharField(
        label=label,
        required=required,
        max_length=max_length,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": rows}),
    )


# --- Writing ------------------------------------------------------------------------------------------------


class LetterWriteForm(forms.Form):
    unit = forms.TypedChoiceField(label=_("写给"), coerce=int, widget=forms.RadioSelect)
    channel = forms.ChoiceField(
        label=_("渠道"),
        choices=Channel.choices,
        initial=Channel.MAILBOX,
        widget=forms.RadioSelect,
        help_text=_("书记信箱：写给书记的意见、诉求；居民说事：大家关心的事，社区一起商量解决。"),
    )
    category = forms.ModelChoiceField(label=_("分类"), queryset=LetterCategory.objects.none(), empty_label=_("请选择"))
    subject = forms.CharField(label=_("标题"), max_length=MAX_SUBJECT)
    body = _text(_("内容"), required=True, rows=TEXT_ROWS, help_text=_("请写清楚事情经过和您的诉求，最多 3000 字。"))
    attachments = AttachmentsField()
    allow_publication = forms.BooleanField(
        label=_("同意公开办理过程和答复（姓名、电话、身份证号、门牌号会隐去）"), required=False
    )
    contact_preference = forms.ChoiceField(
        label=_("希望的联系方式"),
        choices=ContactPreference.choices,
        initial=ContactPreference.APP,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, writer, proxy=False, **kwargs):
        super().__init__(*args, **kwargs)
        units = selectors.recipient_units(writer)
        self.fields["unit"].choices = [(u.pk, _("%(name)s书记") % {"name": u.name}) for u in units]
        self.fields["unit"].initial = units[0].pk if units else None
        self.fields["category"].queryset = selectors.categories_for_writing()
        self.units = {u.pk: u for u in units}
        if proxy:
            self.fields["intake"] = forms.ChoiceField(
                label=_("来信方式"),
                choices=[(Intake.VISIT, Intake.VISIT.label), (Intake.PHONE, Intake.PHONE.label)],
                initial=Intake.VISIT,
                widget=forms.RadioSelect,
            )
            self.fields["allow_publication"].label = _("居民同意公开办理过程和答复（个人信息会隐去）")

    def clean_unit(self):
        value = self.cleaned_data["unit"]
        if value not in self.units:
            raise forms.ValidationError(_("请选择写给谁。"))
        return self.units[value]


# --- The inbox's filters --------------------------------------------------------------------------------------


class LetterFilterForm(forms.Form):
    q = forms.CharField(label=_("编号或标题"), required=False, max_length=100)
    state = forms.ChoiceField(label=_("状态"), required=False)
    channel = forms.ChoiceField(label=_("渠道"), required=False)
    category = forms.TypedChoiceField(label=_("分类"), required=False, coerce=int, empty_value=None)
    overdue = forms.BooleanField(label=_("只看超期"), required=False)
    mine = forms.BooleanField(label=_("待我处理"), required=False)
    open = forms.BooleanField(
        label=_("只看未办结"), required=False, help_text=_("还在受理、承办或审核中的，不含待评价的")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", _("全部状态")), *LetterState.choices]
        self.fields["channel"].choices = [("", _("全部渠道")), *Channel.choices]
        self.fields["category"].choices = [
            ("", _("全部分类")),
            *LetterCategory.objects.order_by("order", "code").values_list("id", "name"),
        ]


# --- One form per step ----------------------------------------------------------------------------------------


class StepForm(forms.Form):
    def __init__(self, *args, letter, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.letter, self.user = letter, user


class NoteForm(StepForm):
    note = _text(_("说明（选填）"))


class RejectForm(StepForm):
    note = _text(_("不予受理的理由（来信人会看到）"), required=True)


class RequiredNoteForm(StepForm):
    note = _text(_("说明"), required=True)


class FollowUpForm(StepForm):
    note = _text(_("您的追问（只能追问一次）"), required=True)


ASSIGN_TO = [("unit", _("交本单位或下属社区、网格")), ("department", _("交职能部门")), ("case", _("转为网格事件"))]


class AssignForm(StepForm):
    to = forms.ChoiceField(label=_("交办给"), choices=ASSIGN_TO, widget=forms.RadioSelect, initial="unit")
    unit = forms.ModelChoiceField(label=_("承办单位"), queryset=Unit.objects.none(), required=False)
    department = forms.ModelChoiceField(label=_("承办部门"), queryset=Department.objects.none(), required=False)
    case_grid = forms.ModelChoiceField(label=_("事件所在网格"), queryset=Unit.objects.none(), required=False)
    case_category = forms.TypedChoiceField(label=_("事件分类"), required=False, coerce=int, empty_value=None)
    deadline = forms.DateField(
        label=_("办理期限（选填）"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("不填则为答复时限。"),
    )
    note = _text(_("交办意见（选填）"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        subtree = Unit.objects.filter(under([self.letter.unit.path])).order_by("path")
        self.fields["unit"].queryset = subtree.filter(level__in=[Level.STREET, Level.COMMUNITY, Level.GRID])
        self.fields["case_grid"].queryset = subtree.filter(level=Level.GRID)
        self.fields["department"].queryset = Department.objects.filter(is_active=True).order_by("code")
        self.fields["case_category"].choices = [("", _("请选择分类")), *category_choices(self.user)]

    def clean(self):
        data = super().clean()
        to = data.pop("to", None)
        for name, kind in (("unit", "unit"), ("department", "department"), ("case_grid", "case")):
            if kind != to:
                data[name] = None
        if to == "case":
            from grids.models import CaseCategory

            value = data.get("case_category")
            data["case_category"] = CaseCategory.objects.filter(pk=value).first() if value else None
        else:
            data["case_category"] = None
        if data.get("deadline"):
            data["deadline"] = _close_of_day(data["deadline"])
        required = {"unit": "unit", "department": "department", "case": "case_grid"}.get(to)
        if required and not data.get(required):
            self.add_error(required, _("请选择。"))
        return data


class PublicCopyMixin:
    """The public copy for the secretary to review (prefilled with the redacted texts when the writer allowed
    publication); what is left as it is, is redacted again when saved."""

    def add_public_fields(self, preview: dict):
        if not self.letter.allow_publication:
            return
        for name, label in (
            ("public_body", _("公开的来信内容（已自动隐去个人信息，可再修改）")),
            ("public_reply", _("公开的答复")),
        ):
            self.fields[name] = _text(label, rows=4, max_length=MAX_REPLY)
            self.fields[name].initial = preview.get(name, "")


class ReplyForm(PublicCopyMixin, StepForm):
    text = _text(_("答复内容"), required=True, rows=TEXT_ROWS, max_length=MAX_REPLY)
    attachments = AttachmentsField()

    def __init__(self, *args, preview=None, **kwargs):
        super().__init__(*args, **kwargs)
        if preview is not None and selectors.is_secretary(selectors.scope_of(self.user), self.letter):
            self.add_public_fields(preview)
            self.fields.pop("public_reply", None)  # the reply is being written now: it is redacted when saved


class SignOffForm(PublicCopyMixin, StepForm):
    approved = YesNoField(label=_("审签结果"), choices=[("yes", _("同意，发出答复")), ("no", _("退回修改"))])
    text = _text(_("答复内容（可修改后发出）"), rows=TEXT_ROWS, max_length=MAX_REPLY)
    note = _text(_("退回修改的意见"))

    def __init__(self, *args, preview=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["text"].initial = self.letter.draft
        if preview is not None:
            self.add_public_fields(preview)


class RateForm(StepForm):
    stars = forms.TypedChoiceField(label=_("评价"), choices=STARS, coerce=int, widget=forms.RadioSelect)
    note = _text(_("评价意见（选填）"))


class PublishForm(PublicCopyMixin, StepForm):
    def __init__(self, *args, preview=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_public_fields(preview or {})


STEP_FORMS = {
    "accept": NoteForm,
    "reject": RejectForm,
    "assign": AssignForm,
    "reply": ReplyForm,
    "sign-off": SignOffForm,
    "follow-up": FollowUpForm,
    "rate": RateForm,
    "reopen": RequiredNoteForm,
    "publish": PublishForm,
    "unpublish": NoteForm,
    "make-private": NoteForm,
}
# The steps whose forms show the public copy for review.
WITH_PREVIEW = ("reply", "sign-off", "publish")
