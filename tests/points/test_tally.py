"""The monthly tally: what counts in a month and how, ranks with ties, household totals, idempotence, a run
killed half way, the run record, the command, the beat entry and the balance check.

The known month is March 2026, tallied on 10 April 2026 (Shanghai time). Everyone's entries are booked through
`services.post` with their `occurred_on`; the redemptions too (the supermarket services are tested elsewhere).

    第一社区 C1 ─┬─ G1 / B1: 张三明 and 王五 (household H1), 赵六 (H2), 周九 (only April entries)
                 └─ G2 / B2: 钱七, 吴十 (only February entries), 孙八 (moved out on 20 March)
    第二社区 C2 ─── G3 / B3: 李四
"""

import datetime as dt
import io
from dataclasses import dataclass

import pytest
import time_machine
from celery.schedules import crontab
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import transaction

from governance import services as governance_services
from governance.errors import InvalidInput
from governance.models import Household, Resident
from points import tally
from points.models import Account, Board, EntryKind, HouseholdTally, Scheme, Tally, TallyRun
from points.services import account_for, post

from ..factories import HouseholdFactory, ResidentFactory

MARCH = dt.date(2026, 3, 1)
FEBRUARY = dt.date(2026, 2, 1)
TALLY_DAY = dt.datetime(2026, 4, 10, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def book(resident, kind, points, day, *, scheme=None, reverses=None, by=None):
    """One movement of points through the ledger's `post`, dated `day` (March unless a month is given)."""
    if isinstance(day, int):
        day = MARCH.replace(day=day)
    with transaction.atomic():
        account = account_for(resident, scheme or Scheme.objects.get(code=Scheme.RESIDENT))
        return post(account=account, kind=kind, points=points, by=by, occurred_on=day, reverses=reverses)


@dataclass
class March:
    zhang: Resident
    wang: Resident
    zhao: Resident
    zhou: Resident
    qian: Resident
    wu: Resident
    sun: Resident
    li: Resident
    h1: Household


@pytest.fixture
def clock():
    with time_machine.travel(TALLY_DAY, tick=False) as traveller:
        yield traveller


@pytest.fixture
def march(clock, city, schemes, resident_record, resident_2_record, community_staff):
    """The known month (see the module docstring); the expected figures are in `test_the_months_figures`."""
    zhang, li = resident_record, resident_2_record
    h1 = zhang.household
    wang = ResidentFactory(household=h1, name="王五")
    zhao = ResidentFactory(household=HouseholdFactory(building=city.b1, room="1单元102"), name="赵六")
    zhou = ResidentFactory(household=HouseholdFactory(building=city.b1, room="1单元103"), name="周九")
    qian = ResidentFactory(household=HouseholdFactory(building=city.b2, room="2单元201"), name="钱七")
    wu = ResidentFactory(household=HouseholdFactory(building=city.b2, room="2单元202"), name="吴十")
    sun = ResidentFactory(household=HouseholdFactory(building=city.b2, room="2单元203"), name="孙八")
    A, D, R, X = EntryKind.AWARD, EntryKind.DEDUCTION, EntryKind.REDEMPTION, EntryKind.REVERSAL

    # 张三明: 100 from February; in March +10 +5 −3, a redemption of 20, +8 reversed the next day; +50 in April;
    # and +6 in the party members' scheme.
    book(zhang, A, 100, dt.date(2026, 2, 28))
    book(zhang, A, 10, 3)
    book(zhang, A, 5, 5)
    book(zhang, D, -3, 10)
    book(zhang, R, -20, 12)
    mistaken = book(zhang, A, 8, 15)
    book(zhang, X, -8, 16, reverses=mistaken)
    book(zhang, A, 50, dt.date(2026, 4, 2))
    book(zhang, A, 6, 3, scheme=schemes.party)
    # 王五, same household: +12.
    book(wang, A, 12, 4)
    # 赵六: a February deduction reversed in March (+5 earned), and +2.
    book(zhao, A, 30, dt.date(2026, 2, 10))
    deduction = book(zhao, D, -5, dt.date(2026, 2, 20))
    book(zhao, X, 5, 6, reverses=deduction)
    book(zhao, A, 2, 7)
    # 周九: April only, so no March row.
    book(zhou, A, 3, dt.date(2026, 4, 1))
    # 钱七: +12; a redemption of 5 cancelled two days later; a February redemption of 10 cancelled in March.
    book(qian, A, 20, dt.date(2026, 2, 1))
    february_redemption = book(qian, R, -10, dt.date(2026, 2, 2))
    book(qian, X, 10, 1, reverses=february_redemption)
    book(qian, A, 12, 8)
    march_redemption = book(qian, R, -5, 9)
    book(qian, X, 5, 11, reverses=march_redemption)
    # 吴十: February only: a March row with nothing moving.
    book(wu, A, 9, dt.date(2026, 2, 5))
    # 孙八: +50, then moved out.
    book(sun, A, 50, 2)
    governance_services.resident_move_out(by=community_staff, resident=sun, moved_out_on=dt.date(2026, 3, 20))
    # 李四, the other community: +4.
    book(li, A, 4, 10)
    return March(zhang=zhang, zhao=zhao, wang=wang, zhou=zhou, qian=qian, wu=wu, sun=sun, li=li, h1=h1)


def rows(month=MARCH, scheme_code="resident"):
    return {
        t.resident.name: (t.earned, t.deducted, t.redeemed, t.net, t.balance, t.rank_in_grid, t.rank_in_community)
        for t in Tally.objects.filter(month=month, scheme__code=scheme_code).select_related("resident")
    }


def snapshot():
    fields = [f.name for f in Tally._meta.fields if f.name != "id"]
    household_fields = [f.name for f in HouseholdTally._meta.fields if f.name != "id"]
    return (
        sorted(Tally.objects.values_list(*fields)),
        sorted(HouseholdTally.objects.values_list(*household_fields)),
    )


# --- What counts ---------------------------------------------------------------------------------------------


def test_the_months_figures(march):
    """earned, deducted, redeemed, net, balance at the month's end, rank in grid, rank in community."""
    tally.tally_month(month=MARCH)
    assert rows() == {
        "张三明": (23, 11, 20, 12, 92, 1, 1),
        "王五": (12, 0, 0, 12, 12, 1, 1),
        "赵六": (7, 0, 0, 7, 32, 3, 4),
        "钱七": (12, 0, -10, 12, 32, 1, 1),
        "吴十": (0, 0, 0, 0, 9, 2, 5),
        "孙八": (50, 0, 0, 50, 50, 0, 0),
        "李四": (4, 0, 0, 4, 4, 1, 1),
    }
    assert rows(scheme_code="party") == {"张三明": (6, 0, 0, 6, 6, 1, 1)}


def test_entries_count_in_the_month_they_occurred_not_when_recorded(march):
    """Every entry was recorded in April; the ones dated in March count in March, the April ones do not, and the
    February ones only in the balance."""
    tally.tally_month(month=MARCH)
    assert "周九" not in rows()  # April entries only
    zhang = Tally.objects.get(month=MARCH, resident=march.zhang, scheme__code="resident")
    assert zhang.balance == 92  # not 142: the April +50 is not in March's balance


def test_a_month_plus_its_movements_gives_the_next_months_balance(march):
    tally.tally_month(month=FEBRUARY)
    tally.tally_month(month=MARCH)
    february = {t.account_id: t.balance for t in Tally.objects.filter(month=FEBRUARY)}
    for t in Tally.objects.filter(month=MARCH):
        assert t.balance == february.get(t.account_id, 0) + t.net - t.redeemed


def test_places_come_from_the_residents_building(march, city):
    tally.tally_month(month=MARCH)
    places = {
        t.resident.name: (t.grid, t.community) for t in Tally.objects.select_related("resident", "grid", "community")
    }
    assert places["张三明"] == (city.g1, city.c1)
    assert places["钱七"] == (city.g2, city.c1)
    assert places["李四"] == (city.g3, city.c2)
    assert Tally.objects.get(resident=march.wang).household == march.h1


def test_ties_share_a_rank_and_the_next_rank_is_skipped(march):
    """G1: 12, 12, 7 → 1, 1, 3. C1: 12, 12, 12, 7, 0 → 1, 1, 1, 4, 5."""
    tally.tally_month(month=MARCH)
    in_grid = sorted(Tally.objects.filter(grid__code="G1", scheme__code="resident").values_list("net", "rank_in_grid"))
    assert in_grid == [(7, 3), (12, 1), (12, 1)]
    in_community = sorted(
        Tally.objects.filter(community__code="C1", scheme__code="resident", rank_in_community__gte=1).values_list(
            "net", "rank_in_community"
        )
    )
    assert in_community == [(0, 5), (7, 4), (12, 1), (12, 1), (12, 1)]


def test_moved_out_residents_are_tallied_but_not_ranked(march):
    tally.tally_month(month=MARCH)
    sun = Tally.objects.get(resident=march.sun)
    assert (sun.net, sun.rank_in_grid, sun.rank_in_community) == (50, 0, 0)
    # With 50 he would have been first in G2; 钱七 is.
    assert Tally.objects.get(resident=march.qian).rank_in_grid == 1
    # In February he still lived there: ranked then (he had no entries in February, so no row at all).
    assert not Tally.objects.filter(resident=march.sun, month=FEBRUARY).exists()


def test_household_totals(march, city):
    tally.tally_month(month=MARCH)
    h1 = HouseholdTally.objects.get(month=MARCH, household=march.h1, scheme__code="resident")
    assert (h1.earned, h1.deducted, h1.redeemed, h1.net, h1.balance, h1.grid) == (35, 11, 20, 24, 104, city.g1)
    party = HouseholdTally.objects.get(month=MARCH, household=march.h1, scheme__code="party")
    assert (party.net, party.balance) == (6, 6)
    assert HouseholdTally.objects.filter(month=MARCH).count() == 7  # H1 twice (two schemes), 5 others


# --- Idempotence, a killed run, the run record ------------------------------------------------------------------


def test_running_twice_gives_the_same_rows(march):
    first = tally.tally_month(month=MARCH)
    before = snapshot()
    second = tally.tally_month(month=MARCH)
    assert snapshot() == before
    assert first.rows == second.rows == Tally.objects.count() == 8
    assert TallyRun.objects.filter(month=MARCH, finished_at__isnull=False).count() == 2


def test_a_rerun_rewrites_what_moved_and_keeps_the_rows(march, city):
    """赵六 is re-housed in G3 of C2: his row follows him, ranks are recomputed on both sides, his old household's
    row goes, and every row keeps its id."""
    tally.tally_month(month=MARCH)
    ids = set(Tally.objects.values_list("id", flat=True))
    old_home = march.zhao.household
    new_home = HouseholdFactory(building=city.b3, room="3单元301")
    Resident.objects.filter(pk=march.zhao.pk).update(household=new_home)
    tally.tally_month(month=MARCH)
    zhao = Tally.objects.get(resident=march.zhao)
    assert (zhao.household, zhao.grid, zhao.community, zhao.rank_in_grid, zhao.rank_in_community) == (
        new_home,
        city.g3,
        city.c2,
        1,
        1,
    )
    assert rows()["李四"][5:] == (2, 2)
    assert rows()["吴十"][6] == 4  # C1 without 赵六: 12, 12, 12, 0
    assert set(Tally.objects.values_list("id", flat=True)) == ids
    assert not HouseholdTally.objects.filter(household=old_home).exists()
    assert HouseholdTally.objects.get(household=new_home).balance == 32


def test_a_run_killed_half_way_leaves_the_previous_rows_and_a_rerun_completes_it(march, monkeypatch):
    tally.tally_month(month=MARCH)
    before = snapshot()
    book(march.wang, EntryKind.AWARD, 30, 20)  # recorded late, then the tally is re-run and dies

    def killed(cursor, params, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(tally, "_write_household_tallies", killed)
    with pytest.raises(RuntimeError):
        tally.tally_month(month=MARCH)
    assert snapshot() == before  # the tally rows inserted before the crash are gone with the transaction
    unfinished = TallyRun.objects.get(month=MARCH, finished_at__isnull=True)
    assert unfinished.rows == 0 and unfinished.duration_ms is None

    monkeypatch.undo()
    rerun = tally.tally_month(month=MARCH)
    assert rerun.pk == unfinished.pk and rerun.finished_at is not None
    assert not TallyRun.objects.filter(finished_at__isnull=True).exists()
    assert rows()["王五"][3] == 42
    assert HouseholdTally.objects.get(household=march.h1, scheme__code="resident").net == 54


def test_the_run_record(march, clock):
    run = tally.tally_month(month=MARCH)
    run.refresh_from_db()
    assert run.month == MARCH
    assert run.started_at == run.finished_at == TALLY_DAY  # the clock stands still
    assert run.rows == 8 and run.duration_ms is not None and run.triggered_by is None


def test_a_month_that_has_not_ended_is_refused(march):
    with pytest.raises(InvalidInput) as refused:
        tally.tally_month(month=dt.date(2026, 4, 1))
    assert "尚未结束" in str(refused.value.message)
    assert not TallyRun.objects.exists()


def test_the_tally_costs_the_same_queries_for_3_and_30_residents(
    clock, city, schemes, django_assert_num_queries, django_assert_max_num_queries
):
    def residents(count):
        for n in range(count):
            resident = ResidentFactory(household=HouseholdFactory(building=city.b1 if n % 2 else city.b2))
            book(resident, EntryKind.AWARD, 1 + n % 4, 1 + n % 28)

    residents(3)
    with django_assert_max_num_queries(20) as first_small:
        tally.tally_month(month=MARCH)
    residents(27)
    # A re-run that rewrites rows adds the households' clean-up: one statement, three on PostgreSQL (which is told
    # to hash it).
    with django_assert_max_num_queries(len(first_small.captured_queries) + 3):
        tally.tally_month(month=MARCH)
    assert Tally.objects.filter(month=MARCH).count() == 30
    HouseholdTally.objects.all().delete()
    Tally.objects.all().delete()
    with django_assert_num_queries(len(first_small.captured_queries)):
        tally.tally_month(month=MARCH)  # a first run, now with 30
    assert Tally.objects.filter(month=MARCH).count() == 30


# --- The command, the beat entry, the task --------------------------------------------------------------------


def test_the_command_tallies_the_month_given(march):
    out = io.StringIO()
    call_command("tally_points", "--month", "2026-03", stdout=out)
    assert "2026-03" in out.getvalue() and "8 行" in out.getvalue()
    assert Tally.objects.filter(month=MARCH).count() == 8


def test_the_command_defaults_to_the_previous_month_and_can_publish(march):
    out = io.StringIO()
    call_command("tally_points", "--publish", stdout=out)
    assert TallyRun.objects.get().month == MARCH
    assert "积分榜" in out.getvalue()
    assert Board.objects.filter(month=MARCH).exists()


@pytest.mark.parametrize("month", ["2026-13", "March", "2026/03"])
def test_the_command_refuses_a_bad_month_in_chinese(march, month):
    with pytest.raises(CommandError) as refused:
        call_command("tally_points", "--month", month, stdout=io.StringIO())
    assert "YYYY-MM" in str(refused.value) and "月份" in str(refused.value)


def test_the_command_refuses_the_current_month(march):
    with pytest.raises(CommandError) as refused:
        call_command("tally_points", "--month", "2026-04", stdout=io.StringIO())
    assert "尚未结束" in str(refused.value)


def test_the_beat_runs_the_registered_task_on_the_first_at_one():
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["points-monthly-tally"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert entry["schedule"] == crontab(minute=0, hour=1, day_of_month=1)
    assert settings.CELERY_TIMEZONE == "Asia/Shanghai"


def test_the_task_tallies_the_previous_month_and_publishes_every_board(march, city):
    from points.tasks import tally_previous_month

    with time_machine.travel(dt.datetime(2026, 4, 1, 1, 0, tzinfo=TALLY_DAY.tzinfo), tick=False):
        done = tally_previous_month.apply().get()
    assert done["month"] == "2026-03" and done["rows"] == 8
    boards = set(Board.objects.values_list("unit__code", "scheme__code"))
    assert boards == {
        ("G1", "resident"),
        ("G2", "resident"),
        ("G3", "resident"),
        ("C1", "resident"),
        ("C2", "resident"),
        ("G1", "party"),
        ("C1", "party"),
    }
    assert done["boards"] == 7
    again = tally_previous_month.apply().get()  # safe to run twice
    assert again["boards"] == 0 and Board.objects.count() == 7


# --- Verifying balances ------------------------------------------------------------------------------------------


def test_points_verify_without_drift(march):
    out = io.StringIO()
    call_command("points_verify", stdout=out)
    assert "一致" in out.getvalue()


def test_points_verify_lists_the_drifting_accounts_and_fails(march):
    account = Account.objects.get(resident=march.wang, scheme__code="resident")
    Account.objects.filter(pk=account.pk).update(balance=15)
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("points_verify", stdout=out)
    assert f"账户 {account.pk}：余额 15，流水合计 12，相差 +3" in out.getvalue()
    assert "1 个积分账户" in str(failed.value)


# --- The kept-balance shortcut ----------------------------------------------------------------------------------


@pytest.mark.parametrize("month", [FEBRUARY, MARCH, dt.date(2026, 4, 1)])
def test_the_sums_from_kept_balances_equal_the_sums_of_the_whole_ledger(march, month):
    """The tally reads only the month's entries and the later ones, and takes the balance at the month's end from
    the kept balance; summing the whole ledger gives the very same figures."""
    from django.db import connection

    params = tally.tally_params(month)
    with connection.cursor() as cursor:
        columns = "account_id, earned, deducted, redeemed, balance"
        cursor.execute(f"SELECT {columns} FROM ({tally.SUMS_SQL}) q ORDER BY account_id", params)
        shortcut = cursor.fetchall()
        cursor.execute(f"SELECT {columns} FROM ({tally.LEDGER_SUMS_SQL}) q ORDER BY account_id", params)
        ledger = cursor.fetchall()
    assert shortcut == ledger and shortcut


def test_points_verify_reports_a_wrong_first_entry_day(march):
    account = Account.objects.order_by("id").first()
    Account.objects.filter(pk=account.pk).update(first_entry_on=dt.date(2030, 1, 1))
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("points_verify", stdout=out)
    assert f"账户 {account.pk}：首笔记录日期记为 2030-01-01" in out.getvalue()
