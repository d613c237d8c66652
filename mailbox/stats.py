"""Statistics of the mailbox for a street, a community or the city, and a month: letters by channel, category
and unit, acceptance and reply within the deadlines, the average rating and the share of four and five stars
(the seeds' 96%), unrated letters, the twelve months' trend and each secretary's trend.

The figures are for the letters written in the month (a cohort: a letter of November answered in December
counts for November). Six queries whatever the number of letters; the rates are computed from the
counts here.
"""

import datetime as dt

from django.db.models import Avg, Count, Q
from django.db.models.functions import TruncMonth
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from governance.errors import InvalidInput, NotAllowed
from governance.models import Level, Unit
from governance.selectors import scope_of, units_visible_to
from grids.stats import month_bounds, parse_month

from .models import OPEN_STATES, ClosedReason, Letter, LetterState
from .selectors import OFFICE_ROLES

__all__ = ["parse_month", "stats_unit_for", "letter_stats"]

TREND_MONTHS = 12


def stats_unit_for(user, unit_id: int | None) -> Unit | None:
    """The street or community whose letters `user` asks about. One they cannot see is a 404; one they see but
    do not run the mailbox of (a unit above their own, or a grid) is a 403/400. Without `unit_id`: the city for
    administrators, else the one unit whose mailbox the user runs (several: choose, 400)."""
    scope = scope_of(user)
    if unit_id is not None:
        unit = units_visible_to(user).filter(pk=unit_id).first()
        if unit is None:
            raise Http404
        if unit.level not in (Level.STREET, Level.COMMUNITY):
            raise InvalidInput(_("信箱统计按街道或社区查看。"), field="unit")
        if not (scope.is_admin or scope.covers(unit.path, *OFFICE_ROLES)):
            raise NotAllowed(_("只能查看本单位及下属单位的信箱统计。"))
        return unit
    if scope.is_admin:
        return None
    paths = set(scope.paths(*OFFICE_ROLES))
    roots = sorted(p for p in paths if not any(p != q and p.startswith(q) for q in paths))
    if not roots:
        raise NotAllowed(_("信箱统计只对街道、社区的书记和工作人员开放。"))
    if len(roots) > 1:
        raise InvalidInput(_("您在多个单元任职，请选择要查看的单元。"), field="unit")
    return Unit.objects.get(path=roots[0])


def _counts() -> dict:
    """The conditional counts every grouping shares."""
    rated = Q(closed_reason=ClosedReason.RATED)
    return {
        "received": Count("id"),
        "mailbox": Count("id", filter=Q(channel="mailbox")),
        "speak": Count("id", filter=Q(channel="speak")),
        "rejected": Count("id", filter=Q(state=LetterState.REJECTED)),
        "decided": Count("id", filter=Q(accepted_on_time__isnull=False)),
        "accepted_on_time": Count("id", filter=Q(accepted_on_time=True)),
        "replied": Count("id", filter=Q(replied_at__isnull=False)),
        "replied_on_time": Count("id", filter=Q(replied_on_time=True)),
        "rated": Count("id", filter=rated),
        "satisfied": Count("id", filter=rated & Q(rating__gte=4)),
        "rating_avg": Avg("rating", filter=rated),
        "unrated": Count("id", filter=Q(closed_reason=ClosedReason.UNRATED)),
        "published": Count("id", filter=Q(published=True)),
    }


def _rate(part, whole):
    return round(part / whole, 4) if whole else None


def _finish(row: dict) -> dict:
    """Counts to the figures shown: rates of the letters they apply to, the average to two places."""
    row = dict(row)
    row["accept_on_time_rate"] = _rate(row["accepted_on_time"], row["decided"])
    row["reply_on_time_rate"] = _rate(row["replied_on_time"], row["replied"])
    row["satisfaction_rate"] = _rate(row["satisfied"], row["rated"])
    row["rating_avg"] = None if row["rating_avg"] is None else round(float(row["rating_avg"]), 2)
    del row["decided"]
    return row


def letter_stats(*, unit: Unit | None, month: dt.date, now: dt.datetime | None = None) -> dict:
    """The statistics of the letters to `unit` and the units under it (None: the whole city) written in
    `month`, with the twelve months up to it."""
    now = now or timezone.now()
    start, end = month_bounds(month)
    trend_start, _end = month_bounds(_months_before(month, TREND_MONTHS - 1))
    letters = Letter.objects.filter(unit__path__startswith=unit.path) if unit is not None else Letter.objects.all()
    in_month = letters.filter(created_at__gte=start, created_at__lt=end)
    tz = timezone.get_default_timezone()

    summary = _finish(in_month.aggregate(**_counts()))
    summary["overdue_now"] = letters.filter(
        Q(state=LetterState.SUBMITTED, accept_deadline__lt=now)
        | Q(state__in=[s for s in OPEN_STATES if s != LetterState.SUBMITTED], reply_deadline__lt=now)
    ).count()
    by_category = [
        _finish({"category": row.pop("category__name"), **row})
        for row in in_month.values("category__name").annotate(**_counts()).order_by("-received", "category__name")
    ]
    by_unit = [
        _finish(
            {"unit": {"id": row.pop("unit_id"), "name": row.pop("unit__name"), "level": row.pop("unit__level")}, **row}
        )
        for row in in_month.values("unit_id", "unit__name", "unit__level", "unit__path")
        .annotate(**_counts())
        .order_by("unit__path")
    ]
    for row in by_unit:
        row.pop("unit__path", None)
    trend_rows = (
        letters.filter(created_at__gte=trend_start, created_at__lt=end)
        .annotate(month=TruncMonth("created_at", tzinfo=tz))
        .values("month")
        .annotate(**_counts())
        .order_by("month")
    )
    by_month = {_month_key(row.pop("month")): _finish(row) for row in trend_rows}
    months = [_months_before(month, n) for n in range(TREND_MONTHS - 1, -1, -1)]
    trend = [{"month": f"{m:%Y-%m}", **by_month.get(f"{m:%Y-%m}", _finish(_empty()))} for m in months]
    secretary_rows = (
        letters.filter(created_at__gte=trend_start, created_at__lt=end, replied_by__isnull=False)
        .annotate(month=TruncMonth("created_at", tzinfo=tz))
        .values("replied_by_id", "replied_by__name", "replied_by__username", "month")
        .annotate(**_counts())
        .order_by("replied_by__name", "replied_by_id", "month")
    )
    secretaries = {}
    for row in secretary_rows:
        key = row.pop("replied_by_id")
        name = row.pop("replied_by__name") or row.pop("replied_by__username")
        row.pop("replied_by__username", None)
        person = secretaries.setdefault(key, {"id": key, "name": name, "months": []})
        person["months"].append({"month": _month_key(row.pop("month")), **_finish(row)})
    return {
        "unit": None if unit is None else {"id": unit.pk, "name": unit.name, "level": unit.level},
        "month": f"{month:%Y-%m}",
        "summary": summary,
        "by_category": by_category,
        "by_unit": by_unit,
        "trend": trend,
        "secretaries": list(secretaries.values()),
    }


def _empty() -> dict:
    return {
        "received": 0,
        "mailbox": 0,
        "speak": 0,
        "rejected": 0,
        "decided": 0,
        "accepted_on_time": 0,
        "replied": 0,
        "replied_on_time": 0,
        "rated": 0,
        "satisfied": 0,
        "rating_avg": None,
        "unrated": 0,
        "published": 0,
    }


def _months_before(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_key(value) -> str:
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return f"{value:%Y-%m}"
