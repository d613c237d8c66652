"""The Django admin for administrators: tree editing through the same services as the API, personal data
masked in lists, archives instead of deletes."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import privacy, selectors, services, workdays
from .errors import DomainError
from .masking import mask_id_number, mask_phone
from .models import (
    CHILD_LEVEL,
    PARENT_LEVEL,
    ROLE_LEVEL,
    ApiKey,
    CalendarDay,
    Department,
    GridTeamMember,
    Household,
    ImportJob,
    ImportState,
    Level,
    LoginFailure,
    Notification,
    PartyOrg,
    PersonalDataAccess,
    Position,
    Resident,
    ResidentTag,
    Role,
    Unit,
    User,
)
from .validators import id_number_problem


class ImportForm(forms.Form):
    kind = forms.ChoiceField(label=_("导入内容"), choices=())
    file = forms.FileField(label=_("文件（.xlsx 或 .csv）"))

    def __init__(self, *args, **kwargs):
        from . import imports

        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(kind, cls.label) for kind, cls in imports.KINDS.items()]


class AdministratorsOnly:
    """Our models are kept by administrators (the administrator position or a superuser), whatever Django's
    per-model permissions say; what each may see still comes from the scoped accessors."""

    def has_module_permission(self, request):
        return selectors.scope_of(request.user).is_admin

    def has_view_permission(self, request, obj=None):
        return selectors.scope_of(request.user).is_admin

    def has_add_permission(self, request, *args):
        return selectors.scope_of(request.user).is_admin

    def has_change_permission(self, request, obj=None):
        return selectors.scope_of(request.user).is_admin

    def has_delete_permission(self, request, obj=None):
        return selectors.scope_of(request.user).is_admin


class ReadOnly(AdministratorsOnly):
    """Records that change only through their services (cases, letters, the ledger): viewed in the admin,
    never added, changed or deleted there."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Units ----------------------------------------------------------------------------------------------


