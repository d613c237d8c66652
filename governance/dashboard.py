"""The figures of the home page's dashboards (and the command centre's wall), read from the same selectors and
statistics the API uses, in a fixed number of set-based queries whatever the size of the subtree.

- `unit_dashboard(unit)`: a street's, a community's or a grid's (None: the city's) — cases by stage, overdue now,
  the twelve months' on-time and satisfaction trend, the lowest-ranked units below and departments, the month's
  points and the supermarket, the letters waiting for the secretary, and the units below to drill down into.
- `worker_todo(user)`: what a grid worker has to do first.
- `department_desk(user)`: the cases a department holds, deadlines first.
- `resident_home(user)`: a resident's points, letters and the cases that concern them.
"""

import datetime as dt

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from .models import Level, Unit
from .selectors import STEP, scope_of

TREND_MONTHS = 12
LOWEST = 5


def _months_back(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_key(value) -> str:
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value)
    return f"{value:%Y-%m}"


def _rate(part, whole):
    return round(part / whole, 4) if whole else None


# --- A unit's dashboard --------------------------------------------------------------------------------------------


def unit_dashboard(unit: Unit | None, *, now: dt.datetime | None = None) -> dict:
    """Everything the street or community leader looks at first, for the subtree of `unit` (None: the city)."""
    from grids import stats as case_stats

    now = now or timezone.now()
    month = timezone.localtime(now).date().replace(day=1)
    kpis = case_stats.case_kpis(unit=unit, month=month, now=now) if unit is None or unit.depth <= 3 else None
    prefix = unit.path if unit else ""
    children = kpis["by_unit"] if kpis else []
    scored = [dict(row, score=_unit_score(row)) for row in children if row["filed"]]
    departments = [row for row in (kpis["ranking"]["departments"] if kpis else []) if row["dispatched"]]
    return {
        "unit": unit,
        "month": f"{month:%Y-%m}",
        "cases": _cases_by_stage(prefix, kpis),
        "kpis": kpis["summary"] if kpis else None,
        "trend": case_trend(prefix, month),
        "children": children,
        "child_level": _child_level(unit),
        "lowest_units": sorted(scored, key=lambda r: (r["score"] is None, r["score"] or 0))[:LOWEST],
        "lowest_departments": sorted(departments, key=lambda r: r["rank"] or 0, reverse=True)[:LOWEST],
        "points": _points_month(prefix, month),
        "shop": _shop(prefix),
        "letters": _letters_waiting(prefix, now),
    }


def _child_level(unit):
    if unit is None:
        return Level.STREET
    return {Level.STREET: Level.COMMUNITY, Level.COMMUNITY: Level.GRID}.get(unit.level)


def _unit_score(row) -> float | None:
    """The communities' ranking formula applied to any unit's row (30 completion, 30 on time, 30 satisfaction,
    10 no rework; a part with nothing to measure leaves its weight to the others)."""
    from grids.stats import unit_score

    return unit_score(row)


def _cases_by_stage(prefix: str, kpis: dict | None) -> dict:
    """How many open cases stand at each stage now: one grouped query over the open states (their index), not over
    every case of the subtree. Overdue now comes with the month's KPIs."""
    from grids.models import Case, CaseState

    open_states = [s for s in CaseState if s != CaseState.CLOSED]
    counted = dict(
        Case.objects.filter(state__in=open_states, grid__path__startswith=prefix, grid__level=Level.GRID)
        .values_list("state")
        .annotate(n=Count("id"))
        .order_by()
    )
    stages = [{"state": s, "label": s.label, "count": counted.get(s.value, 0)} for s in open_states]
    return {
        "stages": stages,
        "open": sum(s["count"] for s in stages),
        "overdue": kpis["summary"]["overdue_now"] if kpis else 0,
    }


TREND_CACHE_SECONDS = 900  # refreshed every ten minutes by the beat (refresh_history)


