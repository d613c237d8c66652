"""The cases app's entries in the navigation (see `governance.navigation`)."""

from django.utils.translation import gettext_lazy as _

from governance.models import Role
from governance.navigation import NavItem, register

register(NavItem(_("网格事件"), "case-list", lambda s: s.is_staff_member or bool(s.resident_ids), order=20))
register(
    NavItem(
        _("上报事件"),
        "case-new",
        lambda s: bool(s.paths(Role.GRID_WORKER, Role.COMMUNITY_STAFF)),
        order=30,
        parent="case-list",
    )
)
register(
    NavItem(
        _("考核统计"),
        "case-stats",
        lambda s: s.is_admin or bool(s.paths()) or bool(s.department_ids),
        order=40,
        parent="case-list",
    )
)
