"""Benchmark: the case KPIs and the case list on a city with a year of cases.

Needs the city of `bench/hierarchy_city.py` (12 streets, 150 communities, 3,500 grids, 1,000,000 residents)
with the grids app migrated:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python manage.py migrate
Then run:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python bench/cases_city.py [--rebuild]

The first run (or `--rebuild`) adds 1,000,000 cases spread over the 3,500 grids and the last twelve months,
in realistic proportions (8% closed as invalid; 30% dispatched to a department, 8% of those sent back once
and 10% with an assisting department; 20% solved on site; the rest handled by the community; 99% of the
cases older than two weeks closed, the recent ones still moving), with their dispatch rows, ratings,
deadlines and working seconds (a fixed share of the elapsed time, not counted on the calendar). It is plain SQL (`INSERT … SELECT … FROM generate_series`) in one transaction, then
`VACUUM ANALYZE`; the bench cases are numbered `SJ-B-…` and the rest of the database is left alone. No event
log, photos or supports are written: nothing measured here reads them.

It then times, through the API stack (DRF, the scoped accessors) when `grids/api.py` has the routes, else the
functions underneath: the KPIs (`/api/v1/cases/stats/`) of a street and of the city for the current month
and for the month six months ago, each beside a hand-written SQL of the same aggregates in the same run, and
the first page of `/api/v1/cases/?unit=<street>` as that street's staff.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from governance.models import Level, Position, Role, Unit, User  # noqa: E402
from grids import selectors, stats  # noqa: E402
from grids.models import Case  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
CASES = int(os.environ.get("BENCH_CASES", "1000000"))
PREFIX = "SJ-B-"


def timed(fn, runs=RUNS):
    fn()  # warm up caches and the connection
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


# --- Building the cases ------------------------------------------------------------------------------------

BUILD_SQL = [
    # Grids numbered 1..n with their community and street, to draw from.
    """
    CREATE TEMP TABLE bench_grid ON COMMIT DROP AS
    SELECT row_number() OVER (ORDER BY g.path) AS idx, g.id AS grid_id, c.id AS community_id, s.id AS street_id
    FROM governance_unit g
    JOIN governance_unit c ON c.path = substr(g.path, 1, 8)
    JOIN governance_unit s ON s.path = substr(g.path, 1, 4)
    WHERE g.depth = 3
    """,
    """
    CREATE TEMP TABLE bench_pick ON COMMIT DROP AS SELECT
      (SELECT array_agg(id ORDER BY id) FROM grids_casecategory WHERE parent_id IS NOT NULL) AS categories,
      (SELECT array_agg(id ORDER BY id) FROM governance_department) AS departments,
      (SELECT count(*) FROM bench_grid) AS grids
    """,
    # One row per case: where, when, which route (void / dispatched / on site / community) and how far it got
    # (0 waiting, 1 in progress, 2 handled, 3 verified, 4 closed), the older the further. Of the cases older
    # than two weeks 1% are still open, long overdue (Neijiang reports 99% completed).
    """
    CREATE TEMP TABLE bench_draw ON COMMIT DROP AS
    WITH r AS (
      SELECT n, %(now)s::timestamptz - random() * interval '365 days' AS created_at,
             1 + floor(random() * p.grids)::int AS gidx,
             random() AS route, random() AS progress, random() AS u1, random() AS u2, random() AS u3,
             random() AS u4, random() AS u5, random() AS u6, random() AS u7, random() AS u8,
             p.categories[1 + floor(random() * array_length(p.categories, 1))::int] AS category_id,
             1 + floor(random() * array_length(p.departments, 1))::int AS didx, p.departments
      FROM generate_series(1, %(n)s) n, bench_pick p
    )
    SELECT r.*, g.grid_id, g.community_id, g.street_id,
      CASE WHEN route < 0.08 THEN 'void' WHEN route < 0.38 THEN 'dispatch'
           WHEN route < 0.58 THEN 'onsite' ELSE 'community' END AS kind,
      CASE
        WHEN %(now)s::timestamptz - created_at > interval '14 days' THEN CASE WHEN progress < 0.99 THEN 4 ELSE 1 END
        WHEN %(now)s::timestamptz - created_at > interval '3 days' THEN
          CASE WHEN progress < 0.60 THEN 4 WHEN progress < 0.70 THEN 3 WHEN progress < 0.80 THEN 2
               WHEN progress < 0.95 THEN 1 ELSE 0 END
        ELSE CASE WHEN progress < 0.10 THEN 4 WHEN progress < 0.20 THEN 3 WHEN progress < 0.35 THEN 2
                  WHEN progress < 0.70 THEN 1 ELSE 0 END
      END AS stage
    FROM r JOIN bench_grid g ON g.idx = r.gidx
    """,
    # The moments of each step, whether or not the case got that far (cut below).
    """
    CREATE TEMP TABLE bench_times ON COMMIT DROP AS
    WITH d AS (
      SELECT b.*,
        CASE WHEN kind <> 'onsite' THEN stage
             WHEN stage = 4 OR %(now)s::timestamptz - created_at > interval '7 days' THEN 4 ELSE 3 END AS st,
        kind = 'dispatch' AND stage >= 1 AND u8 < 0.08 AS sent_back,
        created_at + (1 + u1 * 24) * interval '1 hour' AS dispatched_at,
        created_at + (0.5 + u1 * 8) * interval '1 hour' AS accepted_at
      FROM bench_draw b
    ), s AS (
      SELECT d.*, dispatched_at + (0.1 + u2 * 4) * interval '1 hour' AS signed_at FROM d
    ), h AS (
      SELECT s.*,
        CASE WHEN kind = 'dispatch' THEN signed_at ELSE accepted_at END AS started_at,
        CASE WHEN kind = 'dispatch' THEN signed_at ELSE accepted_at END + interval '5 days' AS handle_deadline,
        CASE WHEN kind = 'dispatch' THEN signed_at ELSE accepted_at END + (2 + u3 * 130) * interval '1 hour'
          AS handled_at
      FROM s
    )
    SELECT h.*, handled_at + (1 + u4 * 30) * interval '1 hour' AS verified_at FROM h
    """,
    """
    INSERT INTO grids_case (
      number, title, description, address, urgency, source, state, closed_reason, created_at, accepted_at,
      dispatched_at, signed_at, handled_at, verified_at, closed_at, sign_deadline, handle_deadline, sign_overdue,
      handle_overdue, handled_on_time, sign_seconds, handle_seconds, extension_reason, rework_count, reopen_count,
      send_back_count, support_count, rating, rating_comment, rated_at, grid_id, community_id, street_id, holder_unit_id,
      holder_department_id, reporter_id, category_id)
    SELECT
      %(prefix)s || lpad((row_number() OVER (ORDER BY created_at))::text, 7, '0'), '压测事件', '基准测试生成的事件。', '', 'normal',
      (ARRAY['patrol', 'patrol', 'patrol', 'resident', 'hotline', 'letter'])[1 + floor(u5 * 6)::int],
      CASE WHEN kind = 'void' THEN 'closed'
           WHEN st = 0 THEN CASE WHEN kind = 'dispatch' THEN CASE WHEN u2 < 0.3 THEN 'escalated' ELSE 'dispatched' END
                                 WHEN u2 < 0.1 THEN 'returned' ELSE 'reported' END
           ELSE (ARRAY['in_progress', 'handled', 'verified', 'closed'])[st] END,
      CASE WHEN kind = 'void' THEN 'invalid' WHEN st < 4 THEN '' WHEN u5 < 0.85 THEN 'rated' ELSE 'unrated' END,
      created_at,
      CASE WHEN kind IN ('community', 'onsite') AND st >= 1 THEN accepted_at END,
      CASE WHEN kind = 'dispatch' AND (st >= 1 OR u2 >= 0.3) THEN dispatched_at END,
      CASE WHEN kind = 'dispatch' AND st >= 1 THEN signed_at END,
      CASE WHEN kind <> 'void' AND st >= 2 THEN handled_at END,
      CASE WHEN kind <> 'void' AND st >= 3 THEN verified_at END,
      CASE WHEN kind = 'void' THEN created_at + interval '2 hours'
           WHEN st = 4 AND u5 < 0.85 THEN verified_at + u6 * interval '3 days'
           WHEN st = 4 THEN verified_at + interval '7 days' END,
      CASE WHEN kind = 'dispatch' AND (st >= 1 OR u2 >= 0.3) THEN dispatched_at + interval '2 hours' END,
      CASE WHEN kind <> 'void' AND st >= 1 THEN handle_deadline END,
      kind = 'dispatch' AND (st >= 1 OR u2 >= 0.3) AND least(signed_at, %(now)s) > dispatched_at + interval '2 hours',
      kind <> 'void' AND st >= 1 AND least(handled_at, %(now)s) > handle_deadline,
      CASE WHEN kind <> 'void' AND st >= 2 THEN handled_at <= handle_deadline END,
      CASE WHEN kind = 'dispatch' AND st >= 1 THEN round(extract(epoch FROM signed_at - dispatched_at) * 0.6) END,
      CASE WHEN kind <> 'void' AND st >= 2 THEN round(extract(epoch FROM handled_at - started_at) * 0.27) END,
      '', CASE WHEN kind <> 'void' AND st >= 2 AND u7 < 0.05 THEN 1 ELSE 0 END, 0,
      CASE WHEN sent_back THEN 1 ELSE 0 END, 0,
      CASE WHEN kind <> 'void' AND st = 4 AND u5 < 0.85 THEN
        CASE WHEN u7 < 0.60 THEN 5 WHEN u7 < 0.85 THEN 4 WHEN u7 < 0.93 THEN 3 WHEN u7 < 0.97 THEN 2 ELSE 1 END END,
      '',
      CASE WHEN kind <> 'void' AND st = 4 AND u5 < 0.85 THEN verified_at + u6 * interval '3 days' END,
      grid_id, community_id, street_id,
      CASE WHEN kind = 'dispatch' AND st = 0 AND u2 < 0.3 THEN street_id
           WHEN kind = 'dispatch' THEN NULL ELSE community_id END,
      CASE WHEN kind = 'dispatch' AND (st >= 1 OR u2 >= 0.3) THEN departments[didx] END,
      %(reporter)s, category_id
    FROM bench_times
    ORDER BY created_at  -- as cases arrive: the table's physical order follows the filing time
    """,
    # The lead department's dispatch row of every dispatched case (the street rates 60% of the closed ones).
    """
    INSERT INTO grids_casedispatch (
      is_lead, dispatched_at, sign_deadline, signed_at, sign_seconds, sign_overdue, sent_back_at, send_back_reason,
      street_rating, street_rating_comment, case_id, department_id, dispatched_by_id)
    SELECT true, c.dispatched_at, c.sign_deadline, c.signed_at, c.sign_seconds, c.sign_overdue, NULL, '',
      CASE WHEN c.state = 'closed' AND random() < 0.6 THEN
        (ARRAY[5, 5, 5, 5, 5, 4, 4, 4, 3, 2])[1 + floor(random() * 10)::int] END,
      '', c.id, c.holder_department_id, %(street_staff)s
    FROM grids_case c WHERE c.number LIKE %(like)s AND c.dispatched_at IS NOT NULL
    """,
    # The department that sent it back first (dispatched half an hour after filing, sent back 15 minutes later).
    """
    INSERT INTO grids_casedispatch (
      is_lead, dispatched_at, sign_deadline, signed_at, sign_seconds, sign_overdue, sent_back_at, send_back_reason,
      street_rating, street_rating_comment, case_id, department_id, dispatched_by_id)
    SELECT true, c.created_at + interval '30 minutes', c.created_at + interval '150 minutes', NULL, NULL, false,
      c.created_at + interval '45 minutes', '不属于本部门职责', NULL, '', c.id,
      (SELECT departments[1 + (array_position(departments, c.holder_department_id) %% array_length(departments, 1))]
       FROM bench_pick),
      %(street_staff)s
    FROM grids_case c WHERE c.number LIKE %(like)s AND c.send_back_count > 0
    """,
    # An assisting department on one dispatched case in ten.
    """
    INSERT INTO grids_casedispatch (
      is_lead, dispatched_at, sign_deadline, signed_at, sign_seconds, sign_overdue, sent_back_at, send_back_reason,
      street_rating, street_rating_comment, case_id, department_id, dispatched_by_id)
    SELECT false, c.dispatched_at, c.sign_deadline, c.signed_at, c.sign_seconds, false, NULL, '', NULL, '', c.id,
      (SELECT departments[1 + ((array_position(departments, c.holder_department_id) + 1) %% array_length(departments, 1))]
       FROM bench_pick),
      %(street_staff)s
    FROM grids_case c WHERE c.number LIKE %(like)s AND c.dispatched_at IS NOT NULL AND c.id %% 10 = 0
    """,
]


def bench_case_count():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM grids_case WHERE number LIKE %s", [PREFIX + "%"])
        return cursor.fetchone()[0]


def build(street_staff, now):
    """Replace the bench cases (and only them) with CASES fresh ones; returns the seconds it took."""
    start = time.perf_counter()
    params = {
        "now": now,
        "n": CASES,
        "prefix": PREFIX,
        "like": PREFIX + "%",
        "reporter": User.objects.filter(username="grid_worker").values_list("id", flat=True).first()
        or User.objects.order_by("id").values_list("id", flat=True).first(),
        "street_staff": street_staff.pk,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM grids_casedispatch WHERE case_id IN (SELECT id FROM grids_case WHERE number LIKE %s)",
            [PREFIX + "%"],
        )
        cursor.execute("DELETE FROM grids_case WHERE number LIKE %s", [PREFIX + "%"])
        deleted = cursor.rowcount
        for sql in BUILD_SQL:
            cursor.execute(sql, params)
    loaded = time.perf_counter() - start
    # Outside the transaction: statistics for the planner, and the visibility map (index-only scans); the
    # autovacuum would do the same some minutes later, in the middle of the timings. After a rebuild, FULL
    # gives back the space of the deleted cases, so that every run measures tables of the same size;
    # FULL leaves the visibility map empty: the plain VACUUM after it fills it in again.
    with connection.cursor() as cursor:
        for table in ("grids_case", "grids_casedispatch"):
            if deleted:
                cursor.execute(f"VACUUM (FULL) {table}")
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    return loaded, time.perf_counter() - start


# --- The hand-written baseline -----------------------------------------------------------------------------

RAW_MONTH = """
    SELECT substr(u.path, 1, 8) AS prefix,
      count(*) AS filed,
      count(*) FILTER (WHERE c.closed_reason IN ('invalid', 'duplicate')) AS void,
      count(*) FILTER (WHERE done) AS completed,
      count(*) FILTER (WHERE done AND c.handled_on_time) AS on_time,
      sum(c.sign_seconds) AS sign_sum, count(c.sign_seconds) AS sign_n,
      sum(c.handle_seconds) FILTER (WHERE done) AS handle_sum, count(c.handle_seconds) FILTER (WHERE done) AS handle_n,
      count(*) FILTER (WHERE c.closed_reason = 'rated') AS rated,
      count(*) FILTER (WHERE c.closed_reason = 'rated' AND c.rating >= 4) AS satisfied,
      count(*) FILTER (WHERE c.closed_reason = 'unrated') AS unrated,
      count(*) FILTER (WHERE c.dispatched_at IS NOT NULL) AS dispatched,
      count(*) FILTER (WHERE c.dispatched_at IS NOT NULL AND c.send_back_count > 0) AS sent_back,
      count(*) FILTER (WHERE done AND c.rework_count > 0) AS reworked
    FROM (
      SELECT c.*, c.handled_at IS NOT NULL AND c.closed_reason NOT IN ('invalid', 'duplicate') AS done
      FROM grids_case c WHERE c.created_at >= %(start)s AND c.created_at < %(end)s
    ) c JOIN governance_unit u ON u.id = c.grid_id
    WHERE u.path LIKE %(like)s AND u.level = 'grid'
    GROUP BY ROLLUP (1)