def case_trend(prefix: str, month: dt.date) -> list[dict]:
    """The twelve months up to `month`: cases filed, the on-time completion rate and the satisfaction rate of
    each month's cases (the KPIs' definitions, counted in one grouped query). A year of a street's cases is a
    hundred thousand rows (a quarter of a second on the city): the trend is kept in the cache for ten minutes,
    it is history; the live figures beside it (open, overdue, waiting) are never cached."""
    from django.core.cache import cache

    key = f"dashboard:trend:{prefix or 'city'}:{month:%Y-%m}"
    trend = cache.get(key)
    if trend is None:
        trend = _case_trend(prefix, month)
        cache.set(key, trend, TREND_CACHE_SECONDS)
    return trend


def refresh_history(*, now=None) -> int:
    """Compute the cached history figures of the city, every street and every community afresh (the beat does it
    every ten minutes, so that with a shared cache no leader waits for them). Returns how many units.

    In eight queries whatever the number of units: the year's cases by community and month, and the
    population by community (the grid workers by street as well, since one person can work in two of its
    communities), summed up to the streets and the city. The figures are the same as `case_trend` and
    `unit_stats` give one unit at a time (the tests compare them)."""
    from django.core.cache import cache

    from .selectors import UNIT_STATS_CACHE_SECONDS, units_stats

    now = now or timezone.now()
    month = timezone.localtime(now).date().replace(day=1)
    units = list(Unit.objects.filter(level__in=[Level.STREET, Level.COMMUNITY]).only("pk", "path").order_by("path"))
    counts = _case_counts_by_community(month)
    summed = {"": {}}
    for unit in units:
        summed[unit.path] = {}
    for (community, key), row in counts.items():
        for prefix in ("", community[:STEP], community):
            into = summed.get(prefix)
            if into is not None:
                month_counts = into.setdefault(key, dict.fromkeys(row, 0))
                for name, n in row.items():
                    month_counts[name] += n
    cache.set(f"dashboard:trend:city:{month:%Y-%m}", _trend(summed[""], month), TREND_CACHE_SECONDS)
    for unit in units:
        cache.set(f"dashboard:trend:{unit.path}:{month:%Y-%m}", _trend(summed[unit.path], month), TREND_CACHE_SECONDS)
    for pk, figures in units_stats(units).items():
        cache.set(f"unit-stats:{pk}", figures, UNIT_STATS_CACHE_SECONDS)
    return len(units) + 1


def _trend_start(month: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(_months_back(month, TREND_MONTHS - 1), dt.time.min))


def _case_month():
    return TruncMonth("created_at", tzinfo=timezone.get_default_timezone())


def _trend_counts(grouped):
    """The trend's counts (`TREND_COUNTS`) of each group of `grouped`, a values() query of cases."""
    from grids.models import ClosedReason

    return grouped.annotate(
        filed=Count("id"),
        completed=Count("id", filter=Q(handled_at__isnull=False)),
        on_time=Count("id", filter=Q(handled_at__isnull=False, handled_on_time=True)),
        rated=Count("id", filter=Q(closed_reason=ClosedReason.RATED)),
        satisfied=Count("id", filter=Q(closed_reason=ClosedReason.RATED, rating__gte=4)),
    ).order_by()


TREND_COUNTS = ("filed", "completed", "on_time", "rated", "satisfied")


def _case_counts_by_community(month: dt.date) -> dict:
    """{(community path, "YYYY-MM"): {count: n}} over the trend's twelve months, in one query."""
    from django.db.models.functions import Substr

    from grids.models import Case

    cases = Case.objects.filter(grid__level=Level.GRID, created_at__gte=_trend_start(month)).values(
        community_path=Substr("grid__path", 1, 2 * STEP), month=_case_month()
    )
    return {
        (r["community_path"], _month_key(r["month"])): {name: r[name] for name in TREND_COUNTS}
        for r in _trend_counts(cases)
    }


