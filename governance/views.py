"""Pages of the UI shell: the role-aware home page. Login and logout are Django's own views."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from . import selectors, services
from .models import Level, Role


@login_required
def home(request):
    user = request.user
    scope = selectors.scope_of(user)
    positions = selectors.roles_of(user)
    units = []
    for unit in selectors.home_units_of(user)[:5]:
        units.append(
            {
                "unit": unit,
                "chain": selectors.unit_chain(unit),
                "stats": selectors.unit_stats(unit) if unit.level != Level.BUILDING else None,
                "children": selectors.units_visible_to(user)
                .filter(path__startswith=unit.path, depth=unit.depth + 1)
                .order_by("path")[:60],
            }
        )
    homes = []
    for position in positions:
        if position.role == Role.RESIDENT and position.resident.moved_out_on is None:
            building = position.resident.household.building
            chain = selectors.unit_chain(building)
            grid = next((u for u in chain if u.level == Level.GRID), None)
            team = list(grid.team_members.order_by("team_role", "id")) if grid else []
            homes.append({"resident": position.resident, "chain": chain, "team": team})
    return render(
        request,
        "governance/home.html",
        {
            "scope": scope,
            "positions": positions,
            "units": units,
            "homes": homes,
            "departments": [p.department for p in positions if p.department_id],
        },
    )


@login_required
def notifications(request):
    """The user's notifications, newest first; opening one marks it read and follows its link."""
    if request.method == "POST":
        services.notifications_mark_read(by=request.user)
        return redirect("notifications")
    page = Paginator(selectors.notifications_visible_to(request.user), 30).get_page(request.GET.get("page"))
    return render(request, "governance/notifications.html", {"page": page})


@login_required
def notification_open(request, pk):
    notification = get_object_or_404(selectors.notifications_visible_to(request.user), pk=pk)
    if request.method != "POST":
        return redirect("notifications")
    services.notifications_mark_read(by=request.user, ids=[notification.pk])
    target = notification.url
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("notifications")
    return redirect(target or "notifications")
