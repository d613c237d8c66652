from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailboxConfig(AppConfig):
    name = "mailbox"
    verbose_name = _("书记信箱")

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from governance import catalogues

        from . import navigation  # noqa: F401  (registers the navigation entries)
        from .models import Letter, LetterCategory
        from .selectors import forget_public_letters

        catalogues.register(LetterCategory, lambda: {c["id"]: c for c in LetterCategory.objects.values("id", "name")})
        post_save.connect(forget_public_letters, sender=Letter, dispatch_uid="public-letters-save")
        post_delete.connect(forget_public_letters, sender=Letter, dispatch_uid="public-letters-delete")
