from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

admin.site.site_header = _("网格化社会治理平台 · 管理后台")
admin.site.site_title = _("网格化社会治理平台")
admin.site.index_title = _("系统管理")

from governance.health import healthz  # noqa: E402
from governance.routing import indexed  # noqa: E402

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's script as a file of its own: the Content-Security-Policy forbids inline ones.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    # The four API URL confs as one, each path tried only against the patterns that can match it.
    indexed("api/v1/", "governance.api_urls", "grids.api_urls", "points.api_urls", "mailbox.api_urls"),
    path("", include("grids.urls")),
    path("", include("points.urls")),
    path("", include("mailbox.urls")),
    path("", include("governance.urls")),
]

# Uploaded files are not served from MEDIA_URL, not even in development: photos of cases and evidence of
# points are personal, and their own views serve them to those who may see them.

if settings.BENCH_PLAIN_VIEW:
    from django.http import HttpResponse

    def plain(request):
        """The ceiling of bench/load_city.py: Django's whole stack, middleware included, and no work."""
        return HttpResponse("ok", content_type="text/plain")

    from rest_framework import generics, pagination, permissions, serializers

    from grids.models import CaseCategory

    class StraightforwardSerializer(serializers.ModelSerializer):
        class Meta:
            model = CaseCategory
            fields = "__all__"

    class StraightforwardList(generics.ListAPIView):
        """The issue's reference: a straightforward DRF list of 20 rows (a model serializer of every field,
        page-number pagination with its count), without a login, a scope or filters."""

        queryset = CaseCategory.objects.order_by("pk")
        serializer_class = StraightforwardSerializer
        pagination_class = type("Twenty", (pagination.PageNumberPagination,), {"page_size": 20})
        authentication_classes = []
        permission_classes = [permissions.AllowAny]
        filter_backends = []

    import json

    from django.db import connection

    from governance.authentication import token_rows
    from governance.models import User
    from grids.api import LIST_COLUMNS
    from grids.models import Case
    from grids.selectors import cases_visible_to

    _floor_sql = {}

    def floor(request):
        """The floor of a fresh list behind a login: the API's token-and-scope query, then the SQL the API runs
        for the caller's newest page of cases (built once per caller), its rows written by json.dumps. No DRF,
        no ORM per request, no count, no labels: what a list costs on this machine before any framework."""
        found = token_rows(request.headers.get("Authorization", "").removeprefix("Token "))[1]
        if not found:
            return HttpResponse(status=401)
        user_id = found[0][1]  # the token's key, user_id, created
        if user_id not in _floor_sql:
            order = ("-created_at", "-id")
            ids = cases_visible_to(User.objects.get(pk=user_id)).order_by(*order).values("pk")[:21]
            page = Case._base_manager.filter(pk__in=ids).order_by(*order).values_list(*LIST_COLUMNS)
            _floor_sql[user_id] = page.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(*_floor_sql[user_id])
            rows = [dict(zip(LIST_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
        body = json.dumps({"results": rows[:20], "next": len(rows) > 20}, default=str, ensure_ascii=False)
        return HttpResponse(body, content_type="application/json")

    urlpatterns.insert(0, path("bench/plain", plain))
    urlpatterns.insert(0, path("bench/drf-list", StraightforwardList.as_view()))
    urlpatterns.insert(0, path("bench/floor", floor))

# Errors under /api/ answer JSON like every other API error; pages answer a page in the app's look.
handler400 = "governance.views.bad_request"
handler403 = "governance.views.permission_denied"
handler404 = "governance.views.page_not_found"
handler500 = "governance.views.server_error"
