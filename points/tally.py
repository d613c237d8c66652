"""The monthly tally (月度统计), the public boards (张榜公示) and objections to them (异议).

The rules of the tally, for a month M and every account with at least one entry dated on or before M's last day:

- An entry counts in the month of its `occurred_on` (the day the resident did the thing, or the day a reversal or
  a correction was dated), never of its `created_at`. One rule for the movements and the balance, so that for
  every account: balance at the end of M = balance at the end of M-1 + net − redeemed.
- earned: the positive movements of M that are not about a redemption (awards, reversals of deductions).
- deducted: the negative movements of M that are not about a redemption, as a positive number (deductions,
  reversals of awards).
- redeemed: the points taken by redemptions in M, less the points given back by cancelling redemptions (a
  reversal of a redemption) in M. It can be negative in a month where an earlier month's redemption was
  cancelled.
- net = earned − deducted; balance = the sum of all the account's entries dated on or before M's last day.
- Places are copied at tally time from the resident's household's building: grid = path[:12], community =
  path[:8]. A resident who moved between months is ranked where they live when the tally runs.
- Ranks: by net, highest first, within the grid and within the community, per scheme; ties share a rank and
  the next rank is skipped (SQL `RANK()`).
- Residents who had moved out by M's last day are still tallied (their movements and balance are facts of the
  ledger, and their household's totals include them) but are not ranked: both ranks are 0, and the boards only
  show ranks from 1.
- Household totals (HouseholdTally) are the sums of the household's residents' rows.

`tally_month` is set-based: two INSERT … SELECT … ON CONFLICT DO UPDATE statements (GROUP BY and window
functions; PostgreSQL and SQLite ≥ 3.25), one for residents and one for households, in one transaction. Re-running
gives the same rows and never doubles them (one row per month and account, per month, household and scheme); a
row that did not change is not written again, so the re-tally after an upheld objection writes only what moved. A
run killed half way leaves the previous complete rows (or none). The TallyRun row is committed before that
transaction with `finished_at` empty; a later run of the same month picks the unfinished row up and completes it.
"""

import datetime as dt
import logging
import time

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.masking import mask_name
from governance.models import Level, Unit, User
from governance.selectors import STEP, scope_of

from .models import (
    BOARD_MAX_ROWS,
    Account,
    Board,
    Entry,
    EntryKind,
    Objection,
    ObjectionState,
    Scheme,
    Tally,
    TallyRun,
)
from .selectors import SHOPKEEPERS
from .services import account_for, post

logger = logging.getLogger(__name__)

DEFAULT_NOTICE_DAYS = 5
GRID_PATH_LENGTH = 3 * STEP
COMMUNITY_PATH_LENGTH = 2 * STEP


# --- Months ---------------------------------------------------------------------------------------------------


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def previous_month(today: dt.date | None = None) -> dt.date:
    """The first day of the month before `today` (default: today in the project's time zone, Asia/Shanghai)."""
    today = today or timezone.localdate()
    return month_start(month_start(today) - dt.timedelta(days=1))


def _check_month_ended(month: dt.date):
    if month_end(month) >= timezone.localdate():
        raise InvalidInput(
            _("%(month)s 尚未结束，月度统计在月末之后进行。") % {"month": f"{month:%Y-%m}"}, field="month"
        )


# --- The tally --------------------------------------------------------------------------------------------------

# The accounts of the residents living in one community now: what a community's re-tally works on.
COMMUNITY_ACCOUNTS = """
      AND e.account_id IN (
        SELECT a.id FROM points_account a
        JOIN governance_resident r ON r.id = a.resident_id
        JOIN governance_household h ON h.id = r.household_id
        JOIN governance_unit b ON b.id = h.building_id
        WHERE b.path LIKE %(prefix)s)
"""


