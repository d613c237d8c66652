"""Thin Celery tasks of the mailbox: each calls one service."""

from celery import shared_task

from . import services


@shared_task(name="mailbox.sweep_letter_deadlines")
def sweep_letter_deadlines() -> dict:
    """Every few minutes (beat): reminders, overdue marks, closing letters left unrated. Safe to run twice."""
    return services.letter_sweep()
