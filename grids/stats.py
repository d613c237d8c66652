"""The case KPIs of a subtree for a month (事件统计): per child unit, per department, and the monthly rankings.

`case_kpis(unit=…, month=…)` answers for the whole city (`unit` None), a street, a community or a grid, in a
constant number of queries whatever the number of cases (five): a grouped aggregate over the month's cases, a
grouped count of the cases overdue now, a grouped aggregate over the month's dispatches, and the names of the
units and of the departments. Every figure is computed from counts and sums (never an average of averages),
so a street's row is exactly the sum of its communities'.

The definitions, the contract staff read the figures by:

- **filed (上报)**: cases filed in the month (Asia/Shanghai local month boundaries, `Case.created_at`) in a
  grid of the subtree, whatever became of them.
- **completed (办结)**: of those, the cases handled and not undone (`handled_at` set: handled, verified or
  closed after a rating or without one); cases closed as invalid or duplicate are never completed.
  `completion_rate` = completed / (filed − closed as invalid or duplicate).
- **on_time (按期办结)**: completed cases handled by their deadline; `on_time_rate` = on_time / the cases that
  were due: completed, plus those overdue now (an overdue case counts against the rate at once, not only
  when it is finally handled).
- **avg_sign_hours**: the average time to sign for a case, over the month's cases that were signed for;
  **avg_handle_hours**: the average time to handle, over the completed cases. Both in working hours (office
  hours of working days, see `governance.workdays`), one decimal.
- **rated**: closed with a rating; **satisfied**: rated 4 or 5 stars; `satisfaction_rate` = satisfied / rated.
  **unrated**: closed without a rating after the seven days' wait — shown on its own, never as satisfied.
- **send_back_rate (退单率)**: of the month's cases dispatched to a department, the share sent back at least once.
- **rework_rate (返工率)**: of the completed cases, the share that failed an on-site check at least once.
- **overdue_now (超期)**: cases of the subtree filed in *any* month that are overdue at this moment: dispatched
  and not signed for by the sign-for deadline, or still open past the handling deadline.

Rates are floats from 0 to 1 rounded to four places; a rate or an average with nothing to divide by is None.

Departments (`by_department`), from the dispatch rows of the month's cases of the subtree — every department
that had such a dispatch, and every department that has a case of the subtree overdue now:

- **dispatched / signed / sent_back**: dispatch rows, those signed for, those the department sent back as
  lead (退单; an assisting part withdrawn with the lead's send-back does not count);
  `send_back_rate` = sent_back / dispatched; **avg_sign_hours** from the rows signed for.
- **handled**, `completion_rate` (handled / led), `on_time_rate`, `avg_handle_hours`, `satisfaction_rate`,
  **unrated**, `rework_rate`: over the cases the department led and did not send back (led), with the
  definitions above (handled = completed).
- **street_rating_avg**: the street's 1–5 star assessment of the department's response (吹哨报到双考核),
  averaged over the rows assessed, two decimals.
- **overdue_now**: cases led by the department (the lead dispatch not sent back, that is the department
  holding the case), overdue now, filed in any month.

The monthly ranking (`ranking`), 0–100 points with one decimal, a weighted mean of the parts that can be
measured (a part with nothing to measure — no rating yet, no send-back possible — leaves its weight to the
others rather than counting as 0 or as perfect):

- departments: 20 completion_rate, 25 on_time_rate, 25 satisfaction_rate, 15 (1 − send_back_rate),
  15 street_rating_avg / 5;
- communities: 30 completion_rate, 30 on_time_rate, 30 satisfaction_rate, 10 (1 − rework_rate).

Rank 1 is the best; equal scores share a rank; a community with no case filed in the month, or a department
with no dispatch, comes after all the others. The communities ranked are those of the subtree (for a grid:
its community, with the community's whole figures).
"""

import datetime as dt
import re

from django.db.models import Count, Q, Sum
from django.db.models.functions import Substr
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from governance.errors import InvalidInput, NotAllowed
from governance.models import Department, Level, Unit
from governance.selectors import STEP, check_can_see_figures, scope_of, units_visible_to

from .models import OPEN_STATES, Case, CaseDispatch, CaseState, ClosedReason

VOID = (ClosedReason.INVALID, ClosedReason.DUPLICATE)
SATISFIED_STARS = 4

