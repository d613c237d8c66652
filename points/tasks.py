"""Thin Celery tasks of the points app: each takes plain values and calls the tally services."""

from celery import shared_task

from . import tally


@shared_task(name="points.tally_previous_month")
def tally_previous_month() -> dict:
    """On the 1st of each month at 01:00 Asia/Shanghai (beat): tally the month that just ended and publish the
    boards of every grid and community. Safe to run twice: the tally replaces the month's rows, boards already
    published stay."""
    month = tally.previous_month()
    run = tally.tally_month(month=month)
    boards = tally.boards_publish_all(month=month)
    return {"month": f"{month:%Y-%m}", "rows": run.rows, "duration_ms": run.duration_ms, "boards": boards}
