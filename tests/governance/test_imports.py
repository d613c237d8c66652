"""Importing from Excel and CSV: good files load whole, a file with any bad row loads nothing and names every
bad row, the same file twice changes nothing, and a large generated file loads."""

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from openpyxl import Workbook, load_workbook

from governance import imports
from governance.models import Household, ImportJob, Position, Resident, ResidentTag, Role, Unit
from tests.factories import make_id_number


def xlsx(rows) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows, encoding="utf-8-sig") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


RESIDENT_HEADER = ["楼栋编码", "房号", "姓名", "性别", "身份证号", "手机号", "标签"]


def residents(*rows):
    return xlsx([RESIDENT_HEADER, *rows])


def run(kind, data, name="导入.xlsx", by=None):
    return imports.run_import(kind, data, name, by=by)


# --- The hierarchy -------------------------------------------------------------------------------------------


HIERARCHY = [
    [
        "街道",
        "街道编码",
        "社区",
        "社区编码",
        "网格",
        "网格编码",
        "楼栋",
        "楼栋编码",
        "小区名称",
        "楼栋地址",
        "纬度",
        "经度",
    ],
    [
        "幸福街道",
        "XF",
        "桂花社区",
        "XF01",
        "桂花第1网格",
        "XF0101",
        "1栋",
        "XF010101",
        "桂花苑",
        "桂花路1号",
        "30.657",
        "104.066",
    ],
    ["幸福街道", "XF", "桂花社区", "XF01", "桂花第1网格", "XF0101", "2栋", "XF010102", "桂花苑", "桂花路3号"],
    ["幸福街道", "XF", "荷花社区", "XF02", "荷花第1网格", "XF0201", "1栋", "XF020101", "", ""],
]


def test_a_hierarchy_file_builds_the_tree_and_importing_it_again_changes_nothing(db, admin_user):
    report = run("hierarchy", xlsx(HIERARCHY), by=admin_user)
    assert report.ok, report.errors
    assert report.created == 8  # 1 street, 2 communities, 2 grids, 3 buildings
    building = Unit.objects.get(code="XF010102")
    assert building.address == "桂花路3号" and building.level == "building"
    assert Unit.objects.get(code="XF0101").compound_name == "桂花苑"
    first = Unit.objects.get(code="XF010101")
    assert (str(first.latitude), str(first.longitude)) == ("30.657000", "104.066000")  # for Open311 locations
    assert building.path.startswith(Unit.objects.get(code="XF01").path)
    before = Unit.objects.count()
    again = run("hierarchy", xlsx(HIERARCHY), by=admin_user)
    assert again.ok and again.created == 0 and Unit.objects.count() == before


def test_a_code_that_names_another_unit_is_a_bad_row_and_nothing_is_built(db, admin_user, city):
    rows = [
        HIERARCHY[0],
        HIERARCHY[1],
        ["幸福街道", "XF", "桂花社区", "C1", "x", "XF0109", "9栋", "XF010109", "", ""],
        ["幸福街道", "XF", "桂花社区", "XF01", "桂花第1网格", "XF0101", "3栋", "XF010103", "", "", "91", "104"],
    ]
    report = run("hierarchy", xlsx(rows), by=admin_user)
    assert not report.ok
    assert [(e.row, e.column) for e in report.errors] == [(3, "社区编码"), (4, "纬度")]
    assert "第一社区" in report.errors[0].message
    assert not Unit.objects.filter(code="XF").exists()


def test_only_administrators_import(db, community_staff):
    from governance.errors import NotAllowed

    with pytest.raises(NotAllowed):
        run("hierarchy", xlsx(HIERARCHY), by=community_staff)


# --- Residents -----------------------------------------------------------------------------------------------


def test_a_good_residents_file_loads_households_residents_and_tags(city):
    report = run(
        "residents",
        residents(
            ["B1", "1单元101", "张三明", "男", "510603198001011237", "13812345678", "党员、志愿者"],
            ["B1", "1单元101", "李秀英", "女", make_id_number(2, birth="19820304"), "", ""],
            ["B2", 202, "王五", "男", make_id_number(3), "0838-1234567", ""],  # a room typed as a number
        ),
    )
    assert report.ok, report.errors
    assert report.created == 3 and Household.objects.count() == 2
    zhang = Resident.objects.get(name="张三明")
    assert {t.code for t in zhang.tags.all()} == {ResidentTag.PARTY_MEMBER, "volunteer"}
    assert str(zhang.birth_date) == "1980-01-01" and zhang.household.room == "1单元101"
    assert Resident.objects.get(name="王五").household.room == "202"


