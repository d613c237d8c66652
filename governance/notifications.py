"""Notifications through one small interface.

`notify(...)` writes the in-app notification (the `Notification` row, shown with an unread badge) for each
user who has not had the same `key` yet, and hands each new one to the extra channels configured in
`settings.NOTIFICATION_CHANNELS` after the transaction commits (an SMS or WeChat gateway plugs in there by
subclassing `Channel`). Writing the same key twice is a no-op, so a reminder job may run as often as it likes.
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.module_loading import import_string

from .models import Notification


class Channel:
    """An outside channel (SMS, WeChat …). `send` gets each new, stored notification once, after commit; an
    exception it raises is logged and affects neither the action that notified nor the other channels."""

    def send(self, notification: Notification) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def channels() -> list[Channel]:
    return [import_string(path)() for path in settings.NOTIFICATION_CHANNELS]


def notify(users, *, kind: str, key: str, title: str, body: str = "", url: str = "") -> list[Notification]:
    """Notify each of `users` once per `key`; returns the notifications written now."""
    user_ids = {u.pk for u in users if u is not None}
    if not user_ids:
        return []
    already = set(Notification.objects.filter(user_id__in=user_ids, key=key).values_list("user_id", flat=True))
    fresh = _insert(
        [
            Notification(user_id=uid, kind=kind, key=key, title=str(title), body=str(body), url=url)
            for uid in sorted(user_ids - already)
        ]
    )
    for channel in channels():
        for notification in fresh:
            # robust: a gateway that fails is logged; the action that notified stands, other channels still send.
            transaction.on_commit(_sender(channel, notification), robust=True)
    return fresh


def _sender(channel: Channel, notification: Notification):
    def send():
        channel.send(notification)

    send.__qualname__ = f"{type(channel).__qualname__}.send"  # named in the log if it fails
    return send


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