# The raw counts and sums of one group of cases; every figure of a Row is computed from them.
CASE_COUNTS = (
    "filed",
    "void",
    "completed",
    "on_time",
    "sign_sum",
    "sign_n",
    "handle_sum",
    "handle_n",
    "rated",
    "satisfied",
    "unrated",
    "dispatched",
    "sent_back",
    "reworked",
    "late_open",
    "overdue_now",
)
DEPARTMENT_COUNTS = (
    "led",
    "late_open",
    "handle_sum",
    "handle_n",
    "unrated",
    "reworked",
    "dispatched",
    "signed",
    "sent_back",
    "sign_sum",
    "sign_n",
    "handled",
    "on_time",
    "rated",
    "satisfied",
    "rating_sum",
    "rating_n",
)


# --- Which subtree and which month ---------------------------------------------------------------------


def kpi_unit_for(user, unit_id: int | None) -> Unit | None:
    """The subtree `user` asks the figures of. A unit they cannot see is a 404; one they see by name only (a
    unit above their own) is a 403. Without `unit_id`: the city for administrators, else the one subtree the
    user works in; a user working in several must choose (400)."""
    if unit_id is not None:
        unit = units_visible_to(user).filter(pk=unit_id).first()
        if unit is None:
            raise Http404
        check_can_see_figures(user, unit)
        if unit.level == Level.BUILDING:
            raise InvalidInput(_("事件统计按街道、社区或网格查看，请选择上级单元。"), field="unit")
        return unit
    scope = scope_of(user)
    if scope.is_admin:
        return None
    paths = set(scope.paths())
    roots = sorted(p for p in paths if not any(p != q and p.startswith(q) for q in paths))
    if not roots:
        raise NotAllowed(_("事件统计只对街道、社区和网格的工作人员开放。"))
    if len(roots) > 1:
        raise InvalidInput(_("您在多个单元任职，请选择要查看的单元。"), field="unit")
    return Unit.objects.get(path=roots[0])


def department_kpis(user, month: dt.date, now: dt.datetime | None = None) -> dict:
    """For department staff: their own departments' rows and the monthly ranking of all departments (how
    they stand), without the units' figures, which are not theirs to see."""
    scope = scope_of(user)
    if not scope.department_ids:
        raise NotAllowed(_("事件统计只对街道、社区和网格的工作人员开放。"))
    kpis = case_kpis(unit=None, month=month, now=now)
    return {
        "unit": None,
        "month": kpis["month"],
        "by_department": [r for r in kpis["by_department"] if r["department"]["id"] in scope.department_ids],
        "ranking": {"departments": kpis["ranking"]["departments"]},
    }


def is_department_only(user) -> bool:
    scope = scope_of(user)
    return bool(scope.department_ids) and not scope.paths() and not scope.is_admin


MONTH_FORMAT = re.compile(r"(\d{4})-(\d{2})")