"""

RAW_OVERDUE = """
    SELECT substr(u.path, 1, 8) AS prefix, c.holder_department_id, count(*)
    FROM grids_case c
    JOIN governance_unit u ON u.id = c.grid_id
    WHERE u.path LIKE %(like)s AND u.level = 'grid'
      AND ((c.state = 'dispatched' AND c.sign_deadline < %(now)s)
           OR (c.state IN ('reported', 'returned', 'escalated', 'dispatched', 'in_progress')
               AND c.handle_deadline < %(now)s))
    GROUP BY 1, 2
"""

RAW_DEPARTMENTS = """
    SELECT d.department_id,
      count(*) AS dispatched,
      count(*) FILTER (WHERE d.signed_at IS NOT NULL) AS signed,
      count(*) FILTER (WHERE d.sent_back_at IS NOT NULL) AS sent_back,
      sum(d.sign_seconds), count(d.sign_seconds),
      count(*) FILTER (WHERE led AND c.handled_at IS NOT NULL AND c.closed_reason NOT IN ('invalid', 'duplicate'))
        AS handled,
      count(*) FILTER (WHERE led AND c.handled_at IS NOT NULL AND c.closed_reason NOT IN ('invalid', 'duplicate')
        AND c.handled_on_time) AS on_time,
      count(*) FILTER (WHERE led AND c.closed_reason = 'rated') AS rated,
      count(*) FILTER (WHERE led AND c.closed_reason = 'rated' AND c.rating >= 4) AS satisfied,
      sum(d.street_rating), count(d.street_rating)
    FROM (SELECT d.*, d.is_lead AND d.sent_back_at IS NULL AS led FROM grids_casedispatch d) d
    JOIN grids_case c ON c.id = d.case_id
    JOIN governance_unit u ON u.id = c.grid_id
    WHERE c.created_at >= %(start)s AND c.created_at < %(end)s AND c.dispatched_at IS NOT NULL
      AND u.path LIKE %(like)s AND u.level = 'grid'
    GROUP BY d.department_id
