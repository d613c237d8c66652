"""Benchmark: the monthly points tally and the public board on a city with three years of points.

Needs the city of `bench/hierarchy_city.py` (1,000,000 residents) with the points app migrated:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python manage.py migrate
Then run:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python bench/points_city.py [--rebuild]

The first run (or `--rebuild`, which first empties the points ledger of the bench database: accounts, entries,
tallies, runs, boards, objections) writes, with plain SQL in one transaction (`INSERT … SELECT … FROM
generate_series`, bypassing the ORM):
- an account in the residents' scheme for every resident and one in the party members' scheme for every party
  member;
- BENCH_ENTRIES (default 10,000,000) entries over the 36 months before the current one, in the order they
  would have been recorded: drawn as 78% awards (+1 … +10), 12% deductions (−1 … −5), 10% redemptions
  (−5 … −30), one in 49 reversed 0–3 days later; where an account's random history would dip below zero, an
  opening award (开户积分) on its first day covers the deepest dip, and as many unreversed deductions or
  redemptions are left out at random, so that the count stays at BENCH_ENTRIES and no balance is ever negative.
  `balance_after` is the running sum in recording order (a window SUM), and each account's balance and running
  totals are set from its entries, so `points_verify` finds no drift.
Then `VACUUM ANALYZE`.

It times, in the same run: `tally_month` for the previous month (the beat's job: the whole ledger up to its
end) and for a month 18 months earlier — a first run (the month's rows deleted and vacuumed away beforehand, not
timed) and a re-run with nothing changed —, each beside the raw aggregate of the same month
(`points.tally.LEDGER_SUMS_SQL`: the GROUP BY per account over the ledger up to the month's end, with the same
sums and the same `work_mem`, reduced server-side to one row so that no million rows cross the wire; and the
tally's own sums, `SUMS_SQL`, which read the month's and later entries only); the re-tally of one community after an objection
(`retally_community`); `boards_publish_all`; and the board of a community: `board_rows` and
`/api/v1/points/boards/?month=&unit=&scheme=` as its staff.
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
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from governance.models import Level, Position, Role, Unit, User  # noqa: E402
from points import tally  # noqa: E402
from points.models import Board, Scheme  # noqa: E402
from points.selectors import balance_drift  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BOARD_RUNS = int(os.environ.get("BENCH_BOARD_RUNS", "9"))
ENTRIES = int(os.environ.get("BENCH_ENTRIES", "10000000"))
MONTHS = 36
REVERSE_EVERY = 49


def timed(fn, runs=RUNS, warm=True):
    if warm:
        fn()  # warm up caches and the connection
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


# --- Building the ledger -----------------------------------------------------------------------------------------

EMPTY_SQL = """
    TRUNCATE points_objection, points_board, points_householdtally, points_tally, points_tallyrun, points_entry,
      points_account
