from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.include_root_view = False
router.register("points/rules", api.RuleViewSet, basename="point-rule")
router.register("points/entries", api.EntryViewSet, basename="point-entry")
router.register("points/accounts", api.AccountViewSet, basename="point-account")
router.register("points/rewards", api.RewardViewSet, basename="point-reward")
router.register("points/redemptions", api.RedemptionViewSet, basename="point-redemption")
router.register("points/tallies", api.TallyViewSet, basename="point-tally")
router.register("points/tally-runs", api.TallyRunViewSet, basename="point-tally-run")
router.register("points/boards", api.BoardViewSet, basename="point-board")
router.register("points/objections", api.ObjectionViewSet, basename="point-objection")

urlpatterns = router.urls
