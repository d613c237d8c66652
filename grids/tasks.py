"""Thin Celery tasks of the cases app: each calls one service."""

from governance.tasks import task

from . import services


@task("grids.sweep_case_deadlines")
def sweep_case_deadlines() -> dict:
    """Every few minutes (beat): overdue marks, reminders, closing cases left unrated. Safe to run twice."""
    return services.case_sweep()