"""

BUILD_SQL = [
    # Build-only memory for the sorts of the window functions and the index builds below (23 GiB machine); the
    # tally does not get it.
    "SET LOCAL work_mem = '1GB'",
    "SET LOCAL maintenance_work_mem = '2GB'",
    # Foreign keys checked at each statement's end rather than at commit: the indexes are rebuilt in between.
    "SET CONSTRAINTS ALL IMMEDIATE",
    # The accounts to be, numbered: every resident in the residents' scheme, party members in the party scheme.
    """
    CREATE TEMP TABLE bench_acct ON COMMIT DROP AS
    SELECT (SELECT coalesce(max(id), 0) FROM points_account) + row_number() OVER (ORDER BY x.scheme_id, x.resident_id)
        AS id, x.resident_id, x.scheme_id
    FROM (
      SELECT r.id AS resident_id, s.id AS scheme_id
      FROM governance_resident r, points_scheme s WHERE s.code = 'resident' AND r.moved_out_on IS NULL
      UNION ALL
      SELECT r.id, s.id
      FROM governance_resident r
      JOIN governance_resident_tags rt ON rt.resident_id = r.id
      JOIN governance_residenttag t ON t.id = rt.residenttag_id AND t.code = 'party_member'
      CROSS JOIN points_scheme s
      WHERE s.code = 'party' AND r.moved_out_on IS NULL
    ) x
    """,
    # The movements, each at a moment of its day (08:00–18:00 local time).
    """
    CREATE TEMP TABLE bench_move ON COMMIT DROP AS
    WITH p AS (SELECT min(id) AS lo, count(*) AS accounts FROM bench_acct)
    SELECT r.n AS seq, p.lo + floor(random() * p.accounts)::bigint AS account_id, r.day,
      CASE WHEN k < 0.78 THEN 'award' WHEN k < 0.90 THEN 'deduction' ELSE 'redemption' END AS kind,
      CASE WHEN k < 0.78 THEN 1 + floor(v * 10)::int
           WHEN k < 0.90 THEN -(1 + floor(v * 5)::int)
           ELSE -5 * (1 + floor(v * 6)::int) END AS points,
      NULL::bigint AS reverses_seq,
      r.day + (8 * 3600 + floor(t * 36000)::int) * interval '1 second' AS recorded
    FROM (
      SELECT n, random() AS k, random() AS v, random() AS t, %(first)s::date + floor(random() * %(days)s)::int AS day
      FROM generate_series(1, %(base)s) n
    ) r, p
    """,
    # One entry in REVERSE_EVERY reversed 0–3 days later (not past the last day).
    """
    INSERT INTO bench_move
    SELECT %(base)s + row_number() OVER (ORDER BY seq), account_id, d.day, 'reversal', -points, seq,
      recorded + (d.day - m.day) * interval '1 day' + interval '30 minutes'
    FROM bench_move m, LATERAL (SELECT LEAST(m.day + (m.seq %% 4)::int, %(last)s::date) AS day) d
    WHERE m.seq %% %(every)s = 0
    """,
    # The deepest dip of each account's running balance, covered by an opening award before its first entry.
    """
    CREATE TEMP TABLE bench_dip ON COMMIT DROP AS
    SELECT account_id, -min(s) AS deficit, min(recorded) AS first
    FROM (SELECT account_id, recorded,
            sum(points) OVER (PARTITION BY account_id ORDER BY recorded, seq) AS s FROM bench_move) x
    GROUP BY account_id HAVING min(s) < 0
    """,
    """
    INSERT INTO bench_move
    SELECT (SELECT max(seq) FROM bench_move) + row_number() OVER (ORDER BY account_id), account_id,
      first::date, 'award', deficit, NULL, first - interval '1 minute'
    FROM bench_dip
    """,
    # As many deductions and redemptions (never reversed) left out, at random, to keep the count at ENTRIES:
    # leaving out a negative entry only raises the later balances, so none dips below zero.
    """
    DELETE FROM bench_move WHERE seq IN (
      SELECT seq FROM bench_move WHERE seq <= %(base)s AND seq %% %(every)s <> 0 AND points < 0
      ORDER BY random() LIMIT (SELECT count(*) FROM bench_dip))
    """,
    """
    CREATE TEMP TABLE bench_entry ON COMMIT DROP AS
    SELECT m.*, (SELECT coalesce(max(id), 0) FROM points_entry) + row_number() OVER (ORDER BY recorded, seq) AS id,
      sum(points) OVER (PARTITION BY account_id ORDER BY recorded, seq) AS balance_after
    FROM bench_move m
    """,
    "CREATE INDEX ON bench_entry (seq)",
    # Accounts with their balances and running totals as `services.post` keeps them (a reversal takes back what
    # its original added).
    """
    INSERT INTO points_account
      (id, resident_id, scheme_id, balance, earned, deducted, redeemed, first_entry_on, updated_at)
    SELECT a.id, a.resident_id, a.scheme_id, coalesce(s.balance, 0), coalesce(s.earned, 0),
      coalesce(s.deducted, 0), coalesce(s.redeemed, 0), s.first_on, now()
    FROM bench_acct a LEFT JOIN (
      SELECT e.account_id, sum(e.points) AS balance, min(e.day) AS first_on,
        sum(CASE WHEN coalesce(o.kind, e.kind) = 'award' THEN e.points ELSE 0 END) AS earned,
        sum(CASE WHEN coalesce(o.kind, e.kind) = 'deduction' THEN -e.points ELSE 0 END) AS deducted,
        sum(CASE WHEN coalesce(o.kind, e.kind) = 'redemption' THEN -e.points ELSE 0 END) AS redeemed
      FROM bench_entry e LEFT JOIN bench_entry o ON o.seq = e.reverses_seq
      GROUP BY e.account_id
    ) s ON s.account_id = a.id
    ORDER BY a.id
    """,
    "SELECT setval(pg_get_serial_sequence('points_account', 'id'), (SELECT max(id) FROM points_account))",
    # The entries, in recording order. The plain indexes of the table are dropped for the load and built again
    # from their own definitions afterwards (same transaction): much faster than maintaining nine indexes row by
    # row; the primary key and the unique `reverses_id` stay.
    """
    CREATE TEMP TABLE bench_index ON COMMIT DROP AS
    SELECT i.indexname, i.indexdef FROM pg_indexes i
    WHERE i.tablename = 'points_entry' AND i.schemaname = current_schema()
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
    """,
    """
    DO $$ DECLARE i record; BEGIN
      FOR i IN SELECT indexname FROM bench_index LOOP EXECUTE format('DROP INDEX %%I', i.indexname); END LOOP;
    END $$
    """,
    """
    INSERT INTO points_entry (id, kind, points, balance_after, occurred_on, note, evidence, created_at, account_id,
      reverses_id)
    SELECT e.id, e.kind, e.points, e.balance_after, e.day,
      CASE WHEN e.kind = 'reversal' THEN '冲正（压测）' ELSE '' END, '',
      e.recorded AT TIME ZONE 'Asia/Shanghai', e.account_id, o.id
    FROM bench_entry e LEFT JOIN bench_entry o ON o.seq = e.reverses_seq
    ORDER BY e.id
    """,
    """
    DO $$ DECLARE i record; BEGIN
      FOR i IN SELECT indexdef FROM bench_index LOOP EXECUTE i.indexdef; END LOOP;
    END $$
    """,
    "SELECT setval(pg_get_serial_sequence('points_entry', 'id'), (SELECT max(id) FROM points_entry))",
]


def entry_count():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM points_entry")
        return cursor.fetchone()[0]


def build(first: dt.date, last: dt.date):
    """Replace the points ledger of the bench database; returns (load seconds, with VACUUM ANALYZE seconds)."""
    params = {
        "first": first,
        "last": last,
        "days": (last - first).days + 1,
        # base + base // every = ENTRIES, before the opening awards
        "base": ENTRIES * REVERSE_EVERY // (REVERSE_EVERY + 1),
        "every": REVERSE_EVERY,
    }
    start = time.perf_counter()
    steps = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(EMPTY_SQL)
        for sql in BUILD_SQL:
            step = time.perf_counter()
            cursor.execute(sql, params)
            steps.append((" ".join(sql.split())[:60], time.perf_counter() - step))
    loaded = time.perf_counter() - start
    with connection.cursor() as cursor:
        for table in ("points_account", "points_entry"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    for label, seconds in steps:
        print(f"  {seconds:7.1f} s  {label}")
    return loaded, time.perf_counter() - start


def ledger_figures():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE kind = 'award'), count(*) FILTER (WHERE kind = 'deduction'),
              count(*) FILTER (WHERE kind = 'redemption'), count(*) FILTER (WHERE kind = 'reversal'),
              min(occurred_on), max(occurred_on), min(balance_after)
            FROM points_entry
            """
        )
        entries = cursor.fetchone()
        cursor.execute("SELECT count(*), sum(balance) FROM points_account")
        accounts = cursor.fetchone()
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('points_entry')), "
            "pg_size_pretty(pg_relation_size('points_entry'))"
        )
        sizes = cursor.fetchone()
    return entries, accounts, sizes


