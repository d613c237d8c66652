"""Reliability of what leaves the system: the notification outbox, tasks that retry, and the broker being down
while a resident writes a letter or a grid worker files a case (the write commits; the message goes out when the
broker is back)."""

import datetime as dt
import os
import shutil
import socket
import subprocess
import time

import pytest
from django.db import OperationalError
from django.utils import timezone

from governance.models import Notification
from governance.notifications import MAX_ATTEMPTS, Channel, deliver_due, notify


class RecordingChannel(Channel):
    sent: list = []

    def send(self, notification):
        RecordingChannel.sent.append(notification.pk)


class FlakyChannel(Channel):
    """Fails while `failures_left` > 0 (a gateway that is down for a while)."""

    failures_left = 0
    sent: list = []

    def send(self, notification):
        if FlakyChannel.failures_left > 0:
            FlakyChannel.failures_left -= 1
            raise ConnectionError("gateway down")
        FlakyChannel.sent.append(notification.pk)


@pytest.fixture
def channels(settings):
    RecordingChannel.sent = []
    FlakyChannel.sent = []
    FlakyChannel.failures_left = 0
    settings.NOTIFICATION_CHANNELS = [f"{__name__}.RecordingChannel", f"{__name__}.FlakyChannel"]


def test_a_failing_channel_is_tried_again_with_back_off_and_the_others_are_not_repeated(
    channels, department_staff, django_capture_on_commit_callbacks
):
    FlakyChannel.failures_left = 2
    with django_capture_on_commit_callbacks(execute=True):
        (notification,) = notify([department_staff], kind="test", key="k1", title="测试")
    notification.refresh_from_db()
    assert RecordingChannel.sent == [notification.pk] and FlakyChannel.sent == []
    assert notification.pending_channels == [f"{__name__}.FlakyChannel"]
    first_retry = notification.next_delivery_at
    assert first_retry - timezone.now() == pytest.approx(dt.timedelta(minutes=1), abs=dt.timedelta(seconds=5))

    assert deliver_due(now=first_retry - dt.timedelta(seconds=1)) == 0  # not its turn yet
    deliver_due(now=first_retry)  # fails again: the wait doubles
    notification.refresh_from_db()
    assert notification.next_delivery_at - first_retry == dt.timedelta(minutes=2)
    assert deliver_due(now=notification.next_delivery_at) == 1
    notification.refresh_from_db()
    assert FlakyChannel.sent == [notification.pk] and RecordingChannel.sent == [notification.pk]
    assert notification.pending_channels == [] and notification.next_delivery_at is None
    assert notification.delivery_attempts == 3


def test_a_channel_down_for_good_is_given_up_after_twelve_tries(channels, department_staff):
    FlakyChannel.failures_left = 100
    notify([department_staff], kind="test", key="k2", title="测试")
    moment = timezone.now()
    for _ in range(MAX_ATTEMPTS + 3):
        moment += dt.timedelta(hours=2)
        deliver_due(now=moment)
    notification = Notification.objects.get(key="k2")
    assert notification.delivery_attempts == MAX_ATTEMPTS
    assert notification.next_delivery_at is None and notification.pending_channels == [f"{__name__}.FlakyChannel"]


def test_without_outside_channels_nothing_waits_in_the_outbox(settings, department_staff):
    settings.NOTIFICATION_CHANNELS = []
    notify([department_staff], kind="test", key="k3", title="测试")
    assert Notification.objects.get(key="k3").next_delivery_at is None


def test_every_task_acknowledges_late_and_retries_database_errors():
    from config.celery import app

    app.loader.import_default_modules()  # every app's tasks module, as a worker loads them at start
    ours = {
        name: t for name, t in app.tasks.items() if name.split(".")[0] in {"governance", "grids", "points", "mailbox"}
    }
    assert len(ours) >= 8
    for name, t in ours.items():
        assert t.acks_late, name
        assert OperationalError in t.autoretry_for, name
        assert t.retry_backoff and t.max_retries, name


def test_a_task_retries_when_the_database_is_briefly_away(monkeypatch):
    from governance import notifications, tasks

    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return 7

    monkeypatch.setattr(notifications, "deliver_due", flaky)
    tasks.deliver_notifications_due.apply(throw=False)  # eagerly: the retry runs again at once
    assert len(calls) == 2


# --- The broker down ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A Redis server of this test's own, to stop and start again (the shared one stays up for the others)."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def broker_app(settings):
    """The Celery app on a broker of our own, started and stopped by the test; eager again afterwards. (The
    `broker` marker has skipped the test already where no broker is configured; where one is, Redis is there.)"""
    if not shutil.which("redis-server"):
        pytest.fail("the broker-down test starts and stops a redis-server of its own: install redis-server")
    from config.celery import app

    redis = OwnRedis()
    redis.start()
    app.conf.update(task_always_eager=False, broker_url=redis.url, result_backend=None)
    app._local.__dict__.pop("backend", None)
    _reconnect(app)
    RecordingChannel.sent = []
    settings.NOTIFICATION_CHANNELS = [f"{__name__}.RecordingChannel"]
    try:
        yield app, redis
    finally:
        redis.stop()
        app.conf.update(task_always_eager=True, broker_url=os.environ.get("CELERY_BROKER_URL") or None)
        _reconnect(app)
        app._local.__dict__.pop("backend", None)


def _reconnect(app):
    """Forget the broker connections (the next message opens a new one, to the broker now configured)."""
    from kombu import pools

    pools.reset()  # kombu keeps producer pools per broker, process-wide
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


def _wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_letters_and_cases_are_saved_and_their_notices_go_out_when_it_is_back(
    broker_app, api, city, resident, secretary, grid_worker, community_staff
):
    from celery.contrib.testing.worker import start_worker

    from grids.models import Case, CaseCategory
    from mailbox.models import Letter, LetterCategory

    app, redis = broker_app
    redis.stop()
    _reconnect(app)

    letter = api(resident).post(
        "/api/v1/letters/",
        {
            "subject": "楼道灯坏了",
            "body": "1栋楼道灯坏了一个月。",
            "category": LetterCategory.objects.get(code="environment").pk,
        },
        format="json",
    )
    assert letter.status_code == 201, letter.content
    case = api(grid_worker).post(
        "/api/v1/cases/",
        {
            "title": "楼道堆放杂物",
            "description": "2单元楼道堆满纸箱。",
            "category": CaseCategory.objects.get(code="city-clutter").pk,
            "grid": city.g1.pk,
        },
        format="json",
    )
    assert case.status_code == 201, case.content
    # Both are saved, and so are the in-app notifications; the outside channel has heard nothing yet.
    assert Letter.objects.filter(pk=letter.json()["id"]).exists()
    assert Case.objects.filter(pk=case.json()["id"]).exists()
    waiting = Notification.objects.filter(next_delivery_at__isnull=False)
    assert waiting.filter(user=secretary).exists() and waiting.filter(user=community_staff).exists()
    assert RecordingChannel.sent == []

    redis.start()  # the broker is back: beat's next run of the outbox sweep sends them
    _reconnect(app)
    Notification.objects.update(next_delivery_at=timezone.now())  # their turn (the sweep waits a minute)
    with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        app.send_task("governance.deliver_notifications_due")
        assert _wait_for(lambda: not Notification.objects.filter(next_delivery_at__isnull=False).exists())
    assert sorted(RecordingChannel.sent) == sorted(Notification.objects.values_list("pk", flat=True))