def sums_sql(*, community: bool = False) -> str:
    """Per account: the month's movements and the balance at the month's end.

    The balance at the end of the month is the account's kept balance less what was dated after the month (the
    kept balance is the sum of every entry, in the same snapshot: `services.post` keeps them in step and
    `points_verify` proves it). So only the month's entries and the later ones are read, not the whole ledger:
    for the month that just ended that is a thirty-sixth of three years' entries. A reversal counts as the kind of
    its original. An account is tallied from the month of its first entry on (`first_entry_on`, kept by `post`
    like the balance). `community`: only the accounts of the residents of `%(prefix)s`."""
    entries = COMMUNITY_ACCOUNTS if community else ""
    accounts = COMMUNITY_ACCOUNTS.replace("AND e.account_id IN", "AND a.id IN") if community else ""
    return f"""
    SELECT a.id AS account_id, a.resident_id, a.scheme_id,
      COALESCE(m.earned, 0) + COALESCE(r.earned, 0) AS earned,
      COALESCE(m.deducted, 0) + COALESCE(r.deducted, 0) AS deducted,
      COALESCE(m.redeemed, 0) + COALESCE(r.redeemed, 0) AS redeemed,
      a.balance - COALESCE(x.later, 0) AS balance
    FROM points_account a
    LEFT JOIN (
      SELECT e.account_id,
        SUM(CASE WHEN e.kind IN ('award', 'deduction') AND e.points > 0 THEN e.points ELSE 0 END) AS earned,
        SUM(CASE WHEN e.kind IN ('award', 'deduction') AND e.points < 0 THEN -e.points ELSE 0 END) AS deducted,
        SUM(CASE WHEN e.kind = 'redemption' THEN -e.points ELSE 0 END) AS redeemed
      FROM points_entry e
      WHERE e.occurred_on >= %(start)s AND e.occurred_on <= %(end)s {entries}
      GROUP BY e.account_id
    ) m ON m.account_id = a.id
    LEFT JOIN (
      SELECT e.account_id,
        SUM(CASE WHEN o.kind IN ('award', 'deduction') AND e.points > 0 THEN e.points ELSE 0 END) AS earned,
        SUM(CASE WHEN o.kind IN ('award', 'deduction') AND e.points < 0 THEN -e.points ELSE 0 END) AS deducted,
        SUM(CASE WHEN o.kind = 'redemption' THEN -e.points ELSE 0 END) AS redeemed
      FROM points_entry e
      JOIN points_entry o ON o.id = e.reverses_id
      WHERE e.occurred_on >= %(start)s AND e.occurred_on <= %(end)s AND e.kind = 'reversal' {entries}
      GROUP BY e.account_id
    ) r ON r.account_id = a.id
    LEFT JOIN (
      SELECT e.account_id, SUM(e.points) AS later
      FROM points_entry e
      WHERE e.occurred_on > %(end)s {entries}
      GROUP BY e.account_id
    ) x ON x.account_id = a.id
    WHERE a.first_entry_on <= %(end)s {accounts}
"""


# The same figures summed from the whole ledger up to the month's end, as one would write them by hand: the
# baseline of bench/points_city.py, and the check of the tests that the kept-balance shortcut gives the same.
LEDGER_SUMS_SQL = """
    SELECT s.account_id,
      s.earned + COALESCE(r.earned, 0) AS earned,
      s.deducted + COALESCE(r.deducted, 0) AS deducted,
      s.redeemed + COALESCE(r.redeemed, 0) AS redeemed,
      s.balance
    FROM (
      SELECT e.account_id,
        SUM(CASE WHEN e.occurred_on >= %(start)s AND e.kind IN ('award', 'deduction') AND e.points > 0
                 THEN e.points ELSE 0 END) AS earned,
        SUM(CASE WHEN e.occurred_on >= %(start)s AND e.kind IN ('award', 'deduction') AND e.points < 0
                 THEN -e.points ELSE 0 END) AS deducted,
        SUM(CASE WHEN e.occurred_on >= %(start)s AND e.kind = 'redemption' THEN -e.points ELSE 0 END) AS redeemed,
        SUM(e.points) AS balance
      FROM points_entry e
      WHERE e.occurred_on <= %(end)s
      GROUP BY e.account_id
    ) s
    LEFT JOIN (
      SELECT e.account_id,
        SUM(CASE WHEN o.kind IN ('award', 'deduction') AND e.points > 0 THEN e.points ELSE 0 END) AS earned,
        SUM(CASE WHEN o.kind IN ('award', 'deduction') AND e.points < 0 THEN -e.points ELSE 0 END) AS deducted,
        SUM(CASE WHEN o.kind = 'redemption' THEN -e.points ELSE 0 END) AS redeemed
      FROM points_entry e
      JOIN points_entry o ON o.id = e.reverses_id
      WHERE e.occurred_on >= %(start)s AND e.occurred_on <= %(end)s AND e.kind = 'reversal'
      GROUP BY e.account_id
    ) r ON r.account_id = s.account_id
"""


