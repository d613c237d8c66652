"""The public board (张榜公示) and objections (异议): masked names, the unit's residents only, the notice period
and finality, who may object and when, and how community staff resolve an objection.

The month is the known March 2026 of `test_tally` (tallied on 10 April 2026):
C1 ranks 张三明 12, 王五 12, 钱七 12, 赵六 7, 吴十 0 (孙八 moved out, unranked); C2 has 李四 4.
"""

import datetime as dt

import pytest
import time_machine

from governance import services as governance_services
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Resident, Role
from points import tally
from points.models import Board, Entry, EntryKind, ObjectionState, Tally, TallyRun

from ..factories import HouseholdFactory, UserFactory
from . import test_tally
from .test_tally import MARCH, TALLY_DAY

# The known month's fixtures, shared with the tally's tests.
clock = test_tally.clock
march = test_tally.march


@pytest.fixture
def tallied(march):
    tally.tally_month(month=MARCH)
    return march


@pytest.fixture
def board(tallied, city, schemes):
    return tally.board_publish(month=MARCH, unit=city.c1, scheme=schemes.resident)


def names(board, **kwargs):
    return [(row["rank"], row["name"]) for row in tally.board_rows(board, **kwargs)]


# --- The board -------------------------------------------------------------------------------------------------


def test_the_board_shows_ranks_and_masked_names(board):
    rows = tally.board_rows(board)
    assert [(r["rank"], r["name"]) for r in rows] == [(1, "张*明"), (1, "王*"), (1, "钱*"), (4, "赵*"), (5, "吴*")]
    first = rows[0]
    assert (first["grid"], first["net"], first["balance"], first["earned"], first["deducted"]) == (
        "第一网格",
        12,
        92,
        23,
        11,
    )
    assert all("张三明" not in str(row.values()) for row in rows)


def test_the_board_keeps_to_its_unit_and_leaves_out_moved_out_residents(tallied, city, schemes):
    grid = tally.board_publish(month=MARCH, unit=city.g2, scheme=schemes.resident)
    assert names(grid) == [(1, "钱*"), (2, "吴*")]  # not 孙八, who moved out
    other = tally.board_publish(month=MARCH, unit=city.c2, scheme=schemes.resident)
    assert names(other) == [(1, "李*")]
    party = tally.board_publish(month=MARCH, unit=city.c1, scheme=schemes.party)
    assert names(party) == [(1, "张*明")]


def test_the_board_is_limited(board):
    assert names(board, limit=2) == [(1, "张*明"), (1, "王*")]


def test_the_board_is_one_query(board, django_assert_num_queries):
    board.unit  # noqa: B018  (loaded with the board by its callers)
    with django_assert_num_queries(1):
        tally.board_rows(board)


def test_publishing_needs_a_tallied_month_a_grid_or_community_and_community_staff(
    march, city, schemes, grid_worker, community_staff
):
    with pytest.raises(DomainError) as refused:
        tally.board_publish(month=MARCH, unit=city.c1, scheme=schemes.resident)
    assert refused.value.status_code == 409
    tally.tally_month(month=MARCH)
    with pytest.raises(InvalidInput):
        tally.board_publish(month=MARCH, unit=city.b1, scheme=schemes.resident)
    with pytest.raises(NotAllowed):
        tally.board_publish(month=MARCH, unit=city.g1, scheme=schemes.resident, by=grid_worker)
    board = tally.board_publish(month=MARCH, unit=city.g1, scheme=schemes.resident, by=community_staff)
    assert tally.board_publish(month=MARCH, unit=city.g1, scheme=schemes.resident) == board  # once


def test_the_notice_period_then_the_board_is_final(tallied, city, schemes, settings):
    board = tally.board_publish(month=MARCH, unit=city.c1, scheme=schemes.resident)
    assert board.published_at == TALLY_DAY and board.notice_until == TALLY_DAY + dt.timedelta(days=5)
    assert not tally.board_is_final(board)
    with time_machine.travel(TALLY_DAY + dt.timedelta(days=4, hours=23), tick=False):
        assert not tally.board_is_final(board)
    with time_machine.travel(TALLY_DAY + dt.timedelta(days=5), tick=False):
        assert tally.board_is_final(board)
    settings.POINTS_NOTICE_DAYS = 3
    grid = tally.board_publish(month=MARCH, unit=city.g1, scheme=schemes.resident)
    assert grid.notice_until == TALLY_DAY + dt.timedelta(days=3)
    party = tally.board_publish(month=MARCH, unit=city.g1, scheme=schemes.party, notice_days=7)
    assert party.notice_until == TALLY_DAY + dt.timedelta(days=7)


