"""The points app's entries in the navigation (see `governance.navigation`)."""

from django.utils.translation import gettext_lazy as _

from governance.models import Role
from governance.navigation import NavItem, register

from .selectors import RECORDERS, SHOPKEEPERS


def _staff(scope):
    return scope.is_admin or bool(scope.paths())


def _residents_and_staff(scope):
    return _staff(scope) or bool(scope.resident_ids)


def _shop(scope):
    """Residents shop; the community staff keep the counter."""
    return scope.is_admin or bool(scope.paths(*SHOPKEEPERS)) or bool(scope.resident_ids)


def _managers(scope):
    """Those who resolve objections and follow the tally: administrators, street and community staff."""
    return scope.is_admin or bool(scope.paths(Role.STREET_STAFF, Role.COMMUNITY_STAFF))


register(NavItem(_("积分"), "points-home", _residents_and_staff, order=50))
register(NavItem(_("记分"), "points-record", lambda s: bool(s.paths(*RECORDERS)), order=52, parent="points-home"))
register(NavItem(_("积分榜"), "points-board", _residents_and_staff, order=54, parent="points-home"))
register(NavItem(_("积分超市"), "points-shop", _shop, order=56, parent="points-home"))
register(NavItem(_("积分异议"), "points-objections", _managers, order=58, parent="points-home"))
register(NavItem(_("月度统计"), "points-tallies", _managers, order=59, parent="points-home"))