SUMS_SQL = sums_sql()


# Each building's grid and community (20,000 rows for a city): joined once per household instead of three joins of
# the unit table per resident.
PLACES_SQL = f"""
      SELECT b.id AS building_id, g.id AS grid_id, c.id AS community_id
      FROM governance_unit b
      JOIN governance_unit g ON g.path = substr(b.path, 1, {GRID_PATH_LENGTH})
      JOIN governance_unit c ON c.path = substr(b.path, 1, {COMMUNITY_PATH_LENGTH})
      WHERE b.level = 'building'
"""


# What a re-run does with a row the month already has: rewrite it only if something moved.
TALLY_UPSERT = """
    ON CONFLICT (month, account_id) DO UPDATE SET
      household_id = excluded.household_id, grid_id = excluded.grid_id, community_id = excluded.community_id,
      earned = excluded.earned, deducted = excluded.deducted, redeemed = excluded.redeemed, net = excluded.net,
      balance = excluded.balance, rank_in_grid = excluded.rank_in_grid, rank_in_community = excluded.rank_in_community
    WHERE points_tally.household_id <> excluded.household_id OR points_tally.grid_id <> excluded.grid_id
      OR points_tally.community_id <> excluded.community_id OR points_tally.earned <> excluded.earned
      OR points_tally.deducted <> excluded.deducted OR points_tally.redeemed <> excluded.redeemed
      OR points_tally.balance <> excluded.balance OR points_tally.rank_in_grid <> excluded.rank_in_grid
      OR points_tally.rank_in_community <> excluded.rank_in_community
"""


def tally_sql(*, community: bool = False, first: bool = False) -> str:
    """Upsert the month's rows: the sums, the places copied from the resident's building, and the ranks.

    A row that did not change is not written again, so a re-run writes only what moved and row ids stay put. No
    row of a month ever needs deleting: the ledger is append-only, so an account with an entry on or before a
    day keeps having one. Ranks are within a grid and a community, so a community's re-tally ranks completely.
    `first`: the month has no rows yet, so a plain INSERT does (a third faster on a city than the upsert).
    (`WHERE 1 = 1` lets SQLite tell the upsert's ON CONFLICT from a join's ON.)"""
    return f"""
    INSERT INTO points_tally (
      month, account_id, resident_id, scheme_id, household_id, grid_id, community_id,
      earned, deducted, redeemed, net, balance, rank_in_grid, rank_in_community)
    SELECT %(month)s, t.account_id, t.resident_id, t.scheme_id, t.household_id, t.grid_id, t.community_id,
      t.earned, t.deducted, t.redeemed, t.net, t.balance,
      CASE WHEN t.moved = 1 THEN 0
           ELSE RANK() OVER (PARTITION BY t.scheme_id, t.grid_id, t.moved ORDER BY t.net DESC) END,
      CASE WHEN t.moved = 1 THEN 0
           ELSE RANK() OVER (PARTITION BY t.scheme_id, t.community_id, t.moved ORDER BY t.net DESC) END
    FROM (
      SELECT s.account_id, s.resident_id, s.scheme_id, r.household_id, p.grid_id, p.community_id,
        s.earned, s.deducted, s.redeemed, s.earned - s.deducted AS net, s.balance,
        CASE WHEN r.moved_out_on IS NOT NULL AND r.moved_out_on <= %(end)s THEN 1 ELSE 0 END AS moved
      FROM ({sums_sql(community=community)}) s
      JOIN governance_resident r ON r.id = s.resident_id
      JOIN governance_household h ON h.id = r.household_id
      JOIN ({PLACES_SQL}) p ON p.building_id = h.building_id
    ) t
    WHERE 1 = 1
    {"" if first else TALLY_UPSERT}
"""


