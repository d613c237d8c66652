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
    # The url name of the section's top entry: the entry shows in that section's tabs, not in the top bar.
    parent: str | None = None


_ITEMS: list[NavItem] = []


def register(item: NavItem) -> None:
    _ITEMS.append(item)
    _ITEMS.sort(key=lambda i: i.order)


def items_for(scope: Scope, current_path: str = "") -> list[dict]:
    """The top bar's entries the user may use, each with the tabs of its section (its children they may use).
    The entry whose section the current page belongs to is the active one, and so is its tab."""
    allowed = [item for item in _ITEMS if item.allowed(scope)]
    entries = {}
    for item in allowed:
        url = reverse(item.url_name)
        matches = current_path == url if url == "/" else current_path.startswith(url)
        entries[item.url_name] = {"label": item.label, "url": url, "active": matches, "item": item, "children": []}
    top = []
    for entry in entries.values():
        parent = entry["item"].parent
        if parent and parent in entries:
            entries[parent]["children"].append(entry)
        else:
            top.append(entry)
    # Only the most specific entry is the current one (/cases/new/ is "file a case", not also "cases").
    best = max((e for e in entries.values() if e["active"]), key=lambda e: len(e["url"]), default=None)
    for entry in entries.values():
        entry["active"] = entry is best
    for entry in top:
        entry["open"] = entry["active"] or any(c["active"] for c in entry["children"])
        if entry["children"]:
            entry["children"] = [{**entry, "children": [], "label": entry["label"]}] + entry["children"]
    return [{k: v for k, v in e.items() if k != "item"} for e in top]


register(NavItem(_("首页"), "home", lambda s: True, order=0))
register(NavItem(_("管理后台"), "admin:index", lambda s: s.is_admin, order=900))
register(NavItem(_("接口文档"), "swagger-ui", lambda s: s.is_staff_member, order=910))
