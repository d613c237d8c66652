from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("letter-categories", api.LetterCategoryViewSet, basename="letter-category")
router.register("letters", api.LetterViewSet, basename="letter")
router.register("public/letters", api.PublicLetterViewSet, basename="public-letter")

urlpatterns = router.urls
