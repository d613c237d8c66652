"""Export to Excel (.xlsx) with Chinese headers, from the list and statistics pages with their filters applied
(`?export=xlsx` on the page's own address): the monthly reports (报表) staff hand in.

Personal data in an export is masked unless the role may see it whole (the same rule as on the pages), and
every export is logged in the personal-data access log (who, when, what, which records, which page with which
filters), whatever it contains."""

import io
from urllib.parse import quote

from django.http import HttpResponse
from django.utils import timezone

from . import privacy

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# An export is made while the browser waits (a web request has 30 s): at most this many rows, about 5 s of
# work; beyond it the sheet says so in its last row, and the page's filters narrow the list.
MAX_ROWS = 10_000


def capped(rows: list, total_known_more: bool) -> list:
    if total_known_more:
        rows.append([f"仅导出前 {MAX_ROWS} 条，请用页面上的筛选条件缩小范围后分批导出。"])
    return rows


# Column headers of the figures of the reports, in the order of their columns.
CASE_FIGURES = {
    "filed": "上报数",
    "completed": "办结数",
    "completion_rate": "办结率",
    "on_time": "按期办结数",
    "on_time_rate": "按期办结率",
    "overdue_now": "当前超期",
    "rated": "已评价",
    "satisfied": "满意数",
    "satisfaction_rate": "满意率",
    "unrated": "未评价",
    "rework_rate": "返工率",
    "send_back_rate": "退回率",
    "avg_sign_hours": "平均签收（小时）",
    "avg_handle_hours": "平均办理（小时）",
    "dispatched": "派单数",
    "handled": "办结数",
    "rank": "排名",
    "score": "得分",
}
LETTER_FIGURES = {
    "received": "来信数",
    "mailbox": "书记信箱",
    "speak": "居民说事",
    "rejected": "不予受理",
    "accepted_on_time": "按时受理",
    "accept_on_time_rate": "按时受理率",
    "replied_on_time": "按时答复",
    "reply_on_time_rate": "按时答复率",
    "replied": "已答复",
    "rated": "已评价",
    "satisfied": "满意数",
    "satisfaction_rate": "满意率",
    "rating_avg": "平均星级",
    "unrated": "未评价",
    "published": "已公开",
    "overdue_now": "当前超期",
}


def _value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if hasattr(value, "tzinfo") and value.tzinfo is not None:
        return timezone.localtime(value).replace(tzinfo=None)  # Excel has no time zones: Beijing time
    if isinstance(value, dict):
        return value.get("name", "")
    return value


def figure_rows(rows, name_key: str, name_header: str, figures=CASE_FIGURES):
    """(headers, rows) for a list of figure dicts (units or departments), the figures in the order given."""
    keys = [k for k in figures if rows and k in rows[0]]
    headers = [name_header, *(figures[k] for k in keys)]
    return headers, [[_value(r.get(name_key)), *(_value(r.get(k)) for k in keys)] for r in rows]


def workbook(sheets) -> bytes:
    """`sheets`: (title, headers, rows) each; write-only, so a hundred thousand rows stay small in memory."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    for title, headers, rows in sheets:
        sheet = book.create_sheet(title=str(title)[:31])
        bold = []
        for header in headers:
            cell = WriteOnlyCell(sheet, value=str(header))
            cell.font = Font(bold=True)
            bold.append(cell)
        sheet.append(bold)
        for row in rows:
            sheet.append([_value(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def respond(request, *, filename: str, sheets, what: str, object_ids=(), personal_fields=()) -> HttpResponse:
    """The workbook as a download, and the export's line in the access log."""
    sheets = [(title, headers, list(rows)) for title, headers, rows in sheets]
    privacy.log_access(
        request.user,
        what=what,
        object_ids=list(object_ids)[:10_000],
        fields=list(personal_fields),
        via="export",
        request=request,
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = HttpResponse(workbook(sheets), content_type=XLSX)
    response["Content-Disposition"] = (
        f"attachment; filename=\"export-{stamp}.xlsx\"; filename*=UTF-8''{quote(f'{filename}-{stamp}.xlsx')}"
    )
    response["Cache-Control"] = "private, no-store"
    return response


def wants_export(request) -> bool:
    return request.GET.get("export") == "xlsx"
