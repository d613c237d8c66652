from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GridsConfig(AppConfig):
    name = "grids"
    verbose_name = _("网格事件")

    def ready(self):
        from governance import catalogues, signals

        from . import navigation  # noqa: F401  (registers the navigation entries)
        from .models import CaseCategory
        from .services import cases_follow_unit, cases_hold_for_move

        signals.unit_moving.connect(cases_hold_for_move, dispatch_uid="grids.cases_hold_for_move")
        signals.unit_moved.connect(cases_follow_unit, dispatch_uid="grids.cases_follow_unit")

        catalogues.register(
            CaseCategory,
            lambda: {
                c["id"]: {"id": c["id"], "name": c["name"], "group": c["parent__name"]}
                for c in CaseCategory.objects.values("id", "name", "parent__name")
            },
        )
