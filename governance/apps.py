from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = _("组织架构")

    def ready(self):
        from django.db.backends.signals import connection_created

        from . import catalogues, prepared

        connection_created.connect(prepared.install, dispatch_uid="governance.prepared")
        from .models import Department

        catalogues.register(Department, lambda: {d["id"]: d for d in Department.objects.values("id", "name")})
