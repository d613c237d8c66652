"""Redaction of personal data from text that is published: letters, and cases shown through Open311.

`redact(text, names=…)` removes, from Chinese (or mixed) text: e-mail addresses, ID numbers (18 digits or 17 and
an X; the old 15-digit ones), mobile and landline phone numbers, house numbers (3栋2单元401室, 5号楼1202,
12幢3-2, 2-3-401, A座1203 …) and the names given (the writer's own). Each is replaced by `MASK`. It returns the
redacted text and the list of what was removed, so the secretary can review it before publishing (and edit the
result). It errs on the side of removing: a date like 2026-11-22 or an amount like 300元 stays, but a floor
number (3楼) goes.
"""

import re
from dataclasses import dataclass

MASK = "***"

# Digits: ASCII and full-width (１２３), since phone keyboards give both.
D = r"[0-9０-９]"
NOT_DIGIT_BEFORE = r"(?<![0-9０-９])"
NOT_DIGIT_AFTER = r"(?![0-9０-９])"

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+\s*[@＠]\s*[A-Za-z0-9\-]+(?:\s*[.。]\s*[A-Za-z0-9\-]+)+")
ID_NUMBER = re.compile(NOT_DIGIT_BEFORE + rf"(?:{D}{{17}}[0-9０-９Xx×]|{D}{{15}})" + r"(?![0-9０-９A-Za-z])")
# Mobile numbers, with an optional +86 and the spaces or dashes people type (138 1234 5678, 138-1234-5678).
MOBILE = re.compile(
    NOT_DIGIT_BEFORE + rf"(?:(?:\+|＋)?86[\s\-]?)?1[3-9０-９]{D}(?:[\s\-]?{D}{{4}}){{2}}" + NOT_DIGIT_AFTER
)
# Landlines: area code 0xx(x), in brackets or followed by a dash or a space, then 7–8 digits (0838-1234567).
LANDLINE = re.compile(
    NOT_DIGIT_BEFORE
    + rf"(?:[(（]0{D}{{2,3}}[)）]\s?|0{D}{{2,3}}[\s\-]?){D}{{7,8}}(?:\s*(?:转|-|ext\.?)\s*{D}{{1,5}})?"
    + NOT_DIGIT_AFTER
)
# One part of a house address: a number (Arabic, full-width, Chinese, or a block letter) and its unit word.
_NUMBER = rf"(?:[A-Za-z]?{D}+(?:[\-－]{D}+)*|[A-Za-z]|[一二三四五六七八九十百零〇两]+)"
_WORD = r"(?:号楼|号院|栋|幢|座|单元|层|楼|室|号|户|弄|门)"
# Two or more parts (3栋2单元401室, 5号楼1202, 1单元101), or one part ending in 室/户/号楼/栋/幢/单元 (401室),
# optionally followed by a bare room number (…2单元401). "3月5号" is a date: a 号 right after 月 is left alone.
HOUSE = re.compile(
    rf"(?<![月0-9０-９])(?:{_NUMBER}\s*{_WORD}\s*){{2,}}(?:{D}{{2,4}}(?![0-9０-９年月日元%％]))?"
    rf"|(?<![月0-9０-９]){_NUMBER}\s*(?:号楼|栋|幢|单元|室|户)(?:\s*{D}{{2,4}}(?![0-9０-９年月日元%％]))?"
)
# The number of a house on a road or lane (长江东路123号, 文庙巷8号院).
ROAD_NUMBER = re.compile(rf"(?<=[路街巷道弄里])\s*{D}+\s*号(?:院|楼)?")
# A dashed block-unit-room number (2-3-401, 12-1-1202), never a date (its first part has 1–3 digits).
HOUSE_DASHED = re.compile(NOT_DIGIT_BEFORE + rf"{D}{{1,3}}[\-－—]{D}{{1,2}}[\-－—]{D}{{3,4}}" + NOT_DIGIT_AFTER)

# Order matters: e-mails before numbers (a QQ mailbox is digits), ID numbers before phones (an ID number
# contains eleven digits that look like a mobile number).
PATTERNS = [
    ("email", EMAIL),
    ("id_number", ID_NUMBER),
    ("mobile", MOBILE),
    ("landline", LANDLINE),
    ("house", ROAD_NUMBER),
    ("house", HOUSE_DASHED),
    ("house", HOUSE),
]


@dataclass(frozen=True)
class Hit:
    kind: str
    text: str


def redact(text: str, *, names=()) -> tuple[str, list[Hit]]:
    """The text with personal data replaced by `MASK`, and what was replaced, in order of kind."""
    text = text or ""
    hits: list[Hit] = []

    def replace(kind):
        def sub(match):
            found = match.group(0).strip()
            if not found or found == MASK:
                return match.group(0)
            hits.append(Hit(kind, found))
            return MASK

        return sub

    for kind, pattern in PATTERNS:
        text = pattern.sub(replace(kind), text)
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True):
        if name in text:
            hits.append(Hit("name", name))
            text = text.replace(name, MASK)
    return text, hits
