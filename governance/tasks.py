"""Celery tasks of the governance app. Tasks stay thin: they take ids or plain values and call a service.

`task` is the decorator every app's tasks use: acknowledged late (a worker that dies mid-task leaves the
message for another, settings.CELERY_TASK_ACKS_LATE), and retried with exponential back-off when the
database is briefly away (a failover, a restart). The work itself is idempotent, so a second run is harmless."""

from celery import shared_task
from django.db import InterfaceError, OperationalError


def task(name: str, **options):
    options.setdefault("acks_late", True)
    options.setdefault("autoretry_for", (OperationalError, InterfaceError))
    options.setdefault("retry_backoff", 5)
    options.setdefault("retry_backoff_max", 600)
    options.setdefault("retry_jitter", True)
    options.setdefault("max_retries", 6)
    return shared_task(name=name, **options)


@task("governance.broker_health")
def broker_health(token: str) -> str:
    """Round trip through the broker and a worker; used by health checks and the broker test."""
    return token


@task("governance.refresh_dashboards")
def refresh_dashboards() -> int:
    """Every ten minutes (beat): the dashboards' history figures, into the shared cache."""
    from .dashboard import refresh_history

    return refresh_history()


@task("governance.deliver_notifications")
def deliver_notifications(ids: list[int]) -> int:
    """Right after the action that notified: hand these notifications to the outside channels."""
    from .notifications import deliver

    return deliver(ids)


@task("governance.deliver_notifications_due")
def deliver_notifications_due() -> int:
    """Every minute (beat): what the broker could not take, and channels to try again."""
    from .notifications import deliver_due

    return deliver_due()


@task("governance.run_import_job")
def run_import_job(job_id: int) -> None:
    """An uploaded import file: checked and loaded by a worker, its progress on the job."""
    from .imports import job_run

    job_run(job_id)
