"""Exports to Excel from the list and statistics pages: the workbook opens, has the Chinese headers and the rows
the page shows with its filters, masks personal data for roles that may not see it, and every export is
logged."""

import io

import pytest
from django.test import Client
from openpyxl import load_workbook

from governance.models import PersonalDataAccess


def workbook(response):
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    assert "attachment" in response["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.content))
    return {sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)] for sheet in book.worksheets}


def as_(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_case_list_exports_what_the_filters_show(make_case, community_staff, street_staff, outsider):
    open_case = make_case("in_progress", title="楼道堆物")
    closed = make_case("closed", title="路灯不亮", description="第二件：路灯不亮。")
    sheets = workbook(as_(community_staff).get("/cases/", {"state": "closed", "export": "xlsx"}))
    (rows,) = sheets.values()
    assert rows[0][:6] == ["编号", "标题", "大类", "分类", "网格", "状态"]
    assert [r[0] for r in rows[1:]] == [closed.number]
    assert rows[1][5] == "已结案"
    everything = workbook(as_(street_staff).get("/cases/", {"export": "xlsx"}))["事件列表"]
    assert {r[0] for r in everything[1:]} == {open_case.number, closed.number}
    assert workbook(as_(outsider).get("/cases/", {"export": "xlsx"}))["事件列表"] == [rows[0]]  # nothing of S1
    log = PersonalDataAccess.objects.filter(via="export", what="cases").order_by("id")
    assert [entry.user for entry in log] == [community_staff, street_staff, outsider]
    assert log[0].object_ids == [closed.pk] and "state=closed" in log[0].path


def test_the_case_kpis_export_has_a_sheet_per_table(make_case, street_staff, city):
    make_case("closed")
    sheets = workbook(as_(street_staff).get("/cases/stats/", {"unit": city.s1.pk, "export": "xlsx"}))
    assert {"汇总", "下级单元", "职能部门", "部门排名"} <= set(sheets)
    assert sheets["汇总"][0][:3] == ["范围", "上报数", "办结数"] and sheets["汇总"][1][:2] == ["第一街道", 1]
    assert [r[0] for r in sheets["下级单元"][1:]] == ["第一社区", "第二社区"]
    assert PersonalDataAccess.objects.get(via="export").what == "case_kpis"


def test_the_letters_export_masks_the_writer_for_those_who_do_not_keep_the_records(
    make_letter, secretary, street_staff, resident
):
    letter = make_letter("accepted")
    rows = workbook(as_(street_staff).get("/mailbox/", {"export": "xlsx"}))["来信列表"]
    assert rows[0][4:6] == ["来信人", "联系电话"]
    assert rows[1][0] == letter.number and rows[1][4] == "张*明" and rows[1][5] == "138****5678"
    log = PersonalDataAccess.objects.get(via="export", what="letters")
    assert log.object_ids == [letter.pk] and log.fields == []
    # A resident has no inbox to export: the page stays a page.
    assert "spreadsheetml" not in as_(resident).get("/mailbox/", {"export": "xlsx"})["Content-Type"]


def test_the_letters_export_is_whole_for_the_record_keepers_and_says_so_in_the_log(make_letter, community_staff):
    make_letter("accepted")
    rows = workbook(as_(community_staff).get("/mailbox/", {"export": "xlsx"}))["来信列表"]
    assert rows[1][4] == "张三明" and rows[1][5] == "13812345678"
    assert PersonalDataAccess.objects.get(via="export").fields == ["writer", "phone"]


def test_the_letter_statistics_export(make_letter, secretary, city):
    make_letter("closed")
    sheets = workbook(as_(secretary).get("/mailbox/stats/", {"unit": city.c1.pk, "export": "xlsx"}))
    assert sheets["汇总"][0][:2] == ["范围", "来信数"] and sheets["汇总"][1][:2] == ["第一社区", 1]
    assert len(sheets["近十二个月"]) == 13


@pytest.fixture
def published_board(city, make_rule, award, schemes):
    import datetime as dt

    from django.utils import timezone

    from points import tally

    last_month = (timezone.localdate().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    award(make_rule(points=10, unit=city.s1), occurred_on=last_month)
    tally.tally_month(month=last_month)
    tally.boards_publish_all(month=last_month)
    return f"{last_month:%Y-%m}"


def test_the_board_export_masks_names_and_staff_get_the_whole_tally(published_board, city, community_staff, resident):
    query = {"unit": city.c1.pk, "month": published_board, "scheme": "resident", "export": "xlsx"}
    staff = workbook(as_(community_staff).get("/points/board/", query))
    board = next(rows for title, rows in staff.items() if title.startswith("积分榜"))
    assert board[0][:3] == ["名次", "姓名", "网格"] and board[1][:2] == [1, "张*明"]
    assert staff["月度积分"][1][0] == "张三明"
    assert PersonalDataAccess.objects.get(via="export").fields == ["name"]
    mine = workbook(as_(resident).get("/points/board/", query))
    assert list(mine) == [next(iter(mine))]  # a resident gets the public board only


def test_a_list_longer_than_an_export_takes_says_so_in_its_last_row(make_case, street_staff, monkeypatch):
    from governance import exports

    monkeypatch.setattr(exports, "MAX_ROWS", 1)
    make_case("in_progress", title="一")
    make_case("in_progress", title="二", description="第二件：楼道堆物。")
    rows = workbook(as_(street_staff).get("/cases/", {"export": "xlsx"}))["事件列表"]
    assert len(rows) == 3 and rows[2][0].startswith("仅导出前 1 条")