# --- The raw aggregate ---------------------------------------------------------------------------------------------


def raw_aggregate(month: dt.date, sql_of_sums=None):
    """The month's per-account figures as one would write them by hand (`points.tally.LEDGER_SUMS_SQL`: the whole
    ledger up to the month's end, grouped by account), computed in full, reduced to one row on the server. With
    `sql_of_sums=tally.SUMS_SQL`: the tally's own sums (the month's and the later entries, and kept balances)."""
    sums = sql_of_sums or tally.LEDGER_SUMS_SQL
    sql = f"SELECT count(*), sum(earned), sum(deducted), sum(redeemed), sum(balance) FROM ({sums}) s"
    with transaction.atomic(), connection.cursor() as cursor:
        tally.set_work_mem(cursor)  # the tally's own setting, so that both plan alike
        cursor.execute(sql, tally.tally_params(month))
        return cursor.fetchone()


def forget_month(month: dt.date):
    """Delete the month's rows and vacuum them away, so that the next run is a month's first."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM points_householdtally WHERE month = %s", [month])
        cursor.execute("DELETE FROM points_tally WHERE month = %s", [month])
        cursor.execute("DELETE FROM points_tallyrun WHERE month = %s", [month])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) points_tally")
        cursor.execute("VACUUM (ANALYZE) points_householdtally")


def tally_totals(month: dt.date):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), sum(earned), sum(deducted), sum(redeemed), sum(balance) FROM points_tally WHERE month = %s",
            [month],
        )
        return cursor.fetchone()


# --- The run -------------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="replace the points ledger with a fresh one")
    parser.add_argument("--skip-middle", action="store_true", help="time only the previous month")
    options = parser.parse_args()

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    previous = tally.previous_month()
    first, last = add_months(previous, -(MONTHS - 1)), tally.month_end(previous)
    existing = entry_count()
    if options.rebuild or existing < ENTRIES:
        print(f"building {ENTRIES:,} entries over {first} … {last}")
        loaded, total = build(first, last)
        print(f"built in {loaded:.1f} s (with VACUUM ANALYZE: {total:.1f} s)")
    else:
        print(f"using the {existing:,} entries already there (--rebuild to replace them)")
    (count, awards, deductions, redemptions, reversals, since, until, lowest), (accounts, balances), sizes = (
        ledger_figures()
    )
    print(
        f"entries: {count:,} ({awards:,} awards, {deductions:,} deductions, {redemptions:,} redemptions, "
        f"{reversals:,} reversals) from {since} to {until}; lowest balance_after {lowest}"
    )
    print(f"accounts: {accounts:,}, balances {balances:,} points; points_entry {sizes[0]} ({sizes[1]} heap)")
    start = time.perf_counter()
    drift = balance_drift()
    print(f"balance_drift(): {len(drift)} accounts drifting ({(time.perf_counter() - start) * 1000:.0f} ms)")

    rows = []
    months = [previous] if options.skip_middle else [previous, add_months(previous, -18)]
    for month in months:
        raw = timed(lambda m=month: raw_aggregate(m))
        own = timed(lambda m=month: raw_aggregate(m, tally.SUMS_SQL))
        rows.append((f"the tally's own sums of {month:%Y-%m} (kept balances, no writing)", own, raw))
        first_runs = []
        for _ in range(RUNS):
            forget_month(month)
            start = time.perf_counter()
            run = tally.tally_month(month=month)
            first_runs.append((time.perf_counter() - start) * 1000)
        first_run = (statistics.median(first_runs), min(first_runs))
        rerun = timed(lambda m=month: tally.tally_month(month=m), warm=False)
        assert tally_totals(month) == raw_aggregate(month), "the tally and the raw aggregate disagree"
        rows.append((f"tally_month {month:%Y-%m}, first run ({run.rows:,} rows)", first_run, raw))
        rows.append((f"tally_month {month:%Y-%m}, re-run, nothing changed", rerun, raw))

    community = Unit.objects.filter(level=Level.COMMUNITY).order_by("path").first()

    def retally():
        with transaction.atomic():
            tally.retally_community(month=previous, community=community)

    rows.append((f"retally_community {previous:%Y-%m} ({community.name})", timed(retally), None))

    scheme = Scheme.objects.get(code=Scheme.RESIDENT)
    start = time.perf_counter()
    published = tally.boards_publish_all(month=previous)
    rows.append(
        (
            f"boards_publish_all {previous:%Y-%m} ({published:,} new boards)",
            ((time.perf_counter() - start) * 1000,) * 2,
            None,
        )
    )

    board = Board.objects.select_related("unit").get(month=previous, unit=community, scheme=scheme)
    rows.append(
        (
            f"board_rows of a community ({community.name}), top 20",
            timed(lambda: tally.board_rows(board), BOARD_RUNS),
            None,
        )
    )
    staff = Position.objects.filter(role=Role.COMMUNITY_STAFF, unit=community).select_related("user").first()
    user = staff.user if staff else User.objects.get(username="admin")
    client = APIClient()
    client.force_authenticate(user)
    query = {"month": f"{previous:%Y-%m}", "unit": community.pk, "scheme": scheme.code}
    response = client.get("/api/v1/points/boards/", query)
    if response.status_code == 200:
        api = timed(lambda: client.get("/api/v1/points/boards/", query), BOARD_RUNS)
        boards = response.json()
        shown = boards["results"][0]["rows"] if boards.get("results") else []
        rows.append((f"/api/v1/points/boards/?month=&unit=&scheme= ({len(shown)} rows)", api, None))
    else:
        print(f"/api/v1/points/boards/: {response.status_code}, not timed")

    print(f"{'what':62} {'median':>11} {'min':>11} {'raw SQL median':>15} {'ratio':>6}")
    for label, (median, best), raw in rows:
        raw_text = f"{raw[0]:.1f} ms" if raw else "—"
        ratio = f"{median / raw[0]:.2f}" if raw else ""
        print(f"{label:62} {median:8.1f} ms {best:8.1f} ms {raw_text:>15} {ratio:>6}")
    print(f"board rows: {[(r['rank'], r['name'], r['net']) for r in tally.board_rows(board, 5)]}")
    print(f"now: {timezone.now():%Y-%m-%d %H:%M}")


if __name__ == "__main__":
    main()