"""


def raw_kpis(path, month, now):
    """The same aggregates by hand, in the same three statements: the month's cases grouped by community with
    the summary (ROLLUP), the overdue cases by community and lead department, the month's dispatch rows by
    department. (The ORM adds the two small queries of the names.)"""
    start, end = stats.month_bounds(month)
    params = {"start": start, "end": end, "now": now, "like": path + "%"}
    with connection.cursor() as cursor:
        results = []
        for sql in (RAW_MONTH, RAW_OVERDUE, RAW_DEPARTMENTS):
            cursor.execute(sql, params)
            results.append(cursor.fetchall())
        return results


# --- The run -----------------------------------------------------------------------------------------------


def has_route(name, **kwargs):
    try:
        reverse(name, **kwargs)
    except NoReverseMatch:
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="replace the bench cases with fresh ones")
    parser.add_argument("--explain", action="store_true", help="print the plans of the KPI queries")
    options = parser.parse_args()

    now = timezone.now()
    street = Unit.objects.filter(level=Level.STREET).order_by("path").first()
    admin = User.objects.get(username="admin")
    staff = Position.objects.filter(role=Role.STREET_STAFF, unit=street).select_related("user").first().user
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")

    existing = bench_case_count()
    if options.rebuild or existing < CASES:
        loaded, total = build(staff, now)
        print(f"built {CASES:,} cases in {loaded:.1f} s (with VACUUM: {total:.1f} s)")
    else:
        print(f"using the {existing:,} bench cases already there (--rebuild to replace them)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE dispatched_at IS NOT NULL) FROM grids_case")
        cases, dispatched = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM grids_casedispatch")
        (rows,) = cursor.fetchone()
    print(f"cases: {cases:,} (dispatched {dispatched:,}), dispatch rows: {rows:,}")

    this_month = stats.parse_month(None, now=now)
    months = this_month.year * 12 + this_month.month - 1 - 6
    earlier = dt.date(months // 12, months % 12 + 1, 1)
    through_api = has_route("case-stats")
    client = APIClient()
    rows = []
    for label, unit, user in (("street", street, staff), ("city", None, admin)):
        for month in (this_month, earlier):
            if through_api:
                client.force_authenticate(user)
                query = {"month": month.strftime("%Y-%m"), **({"unit": unit.pk} if unit else {})}
                figures = timed(lambda q=query: client.get("/api/v1/cases/stats/", q))
                filed = client.get("/api/v1/cases/stats/", query).json()["summary"]["filed"]
            else:
                figures = timed(lambda u=unit, m=month: stats.case_kpis(unit=u, month=m, now=now))
                filed = stats.case_kpis(unit=unit, month=month, now=now)["summary"]["filed"]
            raw = timed(lambda u=unit, m=month: raw_kpis(u.path if u else "", m, now))
            rows.append((f"KPIs of the {label}, {month:%Y-%m} ({filed:,} filed)", figures, raw))

    qs = selectors.cases_visible_to(staff)  # the street's staff: the street's cases, by the case's street column
    if has_route("case-list"):
        client.force_authenticate(staff)
        listed = timed(lambda: client.get("/api/v1/cases/", {"unit": street.pk}))
        count = client.get("/api/v1/cases/", {"unit": street.pk}).json()["count"]
        label = f"/cases/?unit=<street> first page ({count:,} cases)"
    else:
        page = qs.select_related("category__parent", "grid", "holder_unit", "holder_department")

        def first_page():
            return list(page.order_by("-created_at", "-id")[:20]), page.count()

        listed = timed(first_page)
        label = "case list first page + COUNT (ORM, no API route)"
    rows.append((label, listed, None))
    page_only = timed(lambda: list(qs.order_by("-created_at", "-id")[:20]))
    rows.append(("  of which the page query alone", page_only, None))
    counted = timed(lambda: qs.count())
    rows.append(("  of which the COUNT alone", counted, None))
    # The same subtree without the scope's condition repeated (an administrator asking for a street), and
    # with the grids' level said (see docs/PERFORMANCE.md).
    subtree = Case.objects.filter(grid__path__startswith=street.path)
    rows.append(("COUNT of a street's cases, one path condition", timed(subtree.count), None))
    grids_only = subtree.filter(grid__level=Level.GRID)
    rows.append(("COUNT of a street's cases, path and grid level", timed(grids_only.count), None))
    by_street = Case.objects.filter(street=street)
    rows.append(("COUNT of a street's cases, the case's street column", timed(by_street.count), None))

    print("KPIs timed through " + ("the API (/api/v1/cases/stats/)" if through_api else "grids.stats.case_kpis"))
    print(f"{'what':58} {'median':>10} {'min':>9} {'raw SQL median':>15} {'ratio':>6}")
    for label, (median, best), raw in rows:
        raw_text = f"{raw[0]:.1f} ms" if raw else "—"
        ratio = f"{median / raw[0]:.2f}" if raw else ""
        print(f"{label:58} {median:7.1f} ms {best:6.1f} ms {raw_text:>15} {ratio:>6}")

    if options.explain:
        start, end = stats.month_bounds(this_month)
        for label, root in (("street", street.path), ("city", "")):
            queries = (
                stats.month_counts_query(root=root, length=8, start=start, end=end),
                stats.overdue_query(root=root, length=8, now=now),
                stats.department_month_query(root=root, start=start, end=end),
            )
            for query in queries:
                print(f"\n--- {label}: {str(query.query)[:100]}…\n" + query.explain(analyze=True, buffers=True))


if __name__ == "__main__":
    main()
