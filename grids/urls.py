from django.urls import path, register_converter

from . import open311, views


class FormatConverter:
    """`.json` or `.xml` at the end of an Open311 address (any other suffix gets the spec's 404 error)."""

    regex = "[a-z]+"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(FormatConverter, "fmt")

urlpatterns = [
    path("cases/", views.case_list, name="case-list"),
    path("cases/new/", views.case_new, name="case-new"),
    path("cases/stats/", views.case_stats, name="case-stats"),
    path("cases/<int:pk>/", views.case_detail, name="case-detail"),
    path("cases/<int:pk>/photos/<int:photo_pk>/", views.case_photo, name="case-photo"),
    # Open311 GeoReport v2 (grids/open311.py)
    path("open311/discovery.<fmt:fmt>", open311.discovery, name="open311-discovery"),
    path("open311/v2/services.<fmt:fmt>", open311.services_list, name="open311-services"),
    path("open311/v2/services/<slug:service_code>.<fmt:fmt>", open311.service_definition, name="open311-service"),
    path("open311/v2/requests.<fmt:fmt>", open311.requests, name="open311-requests"),
    path("open311/v2/requests/<str:service_request_id>.<fmt:fmt>", open311.request_detail, name="open311-request"),
]
