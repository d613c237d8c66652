from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = _("积分")

    def ready(self):
        from . import navigation  # noqa: F401  (registers the navigation entries)