def test_every_kind_of_bad_row_is_reported_and_nothing_is_loaded(city, resident_record):
    bad = residents(
        ["B1", "101", "甲", "男", "510603198001011238", "", ""],  # check digit
        ["B1", "102", "乙", "男", "51060319801301123X", "", ""],  # month 13
        ["B1", "103", "丙", "女", make_id_number(5), "1381234", ""],  # phone
        ["B9", "104", "丁", "女", make_id_number(6), "", ""],  # unknown building
        ["B1", "105", "戊", "男", make_id_number(7), "", ""],
        ["B1", "106", "己", "男", make_id_number(7), "", ""],  # duplicate in the file
        ["B2", "107", "庚", "男", "510603198001011237", "", ""],  # registered already as 张三明 in B1
        ["B1", "108", "辛", "未知", make_id_number(8), "", ""],  # gender
        ["B1", "109", "", "男", make_id_number(9), "", ""],  # no name
        ["B1", "110", "壬", "男", make_id_number(10), "", "不存在的标签"],
        ["B1", "111", "癸", "男", make_id_number(11), "13900001111", ""],  # a good row among them
    )
    before = Resident.objects.count()
    report = run("residents", bad)
    assert not report.ok
    assert {(e.row, e.column) for e in report.errors} == {
        (2, "身份证号"), (3, "身份证号"), (4, "手机号"), (5, "楼栋编码"), (7, "身份证号"), (8, "身份证号"),
        (9, "性别"), (10, "姓名"), (11, "标签"),
    }  # fmt: skip
    assert "第 6 行" in next(e.message for e in report.errors if e.row == 7)
    assert "张三明" in next(e.message for e in report.errors if e.row == 8)
    assert Resident.objects.count() == before  # not even the good rows


def test_importing_the_same_residents_twice_changes_nothing(city):
    data = residents(["B1", "1单元101", "张三明", "男", "510603198001011237", "13812345678", "党员"])
    assert run("residents", data).created == 1
    again = run("residents", data)
    assert again.ok and again.created == 0 and again.unchanged == 1
    assert Resident.objects.count() == 1 and Household.objects.count() == 1


def test_csv_in_utf8_and_in_gbk_and_a_missing_column(city):
    rows = [RESIDENT_HEADER, ["B1", "101", "张三明", "男", "510603198001011237", "", ""]]
    assert run("residents", csv_bytes(rows), "居民.csv").created == 1
    rows = [RESIDENT_HEADER, ["B1", "102", "李四", "男", make_id_number(2), "", ""]]
    assert run("residents", csv_bytes(rows, "gbk"), "居民.csv").created == 1
    report = run("residents", csv_bytes([["楼栋编码", "房号", "姓名"], ["B1", "1", "x"]]), "居民.csv")
    assert not report.ok and "缺少列" in report.errors[0].message


def test_a_file_that_is_not_a_spreadsheet_is_refused(city):
    with pytest.raises(imports.FileProblem):
        run("residents", b"not a zip", "居民.xlsx")
    with pytest.raises(imports.FileProblem):
        run("residents", b"x", "居民.doc")


def test_a_large_generated_file_loads_whole(city):
    rows = [
        [
            "B1" if i % 2 else "B2",
            f"{i // 3 + 1}号",
            f"居民{i}",
            "男" if i % 2 else "女",
            make_id_number(i, birth=f"{1950 + i // 1000}0101"),
            "",
            "",
        ]
        for i in range(3000)
    ]
    report = run("residents", residents(*rows))
    assert report.ok and report.created == 3000
    assert Resident.objects.count() == 3000 and Household.objects.count() == 2000


# --- Party members and grid workers --------------------------------------------------------------------


def test_party_members_are_tagged_and_a_second_import_changes_nothing(city, resident_2_record):
    header = ["身份证号", "姓名"]
    data = xlsx([header, [resident_2_record.id_number, "李四"]])
    assert run("party_members", data).created == 1
    assert resident_2_record.tags.filter(code=ResidentTag.PARTY_MEMBER).exists()
    assert run("party_members", data).unchanged == 1
    wrong = run("party_members", xlsx([header, [resident_2_record.id_number, "李五"], [make_id_number(77), "无此人"]]))
    assert [(e.row, e.column) for e in wrong.errors] == [(2, "姓名"), (3, "身份证号")]


