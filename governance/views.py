"""Pages of the UI shell: the role-aware home page, signing in (Django's login view with the lockout, then the
second factor), notifications and preferences."""

import base64

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from . import dashboard, security, selectors, services
from .errors import InvalidInput
from .forms import CodeForm, LoginForm
from .models import Level, Role
from .pages import forbidden
from .validators import parse_id

# Who sees a unit's dashboard on their home page: those who lead a street or a community.
DASHBOARD_ROLES = (Role.STREET_STAFF, Role.COMMUNITY_STAFF, Role.SECRETARY)


def _unit_param(request):
    try:
        return parse_id(request.GET.get("unit"), field="unit")
    except InvalidInput:
        raise Http404 from None


def _dashboard_context(request, user):
    """The dashboard of the unit asked for (`?unit=`, within one's subtrees: else 404), with the chain above it
    that the user may open (to climb back up) and the units below (to drill down)."""
    scope = selectors.scope_of(user)
    unit = dashboard.subtree_unit_for(user, _unit_param(request))
    chain = [u for u in selectors.unit_chain(unit) if scope.is_admin or scope.covers(u.path)] if unit else []
    return {"board": dashboard.unit_dashboard(unit), "board_chain": chain, "is_admin": scope.is_admin}


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
                "stats": selectors.unit_stats_cached(unit) if unit.level != Level.BUILDING else None,
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
    context = {
        "scope": scope,
        "positions": positions,
        "units": units,
        "homes": homes,
        "departments": [p.department for p in positions if p.department_id],
    }
    if scope.is_admin or scope.paths(*DASHBOARD_ROLES):
        context.update(_dashboard_context(request, user))
    if scope.paths(Role.GRID_WORKER):
        context["todo"] = dashboard.worker_todo(user)
    if scope.department_ids:
        context["desk"] = dashboard.department_desk(user)
    if scope.resident_ids:
        context["mine"] = dashboard.resident_home(user)
    return render(request, "governance/home.html", context)


@login_required
def wall(request):
    """The command centre's wall (大屏): a unit's dashboard in large type, full screen, refreshing itself."""
    user = request.user
    scope = selectors.scope_of(user)
    if not (scope.is_admin or scope.paths(*DASHBOARD_ROLES)):
        return forbidden(request, _("大屏只对街道、社区的干部开放。"))
    context = _dashboard_context(request, user)
    context["refresh_seconds"] = 60
    return render(request, "governance/wall.html", context)


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


def elder_mode(request):
    """Switch the elder-friendly mode (长辈模式): kept with the account once logged in, in a cookie before (the
    public letters, the login page). POST only; back to where the switch was pressed."""
    if request.method != "POST":
        return redirect("home")
    on = request.POST.get("on") == "1"
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    response = redirect(target)
    if request.user.is_authenticated:
        services.elder_mode_set(by=request.user, on=on)
    response.set_cookie(services.ELDER_COOKIE, "1" if on else "0", max_age=365 * 24 * 3600, samesite="Lax")
    return response


# --- Signing in: the password page, and the second factor -------------------------------------------------


class LoginView(auth_views.LoginView):
    template_name = "governance/login.html"
    redirect_authenticated_user = True
    authentication_form = LoginForm


def _safe_next(request, default="home"):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse(default)


def _qr_svg(url: str) -> str:
    """The provisioning address as an SVG QR code, drawn here (no outside service sees the secret)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


@login_required
def two_factor(request):
    """Turn on two-factor sign-in: scan the code with an authenticator app, type the six digits it shows. Once on,
    it can be turned off with a current code, except by an administrator, who must keep it."""
    user = request.user
    device = security.confirmed_device(user)
    form = CodeForm(request.POST or None)
    if device:
        if request.method == "POST" and request.POST.get("action") == "off":
            if security.must_have_two_factor(user):
                form.add_error(None, _("管理员账号必须开启两步验证，不能关闭。"))
            elif form.is_valid():
                if device.verify_token(form.cleaned_data["token"]):
                    services.two_factor_off(by=user)
                    messages.success(request, _("两步验证已关闭。"))
                    return redirect("two-factor")
                form.add_error("token", _("验证码不对或已过期，请看验证器上最新的数字。"))
        return render(request, "governance/two_factor.html", {"device": device, "form": form})
    pending = services.two_factor_pending_device(by=user)
    if request.method == "POST" and form.is_valid():
        if pending.verify_token(form.cleaned_data["token"]):
            services.two_factor_confirm(by=user, device=pending)
            security.two_factor_done(request, pending)
            messages.success(request, _("两步验证已开启。以后登录时，输入密码后还要输入验证器中的数字。"))
            return redirect(_safe_next(request))
        form.add_error("token", _("验证码不对或已过期，请看验证器上最新的数字。"))
    secret = base64.b32encode(pending.bin_key).decode()
    context = {
        "form": form,
        "qr": _qr_svg(pending.config_url),
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "required": security.must_have_two_factor(user),
        "next": request.GET.get("next", ""),
    }
    return render(request, "governance/two_factor.html", context)


@login_required
def two_factor_verify(request):
    """The second step of signing in: the six digits of the authenticator app."""
    device = security.confirmed_device(request.user)
    if device is None:
        return redirect("two-factor")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        minutes = security.locked_minutes(request.user.get_username(), security.client_ip(request))
        if minutes:
            form.add_error(None, security.locked_message(minutes))
        elif device.verify_token(form.cleaned_data["token"]):
            security.two_factor_done(request, device)
            return redirect(_safe_next(request))
        else:
            security.count_failure(request.user.get_username(), request)
            form.add_error("token", _("验证码不对或已过期，请看验证器上最新的数字。"))
    return render(request, "governance/two_factor_verify.html", {"form": form, "next": request.GET.get("next", "")})


# --- Error pages: JSON under /api/, a page elsewhere ------------------------------------------------------


def _error(request, status: int, message: str, code: str):
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"detail": str(message), "code": code}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def bad_request(request, exception=None):
    return _error(request, 400, _("请求有误。"), "bad_request")


def permission_denied(request, exception=None):
    return _error(request, 403, _("您没有权限执行该操作。"), "permission_denied")


def page_not_found(request, exception=None):
    return _error(request, 404, _("找不到该页面或记录，或它不在您的范围内。"), "not_found")


def server_error(request):
    """Never rendered with the request's context: whatever broke may break it again."""
    from django.http import HttpResponseServerError, JsonResponse

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": _("服务器出错了，请稍后再试。"), "code": "server_error"}, status=500)
    from django.template import loader

    return HttpResponseServerError(
        loader.get_template("error.html").render({"status": 500, "message": _("服务器出错了，请稍后再试。")})
    )
