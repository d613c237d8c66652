"""The mailbox's entries in the navigation (see `governance.navigation`)."""

from django.utils.translation import gettext_lazy as _

from governance.navigation import NavItem, register

from .selectors import ASSIGNEE_ROLES, OFFICE_ROLES


def _inbox(scope):
    """Residents see their letters; the office, the handlers and departments their inbox."""
    return (
        scope.is_admin or bool(scope.paths(*ASSIGNEE_ROLES)) or bool(scope.department_ids) or bool(scope.resident_ids)
    )


def _writers(scope):
    """Residents write; staff of the places write down letters for residents who came in or phoned."""
    return bool(scope.resident_ids) or bool(scope.paths(*ASSIGNEE_ROLES))


def _office(scope):
    return scope.is_admin or bool(scope.paths(*OFFICE_ROLES))


register(NavItem(_("书记信箱"), "letter-list", _inbox, order=60))
register(NavItem(_("写信"), "letter-write", _writers, order=62, parent="letter-list"))
register(NavItem(_("信箱统计"), "letter-stats", _office, order=64, parent="letter-list"))
register(NavItem(_("公开信件"), "public-letters", lambda s: True, order=66))