def test_grid_workers_get_a_login_and_the_position(city, admin_user):
    header = ["网格编码", "姓名", "手机号", "用户名", "类型"]
    data = xlsx([header, ["G2", "赵网格", "13900002222", "", "兼职"], ["G3", "钱网格", "13900003333", "qian", ""]])
    report = run("grid_workers", data, by=admin_user)
    assert report.ok, report.errors
    zhao = Position.objects.get(user__username="gw_G2")
    assert (zhao.role, zhao.unit, zhao.grid_worker_kind) == (Role.GRID_WORKER, city.g2, "part_time")
    assert not zhao.user.has_usable_password()
    assert run("grid_workers", data, by=admin_user).unchanged == 2
    bad = run("grid_workers", xlsx([header, ["G9", "x", "139", "", "临时"]]), by=admin_user)
    assert {e.column for e in bad.errors} == {"网格编码", "手机号", "类型"}


# --- Templates, the command and the admin -----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(imports.KINDS))
def test_each_template_has_the_columns_and_an_example_row(kind):
    sheet = load_workbook(io.BytesIO(imports.template(kind))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == imports.KINDS[kind].columns and len(rows) == 2


def test_the_command_reports_every_bad_row_and_fails(city, tmp_path, capsys):
    path = tmp_path / "居民.xlsx"
    path.write_bytes(
        residents(["B1", "1", "甲", "男", "1", "", ""], ["B9", "2", "乙", "男", make_id_number(4), "", ""])
    )
    with pytest.raises(CommandError, match="未导入任何数据"):
        call_command("import_people", "residents", str(path))
    out = capsys.readouterr().out
    assert "第 2 行 [身份证号]" in out and "第 3 行 [楼栋编码]" in out
    path.write_bytes(residents(["B1", "1", "甲", "男", make_id_number(4), "", ""]))
    call_command("import_people", "residents", str(path))
    assert "新增 1" in capsys.readouterr().out


def test_the_admin_imports_a_file_and_shows_the_bad_rows(client, admin_user, city, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    page = client.get("/admin/governance/resident/import/")
    assert page.status_code == 200 and "下载模板" in page.content.decode()
    template = client.get("/admin/governance/resident/import/template/residents/")
    assert template["Content-Type"].startswith("application/vnd.openxmlformats")
    bad = io.BytesIO(residents(["B1", "1", "甲", "男", "123", "", ""]))
    bad.name = "居民.xlsx"
    with django_capture_on_commit_callbacks(execute=True):  # the worker's run (eager here) follows the commit
        response = client.post("/admin/governance/resident/import/", {"kind": "residents", "file": bad})
    response = client.get(response["Location"])
    page = response.content.decode()
    assert response.status_code == 200 and "第 2 行" in page and "未导入任何数据" in page
    assert ImportJob.objects.get().state == "failed" and not Resident.objects.filter(name="甲").exists()
    good = io.BytesIO(residents(["B1", "1", "甲", "男", make_id_number(4), "", ""]))
    good.name = "居民.xlsx"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/governance/resident/import/", {"kind": "residents", "file": good})
    response = client.get(response["Location"])
    assert "导入完成" in response.content.decode() and Resident.objects.filter(name="甲").exists()
    job = ImportJob.objects.order_by("-pk").first()
    assert (job.state, job.created, job.rows_checked, job.percent) == ("done", 1, 1, 100)


def test_a_running_import_shows_its_progress_and_refreshes(client, admin_user, city):
    job = ImportJob.objects.create(
        kind="residents",
        filename="大文件.xlsx",
        created_by=admin_user,
        state="running",
        rows_total=100000,
        rows_checked=25000,
    )
    client.force_login(admin_user)
    page = client.get(f"/admin/governance/resident/import/{job.pk}/").content.decode()
    assert 'http-equiv="refresh"' in page and 'value="25"' in page and "25000 / 100000" in page


def test_a_redelivered_import_message_changes_nothing(city, admin_user):
    from django.core.files.base import ContentFile

    job = ImportJob(kind="residents", filename="居民.xlsx", created_by=admin_user)
    job.file.save("x.xlsx", ContentFile(residents(["B1", "1", "甲", "男", make_id_number(4), "", ""])))
    imports.job_run(job.pk)
    imports.job_run(job.pk)  # the worker died after finishing, the broker delivered the message again
    assert Resident.objects.filter(name="甲").count() == 1


def test_community_staff_cannot_open_the_import(client, community_staff):
    client.force_login(community_staff)
    assert client.get("/admin/governance/resident/import/").status_code in (302, 403)
