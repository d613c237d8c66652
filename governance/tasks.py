"""Celery tasks of the governance app. Tasks stay thin: they take ids or plain values and call a service."""

from celery import shared_task


@shared_task(name="governance.broker_health")
def broker_health(token: str) -> str:
    """Round trip through the broker and a worker; used by health checks and the broker test."""
    return token


@shared_task(name="governance.refresh_dashboards")
def refresh_dashboards() -> int:
    """Every ten minutes (beat): the dashboards' history figures, into the shared cache."""
    from .dashboard import refresh_history

    return refresh_history()
