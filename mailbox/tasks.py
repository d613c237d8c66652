"""Thin Celery tasks of the mailbox: each calls one service."""

from governance.tasks import task

from . import services


@task("mailbox.sweep_letter_deadlines")
def sweep_letter_deadlines() -> dict:
    """Every few minutes (beat): reminders, overdue marks, closing letters left unrated. Safe to run twice."""
    return services.letter_sweep()