def household_sql(*, community: bool = False, first: bool = False) -> str:
    """Upsert the households' rows from their residents' (who share a building, hence a grid); `first`: insert."""
    where = "AND community_id = %(community)s" if community else ""
    if first:
        return HOUSEHOLD_INSERT.format(where=where)
    return f"""
    INSERT INTO points_householdtally (month, household_id, scheme_id, grid_id, earned, deducted, redeemed, net, balance)
    SELECT month, household_id, scheme_id, grid_id, SUM(earned), SUM(deducted), SUM(redeemed), SUM(net), SUM(balance)
    FROM points_tally
    WHERE month = %(month)s {where}
    GROUP BY month, household_id, scheme_id, grid_id
    ON CONFLICT (month, household_id, scheme_id) DO UPDATE SET
      grid_id = excluded.grid_id, earned = excluded.earned, deducted = excluded.deducted,
      redeemed = excluded.redeemed, net = excluded.net, balance = excluded.balance
    WHERE points_householdtally.grid_id <> excluded.grid_id OR points_householdtally.earned <> excluded.earned
      OR points_householdtally.deducted <> excluded.deducted OR points_householdtally.redeemed <> excluded.redeemed
      OR points_householdtally.balance <> excluded.balance
"""


HOUSEHOLD_INSERT = """
    INSERT INTO points_householdtally (month, household_id, scheme_id, grid_id, earned, deducted, redeemed, net, balance)
    SELECT month, household_id, scheme_id, grid_id, SUM(earned), SUM(deducted), SUM(redeemed), SUM(net), SUM(balance)
    FROM points_tally
    WHERE month = %(month)s {where}
    GROUP BY month, household_id, scheme_id, grid_id
"""

# A household whose residents all live elsewhere now keeps no row. (Only a full run: a community's re-tally never
# moves anybody, see `_someone_moved`.)
HOUSEHOLD_GONE_SQL = """
    DELETE FROM points_householdtally
    WHERE month = %(month)s AND NOT EXISTS (
      SELECT 1 FROM points_tally t
      WHERE t.month = points_householdtally.month AND t.household_id = points_householdtally.household_id
        AND t.scheme_id = points_householdtally.scheme_id)
"""

# Whether a resident tallied in the community now lives elsewhere, or one living there was tallied elsewhere.
MOVED_SQL = """
    SELECT
      EXISTS (
        SELECT 1 FROM points_tally t
        JOIN governance_resident r ON r.id = t.resident_id
        JOIN governance_household h ON h.id = r.household_id
        JOIN governance_unit b ON b.id = h.building_id
        WHERE t.month = %(month)s AND t.community_id = %(community)s AND b.path NOT LIKE %(prefix)s)
      OR EXISTS (
        SELECT 1 FROM governance_unit b
        JOIN governance_household h ON h.building_id = b.id
        JOIN governance_resident r ON r.household_id = h.id
        JOIN points_tally t ON t.resident_id = r.id
        WHERE b.path LIKE %(prefix)s AND t.month = %(month)s AND t.community_id <> %(community)s)
"""

# Memory for the tally's hash aggregate and rank sorts on PostgreSQL (SET LOCAL: this transaction only). With the
# default 4 MB the planner walks the account index in account order to avoid a large hash, reading the ledger's
# pages at random: 3× slower on a city (docs/PERFORMANCE.md).
DEFAULT_WORK_MEM = "256MB"


def work_mem() -> str:
    return getattr(settings, "POINTS_TALLY_WORK_MEM", DEFAULT_WORK_MEM)


def set_work_mem(cursor):
    if connection.vendor == "postgresql":
        cursor.execute("SELECT set_config('work_mem', %s, true)", [work_mem()])


def _write_tallies(cursor, params, *, first: bool = False) -> tuple[int, int]:
    """Upsert the month's rows (`first`: the month has none, insert them); returns how many rows the month has and
    how many were written now."""
    cursor.execute(tally_sql(first=first), params)
    written = cursor.rowcount
    if not written:
        cursor.execute("SELECT COUNT(*) FROM points_tally WHERE month = %(month)s", params)
        return cursor.fetchone()[0], 0
    if connection.vendor == "postgresql":
        # Tell the planner about the rows just written (ANALYZE samples, a fraction of a second on a city): the
        # household statements that follow read them, and with statistics that say "none" it plans for none.
        cursor.execute("ANALYZE points_tally")
    cursor.execute("SELECT COUNT(*) FROM points_tally WHERE month = %(month)s", params)
    return cursor.fetchone()[0], written


def _write_household_tallies(cursor, params, *, first: bool = False):
    """Upsert the households' rows; on a month's first run there are none to update or to clean up."""
    cursor.execute(household_sql(first=first), params)
    if first:
        return
    if connection.vendor == "postgresql":
        # Belt and braces to the ANALYZE above: a nested-loop anti join of the month's million household rows
        # against its million resident rows runs for hours, a hash anti join for a second; insist on the hash.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(HOUSEHOLD_GONE_SQL, params)
        cursor.execute("SET LOCAL enable_nestloop = on")
    else:
        cursor.execute(HOUSEHOLD_GONE_SQL, params)