def _case_trend(prefix: str, month: dt.date) -> list[dict]:
    from grids.models import Case

    cases = Case.objects.filter(
        grid__path__startswith=prefix, grid__level=Level.GRID, created_at__gte=_trend_start(month)
    ).values(month=_case_month())
    return _trend({_month_key(r["month"]): r for r in _trend_counts(cases)}, month)


def _trend(by_month: dict, month: dt.date) -> list[dict]:
    """The twelve months up to `month` from the counts of each ("YYYY-MM": {filed, completed, …})."""
    trend = []
    for n in range(TREND_MONTHS - 1, -1, -1):
        key = f"{_months_back(month, n):%Y-%m}"
        r = by_month.get(key, {})
        trend.append(
            {
                "month": key,
                "filed": r.get("filed", 0),
                "on_time_rate": _rate(r.get("on_time", 0), r.get("completed", 0)),
                "satisfaction_rate": _rate(r.get("satisfied", 0), r.get("rated", 0)),
            }
        )
    return trend


def _points_month(prefix: str, month: dt.date) -> dict:
    """The month's points in the subtree: entries recorded, points given and taken, redemptions. One query."""
    from points.models import Entry, EntryKind

    end = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    figures = Entry.objects.filter(
        occurred_on__gte=month, occurred_on__lt=end, account__resident__household__building__path__startswith=prefix
    ).aggregate(
        entries=Count("id", filter=Q(kind__in=[EntryKind.AWARD, EntryKind.DEDUCTION])),
        awarded=Sum("points", filter=Q(kind=EntryKind.AWARD)),
        deducted=Sum("points", filter=Q(kind=EntryKind.DEDUCTION)),
        redemptions=Count("id", filter=Q(kind=EntryKind.REDEMPTION)),
        residents=Count("account__resident", distinct=True),
    )
    figures["awarded"] = figures["awarded"] or 0
    figures["deducted"] = -(figures["deducted"] or 0)
    return figures


LOW_STOCK = 5


def _shop(prefix: str) -> dict:
    """The supermarkets of the subtree's communities: rewards on sale, those running out, reservations to hand
    over. Two queries."""
    from points.models import Redemption, RedemptionState, Reward

    community_prefix = prefix[: 2 * STEP]  # a grid's dashboard shows its community's supermarket
    rewards = Reward.objects.filter(community__path__startswith=community_prefix, active=True).aggregate(
        on_sale=Count("id"), running_out=Count("id", filter=Q(stock__lt=LOW_STOCK))
    )
    rewards["reserved"] = Redemption.objects.filter(
        reward__community__path__startswith=community_prefix, state=RedemptionState.RESERVED
    ).count()
    return rewards


def _letters_waiting(prefix: str, now) -> dict:
    """Letters to the subtree's secretaries waiting for them: to accept, to answer, drafts to sign off, overdue;
    and the oldest few. Two queries."""
    from mailbox.models import Letter, LetterState

    waiting = [LetterState.ACCEPTED, LetterState.ASSIGNED, LetterState.DRAFTED, LetterState.FOLLOW_UP]
    letters = Letter.objects.filter(unit__path__startswith=prefix)
    counts = letters.aggregate(
        to_accept=Count("id", filter=Q(state=LetterState.SUBMITTED)),
        to_answer=Count("id", filter=Q(state__in=waiting)),
        to_sign=Count("id", filter=Q(state=LetterState.DRAFTED)),
        overdue=Count(
            "id",
            filter=Q(state=LetterState.SUBMITTED, accept_deadline__lt=now)
            | Q(state__in=waiting, reply_deadline__lt=now),
        ),
    )
    counts["oldest"] = list(
        letters.filter(state__in=[LetterState.SUBMITTED, *waiting])
        .select_related("unit")
        .order_by("created_at")[:LOWEST]
    )
    return counts


