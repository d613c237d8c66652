"""The navigation of the UI shell. Each app registers the pages it adds, with a test on the user's scope
saying who may use them; the shell shows each user only their entries."""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .selectors import Scope


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    allowed: Callable[[Scope], bool]
    order: int = 100


_ITEMS: list[NavItem] = []


def register(item: NavItem) -> None:
    _ITEMS.append(item)
    _ITEMS.sort(key=lambda i: i.order)


def items_for(scope: Scope, current_path: str = "") -> list[dict]:
    result = []
    for item in _ITEMS:
        if item.allowed(scope):
            url = reverse(item.url_name)
            matches = current_path == url if url == "/" else current_path.startswith(url)
            result.append({"label": item.label, "url": url, "active": matches})
    # Only the most specific entry is the current one (/cases/new/ is "file a case", not also "cases").
    best = max((r for r in result if r["active"]), key=lambda r: len(r["url"]), default=None)
    for r in result:
        r["active"] = r is best
    return result


register(NavItem(_("首页"), "home", lambda s: True, order=0))
register(NavItem(_("管理后台"), "admin:index", lambda s: s.is_admin, order=900))
register(NavItem(_("接口文档"), "swagger-ui", lambda s: s.is_staff_member, order=910))