def tally_params(month: dt.date, community: Unit | None = None) -> dict:
    params = {"month": month, "start": month, "end": month_end(month)}
    if community is not None:
        params.update(community=community.pk, prefix=community.path + "%")
    return params


def tally_month(*, month: dt.date, by: User | None = None) -> TallyRun:
    """Tally `month` (any day of it) for every resident and scheme: see the module docstring for the rules.

    A fixed number of queries whatever the size of the city. Idempotent; safe to kill. Refuses a month that
    has not ended (400)."""
    month = month_start(month)
    _check_month_ended(month)
    run = TallyRun.objects.filter(month=month, finished_at__isnull=True).order_by("-id").first()
    if run is None:
        # Committed on its own (outside an outer transaction) so that a run killed later leaves its trace.
        run = TallyRun.objects.create(month=month, started_at=timezone.now(), triggered_by=by)
    else:
        run.started_at, run.triggered_by = timezone.now(), by
        run.save(update_fields=["started_at", "triggered_by"])
    started = time.perf_counter()
    params = tally_params(month)
    with transaction.atomic():
        # Two runs of the same month wait for each other here instead of colliding on the unique month+account.
        list(TallyRun.objects.select_for_update().filter(month=month).order_by("id").values_list("id", flat=True))
        # A month's first run (no rows yet; the run lock above keeps it so) inserts instead of upserting.
        first = not Tally.objects.filter(month=month).exists()
        with connection.cursor() as cursor:
            set_work_mem(cursor)
            rows, written = _write_tallies(cursor, params, first=first)
            if written:  # households are the sums of their residents' rows: none moved, none to redo
                _write_household_tallies(cursor, params, first=first)
        run.finished_at = timezone.now()
        run.rows = rows
        run.duration_ms = round((time.perf_counter() - started) * 1000)
        run.save(update_fields=["finished_at", "rows", "duration_ms"])
    logger.info("points tally %s: %d rows in %d ms", f"{month:%Y-%m}", rows, run.duration_ms)
    return run


def month_is_tallied(month: dt.date) -> bool:
    return TallyRun.objects.filter(month=month_start(month), finished_at__isnull=False).exists()


def retally_community(*, month: dt.date, community: Unit, by: User | None = None) -> None:
    """Re-tally one community's residents for a tallied month (after an upheld objection): its rows and ranks
    are exactly what a full run would give, for a fraction of the work, since ranks never cross a community.
    Falls back to the full `tally_month` when someone moved in or out of the community since the month was
    tallied (their rows elsewhere would need re-ranking too). Call inside a transaction."""
    month = month_start(month)
    params = tally_params(month, community)
    with connection.cursor() as cursor:
        cursor.execute(MOVED_SQL, params)
        if cursor.fetchone()[0]:
            tally_month(month=month, by=by)
            return
        cursor.execute(tally_sql(community=True), params)
        cursor.execute(household_sql(community=True), params)


# --- Boards -----------------------------------------------------------------------------------------------------


def _notice_days(notice_days: int | None) -> int:
    days = notice_days if notice_days is not None else getattr(settings, "POINTS_NOTICE_DAYS", DEFAULT_NOTICE_DAYS)
    if days < 1:
        raise InvalidInput(_("公示期至少 1 天。"), field="notice_days")
    return days


def _check_board_unit(unit: Unit):
    if unit.level not in (Level.GRID, Level.COMMUNITY):
        raise InvalidInput(_("积分榜按网格或社区公示。"), field="unit")


