from django.urls import path
from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("units", api.UnitViewSet, basename="unit")
router.register("party-orgs", api.PartyOrgViewSet, basename="party-org")
router.register("households", api.HouseholdViewSet, basename="household")
router.register("residents", api.ResidentViewSet, basename="resident")
router.register("resident-tags", api.ResidentTagViewSet, basename="resident-tag")
router.register("departments", api.DepartmentViewSet, basename="department")
router.register("notifications", api.NotificationViewSet, basename="notification")

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("me/", api.MeView.as_view(), name="api-me"),
    *router.urls,
]
