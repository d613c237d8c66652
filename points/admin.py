"""The admin of points: schemes and rules are configuration; the ledger, tallies and runs are records and are
read-only here (entries are append-only: corrections are reversal entries, made through the service)."""

from django.contrib import admin

from governance.admin import AdministratorsOnly, ReadOnly

from .models import Account, Board, Entry, Objection, Redemption, Reward, Rule, Scheme, Tally, TallyRun


@admin.register(Scheme)
class SchemeAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = ["name", "code", "party_members_only", "active", "order"]

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or not obj.accounts.exists())


@admin.register(Rule)
class RuleAdmin(AdministratorsOnly, admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "unit",
        "scheme",
        "kind",
        "points",
        "daily_cap",
        "monthly_cap",
        "active_from",
        "active_until",
    ]
    list_filter = ["scheme", "kind", "evidence_required"]
    search_fields = ["name", "code", "unit__name"]
    list_select_related = ["unit", "scheme"]
    autocomplete_fields = ["unit"]

    def has_delete_permission(self, request, obj=None):
        # A rule with entries stays (its entries point at it); end it with a 失效日期 instead.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.entries.exists())


@admin.register(Account)
class AccountAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["resident", "scheme", "balance", "earned", "deducted", "redeemed", "updated_at"]
    list_filter = ["scheme"]
    search_fields = ["resident__name"]
    list_select_related = ["resident", "scheme"]
    show_full_result_count = False


@admin.register(Entry)
class EntryAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "account", "kind", "points", "balance_after", "occurred_on", "rule", "recorded_by"]
    list_filter = ["kind", "account__scheme"]
    search_fields = ["account__resident__name", "note"]
    list_select_related = ["account__resident", "account__scheme", "rule", "recorded_by"]
    date_hierarchy = "occurred_on"
    show_full_result_count = False


@admin.register(Reward)
class RewardAdmin(ReadOnly, admin.ModelAdmin):
    """Rewards are kept by community staff on the supermarket page (stock moves only through redemptions)."""

    list_display = ["name", "community", "scheme", "cost", "stock", "active"]
    list_filter = ["active", "scheme"]
    search_fields = ["name", "community__name"]
    list_select_related = ["community", "scheme"]


@admin.register(Redemption)
class RedemptionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "resident", "reward", "quantity", "points", "state"]
    list_filter = ["state"]
    list_select_related = ["resident", "reward"]


@admin.register(TallyRun)
class TallyRunAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["month", "started_at", "finished_at", "rows", "duration_ms", "triggered_by"]


@admin.register(Tally)
class TallyAdmin(ReadOnly, admin.ModelAdmin):
    list_display = [
        "month",
        "resident",
        "scheme",
        "earned",
        "deducted",
        "redeemed",
        "net",
        "balance",
        "rank_in_grid",
        "rank_in_community",
    ]
    list_filter = ["month", "scheme"]
    list_select_related = ["resident", "scheme"]
    show_full_result_count = False


@admin.register(Board)
class BoardAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["month", "unit", "scheme", "published_at", "notice_until"]
    list_select_related = ["unit", "scheme"]


@admin.register(Objection)
class ObjectionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "board", "resident", "state", "resolved_at"]
    list_filter = ["state"]
    list_select_related = ["board", "resident"]