def subtree_unit_for(user, unit_id) -> Unit | None:
    """The unit whose dashboard `user` asks for: one of their subtrees (a 404 outside), default their top unit;
    administrators may ask for any unit, default the city."""
    from django.http import Http404

    scope = scope_of(user)
    if unit_id is not None:
        unit = Unit.objects.filter(pk=unit_id).exclude(level=Level.BUILDING).first()
        if unit is None or not (scope.is_admin or scope.covers(unit.path)):
            raise Http404
        return unit
    if scope.is_admin:
        return None
    paths = sorted(scope.paths(), key=len)
    return Unit.objects.filter(path=paths[0]).first() if paths else None


# --- The desks of grid workers, departments and residents ------------------------------------------------------


def worker_todo(user) -> dict:
    """A grid worker's to-do list: cases handled in their grids waiting for the check on site, their cases
    returned for more information, letters assigned to their grid, and the points they recorded this month."""
    from governance.models import Role
    from grids.models import Case, CaseState
    from mailbox.models import Letter, LetterState
    from points.models import Entry

    scope = scope_of(user)
    grids = scope.paths(Role.GRID_WORKER)
    in_grids = Q(pk__in=[])
    for path in grids:
        in_grids |= Q(grid__path__startswith=path)
    cases = Case.objects.select_related("grid", "category")
    month = timezone.localdate().replace(day=1)
    assigned = Q(pk__in=[])
    for path in grids:
        assigned |= Q(assignee_unit__path__startswith=path)
    return {
        "to_verify": list(cases.filter(in_grids, state=CaseState.HANDLED).order_by("handled_at")[:20]),
        "returned": list(
            cases.filter(state=CaseState.RETURNED).filter(Q(reporter=user) | in_grids).order_by("created_at")[:20]
        ),
        "letters": list(
            Letter.objects.filter(assigned, state__in=[LetterState.ASSIGNED, LetterState.FOLLOW_UP])
            .select_related("unit")
            .order_by("reply_deadline")[:20]
        ),
        "recorded": Entry.objects.filter(recorded_by=user, occurred_on__gte=month).count(),
    }


def department_desk(user, *, now=None) -> dict:
    """The cases a department has to sign for and to handle, the nearest deadline first (overdue on top)."""
    from grids.models import Case, CaseDispatch, CaseState

    now = now or timezone.now()
    scope = scope_of(user)
    to_sign = list(
        CaseDispatch.objects.filter(
            department_id__in=scope.department_ids,
            signed_at=None,
            sent_back_at=None,
            case__state__in=[CaseState.DISPATCHED, CaseState.IN_PROGRESS],
        )
        .select_related("case__grid", "case__category", "department")
        .order_by("sign_deadline")[:30]
    )
    handling = list(
        Case.objects.filter(holder_department_id__in=scope.department_ids, state=CaseState.IN_PROGRESS)
        .select_related("grid", "category")
        .order_by(F("handle_deadline").asc(nulls_last=True))[:30]
    )
    for row in to_sign:
        row.late = row.sign_deadline < now
    for case in handling:
        case.late = bool(case.handle_deadline and case.handle_deadline < now)
    return {"to_sign": to_sign, "handling": handling}


def resident_home(user) -> dict:
    """A resident's own: points balances, latest letters, the open cases that concern them."""
    from grids.models import OPEN_STATES, Case, CaseState
    from mailbox.models import Letter
    from points.models import Account

    scope = scope_of(user)
    return {
        "accounts": list(
            Account.objects.filter(resident_id__in=scope.resident_ids)
            .select_related("scheme")
            .order_by("scheme__order")
        ),
        "letters": list(
            Letter.objects.filter(writer_id__in=scope.resident_ids).select_related("unit").order_by("-created_at")[:5]
        ),
        "cases": list(
            Case.objects.filter(
                affected_resident_id__in=scope.resident_ids,
                state__in=[*OPEN_STATES, CaseState.HANDLED, CaseState.VERIFIED],
            )
            .select_related("grid")
            .order_by("-created_at")[:5]
        ),
    }
