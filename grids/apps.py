from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GridsConfig(AppConfig):
    name = "grids"
    verbose_name = _("网格事件")

    def ready(self):
        from . import navigation  # noqa: F401  (registers the navigation entries)
