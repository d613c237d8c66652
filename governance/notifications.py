"""Notifications through one small interface.

`notify(...)` writes the in-app notification (the `Notification` row, shown with an unread badge) for each
user who has not had the same `key` yet. Writing the same key twice is a no-op, so a reminder job may run as
often as it likes.

The extra channels of `settings.NOTIFICATION_CHANNELS` (an SMS or WeChat gateway plugs in by subclassing
`Channel`) are served through an outbox: each new row names the channels still to hear of it
(`pending_channels`) and when to try next (`next_delivery_at`). After the transaction commits, a Celery task
delivers it. If the broker is down, that hand-over fails, quietly: the letter or the case is saved all the
same, and the beat's `governance.deliver_notifications_due` picks the row up once the broker is back. A channel
that fails is tried again with back-off (1, 2, 4 … 60 minutes, 12 times), the others are not repeated.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import Notification


class Channel:
    """An outside channel (SMS, WeChat …). `send` gets each new, stored notification once, after commit; an
    exception it raises is logged and affects neither the action that notified nor the other channels."""

    def send(self, notification: Notification) -> None:  # pragma: no cover - interface
        raise NotImplementedError


logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
# When the sweep should look at a new row if the task that delivers it right away never ran.
SWEEP_GRACE = dt.timedelta(minutes=1)


def channels() -> list[Channel]:
    return [import_string(path)() for path in settings.NOTIFICATION_CHANNELS]


def notify(users, *, kind: str, key: str, title: str, body: str = "", url: str = "") -> list[Notification]:
    """Notify each of `users` once per `key`; returns the notifications written now."""
    user_ids = {u.pk for u in users if u is not None}
    if not user_ids:
        return []
    already = set(Notification.objects.filter(user_id__in=user_ids, key=key).values_list("user_id", flat=True))
    outside = list(settings.NOTIFICATION_CHANNELS)
    due = timezone.now() + SWEEP_GRACE if outside else None
    fresh = _insert(
        [
            Notification(
                user_id=uid,
                kind=kind,
                key=key,
                title=str(title),
                body=str(body),
                url=url,
                pending_channels=outside,
                next_delivery_at=due,
            )
            for uid in sorted(user_ids - already)
        ]
    )
    if outside and fresh:
        ids = [n.pk for n in fresh]
        # robust: whatever happens in the hand-over, the action that notified stands.
        transaction.on_commit(lambda: hand_over(ids), robust=True)
    return fresh


def hand_over(ids: list[int]) -> bool:
    """Queue the delivery of these notifications; False when the broker cannot take it now (the outbox keeps
    them for the sweep). Runs at once, in this process, when no broker is configured."""
    from .tasks import deliver_notifications

    try:
        deliver_notifications.apply_async((ids,), retry=False)
    except Exception as error:  # noqa: BLE001 - kombu's OperationalError, socket errors: all mean "later"
        logger.warning(
            "notifications %s wait in the outbox: the broker did not take them (%s)", ids, type(error).__name__
        )
        return False
    return True


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(minutes=min(60, 2 ** (attempts - 1)))


def deliver(ids, *, now: dt.datetime | None = None) -> int:
    """Hand each notification to the channels it is still pending for; returns how many are now fully
    delivered. A row being delivered by another worker is skipped (row lock, SKIP LOCKED)."""
    now = now or timezone.now()
    by_path = {path: import_string(path)() for path in settings.NOTIFICATION_CHANNELS}
    done = 0
    for pk in ids:
        with transaction.atomic():
            notification = (
                Notification.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, next_delivery_at__isnull=False)
                .first()
            )
            if notification is None:
                continue
            still = []
            for path in notification.pending_channels:
                channel = by_path.get(path)
                if channel is None:
                    continue  # a channel taken out of the settings since: nobody to send to
                try:
                    channel.send(notification)
                except Exception:  # noqa: BLE001 - a gateway's failure is logged and tried again later
                    logger.exception("notification %s: channel %s failed", notification.pk, path)
                    still.append(path)
            notification.pending_channels = still
            notification.delivery_attempts += 1
            if not still:
                notification.next_delivery_at = None
                done += 1
            elif notification.delivery_attempts >= MAX_ATTEMPTS:
                notification.next_delivery_at = None  # given up; the admin shows what is left pending
                logger.error("notification %s: given up on %s", notification.pk, still)
            else:
                notification.next_delivery_at = now + _backoff(notification.delivery_attempts)
            notification.save(update_fields=["pending_channels", "delivery_attempts", "next_delivery_at"])
    return done


def deliver_due(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """The sweep: every notification whose turn has come (the broker was down, a channel failed)."""
    now = now or timezone.now()
    ids = list(
        Notification.objects.filter(next_delivery_at__lte=now)
        .order_by("next_delivery_at")
        .values_list("pk", flat=True)[:limit]
    )
    return deliver(ids, now=now)


def _insert(rows: list[Notification]) -> list[Notification]:
    """Insert the rows and return those that are new, saved with their ids (a channel gets the stored row).
    Two runs racing on the same key: the loser's rows hit the unique constraint and are dropped one by one,
    so each user still has one row and the channels hear of it once."""
    if not rows:
        return []
    try:
        with transaction.atomic():
            return Notification.objects.bulk_create(rows)
    except IntegrityError:
        if len(rows) == 1:
            return []
        return [saved for row in rows for saved in _insert([row])]


def unread_count(user) -> int:
    return Notification.objects.filter(user=user, read_at=None).count()
