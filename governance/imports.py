"""Import from Excel (.xlsx) or .csv, with Chinese column headers: the hierarchy, households and residents,
party members, grid workers.

Every row is checked first (ID number and its check digit, phone format, unknown unit, a duplicate ID number in
the file or a different person already registered with it, …) and the report names every bad row and column.
Nothing is written unless every row is good; then all of it is written in one transaction. A row that is
already in the database as it says is left alone, so importing the same file twice changes nothing.

    python manage.py import_people residents 居民.xlsx      (and hierarchy, party_members, grid_workers)

The admin offers the same under 居民 → 导入 with a downloadable template of each kind."""

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import services
from .models import (
    GridWorkerKind,
    Household,
    ImportJob,
    ImportState,
    Level,
    Position,
    Resident,
    ResidentTag,
    Role,
    Unit,
    User,
)
from .selectors import STEP
from .validators import _LANDLINE_RE, _MOBILE_RE, id_number_problem


@dataclass
class RowError:
    row: int  # as the spreadsheet numbers it: the header is row 1
    column: str
    message: str


@dataclass
class Report:
    kind: str
    rows: int = 0
    created: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, row: int, column: str, message: str):
        """One message per cell: the first found (an empty required cell is not also "malformed")."""
        if not any(e.row == row and e.column == column for e in self.errors[-20:]):
            self.errors.append(RowError(row, column, str(message)))


# --- Reading -----------------------------------------------------------------------------------------------


class FileProblem(Exception):
    pass


