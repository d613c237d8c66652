from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailboxConfig(AppConfig):
    name = "mailbox"
    verbose_name = _("书记信箱")

    def ready(self):
        from . import navigation  # noqa: F401  (registers the navigation entries)