class UnitAddForm(forms.ModelForm):
    parent = forms.ModelChoiceField(
        queryset=Unit.objects.exclude(level=Level.BUILDING).order_by("path"),
        required=False,
        label=_("上级单元"),
        help_text=_("不选则新建街道；社区选街道，网格选社区，楼栋选网格。"),
    )

    class Meta:
        model = Unit
        fields = [
            "parent", "name", "code", "grid_kind", "compound_name", "target_households", "address", "latitude", "longitude",
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        parent = data.get("parent")
        level = CHILD_LEVEL.get(parent.level) if parent else Level.STREET
        if data.get("grid_kind") and level != Level.GRID:
            self.add_error("grid_kind", _("只有网格才有网格类型。"))
        self.instance.level = level
        return data

    def clean_code(self):
        code = self.cleaned_data["code"]
        if Unit.objects.filter(code=code).exists():
            raise forms.ValidationError(_("编码已被使用。"))
        return code

    def _post_clean(self):
        # Tree fields are set by the service; model validation of depth would fail before that.
        pass


class UnitChangeForm(forms.ModelForm):
    class Meta:
        model = Unit
        fields = ["name", "code", "grid_kind", "compound_name", "target_households", "address", "latitude", "longitude"]

    def clean_grid_kind(self):
        value = self.cleaned_data.get("grid_kind")
        if value and self.instance.level != Level.GRID:
            raise forms.ValidationError(_("只有网格才有网格类型。"))
        return value


class MoveForm(forms.Form):
    parent = forms.ModelChoiceField(queryset=Unit.objects.none(), label=_("移动到"))

    def __init__(self, *args, unit, **kwargs):
        super().__init__(*args, **kwargs)
        expected = PARENT_LEVEL.get(unit.level)
        self.fields["parent"].queryset = (
            Unit.objects.filter(level=expected).order_by("path") if expected else Unit.objects.none()
        )


class GridTeamInline(AdministratorsOnly, admin.TabularInline):
    model = GridTeamMember
    extra = 0
    fields = ["team_role", "name", "phone", "user"]
    autocomplete_fields = ["user"]


@admin.register(Unit)
class UnitAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = ["tree_name", "code", "level", "grid_kind", "numchild", "move_link"]
    list_filter = ["level", "grid_kind"]
    search_fields = ["name", "code", "compound_name"]
    ordering = ["path"]
    list_per_page = 100
    actions = None
    readonly_fields = ["level", "created_at"]

    def get_queryset(self, request):
        return selectors.units_visible_to(request.user)

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = UnitChangeForm if obj else UnitAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return UnitAddForm.Meta.fields
        return ["level", *UnitChangeForm.Meta.fields, "created_at"]

    def get_inlines(self, request, obj):
        return [GridTeamInline] if obj and obj.level == Level.GRID else []

    @admin.display(description=_("名称"), ordering="path")
    def tree_name(self, obj):
        return format_html('<span style="padding-left:{}em">{}</span>', (obj.depth - 1) * 1.5, obj.name)

    @admin.display(description=_("移动"))
    def move_link(self, obj):
        if obj.level == Level.STREET:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:governance_unit_move", args=[obj.pk]), _("移动…"))

    def save_model(self, request, obj, form, change):
        data = {k: v for k, v in form.cleaned_data.items() if k != "parent"}
        if change:
            saved = services.unit_update(
                by=request.user, unit=obj, **{f: data[f] for f in form.changed_data if f in data}
            )
        else:
            saved = services.unit_create(by=request.user, parent=form.cleaned_data.get("parent"), **data)
        obj.pk = saved.pk
        obj.path, obj.depth = saved.path, saved.depth

    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST":
            unit = get_object_or_404(self.get_queryset(request), pk=object_id)
            try:
                services.unit_delete(by=request.user, unit=unit)
            except DomainError as exc:
                self.message_user(request, str(exc.message), messages.ERROR)
                return HttpResponseRedirect(reverse("admin:governance_unit_change", args=[unit.pk]))
            self.message_user(request, _("已删除 %(name)s。") % {"name": unit.name}, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:governance_unit_changelist"))
        return super().delete_view(request, object_id, extra_context)

    def get_urls(self):
        return [
            path("<int:pk>/move/", self.admin_site.admin_view(self.move_view), name="governance_unit_move"),
            *super().get_urls(),
        ]

    def move_view(self, request, pk):
        """Move a unit and its subtree; a refused move is explained on the form."""
        unit = get_object_or_404(self.get_queryset(request), pk=pk)
        form = MoveForm(request.POST or None, unit=unit)
        refusal = _("街道是顶级单元，不能移动。") if unit.level == Level.STREET else None
        if request.method == "POST" and not refusal and form.is_valid():
            try:
                services.unit_move(by=request.user, unit=unit, parent=form.cleaned_data["parent"])
            except DomainError as exc:
                form.add_error("parent", str(exc.message))
            else:
                self.message_user(
                    request,
                    _("已将 %(unit)s 移动到 %(parent)s 下。")
                    % {"unit": unit.name, "parent": form.cleaned_data["parent"].name},
                )
                return HttpResponseRedirect(reverse("admin:governance_unit_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("移动 %(unit)s") % {"unit": unit.name},
            "unit": unit,
            "form": form,
            "refusal": refusal,
        }
        return TemplateResponse(request, "admin/governance/unit/move.html", context)


# --- Party organisations --------------------------------------------------------------------------------


class PartyOrgForm(forms.ModelForm):
    secretary = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True), required=False, label=_("书记"))

    class Meta:
        model = PartyOrg
        fields = ["name", "founded_on"]


@admin.register(PartyOrg)
class PartyOrgAdmin(AdministratorsOnly, admin.ModelAdmin):
    form = PartyOrgForm
    list_display = ["name", "kind", "unit", "founded_on", "secretary_name"]
    list_filter = ["kind"]
    search_fields = ["name", "unit__name", "unit__code"]
    readonly_fields = ["unit", "kind"]
    fields = ["unit", "kind", "name", "founded_on", "secretary"]
    list_select_related = ["unit"]

    def get_queryset(self, request):
        return selectors.party_orgs_visible_to(request.user).order_by("unit__path")

    def has_add_permission(self, request):
        return False  # created together with its unit

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        self._secretaries = services.party_org_secretaries(changelist.result_list)
        return changelist

    @admin.display(description=_("书记"))
    def secretary_name(self, obj):
        secretary = getattr(self, "_secretaries", {}).get(obj.unit_id)
        return secretary.display_name if secretary else "—"

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None:
            current = services.party_org_secretaries([obj]).get(obj.unit_id)
            form.base_fields["secretary"].initial = current.pk if current else None
        return form

    def save_model(self, request, obj, form, change):
        services.party_org_update(
            by=request.user,
            org=obj,
            secretary=form.cleaned_data.get("secretary"),
            name=form.cleaned_data["name"],
            founded_on=form.cleaned_data["founded_on"],
        )


# --- Households and residents ---------------------------------------------------------------------------


@admin.register(Household)
class HouseholdAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = ["room", "building", "is_party_central"]
    list_filter = ["is_party_central"]
    search_fields = ["room", "building__name", "building__code"]
    list_select_related = ["building"]
    autocomplete_fields = ["building"]

    def get_queryset(self, request):
        return selectors.households_visible_to(request.user)

    def has_delete_permission(self, request, obj=None):
        return False


class ResidentForm(forms.ModelForm):
    class Meta:
        model = Resident
        fields = ["household", "name", "gender", "birth_date", "id_number", "phone", "tags"]

    def clean_id_number(self):
        value = (self.cleaned_data.get("id_number") or "").strip().upper()
        if value:
            problem = id_number_problem(value)
            if problem:
                raise forms.ValidationError(problem)
        return value


@admin.register(Resident)
class ResidentAdmin(AdministratorsOnly, admin.ModelAdmin):
    form = ResidentForm
    list_display = ["name", "gender", "id_number_masked_display", "phone_masked_display", "household", "moved_out_on"]
    list_filter = ["gender", "tags", ("moved_out_on", admin.EmptyFieldListFilter)]
    search_fields = ["name", "household__room"]
    list_select_related = ["household"]
    autocomplete_fields = ["household"]
    readonly_fields = ["moved_out_on", "created_at"]
    filter_horizontal = ["tags"]
    actions = ["move_out"]

    def get_queryset(self, request):
        return selectors.residents_visible_to(request.user)

    def get_fields(self, request, obj=None):
        return [*ResidentForm.Meta.fields, "moved_out_on", "created_at"]

    @admin.display(description=_("身份证号"))
    def id_number_masked_display(self, obj):
        return mask_id_number(obj.id_number)

    @admin.display(description=_("手机号"))
    def phone_masked_display(self, obj):
        return mask_phone(obj.phone)

    def has_delete_permission(self, request, obj=None):
        return False  # residents are archived (迁出), never deleted

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="governance_resident_import"),
            path(
                "import/<int:pk>/",
                self.admin_site.admin_view(self.import_job_view),
                name="governance_resident_import_job",
            ),
            path(
                "import/template/<slug:kind>/",
                self.admin_site.admin_view(self.template_view),
                name="governance_resident_import_template",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request):
        """Upload a file to import (governance/imports.py): a worker checks and loads it, all or nothing, and
        the job's page follows it."""
        from . import imports

        if not selectors.scope_of(request.user).is_admin:
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            job = imports.job_submit(by=request.user, kind=form.cleaned_data["kind"], upload=form.cleaned_data["file"])
            return HttpResponseRedirect(reverse("admin:governance_resident_import_job", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("从 Excel 导入"),
            "form": form,
            "kinds": [(kind, cls.label) for kind, cls in imports.KINDS.items()],
            "jobs": ImportJob.objects.select_related("created_by")[:10],
        }
        return TemplateResponse(request, "admin/governance/resident/import.html", context)

    def import_job_view(self, request, pk):
        """An import's progress (the page refreshes itself until it is done), then its result or its bad rows."""
        if not selectors.scope_of(request.user).is_admin:
            raise PermissionDenied
        job = get_object_or_404(ImportJob, pk=pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("导入任务"),
            "job": job,
            "running": job.state in (ImportState.QUEUED, ImportState.RUNNING),
        }
        return TemplateResponse(request, "admin/governance/resident/import_job.html", context)

    def template_view(self, request, kind):
        from django.http import Http404, HttpResponse

        from . import imports

        if kind not in imports.KINDS:
            raise Http404
        response = HttpResponse(
            imports.template(kind), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        response["Content-Disposition"] = f'attachment; filename="import-{kind}.xlsx"'
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The change form shows the whole ID number and phone: each opening is logged."""
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200 and str(object_id).isdigit():
            privacy.log_access(
                request.user,
                what="resident",
                object_ids=[object_id],
                fields=["id_number", "phone"],
                via="admin",
                request=request,
            )
        return response

    def save_model(self, request, obj, form, change):
        data = {k: v for k, v in form.cleaned_data.items() if k != "tags"}
        if change:
            changed = {k: data[k] for k in form.changed_data if k in data}
            services.resident_update(by=request.user, resident=obj, **changed)
        else:
            saved = services.resident_create(by=request.user, **data)
            obj.pk = saved.pk

    @admin.action(description=_("标记为已迁出（归档）"))
    def move_out(self, request, queryset):
        done = 0
        for resident in queryset.select_related("household__building"):
            try:
                services.resident_move_out(by=request.user, resident=resident)
                done += 1
            except DomainError:
                pass
        self.message_user(request, _("已归档 %(n)d 位居民。") % {"n": done})


@admin.register(ResidentTag)
class ResidentTagAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = ["name", "code", "order"]
    list_editable = ["order"]


# --- Departments, people --------------------------------------------------------------------------------


@admin.register(Department)
class DepartmentAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = ["name", "code", "kind", "phone", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "code"]

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: cases keep pointing at their department


class PositionInline(admin.TabularInline):
    """Shown on the user's page; positions are granted on the 职务 page, where the rules are checked."""

    model = Position
    extra = 0
    fields = ["role", "unit", "department", "resident", "grid_worker_kind", "created_at"]
    readonly_fields = fields
    can_delete = True

    def has_add_permission(self, request, obj=None):
        return False


class PositionForm(forms.ModelForm):
    class Meta:
        model = Position
        fields = ["user", "role", "unit", "department", "resident", "grid_worker_kind"]

    def clean(self):
        data = super().clean()
        level = ROLE_LEVEL.get(data.get("role"))
        unit = data.get("unit")
        if level and unit is not None and unit.level != level:
            self.add_error(
                "unit",
                _("%(role)s只能设在%(level)s。") % {"role": Role(data["role"]).label, "level": Level(level).label},
            )
        return data


@admin.register(User)
class UserAdmin(AdministratorsOnly, DjangoUserAdmin):
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("个人信息"), {"fields": ("name", "phone", "email")}),
        (_("权限"), {"fields": ("is_active", "is_staff", "is_superuser")}),
        (_("重要日期"), {"fields": ("last_login", "date_joined")}),
    )
    list_display = ["username", "name", "is_active", "is_staff", "last_login"]
    search_fields = ["username", "name"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    inlines = [PositionInline]
    readonly_fields = ["last_login", "date_joined"]


@admin.register(Position)
class PositionAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = ["user", "role", "unit", "department", "resident", "grid_worker_kind", "created_at"]
    list_filter = ["role", "grid_worker_kind"]
    search_fields = ["user__username", "user__name", "unit__name", "department__name"]
    list_select_related = ["user", "unit", "department", "resident"]
    autocomplete_fields = ["user", "unit", "department", "resident"]
    readonly_fields = ["created_at"]
    form = PositionForm

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        saved = services.position_grant(
            by=request.user,
            user=data["user"],
            role=data["role"],
            unit=data.get("unit"),
            department=data.get("department"),
            resident=data.get("resident"),
            grid_worker_kind=data.get("grid_worker_kind") or "",
        )
        obj.pk = saved.pk

    def get_readonly_fields(self, request, obj=None):
        # A position's holder and place are history: to change them, end the position and grant a new one.
        return ["user", "role", "unit", "department", "resident", "created_at"] if obj else ["created_at"]


# --- The working-day calendar and notifications -----------------------------------------------------------


@admin.register(CalendarDay)
class CalendarDayAdmin(AdministratorsOnly, admin.ModelAdmin):
    """Dates where the administrator overrides the holiday package: years it does not know yet (the installed
    chinese-calendar knows 2004–2026), or a changed arrangement. Deadlines counted after the change follow it."""

    list_display = ["date", "is_workday", "note"]
    list_filter = ["is_workday"]
    date_hierarchy = "date"
    search_fields = ["note"]

    def changelist_view(self, request, extra_context=None):
        for year in workdays.years_needing_overrides():
            messages.warning(
                request,
                _(
                    "节假日数据包尚无 %(year)d 年的安排：国务院公布 %(year)d 年放假安排后，请在此逐日录入放假日和调休上班日，"
                    "否则 %(year)d 年的期限只按周一至周五计算。"
                )
                % {"year": year},
            )
        return super().changelist_view(request, extra_context)


@admin.register(Notification)
class NotificationAdmin(AdministratorsOnly, admin.ModelAdmin):
    """Read-only: notifications are written by the system and read by their users."""

    list_display = ["created_at", "user", "kind", "title", "read_at"]
    list_filter = ["kind", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "user__username", "user__name"]
    list_select_related = ["user"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- The audit trail of the admin ---------------------------------------------------------------------------------


@admin.register(LogEntry)
class AuditLogAdmin(ReadOnly, admin.ModelAdmin):
    """Every addition, change and deletion made through this admin (Django writes one row per save: who, when,
    which record, what changed), for administrators to look up. Nobody edits or deletes it here."""

    list_display = ["action_time", "user", "content_type", "object_repr", "action_flag", "change_message"]
    list_filter = ["action_flag", "content_type", "action_time"]
    search_fields = ["object_repr", "change_message", "user__username", "user__name"]
    date_hierarchy = "action_time"
    list_select_related = ["user", "content_type"]
    show_full_result_count = False

    def change_message(self, entry):
        return entry.get_change_message()

    change_message.short_description = _("变更内容")


# --- Two-factor devices and login failures ------------------------------------------------------------


class TwoFactorDeviceAdmin(AdministratorsOnly, admin.ModelAdmin):
    """Who signs in with an authenticator. Deleting a device is how an administrator helps someone who lost
    their phone: they sign in with the password and set up a new one (an administrator is asked at once)."""

    list_display = ("user", "name", "confirmed", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username", "user__name")
    fields = ("user", "name", "confirmed", "last_used_at")
    readonly_fields = ("user", "name", "confirmed", "last_used_at")

    def has_add_permission(self, request, *args):
        return False  # a device is added by its owner, who scans the secret


class LoginFailureAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("username", "ip", "at")
    search_fields = ("username", "ip")
    date_hierarchy = "at"

    def has_delete_permission(self, request, obj=None):
        return selectors.scope_of(request.user).is_admin  # unlock someone before the 15 minutes are up


def _register_two_factor():
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if admin.site.is_registered(TOTPDevice):
        admin.site.unregister(TOTPDevice)
    admin.site.register(TOTPDevice, TwoFactorDeviceAdmin)
    admin.site.register(LoginFailure, LoginFailureAdmin)


_register_two_factor()


@admin.register(PersonalDataAccess)
class PersonalDataAccessAdmin(ReadOnly, admin.ModelAdmin):
    """Who saw whole ID numbers or phones, or exported personal data: read-only, for administrators."""

    list_display = ("at", "user", "via", "what", "object_ids", "fields", "ip")
    list_filter = ("via", "what")
    search_fields = ("user__username", "user__name", "path")
    date_hierarchy = "at"
    list_select_related = ("user",)


@admin.register(ApiKey)
class ApiKeyAdmin(AdministratorsOnly, admin.ModelAdmin):
    """Keys of other systems (Open311). Made with `manage.py create_open311_key NAME`, which shows the key once;
    here they are revoked (the cases they brought in keep their source)."""

    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    fields = ("name", "prefix", "user", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "user", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request, *args):
        return False  # the command makes keys: the raw key must be shown once, to the one who made it

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("吊销所选密钥"))
    def revoke(self, request, queryset):
        for key in queryset:
            services.api_key_revoke(key=key)
        self.message_user(request, _("已吊销 %(n)d 个密钥。") % {"n": queryset.count()})