def read_table(data: bytes, filename: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the first sheet of an .xlsx or of a .csv (UTF-8, with or without BOM, or GBK as Excel
    saves it in China). Cells are strings, trimmed; empty trailing rows dropped."""
    name = filename.lower()
    if name.endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged or renamed file: any of openpyxl's errors
            raise FileProblem(_("无法读取该 Excel 文件：%(error)s") % {"error": type(error).__name__}) from None
        sheet = book.worksheets[0]
        table = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        book.close()
    elif name.endswith(".csv"):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise FileProblem(_("无法识别 CSV 文件的编码（请存为 UTF-8）。"))
        table = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))]
    else:
        raise FileProblem(_("只支持 .xlsx 和 .csv 文件。"))
    while table and not any(table[-1]):
        table.pop()
    if not table:
        raise FileProblem(_("文件是空的。"))
    return table[0], table[1:]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel keeps room numbers and phones typed as numbers as floats
    if isinstance(value, date):
        return value.isoformat()[:10]
    return str(value).strip()


# --- The kinds -----------------------------------------------------------------------------------------------


class Importer:
    kind = ""
    label = ""
    columns: list[str] = []  # all the columns; those in `required` must have a value in every row
    required: list[str] = []
    example: list[str] = []

    def __init__(self, by, progress=None):
        self.by = by
        self.progress = progress or (lambda checked, total: None)

    def run(self, headers, rows) -> Report:
        report = Report(self.kind, rows=len(rows))
        missing = [c for c in self.required if c not in headers]
        if missing:
            report.add(
                1, "、".join(missing), _("缺少列：%(columns)s。请使用导入模板。") % {"columns": "、".join(missing)}
            )
            return report
        index = {h: i for i, h in enumerate(headers)}
        records = []
        self.progress(0, len(rows))
        for number, row in enumerate(rows, start=2):
            if not any(row):
                continue
            values = {c: (row[index[c]] if c in index and index[c] < len(row) else "") for c in self.columns}
            for column in self.required:
                if not values[column]:
                    report.add(number, column, _("不能为空。"))
            records.append((number, values))
        self.check(records, report)  # every row, even those with empty cells: the report names every problem
        self.progress(len(rows), len(rows))
        if report.ok:
            with transaction.atomic():
                self.write(report)
        return report

    def check(self, records, report):  # pragma: no cover - interface
        raise NotImplementedError

    def write(self, report):  # pragma: no cover - interface
        raise NotImplementedError


def _phone_problem(value: str) -> str | None:
    if value and not (_MOBILE_RE.match(value) or _LANDLINE_RE.match(value)):
        return _("电话号码格式不正确：手机号为11位，座机如 0838-1234567。")
    return None


SIX = Decimal("0.000001")


class HierarchyImport(Importer):
    """One row per building, with the street, community and grid above it (names and codes)."""

    kind = "hierarchy"
    label = gettext_lazy("组织架构（街道、社区、网格、楼栋）")
    columns = [
        "街道", "街道编码", "社区", "社区编码", "网格", "网格编码", "楼栋", "楼栋编码", "小区名称", "楼栋地址", "纬度", "经度",
    ]  # fmt: skip
    required = columns[:8]
    example = [
        "幸福街道", "XF", "桂花社区", "XF01", "桂花社区第1网格", "XF0101", "1栋", "XF010101", "桂花苑", "桂花路1号",
        "30.657000", "104.066000",
    ]  # fmt: skip
    LEVELS = [(Level.STREET, "街道"), (Level.COMMUNITY, "社区"), (Level.GRID, "网格"), (Level.BUILDING, "楼栋")]

    def check(self, records, report):
        codes = [values[f"{label}编码"] for _n, values in records for _level, label in self.LEVELS]
        existing = {u.code: u for u in Unit.objects.filter(code__in=set(codes))}
        parent_paths = [u.path[:-STEP] for u in existing.values() if u.depth > 1]
        parents_of = {u.path: u for u in Unit.objects.filter(path__in=parent_paths)} if parent_paths else {}
        seen: dict[str, tuple] = {}
        self.plan = []  # (level, code, name, parent_code, details), parents first, each once
        for number, values in records:
            parent_code = None
            for level, label in self.LEVELS:
                code, name = values[f"{label}编码"], values[label]
                details = {}
                if level == Level.GRID and values["小区名称"]:
                    details["compound_name"] = values["小区名称"]
                if level == Level.BUILDING and values["楼栋地址"]:
                    details["address"] = values["楼栋地址"]
                if level == Level.BUILDING and (values["纬度"] or values["经度"]):
                    # The building's place (WGS-84): Open311 reports by coordinates are matched to it.
                    try:
                        lat, long = Decimal(values["纬度"]), Decimal(values["经度"])
                        if not (-90 <= lat <= 90 and -180 <= long <= 180):
                            raise InvalidOperation
                    except InvalidOperation:
                        report.add(number, "纬度", _("纬度和经度须同时填写，且为有效的数字。"))
                    else:
                        details["latitude"], details["longitude"] = lat.quantize(SIX), long.quantize(SIX)
                key = (level, name, parent_code)
                if code in seen and seen[code][:3] != key:
                    report.add(number, f"{label}编码", _("编码 %(code)s 在文件中指向不同的单元。") % {"code": code})
                elif code in existing:
                    unit = existing[code]
                    parent = parents_of.get(unit.path[:-STEP]) if unit.depth > 1 else None
                    if unit.level != level or unit.name != name or (parent.code if parent else None) != parent_code:
                        report.add(
                            number,
                            f"{label}编码",
                            _("编码 %(code)s 已用于「%(name)s」。") % {"code": code, "name": unit.name},
                        )
                elif code not in seen:
                    self.plan.append((level, code, name, parent_code, details))
                seen.setdefault(code, (*key, details))
                parent_code = code

    def write(self, report):
        made: dict[str, Unit] = {}
        for _level, code, name, parent_code, details in self.plan:
            parent = None
            if parent_code:
                parent = made.get(parent_code) or Unit.objects.get(code=parent_code)
            made[code] = services.unit_create(by=self.by, name=name, code=code, parent=parent, **details)
            report.created += 1
        report.unchanged = report.rows - len({p[1] for p in self.plan if p[0] == Level.BUILDING})


class ResidentImport(Importer):
    """One row per resident: the building (by its code), the room, and the person."""

    kind = "residents"
    label = gettext_lazy("住户和居民")
    columns = ["楼栋编码", "房号", "姓名", "性别", "身份证号", "手机号", "标签"]
    required = ["楼栋编码", "房号", "姓名", "性别", "身份证号"]
    example = ["XF010101", "1单元101", "张三明", "男", "510603198001011237", "13812345678", "党员、志愿者"]
    GENDERS = {"男": "male", "女": "female", "male": "male", "female": "female"}

    def check(self, records, report):
        buildings = {
            u.code: u for u in Unit.objects.filter(level=Level.BUILDING, code__in={v["楼栋编码"] for _n, v in records})
        }
        tags = {t.name: t for t in ResidentTag.objects.all()} | {t.code: t for t in ResidentTag.objects.all()}
        ids = [v["身份证号"].upper() for _n, v in records]
        registered = {}
        for start in range(0, len(ids), 5000):
            for r in Resident.objects.filter(id_number__in=ids[start : start + 5000]).select_related(
                "household__building"
            ):
                registered[r.id_number] = r
        seen: dict[str, int] = {}
        self.rows = []
        for checked, (number, v) in enumerate(records, start=1):
            if checked % 5000 == 0:
                self.progress(checked, len(records))
            building = buildings.get(v["楼栋编码"])
            if building is None:
                report.add(number, "楼栋编码", _("没有编码为 %(code)s 的楼栋。") % {"code": v["楼栋编码"]})
            gender = self.GENDERS.get(v["性别"])
            if gender is None:
                report.add(number, "性别", _("性别应为“男”或“女”。"))
            id_number = v["身份证号"].upper()
            problem = id_number_problem(id_number)
            if problem:
                report.add(number, "身份证号", problem)
            elif id_number in seen:
                report.add(number, "身份证号", _("与第 %(row)d 行的身份证号重复。") % {"row": seen[id_number]})
            seen.setdefault(id_number, number)
            problem = _phone_problem(v["手机号"])
            if problem:
                report.add(number, "手机号", problem)
            wanted = [t for t in v["标签"].replace("，", "、").replace(",", "、").split("、") if t.strip()]
            unknown = [t for t in wanted if t.strip() not in tags]
            if unknown:
                report.add(number, "标签", _("没有这个标签：%(tag)s。") % {"tag": unknown[0]})
            existing = registered.get(id_number)
            if existing is not None and building is not None:
                same = (
                    existing.household.building_id == building.pk
                    and existing.household.room == v["房号"]
                    and existing.name == v["姓名"]
                )
                if not same:
                    place = f"{existing.household.building.name} {existing.household.room}"
                    report.add(
                        number,
                        "身份证号",
                        _("该身份证号已登记为「%(name)s」（%(place)s）。") % {"name": existing.name, "place": place},
                    )
                continue
            if building is not None and not problem:
                self.rows.append(
                    (building, v, gender, id_number, [tags[t.strip()] for t in wanted if t.strip() in tags])
                )
        report.unchanged = sum(1 for _n, v in records if v["身份证号"].upper() in registered)

    def write(self, report):
        keys = {(b.pk, v["房号"]) for b, v, *_rest in self.rows}
        households = {
            (h.building_id, h.room): h
            for h in Household.objects.filter(building_id__in={k[0] for k in keys}, room__in={k[1] for k in keys})
        }
        new = [Household(building_id=b, room=room) for b, room in sorted(keys - set(households))]
        for h in Household.objects.bulk_create(new, batch_size=5000):
            households[(h.building_id, h.room)] = h
        people = [
            Resident(
                household=households[(b.pk, v["房号"])],
                name=v["姓名"],
                gender=gender,
                id_number=id_number,
                phone=v["手机号"],
                birth_date=date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14])),
            )
            for b, v, gender, id_number, _tags in self.rows
        ]
        Resident.objects.bulk_create(people, batch_size=5000)
        Through = Resident.tags.through
        links = [
            Through(resident_id=person.pk, residenttag_id=tag.pk)
            for person, (*_rest, tags) in zip(people, self.rows, strict=True)
            for tag in tags
        ]
        Through.objects.bulk_create(links, batch_size=5000)
        report.created = len(people)


class PartyMemberImport(Importer):
    """One row per party member, found by ID number among the registered residents: they get the 党员 tag."""

    kind = "party_members"
    label = gettext_lazy("党员")
    columns = ["身份证号", "姓名"]
    required = columns
    example = ["510603198001011237", "张三明"]

    def check(self, records, report):
        ids = {v["身份证号"].upper() for _n, v in records}
        residents = {r.id_number: r for r in Resident.objects.filter(id_number__in=ids)}
        self.tag = ResidentTag.objects.get(code=ResidentTag.PARTY_MEMBER)
        tagged = set(
            Resident.tags.through.objects.filter(residenttag=self.tag, resident__id_number__in=ids).values_list(
                "resident_id", flat=True
            )
        )
        self.todo = []
        for number, v in records:
            id_number = v["身份证号"].upper()
            problem = id_number_problem(id_number)
            if problem:
                report.add(number, "身份证号", problem)
                continue
            resident = residents.get(id_number)
            if resident is None:
                report.add(number, "身份证号", _("没有登记该身份证号的居民（请先导入居民）。"))
            elif resident.name != v["姓名"]:
                report.add(number, "姓名", _("姓名与登记的「%(name)s」不符。") % {"name": resident.name})
            elif resident.pk in tagged:
                report.unchanged += 1
            else:
                self.todo.append(resident.pk)
                tagged.add(resident.pk)

    def write(self, report):
        Through = Resident.tags.through
        Through.objects.bulk_create([Through(resident_id=pk, residenttag_id=self.tag.pk) for pk in self.todo])
        report.created = len(self.todo)


class GridWorkerImport(Importer):
    """One row per grid worker: a login (the username, or gw_<grid code>) and the grid-worker position."""

    kind = "grid_workers"
    label = gettext_lazy("网格员")
    columns = ["网格编码", "姓名", "手机号", "用户名", "类型"]
    required = ["网格编码", "姓名", "手机号"]
    example = ["XF0101", "王网格", "13900001111", "wang_wg", "专职"]
    KINDS = {"专职": GridWorkerKind.FULL_TIME, "兼职": GridWorkerKind.PART_TIME, "": GridWorkerKind.FULL_TIME}

    def check(self, records, report):
        grids = {
            u.code: u for u in Unit.objects.filter(level=Level.GRID, code__in={v["网格编码"] for _n, v in records})
        }
        names = {v["用户名"] or f"gw_{v['网格编码']}" for _n, v in records}
        users = {u.username: u for u in User.objects.filter(username__in=names)}
        held = set(
            Position.objects.filter(user__username__in=names, role=Role.GRID_WORKER).values_list(
                "user__username", "unit_id"
            )
        )
        seen = {}
        self.todo = []
        for number, v in records:
            grid = grids.get(v["网格编码"])
            if grid is None:
                report.add(number, "网格编码", _("没有编码为 %(code)s 的网格。") % {"code": v["网格编码"]})
            problem = _phone_problem(v["手机号"])
            if problem:
                report.add(number, "手机号", problem)
            kind = self.KINDS.get(v["类型"])
            if kind is None:
                report.add(number, "类型", _("类型应为“专职”或“兼职”。"))
            username = v["用户名"] or f"gw_{v['网格编码']}"
            if username in seen:
                report.add(number, "用户名", _("与第 %(row)d 行的用户名重复。") % {"row": seen[username]})
            seen.setdefault(username, number)
            if grid is None:
                continue
            if (username, grid.pk) in held:
                report.unchanged += 1
            elif username in users and users[username].name != v["姓名"]:
                report.add(
                    number,
                    "用户名",
                    _("用户名 %(u)s 已被「%(name)s」使用。") % {"u": username, "name": users[username].name},
                )
            else:
                self.todo.append((username, v, grid, kind))

    def write(self, report):
        for username, v, grid, kind in self.todo:
            user, created = User.objects.get_or_create(
                username=username, defaults={"name": v["姓名"], "phone": v["手机号"]}
            )
            if created:
                user.set_unusable_password()  # an administrator sets the first password
                user.save(update_fields=["password"])
            services.position_grant(by=self.by, user=user, role=Role.GRID_WORKER, unit=grid, grid_worker_kind=kind)
            report.created += 1


KINDS = {cls.kind: cls for cls in (HierarchyImport, ResidentImport, PartyMemberImport, GridWorkerImport)}


def run_import(kind: str, data: bytes, filename: str, *, by=None, progress=None) -> Report:
    if by is not None:
        from .selectors import check_can_edit_hierarchy

        check_can_edit_hierarchy(by)
    headers, rows = read_table(data, filename)
    return KINDS[kind](by, progress=progress).run(headers, rows)


def job_submit(*, by, kind: str, upload) -> ImportJob:
    """Keep the file and queue its import (a worker runs it; without a broker, right after this commits)."""
    from django.core.files.base import ContentFile

    from .selectors import check_can_edit_hierarchy
    from .tasks import run_import_job

    check_can_edit_hierarchy(by)
    job = ImportJob(kind=kind, filename=upload.name[:200], created_by=by)
    job.file.save(f"import.{upload.name.rsplit('.', 1)[-1][:5]}", ContentFile(upload.read()), save=False)
    job.save()
    transaction.on_commit(lambda: run_import_job.delay(job.pk))
    return job


def job_run(job_id: int) -> None:
    """The worker's part: read, check and (if every row is good) load, noting the progress on the job."""
    from django.utils import timezone

    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    if job.state not in (ImportState.QUEUED, ImportState.RUNNING):
        return  # already done: a redelivered message changes nothing

    def progress(checked, total):
        ImportJob.objects.filter(pk=job_id).update(state=ImportState.RUNNING, rows_checked=checked, rows_total=total)

    try:
        with job.file.open("rb") as handle:
            report = run_import(job.kind, handle.read(), job.filename, by=job.created_by, progress=progress)
    except FileProblem as problem:
        report = Report(job.kind)
        report.add(1, "", str(problem))
    ImportJob.objects.filter(pk=job_id).update(
        state=ImportState.DONE if report.ok else ImportState.FAILED,
        rows_total=report.rows,
        rows_checked=report.rows,
        created=report.created,
        unchanged=report.unchanged,
        errors=[{"row": e.row, "column": e.column, "message": e.message} for e in report.errors[:1000]],
        finished_at=timezone.now(),
    )


def template(kind: str) -> bytes:
    """The import template: the header row and one example row, as .xlsx."""
    from openpyxl import Workbook

    importer = KINDS[kind]
    book = Workbook()
    sheet = book.active
    sheet.title = str(importer.label)[:31]
    sheet.append(importer.columns)
    sheet.append(importer.example)
    for i, column in enumerate(importer.columns, start=1):
        sheet.column_dimensions[sheet.cell(1, i).column_letter].width = max(12, len(column) * 3)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
