"""Benchmark: importing 100,000 residents from one .xlsx into the city, then the same file again.

Needs the city of `seed_demo --scale city`:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python bench/import_city.py

It writes a workbook of BENCH_IMPORT_ROWS (default 100,000) residents in 40,000 new households over 2,000 of the
city's buildings (ID numbers with a region code the demo city does not use, so none is registered yet), then
times `governance.imports.run_import` on it — reading the sheet, checking every row, writing in one
transaction — and a second run of the same file, which must change nothing. The residents it added are
deleted at the end (and before, if an earlier run left them), so the run can be repeated.
"""

import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from openpyxl import Workbook  # noqa: E402

from governance import imports  # noqa: E402
from governance.models import Household, Level, Resident, Unit  # noqa: E402
from governance.validators import id_number_check_digit  # noqa: E402

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
REGION = "659001"  # not one of the demo city's regions
ROOM_PREFIX = "导入"


def id_number(i: int) -> str:
    year, rest = 1940 + i // 36500 % 60, i % 36500
    first17 = f"{REGION}{year:04d}{rest // 100 % 12 + 1:02d}{rest % 28 + 1:02d}{i % 1000:03d}"
    return first17 + id_number_check_digit(first17)


def clean():
    Resident.tags.through.objects.filter(resident__id_number__startswith=REGION).delete()
    Resident.objects.filter(id_number__startswith=REGION).delete()
    Household.objects.filter(room__startswith=ROOM_PREFIX).delete()


def workbook(buildings) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(imports.ResidentImport.columns)
    seen = set()
    for i in range(ROWS):
        number = id_number(i)
        assert number not in seen
        seen.add(number)
        household = i * 2 // 5  # 2.5 residents per household
        sheet.append(
            [
                buildings[household % len(buildings)],
                f"{ROOM_PREFIX}{household // len(buildings) + 1}-{household}",
                f"居民{i}",
                "男" if i % 2 else "女",
                number,
                f"139{i:08d}",
                "志愿者" if i % 10 == 0 else "",
            ]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def main():
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    clean()
    buildings = list(Unit.objects.filter(level=Level.BUILDING).order_by("path").values_list("code", flat=True)[:2000])
    start = time.perf_counter()
    data = workbook(buildings)
    print(f"workbook: {ROWS:,} rows, {len(data) / 1e6:.1f} MB, written in {time.perf_counter() - start:.1f} s")
    try:
        start = time.perf_counter()
        report = imports.run_import("residents", data, "bench.xlsx")
        first = time.perf_counter() - start
        assert report.ok, report.errors[:5]
        print(f"first import: {report.created:,} residents created in {first:.1f} s")
        start = time.perf_counter()
        again = imports.run_import("residents", data, "bench.xlsx")
        second = time.perf_counter() - start
        assert again.ok and again.created == 0, (again.created, again.errors[:3])
        print(f"same file again: {again.unchanged:,} unchanged, nothing written, in {second:.1f} s")
    finally:
        clean()


if __name__ == "__main__":
    main()