# --- Filing an objection ---------------------------------------------------------------------------------------


def test_a_resident_of_the_unit_files_an_objection(board, resident, tallied):
    objection = tally.objection_file(by=resident, board=board, reason="我3月的垃圾分类加分漏记了。")
    assert (objection.state, objection.resident, objection.created_by) == (ObjectionState.OPEN, tallied.zhang, resident)


def test_only_residents_of_the_unit_may_object(board, resident_2, community_staff, grid_worker, outsider):
    for user in (resident_2, community_staff, grid_worker, outsider):
        with pytest.raises(NotAllowed):
            tally.objection_file(by=user, board=board, reason="有异议")


def test_an_objection_needs_a_reason(board, resident):
    with pytest.raises(InvalidInput) as refused:
        tally.objection_file(by=resident, board=board, reason="  ")
    assert refused.value.field == "reason"


def test_no_objection_after_the_notice_period(board, resident):
    with time_machine.travel(board.notice_until + dt.timedelta(seconds=1), tick=False):
        with pytest.raises(DomainError) as refused:
            tally.objection_file(by=resident, board=board, reason="有异议")
    assert refused.value.status_code == 409 and "公示期已过" in str(refused.value.message)


def test_the_entry_objected_to_must_be_an_award_or_deduction_of_the_boards_month_and_place(board, resident, tallied):
    april = Entry.objects.get(account__resident=tallied.zhang, occurred_on=dt.date(2026, 4, 2))
    li = Entry.objects.get(account__resident=tallied.li)
    redemption = Entry.objects.get(account__resident=tallied.zhang, kind=EntryKind.REDEMPTION)
    for entry in (april, li, redemption):
        with pytest.raises(InvalidInput) as refused:
            tally.objection_file(by=resident, board=board, reason="有异议", entry=entry)
        assert refused.value.field == "entry"


# --- Resolving it -----------------------------------------------------------------------------------------------


def qian_award(people):
    return Entry.objects.get(account__resident=people.qian, kind=EntryKind.AWARD, occurred_on=dt.date(2026, 3, 8))


def test_upholding_an_objection_to_an_entry_reverses_it_and_the_board_changes(
    board, resident, community_staff, tallied
):
    """钱七's +12 is reversed, dated on its own day, so March's board drops him from the top."""
    entry = qian_award(tallied)
    objection = tally.objection_file(by=resident, board=board, reason="钱七那天并未参加清扫。", entry=entry)
    resolved = tally.objection_resolve(
        by=community_staff, objection=objection, uphold=True, resolution="经核实，撤销加分。"
    )
    assert resolved.state == ObjectionState.UPHELD and resolved.resolved_by == community_staff
    reversal = entry.reversed_by
    assert (reversal.points, reversal.occurred_on, reversal.note) == (-12, dt.date(2026, 3, 8), "经核实，撤销加分。")
    assert resolved.correction == reversal
    assert names(board) == [(1, "张*明"), (1, "王*"), (3, "赵*"), (4, "钱*"), (4, "吴*")]  # ties by record order
    # Only C1 was re-tallied (no run recorded), and it is exactly what a full run gives.
    assert TallyRun.objects.filter(month=MARCH).count() == 1
    after = test_tally.snapshot()
    tally.tally_month(month=MARCH)
    assert test_tally.snapshot() == after


def test_the_re_tally_is_a_full_run_when_someone_moved_in_or_out(board, resident, community_staff, tallied, city):
    """李四 moved from C2 into C1 after the tally: ranks in C2 change too, so the whole month is re-tallied."""
    Resident.objects.filter(pk=tallied.li.pk).update(household=HouseholdFactory(building=city.b2, room="2单元209"))
    objection = tally.objection_file(
        by=resident, board=board, reason="钱七那天并未参加清扫。", entry=qian_award(tallied)
    )
    tally.objection_resolve(by=community_staff, objection=objection, uphold=True, resolution="经核实，撤销加分。")
    assert TallyRun.objects.filter(month=MARCH, finished_at__isnull=False).count() == 2
    li = Tally.objects.get(resident=tallied.li)
    assert (li.community, li.grid, li.rank_in_grid, li.rank_in_community) == (city.c1, city.g2, 1, 4)


