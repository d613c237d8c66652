"""The admin of cases: the catalogue is edited here; cases, dispatches and their logs are records and stay
read-only (they change only through the workflow)."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from governance.admin import AdministratorsOnly, ReadOnly

from .models import Case, CaseCategory, CaseDispatch, CaseEvent, CasePhoto


class CaseCategoryForm(forms.ModelForm):
    class Meta:
        model = CaseCategory
        fields = [
            "parent",
            "code",
            "name",
            "sign_limit_hours",
            "handle_limit_days",
            "whistle_allowed",
            "on_site_allowed",
            "is_public",
            "default_department",
            "active",
            "order",
        ]

    def clean_parent(self):
        parent = self.cleaned_data.get("parent")
        if parent is not None:
            if parent.parent_id is not None:
                raise forms.ValidationError(_("分类只有两级：上级分类须是一级分类。"))
            if self.instance.pk and (parent.pk == self.instance.pk or self.instance.children.exists()):
                raise forms.ValidationError(_("已有下级分类的一级分类不能再放到其他分类之下。"))
        return parent


class ChildInline(admin.TabularInline):
    model = CaseCategory
    fk_name = "parent"
    form = CaseCategoryForm
    extra = 0
    fields = [
        "code",
        "name",
        "sign_limit_hours",
        "handle_limit_days",
        "whistle_allowed",
        "on_site_allowed",
        "is_public",
        "default_department",
        "active",
        "order",
    ]
    verbose_name_plural = _("二级分类")


@admin.register(CaseCategory)
class CaseCategoryAdmin(AdministratorsOnly, admin.ModelAdmin):
    form = CaseCategoryForm
    list_display = [
        "__str__",
        "code",
        "sign_limit_hours",
        "handle_limit_days",
        "whistle_allowed",
        "on_site_allowed",
        "is_public",
        "default_department",
        "active",
    ]
    list_filter = ["parent", "whistle_allowed", "on_site_allowed", "is_public", "active"]
    search_fields = ["name", "code"]
    list_select_related = ["parent", "default_department"]
    ordering = ["parent__order", "parent_id", "order", "code"]

    def get_inlines(self, request, obj):
        # Children are edited under their group; a leaf has none.
        return [ChildInline] if obj is not None and obj.parent_id is None else []

    def has_delete_permission(self, request, obj=None):
        # A category cases were filed under is kept (PROTECT); deactivate it instead.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.cases.exists())


class EventInline(ReadOnly, admin.TabularInline):
    model = CaseEvent
    fields = ["created_at", "actor", "action", "from_state", "to_state", "note", "data"]
    readonly_fields = fields
    extra = 0


class DispatchInline(ReadOnly, admin.TabularInline):
    model = CaseDispatch
    fields = ["department", "is_lead", "dispatched_at", "signed_at", "sent_back_at", "street_rating"]
    readonly_fields = fields
    extra = 0


class PhotoInline(ReadOnly, admin.TabularInline):
    model = CasePhoto
    fields = ["image", "event", "uploaded_by", "created_at"]
    readonly_fields = fields
    extra = 0


@admin.register(Case)
class CaseAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["number", "title", "category", "grid", "state", "holder_department", "created_at"]
    list_filter = ["state", "closed_reason", "urgency", "source", "category__parent"]
    search_fields = ["number", "title"]
    date_hierarchy = "created_at"
    list_select_related = ["category__parent", "grid", "holder_department"]
    inlines = [DispatchInline, PhotoInline, EventInline]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Case._meta.fields]
