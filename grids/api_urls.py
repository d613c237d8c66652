from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("case-categories", api.CaseCategoryViewSet, basename="case-category")
router.register("cases", api.CaseViewSet, basename="case")

urlpatterns = router.urls