def test_upholding_with_correction_points(board, resident, community_staff, tallied):
    objection = tally.objection_file(by=resident, board=board, reason="3月20日的志愿服务没有记分。")
    tally.objection_resolve(
        by=community_staff, objection=objection, uphold=True, resolution="补记志愿服务 10 分。", correction_points=10
    )
    objection.refresh_from_db()
    correction = objection.correction
    assert (correction.kind, correction.points, correction.occurred_on, correction.note) == (
        EntryKind.AWARD,
        10,
        dt.date(2026, 3, 31),
        "补记志愿服务 10 分。",
    )
    assert correction.account.resident == tallied.zhang
    assert names(board)[:2] == [(1, "张*明"), (2, "王*")]
    assert tally.board_rows(board)[0]["net"] == 22


def test_a_negative_correction_is_a_deduction(board, resident, community_staff):
    objection = tally.objection_file(by=resident, board=board, reason="我的加分多记了 2 分。")
    tally.objection_resolve(
        by=community_staff, objection=objection, uphold=True, resolution="扣回多记的 2 分。", correction_points=-2
    )
    objection.refresh_from_db()
    assert (objection.correction.kind, objection.correction.points) == (EntryKind.DEDUCTION, -2)
    assert tally.board_rows(board)[0]["name"] == "王*"


def test_upholding_needs_an_entry_or_correction_points(board, resident, community_staff):
    objection = tally.objection_file(by=resident, board=board, reason="有异议")
    with pytest.raises(InvalidInput):
        tally.objection_resolve(by=community_staff, objection=objection, uphold=True, resolution="成立")


def test_dismissing_needs_a_reason_and_changes_nothing(board, resident, community_staff):
    objection = tally.objection_file(by=resident, board=board, reason="有异议")
    with pytest.raises(InvalidInput) as refused:
        tally.objection_resolve(by=community_staff, objection=objection, uphold=False, resolution="")
    assert refused.value.field == "resolution"
    entries, runs, before = Entry.objects.count(), TallyRun.objects.count(), names(board)
    dismissed = tally.objection_resolve(
        by=community_staff, objection=objection, uphold=False, resolution="经核实，记分无误。"
    )
    assert dismissed.state == ObjectionState.DISMISSED and dismissed.resolution == "经核实，记分无误。"
    assert (Entry.objects.count(), TallyRun.objects.count(), names(board)) == (entries, runs, before)


def test_an_objection_is_resolved_once(board, resident, community_staff, tallied):
    objection = tally.objection_file(by=resident, board=board, reason="有异议", entry=qian_award(tallied))
    tally.objection_resolve(by=community_staff, objection=objection, uphold=False, resolution="记分无误。")
    for uphold in (False, True):
        with pytest.raises(DomainError) as refused:
            tally.objection_resolve(by=community_staff, objection=objection, uphold=uphold, resolution="再处理")
        assert refused.value.status_code == 409


def test_only_the_boards_community_staff_resolve(
    board, resident, grid_worker, street_staff, secretary, resident_2, city
):
    other_staff = UserFactory(username="c2_staff")
    governance_services.position_grant(by=None, user=other_staff, role=Role.COMMUNITY_STAFF, unit=city.c2)
    objection = tally.objection_file(by=resident, board=board, reason="有异议")
    for user in (grid_worker, street_staff, secretary, resident, resident_2, other_staff):
        with pytest.raises(NotAllowed):
            tally.objection_resolve(by=user, objection=objection, uphold=False, resolution="不成立")
    objection.refresh_from_db()
    assert objection.state == ObjectionState.OPEN


def test_staff_of_the_community_resolve_objections_to_its_grids_boards(
    tallied, city, schemes, resident, community_staff
):
    grid_board = tally.board_publish(month=MARCH, unit=city.g1, scheme=schemes.resident)
    objection = tally.objection_file(by=resident, board=grid_board, reason="有异议")
    resolved = tally.objection_resolve(by=community_staff, objection=objection, uphold=False, resolution="不成立")
    assert resolved.state == ObjectionState.DISMISSED


def test_every_board_of_the_month_at_once(tallied, schemes):
    assert tally.boards_publish_all(month=MARCH, scheme=schemes.party) == 2
    assert tally.boards_publish_all(month=MARCH) == 5
    assert Board.objects.filter(month=MARCH).count() == 7
