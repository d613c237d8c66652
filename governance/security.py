"""Login protection: lockout after repeated failures, and two-factor sign-in (TOTP, django-otp).

Lockout. Five failed passwords for a username from one address within 15 minutes lock that pair for 15
minutes; twenty from anywhere lock the username (a slow guess spread over many addresses). The counts are rows
in the database (`LoginFailure`), so every server process sees the same ones. The check sits in the
authentication backend, so the login page, the admin's login and the API's token exchange are all covered;
the login page and the token view ask first, to say why and for how long.

Two-factor. Anyone may add an authenticator app (`/account/two-factor/`); administrators must
(`TWO_FACTOR_REQUIRED_FOR_ADMINISTRATORS`). A user with a confirmed device who has signed in with the password
only is sent to the code page for everything else (`TwoFactorMiddleware`), and the API's token exchange asks for
`otp_token` beside the password."""

import datetime as dt
import math

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import LoginFailure

LOCKOUT_FAILURES = getattr(settings, "LOGIN_LOCKOUT_FAILURES", 5)
LOCKOUT_ACCOUNT_FAILURES = getattr(settings, "LOGIN_LOCKOUT_ACCOUNT_FAILURES", 20)
LOCKOUT_MINUTES = getattr(settings, "LOGIN_LOCKOUT_MINUTES", 15)


def client_ip(request) -> str | None:
    """The caller's address: the proxy's X-Forwarded-For (first hop) only behind a TLS proxy we trust."""
    if request is None:
        return None
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and request.META.get("HTTP_X_FORWARDED_FOR"):
        return request.META["HTTP_X_FORWARDED_FOR"].split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def _normal(username) -> str:
    return (username or "").strip().lower()[:150]


def locked_minutes(username, ip) -> int:
    """0 when the username may try from this address; else the minutes until it may (at least 1)."""
    username = _normal(username)
    if not username:
        return 0
    since = timezone.now() - dt.timedelta(minutes=LOCKOUT_MINUTES)
    failures = LoginFailure.objects.filter(username=username, at__gte=since)
    times = list(failures.filter(ip=ip).order_by("-at").values_list("at", flat=True)[:LOCKOUT_FAILURES])
    if len(times) < LOCKOUT_FAILURES:
        times = list(failures.order_by("-at").values_list("at", flat=True)[:LOCKOUT_ACCOUNT_FAILURES])
        if len(times) < LOCKOUT_ACCOUNT_FAILURES:
            return 0
    # Locked until the oldest counted failure leaves the window.
    until = times[-1] + dt.timedelta(minutes=LOCKOUT_MINUTES)
    return max(1, math.ceil((until - timezone.now()).total_seconds() / 60))


def locked_message(minutes: int) -> str:
    return _("登录失败次数过多，该账号已暂时锁定，请 %(minutes)d 分钟后再试，或联系管理员。") % {"minutes": minutes}


class LockoutBackend(ModelBackend):
    """Django's backend, refusing a locked-out username before its password is even checked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if locked_minutes(username, client_ip(request)):
            raise PermissionDenied(locked_message(locked_minutes(username, client_ip(request))))
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def _username_field():
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def count_failure(username, request) -> None:
    username = _normal(username)
    if username:
        LoginFailure.objects.create(username=username, ip=client_ip(request))
        # Keep the table small: what is out of every window is of no use.
        LoginFailure.objects.filter(at__lt=timezone.now() - dt.timedelta(days=1)).delete()


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    count_failure(credentials.get("username"), request)


@receiver(user_logged_in)
def _forget_failures(sender, user, request=None, **kwargs):
    LoginFailure.objects.filter(username=_normal(user.get_username())).delete()


# --- Two-factor -------------------------------------------------------------------------------------------


def confirmed_device(user):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not getattr(user, "is_authenticated", False):
        return None
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def must_have_two_factor(user) -> bool:
    """Administrators must sign in with a second factor (when the setting says so, the default)."""
    from .selectors import scope_of

    if not getattr(settings, "TWO_FACTOR_REQUIRED_FOR_ADMINISTRATORS", True):
        return False
    return bool(getattr(user, "is_authenticated", False) and (user.is_superuser or scope_of(user).is_admin))


SESSION_KEY = "two_factor"  # "verify": a code is owed; "setup": an administrator without a device
EXEMPT_PREFIXES = (
    "/account/two-factor/",
    "/logout/",
    "/login/",
    "/static/",
    "/media/",
    "/i18n/",
    "/healthz",
    "/public/",
    "/api/v1/public/",
    "/api/v1/auth/token/",
)


def two_factor_owed(user) -> str:
    """What a user who signed in with the password still owes: "verify", "setup" or ""."""
    if confirmed_device(user):
        return "verify"
    if must_have_two_factor(user):
        return "setup"
    return ""


@receiver(user_logged_in)
def _note_two_factor(sender, user, request=None, **kwargs):
    """Decided once at sign-in and kept in the session, so that the pages pay no query for it."""
    if request is not None and hasattr(request, "session"):
        owed = two_factor_owed(user)
        if owed:
            request.session[SESSION_KEY] = owed
        else:
            request.session.pop(SESSION_KEY, None)


def two_factor_done(request, device):
    """The code was right: the session is verified (django-otp) and owes nothing more."""
    from django_otp import login as otp_login

    otp_login(request, device)
    request.session.pop(SESSION_KEY, None)


class TwoFactorMiddleware:
    """Until the owed code is given, a signed-in session reaches only the two-factor pages (and logout); the API
    answers 403 with the reason. Token requests carry no session: the token exchange asked for the code."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        owed = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        if owed and request.user.is_authenticated and not request.path.startswith(EXEMPT_PREFIXES):
            from django.http import JsonResponse
            from django.shortcuts import redirect
            from django.urls import reverse
            from django.utils.http import urlencode

            if request.path.startswith("/api/"):
                return JsonResponse({"detail": two_factor_message(owed)}, status=403)
            name = "two-factor-verify" if owed == "verify" else "two-factor"
            return redirect(reverse(name) + "?" + urlencode({"next": request.get_full_path()}))
        return self.get_response(request)


def two_factor_message(owed: str) -> str:
    if owed == "verify":
        return _("请先输入验证器中的动态验证码，完成两步验证。")
    return _("管理员账号须先开启两步验证。")
