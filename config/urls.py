from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

admin.site.site_header = _("网格化社会治理平台 · 管理后台")
admin.site.site_title = _("网格化社会治理平台")
admin.site.index_title = _("系统管理")

from governance.health import healthz  # noqa: E402

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's script as a file of its own: the Content-Security-Policy forbids inline ones.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("governance.api_urls")),
    path("api/v1/", include("grids.api_urls")),
    path("api/v1/", include("points.api_urls")),
    path("api/v1/", include("mailbox.api_urls")),
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

    urlpatterns.insert(0, path("bench/plain", plain))
    urlpatterns.insert(0, path("bench/drf-list", StraightforwardList.as_view()))

# Errors under /api/ answer JSON like every other API error; pages answer a page in the app's look.
handler400 = "governance.views.bad_request"
handler403 = "governance.views.permission_denied"
handler404 = "governance.views.page_not_found"
handler500 = "governance.views.server_error"
