"""Checks of Chinese identity numbers and phone numbers, shared by the API, the admin and the importers."""

import re
from datetime import date

from django.utils.translation import gettext as _

from .errors import InvalidInput

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")
_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE_RE = re.compile(r"^0\d{2,3}-?\d{7,8}$")


def id_number_check_digit(first17: str) -> str:
    """The GB 11643-1999 check character for the first 17 digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def id_number_problem(value: str) -> str | None:
    """Why `value` is not a valid 18-digit resident ID number, or None when it is."""
    if not _ID_RE.match(value):
        return _("身份证号应为18位，前17位为数字，最后一位为数字或X。")
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return _("身份证号中的出生日期无效。")
    if id_number_check_digit(value[:17]) != value[17]:
        return _("身份证号校验位不正确，请核对。")
    return None


def validate_id_number(value: str, *, field: str | None = None) -> None:
    problem = id_number_problem(value)
    if problem:
        raise InvalidInput(problem, field=field)


def validate_phone(value: str, *, field: str | None = None) -> None:
    if not (_MOBILE_RE.match(value) or _LANDLINE_RE.match(value)):
        raise InvalidInput(_("电话号码格式不正确：手机号为11位，座机如 0838-1234567。"), field=field)


MAX_ID = 2**53


def parse_id(value, *, field: str):
    """An id from a query parameter or form value: None when empty; a readable 400 for anything that is not
    a plain (ASCII) whole number in range ("²".isdigit() is true, and a 30-digit number overflows SQLite)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
        raise InvalidInput(_("「%(field)s」应为编号（正整数）。") % {"field": field}, field=field)
    return int(text)
