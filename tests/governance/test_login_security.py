"""Signing in: lockout after repeated failures, strong passwords, session expiry, tokens revoked by a new
password, and two-factor sign-in (TOTP) that staff may turn on and administrators must."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

PASSWORD = "pass-word-123"  # the factories' password
TOKEN = "/api/v1/auth/token/"


def login_page(client, username, password, ip="10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def is_logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- Lockout ------------------------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_username_at_that_address_for_fifteen_minutes(grid_worker):
    client = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(5):
            assert login_page(client, "grid_worker", "wrong").status_code == 200
        response = login_page(client, "grid_worker", PASSWORD)
        page = response.content.decode()
        assert response.status_code == 200 and not is_logged_in(client)
        assert "登录失败次数过多" in page and "15 分钟后再试" in page
        # Another address is not locked out (the worker's colleague at the community office).
        assert login_page(Client(), "grid_worker", PASSWORD, ip="10.0.0.2").status_code == 302
        clock.shift(dt.timedelta(minutes=16))
        assert login_page(client, "grid_worker", PASSWORD).status_code == 302
        assert is_logged_in(client)


def test_twenty_failures_from_anywhere_lock_the_username_everywhere(grid_worker):
    for i in range(20):
        login_page(Client(), "grid_worker", "wrong", ip=f"10.0.1.{i}")
    response = login_page(Client(), "grid_worker", PASSWORD, ip="10.0.2.1")
    assert "登录失败次数过多" in response.content.decode()


def test_a_successful_login_forgets_the_failures(grid_worker):
    client = Client()
    for _ in range(4):
        login_page(client, "grid_worker", "wrong")
    assert login_page(client, "grid_worker", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        login_page(client, "grid_worker", "wrong")
    assert login_page(client, "grid_worker", PASSWORD).status_code == 302  # 4 + 4 did not add up to a lock


def test_the_api_token_exchange_is_locked_out_too_with_429(grid_worker):
    api = APIClient(REMOTE_ADDR="10.0.0.9")
    for _ in range(5):
        assert api.post(TOKEN, {"username": "grid_worker", "password": "wrong"}).status_code == 400
    response = api.post(TOKEN, {"username": "grid_worker", "password": PASSWORD})
    assert response.status_code == 429
    assert "登录失败次数过多" in response.json()["detail"]


def test_the_backend_refuses_a_locked_username_whatever_the_way_in(grid_worker):
    for _ in range(5):
        Client().login(username="grid_worker", password="wrong")
    assert Client().login(username="grid_worker", password=PASSWORD) is False  # e.g. the admin's own login


# --- Passwords, sessions, tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("weak", ["12345678", "password", "abc12", "grid_worker1"])
def test_weak_passwords_are_refused(grid_worker, weak):
    with pytest.raises(ValidationError):
        validate_password(weak, user=grid_worker)


def test_a_session_ends_after_eight_hours(grid_worker):
    client = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        login_page(client, "grid_worker", PASSWORD)
        assert client.get("/cases/").status_code == 200
        clock.shift(dt.timedelta(hours=8, minutes=1))
        response = client.get("/cases/")
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_new_password_revokes_the_api_tokens(grid_worker):
    token = APIClient().post(TOKEN, {"username": "grid_worker", "password": PASSWORD}).json()["token"]
    api = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/me/").status_code == 200
    grid_worker.set_password("a-new-long-password-42")
    grid_worker.save()
    assert api.get("/api/v1/me/").status_code == 401
    # Saving the user for anything else keeps the token.
    token = APIClient().post(TOKEN, {"username": "grid_worker", "password": "a-new-long-password-42"}).json()["token"]
    grid_worker.refresh_from_db()
    grid_worker.name = "网格员甲"
    grid_worker.save()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token}").get("/api/v1/me/").status_code == 200


# --- Two-factor ---------------------------------------------------------------------------------------------


def code(device, at=None) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if at is not None:
        totp.time = at.timestamp()
    return f"{totp.token():06d}"


@pytest.fixture
def required(settings):
    settings.TWO_FACTOR_REQUIRED_FOR_ADMINISTRATORS = True


def test_an_administrator_must_turn_on_two_factor_before_anything_else(required, admin_user):
    client = Client()
    login_page(client, "admin", PASSWORD)
    response = client.get("/cases/")
    assert response.status_code == 302 and response["Location"] == "/account/two-factor/?next=%2Fcases%2F"
    assert client.get("/api/v1/units/").status_code == 403
    assert "两步验证" in client.get("/api/v1/units/").json()["detail"]
    page = client.get("/account/two-factor/?next=/cases/")
    assert "<svg" in page.content.decode() and "必须开启两步验证" in page.content.decode()
    device = TOTPDevice.objects.get(user=admin_user, confirmed=False)
    assert client.get("/account/two-factor/").context["secret"] == page.context["secret"]  # same secret on reload

    with time_machine.travel(timezone.now(), tick=False) as clock:
        wrong = client.post("/account/two-factor/", {"token": "000000" if code(device) != "000000" else "111111"})
        assert "验证码不对" in wrong.content.decode()
        clock.shift(dt.timedelta(seconds=30))  # a wrong code makes the next try wait a moment (django-otp)
        done = client.post("/account/two-factor/", {"token": code(device), "next": "/cases/"})
    assert done.status_code == 302 and done["Location"] == "/cases/"
    assert client.get("/cases/").status_code == 200
    assert client.get("/api/v1/units/").status_code == 200


def test_with_two_factor_on_the_password_alone_is_not_enough(required, community_staff):
    device = TOTPDevice.objects.create(user=community_staff, name="app", confirmed=True)
    client = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        login_page(client, "community_staff", PASSWORD)
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/account/two-factor/verify/")
        assert client.get("/api/v1/me/").status_code == 403
        bad = client.post("/account/two-factor/verify/", {"token": "12345"})
        assert "6 位数字" in bad.content.decode()
        clock.shift(dt.timedelta(seconds=30))
        ok = client.post("/account/two-factor/verify/?next=/mailbox/", {"token": code(device), "next": "/mailbox/"})
        assert ok.status_code == 302 and ok["Location"] == "/mailbox/"
        assert client.get("/").status_code == 200


def test_the_token_exchange_asks_for_the_code(required, community_staff, admin_user):
    device = TOTPDevice.objects.create(user=community_staff, name="app", confirmed=True)
    api = APIClient()
    missing = api.post(TOKEN, {"username": "community_staff", "password": PASSWORD})
    assert missing.status_code == 400 and "otp_token" in str(missing.json())
    assert (
        api.post(TOKEN, {"username": "community_staff", "password": PASSWORD, "otp_token": code(device)}).status_code
        == 200
    )
    # An administrator without an authenticator gets no token at all.
    refused = api.post(TOKEN, {"username": "admin", "password": PASSWORD})
    assert refused.status_code == 403 and "两步验证" in refused.json()["detail"]


def test_staff_may_turn_two_factor_off_but_an_administrator_may_not(required, community_staff, admin_user):
    staff = TOTPDevice.objects.create(user=community_staff, name="app", confirmed=True)
    client = Client()
    client.force_login(community_staff)  # verified below through the page
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client.post("/account/two-factor/verify/", {"token": code(staff)})
        clock.shift(dt.timedelta(seconds=30))
        response = client.post("/account/two-factor/", {"action": "off", "token": code(staff)})
        assert response.status_code == 302
        assert not TOTPDevice.objects.filter(user=community_staff).exists()

        admin_device = TOTPDevice.objects.create(user=admin_user, name="app", confirmed=True)
        admin = Client()
        admin.force_login(admin_user)
        admin.post("/account/two-factor/verify/", {"token": code(admin_device)})
        clock.shift(dt.timedelta(seconds=30))
        refused = admin.post("/account/two-factor/", {"action": "off", "token": code(admin_device)})
        assert "不能关闭" in refused.content.decode()
        assert TOTPDevice.objects.filter(user=admin_user, confirmed=True).exists()