@transaction.atomic
def board_publish(
    *, month: dt.date, unit: Unit, scheme: Scheme, by: User | None = None, notice_days: int | None = None
) -> Board:
    """Publish the board of a grid or community for a tallied month, open to objections for the notice period
    (default `settings.POINTS_NOTICE_DAYS`, else 5 days). Publishing again returns the board already published,
    with its notice period unchanged. `by`: community staff of the unit (or an administrator); None for the
    monthly job."""
    month = month_start(month)
    if by is not None:
        scope = scope_of(by)
        if not (scope.is_admin or scope.covers(unit.path, *SHOPKEEPERS)):
            raise NotAllowed(_("只有本社区的工作人员可以公示积分榜。"))
    _check_board_unit(unit)
    if not month_is_tallied(month):
        raise DomainError(_("%(month)s 尚未完成月度统计，不能公示。") % {"month": f"{month:%Y-%m}"}, code="not_tallied")
    now = timezone.now()
    board, _created = Board.objects.get_or_create(
        month=month,
        unit=unit,
        scheme=scheme,
        defaults={"published_at": now, "notice_until": now + dt.timedelta(days=_notice_days(notice_days))},
    )
    return board


def boards_publish_all(*, month: dt.date, scheme: Scheme | None = None, notice_days: int | None = None) -> int:
    """Publish the month's board of every grid and community that has ranked residents, in every scheme (or
    the one given). Boards already published stay as they are. Returns how many boards were new."""
    month = month_start(month)
    if not month_is_tallied(month):
        raise DomainError(_("%(month)s 尚未完成月度统计，不能公示。") % {"month": f"{month:%Y-%m}"}, code="not_tallied")
    now = timezone.now()
    notice_until = now + dt.timedelta(days=_notice_days(notice_days))
    ranked = Tally.objects.filter(month=month, rank_in_grid__gte=1)
    if scheme is not None:
        ranked = ranked.filter(scheme=scheme)
    places = set(ranked.values_list("scheme_id", "grid_id").distinct())
    places |= set(ranked.values_list("scheme_id", "community_id").distinct())
    before = Board.objects.filter(month=month).count()
    Board.objects.bulk_create(
        [
            Board(month=month, unit_id=unit_id, scheme_id=scheme_id, published_at=now, notice_until=notice_until)
            for scheme_id, unit_id in sorted(places)
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    return Board.objects.filter(month=month).count() - before


def board_place(board) -> tuple[str, str]:
    """The tally columns a board ranks by: its place and the rank there (a grid's or a community's)."""
    return ("grid_id", "rank_in_grid") if board.unit.level == Level.GRID else ("community_id", "rank_in_community")


def board_first(board) -> QuerySet:
    """The board's places in order (rank, then resident), on the board indexes of Tally; slice it to a limit."""
    place, rank = board_place(board)
    return Tally.objects.filter(
        month=board.month,
        scheme_id=board.scheme_id,
        **{place: board.unit_id, f"{rank}__gte": 1, f"{rank}__lte": BOARD_MAX_ROWS},
    ).order_by(rank, "resident_id")


BOARD_ROW_COLUMNS = ("resident__name", "grid__name", "earned", "deducted", "redeemed", "net", "balance")


def board_row(row: dict, rank: str) -> dict:
    """One place of a board as it is shown: rank, masked name, grid, the month's figures, the balance at its end."""
    return {
        "rank": row[rank],
        "name": mask_name(row["resident__name"]),
        "grid": row["grid__name"],
        "earned": row["earned"],
        "deducted": row["deducted"],
        "redeemed": row["redeemed"],
        "net": row["net"],
        "balance": row["balance"],
    }


def board_rows(board: Board, limit: int = 20) -> list[dict]:
    """The board's top residents (`board_row`), in one query on the board indexes of Tally."""
    _place, rank = board_place(board)
    rows = board_first(board).values(rank, *BOARD_ROW_COLUMNS)[: min(limit, BOARD_MAX_ROWS)]
    return [board_row(row, rank) for row in rows]


def board_is_final(board: Board, now: dt.datetime | None = None) -> bool:
    """After its notice period a board is final: no more objections."""
    return (now or timezone.now()) >= board.notice_until


# --- Objections -------------------------------------------------------------------------------------------------


@transaction.atomic
def objection_file(*, by: User, board: Board, reason: str, entry: Entry | None = None) -> Objection:
    """A resident of the board's grid or community objects to it during the notice period (after it: 409).
    `entry`, when given, is the award or deduction of that month, scheme and place the objection is about."""
    scope = scope_of(by)
    board = Board.objects.select_related("unit").get(pk=board.pk)
    mine = [
        resident_id
        for resident_id, path in zip(scope.resident_ids, scope.resident_building_paths, strict=True)
        if path.startswith(board.unit.path)
    ]
    if not mine:
        raise NotAllowed(_("只有本网格或本社区的居民可以对积分榜提出异议。"))
    if board_is_final(board):
        raise DomainError(_("公示期已过，积分榜已确定，不能再提出异议。"), code="notice_over")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("请填写异议内容。"), field="reason")
    if entry is not None:
        entry = Entry.objects.select_related("account__resident__household__building").get(pk=entry.pk)
        resident = entry.account.resident
        if (
            entry.account.scheme_id != board.scheme_id
            or month_start(entry.occurred_on) != board.month
            or not resident.household.building.path.startswith(board.unit.path)
        ):
            raise InvalidInput(_("所涉记录不属于这张积分榜的月份、积分类别或范围。"), field="entry")
        if entry.kind not in (EntryKind.AWARD, EntryKind.DEDUCTION):
            raise InvalidInput(_("只能对加分或扣分记录提出异议。"), field="entry")
    return Objection.objects.create(board=board, resident_id=mine[0], entry=entry, reason=reason, created_by=by)


def _reverse_in_month(*, by: User, entry: Entry, note: str) -> Entry:
    """Reverse `entry` dated on its own day, so that the correction counts in the month the board shows.
    (`services.points_reverse` dates a reversal today, which would leave the board's month unchanged.)"""
    account = Account.objects.select_for_update().get(pk=entry.account_id)
    if Entry.objects.filter(reverses=entry).exists():
        raise DomainError(_("该记录已冲正过，不能重复冲正。"), code="already_reversed")
    try:
        with transaction.atomic():
            return post(
                account=account,
                kind=EntryKind.REVERSAL,
                points=-entry.points,
                by=by,
                occurred_on=entry.occurred_on,
                note=note,
                rule=entry.rule,
                reverses=entry,
            )
    except IntegrityError:  # the one-to-one on `reverses`: reversed a moment ago
        raise DomainError(_("该记录已冲正过，不能重复冲正。"), code="already_reversed") from None


@transaction.atomic
def objection_resolve(
    *, by: User, objection: Objection, uphold: bool, resolution: str, correction_points: int | None = None
) -> Objection:
    """Community staff of the board's community resolve an open objection (else 409).

    Uphold: reverse the entry objected to (dated on its own day) and/or post a correction of
    `correction_points` (an award if positive, a deduction if negative, dated on the month's last day) to the
    resident concerned, then re-tally the board's community for that month (`retally_community`), so the board
    shows the correction. Dismiss: with the reason in `resolution`."""
    objection = (
        Objection.objects.select_for_update().select_related("board__unit", "board__scheme").get(pk=objection.pk)
    )
    board = objection.board
    scope = scope_of(by)
    if not (scope.is_admin or scope.covers(board.unit.path[:COMMUNITY_PATH_LENGTH], *SHOPKEEPERS)):
        raise NotAllowed(_("只有该社区的工作人员可以处理积分榜异议。"))
    if objection.state != ObjectionState.OPEN:
        raise DomainError(_("该异议已处理，不能重复处理。"), code="already_resolved")
    resolution = (resolution or "").strip()
    if not resolution:
        raise InvalidInput(
            _("请填写处理意见。") if uphold else _("驳回异议须说明理由。"),
            field="resolution",
        )
    correction = None
    if uphold:
        if objection.entry_id is None and not correction_points:
            raise InvalidInput(_("异议成立时，请指定要冲正的记录或填写更正分值。"), field="correction_points")
        if objection.entry_id is not None:
            correction = _reverse_in_month(by=by, entry=objection.entry, note=resolution)
        if correction_points:
            resident = objection.entry.account.resident if objection.entry_id else objection.resident
            correction = post(
                account=account_for(resident, board.scheme),
                kind=EntryKind.AWARD if correction_points > 0 else EntryKind.DEDUCTION,
                points=correction_points,
                by=by,
                occurred_on=month_end(board.month),
                note=resolution,
            )
    objection.state = ObjectionState.UPHELD if uphold else ObjectionState.DISMISSED
    objection.resolution = resolution
    objection.resolved_by = by
    objection.resolved_at = timezone.now()
    objection.correction = correction
    objection.save(update_fields=["state", "resolution", "resolved_by", "resolved_at", "correction"])
    if uphold:
        community = Unit.objects.get(path=board.unit.path[:COMMUNITY_PATH_LENGTH])
        retally_community(month=board.month, community=community, by=by)
    return objection
