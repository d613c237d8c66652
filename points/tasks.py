"""Thin Celery tasks of the points app: each takes plain values and calls the tally services."""

import datetime as dt

from governance.tasks import task

from . import tally


@task("points.tally_previous_month")
def tally_previous_month() -> dict:
    """On the 1st of each month at 01:00 Asia/Shanghai (beat): tally the month that just ended and publish the
    boards of every grid and community. Safe to run twice: the tally replaces the month's rows, boards already
    published stay."""
    month = tally.previous_month()
    run = tally.tally_month(month=month)
    boards = tally.boards_publish_all(month=month)
    return {"month": f"{month:%Y-%m}", "rows": run.rows, "duration_ms": run.duration_ms, "boards": boards}


@task("points.tally_month")
def tally_month(month: str, user_id: int | None = None) -> dict:
    """A tally run by hand from the tallies page (the month as "YYYY-MM-DD"). Safe to run twice."""
    from governance.models import User

    by = User.objects.filter(pk=user_id).first() if user_id else None
    run = tally.tally_month(month=dt.date.fromisoformat(month), by=by)
    return {"month": month, "rows": run.rows, "duration_ms": run.duration_ms}
