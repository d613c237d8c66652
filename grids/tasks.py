"""Thin Celery tasks of the cases app: each calls one service."""

from celery import shared_task

from . import services


@shared_task(name="grids.sweep_case_deadlines")
def sweep_case_deadlines() -> dict:
    """Every few minutes (beat): overdue marks, reminders, closing cases left unrated. Safe to run twice."""
    return services.case_sweep()
