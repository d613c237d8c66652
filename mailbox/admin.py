"""The admin of the mailbox: the categories are kept here; letters and their logs are records and stay read-only
(they change only through the workflow). The writer's phone never shows here; the letter's text does, for an
administrator who must look into a complaint."""

from django.contrib import admin

from governance.admin import AdministratorsOnly, ReadOnly

from .models import Letter, LetterAttachment, LetterCategory, LetterEvent


@admin.register(LetterCategory)
class LetterCategoryAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = ["name", "code", "active", "order"]
    list_editable = ["active", "order"]
    search_fields = ["name", "code"]

    def has_delete_permission(self, request, obj=None):
        # A category letters were written under is kept (PROTECT); deactivate it instead.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.letters.exists())


class EventInline(ReadOnly, admin.TabularInline):
    model = LetterEvent
    fields = ["created_at", "actor", "action", "from_state", "to_state", "note", "data"]
    readonly_fields = fields
    extra = 0


class AttachmentInline(ReadOnly, admin.TabularInline):
    model = LetterAttachment
    fields = ["name", "kind", "size", "event", "uploaded_by", "created_at"]
    readonly_fields = fields
    extra = 0


@admin.register(Letter)
class LetterAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["number", "subject", "unit", "channel", "category", "state", "rating", "published", "created_at"]
    list_filter = ["state", "channel", "closed_reason", "published", "category"]
    search_fields = ["number", "subject"]
    date_hierarchy = "created_at"
    list_select_related = ["unit", "category"]
    inlines = [AttachmentInline, EventInline]
    show_full_result_count = False
    exclude = ["writer"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Letter._meta.fields if f.name != "writer"]