def parse_month(value: str | None, now: dt.datetime | None = None) -> dt.date:
    """A "YYYY-MM" string to the first day of that month; nothing given: the current month (local time)."""
    if value in (None, ""):
        today = timezone.localtime(now or timezone.now(), timezone.get_default_timezone()).date()
        return today.replace(day=1)
    match = MONTH_FORMAT.fullmatch(str(value).strip())
    try:
        if match is None or not 2000 <= int(match[1]) <= 2100:
            raise ValueError(value)
        return dt.date(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise InvalidInput(_("月份格式应为 YYYY-MM，例如 2026-11。"), field="month") from None


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The first moment of the month and of the next one, local (Asia/Shanghai) time."""
    tz = timezone.get_default_timezone()
    following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    start = dt.datetime.combine(month.replace(day=1), dt.time.min)
    return timezone.make_aware(start, tz), timezone.make_aware(dt.datetime.combine(following, dt.time.min), tz)


# --- The figures -------------------------------------------------------------------------------------------


def case_kpis(*, unit: Unit | None, month: dt.date, now: dt.datetime | None = None) -> dict:
    """The KPIs of the subtree of `unit` (None: the whole city) for the cases filed in `month` (its first
    day), and the cases overdue at `now`. Five queries whatever the size of the subtree; see the module
    docstring for the definitions."""
    now = now or timezone.now()
    start, end = month_bounds(month)
    depth = unit.depth if unit else 0
    if depth > 3:
        raise InvalidInput(_("事件统计按街道、社区或网格查看，请选择上级单元。"), field="unit")

    # The cases are grouped at the finest level any part of the answer needs: communities for the city and a
    # street, grids below that. For a grid, its whole community is read too (the community's ranking row).
    group_length = 2 * STEP if depth < 2 else 3 * STEP
    query_root = unit.path[: 2 * STEP] if unit else ""
    own_path = unit.path if unit else ""
    groups = _month_counts(root=query_root, length=group_length, start=start, end=end, now=now)
    department_overdue: dict = {}
    for (prefix, department_id), n in _overdue_counts(root=query_root, length=group_length, now=now).items():
        counts = groups.setdefault(prefix, {})
        counts["overdue_now"] = counts.get("overdue_now", 0) + n
        if department_id is not None and prefix.startswith(own_path):
            department_overdue[department_id] = department_overdue.get(department_id, 0) + n

    names = _units(unit)
    summary = _sum(counts for prefix, counts in groups.items() if prefix.startswith(own_path))

    if depth == 3:
        by_unit = []
    else:
        child_length = (depth + 1) * STEP
        children = [u for u in names if u.depth == depth + 1]
        rolled: dict = {}
        for prefix, counts in groups.items():
            rolled.setdefault(prefix[:child_length], []).append(counts)
        by_unit = [{"unit": _unit_ref(u), **_row(_sum(rolled.get(u.path, ())))} for u in children]

    if depth < 2:
        communities = [(u, groups.get(u.path)) for u in names if u.depth == 2]
    else:
        community = unit if depth == 2 else next(u for u in names if u.depth == 2)
        communities = [(community, _sum(groups.values()))]
    community_rows = [
        {"unit": _unit_ref(u), **_row(counts or {}), "score": None, "rank": None} for u, counts in communities
    ]
    for row in community_rows:
        row["score"] = _community_score(row)
    _rank(community_rows, active=lambda r: r["filed"] > 0)

    departments = _department_rows(root=own_path, start=start, end=end, now=now, overdue=department_overdue)
    department_ranking = [{**row, "rank": None} for row in departments]
    _rank(department_ranking, active=lambda r: r["dispatched"] > 0)

    return {
        "unit": _unit_ref(unit) if unit else None,
        "month": month.strftime("%Y-%m"),
        "summary": _row(summary),
        "by_unit": by_unit,
        "by_department": departments,
        "ranking": {"departments": department_ranking, "communities": community_rows},
    }


# The month's figures and the overdue count are two queries, not one with `month OR overdue`: the month's
# cases lie together (filed together, stored together) and are reached through the time or the grid index,
# while the overdue ones are spread over every month; one query would fetch both sets through a bitmap scan
# of the whole table, and the departments' figures would fetch the overdue cases a second time.


def _subtree(root, grid="grid"):
    """The cases (reached through `grid`) in the grids under `root`. A case's grid is always of the grid
    level; saying so lets the planner count the grids under `root` rather than all its units (most of them
    buildings), so that its row estimates, and its choice of plans, stay right."""
    return Q(**{f"{grid}__level": Level.GRID}) & (Q(**{f"{grid}__path__startswith": root}) if root else Q())


def _overdue_at(now, prefix=""):
    """Overdue at `now` (the test of `selectors.is_overdue_now`): not signed for in time, or open past the
    handling deadline."""
    return Q(**{f"{prefix}state": CaseState.DISPATCHED, f"{prefix}sign_deadline__lt": now}) | Q(
        **{f"{prefix}state__in": OPEN_STATES, f"{prefix}handle_deadline__lt": now}
    )


def _completed(prefix=""):
    return Q(**{f"{prefix}handled_at__isnull": False}) & ~Q(**{f"{prefix}closed_reason__in": VOID})


def month_counts_query(*, root, length, start, end, now=None):
    """The raw counts of the cases filed between `start` and `end` under `root`, grouped by the first `length`
    characters of the grid's path (public for `bench/cases_city.py`)."""
    completed = _completed()

    def count(condition):
        return Count("pk", filter=condition)

    return (
        Case.objects.filter(_subtree(root), created_at__gte=start, created_at__lt=end)
        .annotate(prefix=Substr("grid__path", 1, length))
        .values("prefix")
        .order_by()
        .annotate(
            filed=Count("pk"),
            void=count(Q(closed_reason__in=VOID)),
            completed=count(completed),
            on_time=count(completed & Q(handled_on_time=True)),
            sign_sum=Sum("sign_seconds"),
            sign_n=Count("sign_seconds"),
            handle_sum=Sum("handle_seconds", filter=completed),
            handle_n=Count("handle_seconds", filter=completed),
            rated=count(Q(closed_reason=ClosedReason.RATED)),
            satisfied=count(Q(closed_reason=ClosedReason.RATED, rating__gte=SATISFIED_STARS)),
            unrated=count(Q(closed_reason=ClosedReason.UNRATED)),
            dispatched=count(Q(dispatched_at__isnull=False)),
            sent_back=count(Q(dispatched_at__isnull=False, send_back_count__gt=0)),
            reworked=count(completed & Q(rework_count__gt=0)),
            late_open=count(_overdue_at(now or timezone.now())),
        )
    )


def _month_counts(*, root, length, start, end, now) -> dict[str, dict]:
    rows = month_counts_query(root=root, length=length, start=start, end=end, now=now)
    return {row.pop("prefix"): row for row in rows}


def overdue_query(*, root, length, now):
    """The cases under `root` overdue at `now` (the test of `selectors.is_overdue_now`), whatever month they
    were filed in, counted by path prefix and by the lead department holding them (None: a unit holds it).

    For an open case the holder department is exactly the department of the lead dispatch row not sent back:
    dispatching sets both, a send-back closes the row and clears the holder, and a case is dispatched again
    only after a send-back. Reading the holder spares a join with every lead dispatch row (a third of the
    city's time for this query)."""
    overdue = Q(state=CaseState.DISPATCHED, sign_deadline__lt=now) | Q(state__in=OPEN_STATES, handle_deadline__lt=now)
    return (
        Case.objects.filter(_subtree(root), overdue)
        .annotate(prefix=Substr("grid__path", 1, length))
        .values("prefix", "holder_department_id")
        .order_by()
        .annotate(n=Count("pk"))
    )


def _overdue_counts(*, root, length, now) -> dict[tuple, int]:
    rows = overdue_query(root=root, length=length, now=now)
    return {(r["prefix"], r["holder_department_id"]): r["n"] for r in rows}


def _units(unit: Unit | None) -> list[Unit]:
    """The units whose names the answer shows, in one query, in path order: the streets and communities for
    the city, the communities of a street, the grids of a community, a grid's community."""
    if unit is None:
        units = Unit.objects.filter(depth__in=(1, 2))
    elif unit.depth == 3:
        units = Unit.objects.filter(path=unit.path[: 2 * STEP])
    else:
        units = Unit.objects.filter(path__startswith=unit.path, depth=unit.depth + 1)
    units = list(units.only("id", "name", "level", "path", "depth").order_by("path"))
    return [unit, *units] if unit is not None and unit.depth == 2 else units


def department_month_query(*, root, start, end, now=None):
    """The dispatch rows of the month's cases under `root`, grouped by department (public for the bench)."""
    led = Q(is_lead=True, sent_back_at__isnull=True)
    handled = led & _completed("case__")
    rated = led & Q(case__closed_reason=ClosedReason.RATED)
    return (
        CaseDispatch.objects.filter(
            _subtree(root, "case__grid"),
            case__created_at__gte=start,
            case__created_at__lt=end,
            # Implied (dispatching sets it, nothing clears it), but it spares a look-up in the dispatch rows
            # for each of the seven cases in ten that never reach a department.
            case__dispatched_at__isnull=False,
        )
        .values("department_id")
        .order_by()
        .annotate(
            dispatched=Count("pk"),
            signed=Count("pk", filter=Q(signed_at__isnull=False)),
            # Only the lead sends a case back; the assisting rows it withdraws with it are not theirs to answer for.
            sent_back=Count("pk", filter=Q(sent_back_at__isnull=False, is_lead=True)),
            sign_sum=Sum("sign_seconds"),
            sign_n=Count("sign_seconds"),
            handled=Count("pk", filter=handled),
            on_time=Count("pk", filter=handled & Q(case__handled_on_time=True)),
            rated=Count("pk", filter=rated),
            satisfied=Count("pk", filter=rated & Q(case__rating__gte=SATISFIED_STARS)),
            rating_sum=Sum("street_rating"),
            rating_n=Count("street_rating"),
            led=Count("pk", filter=led),
            late_open=Count("pk", filter=led & _overdue_at(now or timezone.now(), "case__")),
            handle_sum=Sum("case__handle_seconds", filter=handled),
            handle_n=Count("case__handle_seconds", filter=handled),
            unrated=Count("pk", filter=led & Q(case__closed_reason=ClosedReason.UNRATED)),
            reworked=Count("pk", filter=handled & Q(case__rework_count__gt=0)),
        )
    )


def _department_rows(*, root, start, end, now, overdue: dict) -> list[dict]:
    """One row per department with a dispatch of the month or a case overdue now: the grouped dispatches,
    then the names (two queries)."""
    rows = department_month_query(root=root, start=start, end=end, now=now)
    months = {r.pop("department_id"): r for r in rows}
    ids = set(months) | set(overdue)
    if not ids:
        return []
    names = dict(Department.objects.filter(pk__in=ids).values_list("id", "name"))
    result = []
    for department_id in ids:
        r = {key: 0 for key in DEPARTMENT_COUNTS} | months.get(department_id, {})
        r = {key: value or 0 for key, value in r.items()}  # a Sum over no row is NULL
        row = {
            "department": {"id": department_id, "name": names.get(department_id, "")},
            "dispatched": r["dispatched"],
            "signed": r["signed"],
            "sent_back": r["sent_back"],
            "send_back_rate": _rate(r["sent_back"], r["dispatched"]),
            "avg_sign_hours": _hours(r["sign_sum"], r["sign_n"]),
            "handled": r["handled"],
            "completion_rate": _rate(r["handled"], r["led"]),
            "on_time_rate": _rate(r["on_time"], r["handled"] + r["late_open"]),
            "avg_handle_hours": _hours(r["handle_sum"], r["handle_n"]),
            "satisfaction_rate": _rate(r["satisfied"], r["rated"]),
            "unrated": r["unrated"],
            "rework_rate": _rate(r["reworked"], r["handled"]),
            "street_rating_avg": round(r["rating_sum"] / r["rating_n"], 2) if r["rating_n"] else None,
            "overdue_now": overdue.get(department_id, 0),
        }
        row["score"] = _department_score(row)
        result.append(row)
    result.sort(key=lambda row: (row["department"]["name"], row["department"]["id"]))
    return result


# --- Arithmetic on the aggregated rows (dozens of them, never the cases) ----------------------------------


def _sum(groups) -> dict:
    total = dict.fromkeys(CASE_COUNTS, 0)
    for counts in groups:
        for key in CASE_COUNTS:
            total[key] += counts.get(key) or 0  # a Sum over no row is NULL
    return total


def _rate(part, whole):
    return round(part / whole, 4) if whole else None


def _hours(seconds, n):
    return round(seconds / n / 3600, 1) if n else None


def _row(counts: dict) -> dict:
    c = {key: counts.get(key) or 0 for key in CASE_COUNTS}
    return {
        "filed": c["filed"],
        "completed": c["completed"],
        "completion_rate": _rate(c["completed"], c["filed"] - c["void"]),
        "on_time": c["on_time"],
        "on_time_rate": _rate(c["on_time"], c["completed"] + c["late_open"]),
        "avg_sign_hours": _hours(c["sign_sum"], c["sign_n"]),
        "avg_handle_hours": _hours(c["handle_sum"], c["handle_n"]),
        "rated": c["rated"],
        "satisfied": c["satisfied"],
        "satisfaction_rate": _rate(c["satisfied"], c["rated"]),
        "unrated": c["unrated"],
        "send_back_rate": _rate(c["sent_back"], c["dispatched"]),
        "rework_rate": _rate(c["reworked"], c["completed"]),
        "overdue_now": c["overdue_now"],
    }


def _unit_ref(unit: Unit) -> dict:
    return {"id": unit.pk, "name": unit.name, "level": unit.level}


def _weighted(parts) -> float:
    """0–100 from (weight, value 0..1 or None) parts; a part with nothing to measure leaves the others to carry
    the weight (a department never rated by the street is judged on the rest, not given 0 for it)."""
    present = [(w, v) for w, v in parts if v is not None]
    total = sum(w for w, _v in present)
    return round(100 * sum(w * v for w, v in present) / total, 1) if total else 0.0


def unit_score(row) -> float | None:
    """The communities' ranking score (0–100) of any unit's KPI row: for the dashboards' lowest-ranked grids."""
    return _community_score(row)


def _community_score(row) -> float:
    return _weighted(
        [
            (30, row["completion_rate"]),
            (30, row["on_time_rate"]),
            (30, row["satisfaction_rate"]),
            (10, None if row["rework_rate"] is None else 1 - row["rework_rate"]),
        ]
    )


def _department_score(row) -> float:
    return _weighted(
        [
            (20, row["completion_rate"]),
            (25, row["on_time_rate"]),
            (25, row["satisfaction_rate"]),
            (15, None if row["send_back_rate"] is None else 1 - row["send_back_rate"]),
            (15, None if row["street_rating_avg"] is None else row["street_rating_avg"] / 5),
        ]
    )


def _rank(rows: list[dict], *, active) -> None:
    """Sort by score, best first, the inactive ones (nothing to rank them on) last; equal keys share a rank.
    The sort is stable, so ties keep the order they came in (path order, department name)."""
    rows.sort(key=lambda r: (not active(r), -r["score"]))
    previous, rank = None, 0
    for position, row in enumerate(rows, 1):
        key = (active(row), row["score"])
        if key != previous:
            previous, rank = key, position
        row["rank"] = rank
