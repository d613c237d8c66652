"""Benchmark: the hierarchy endpoints on a city-scale database.

Build the data once (PostgreSQL; about 1,000,000 residents):
    createdb -h 127.0.0.1 -U postgres grid_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python manage.py seed_demo --scale city
Then run:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python bench/hierarchy_city.py

It times, through the real API stack (DRF, serializers, the scoped accessors), the subtree figures
(`/units/{id}/stats/`) of the first street and a community, the first page of the residents of a street,
and the first page of units, each beside the hand-written SQL of the same figures in the same run.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from governance.models import Level, Position, Resident, Role, Unit, User  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def timed(fn, runs=RUNS):
    fn()  # warm up caches and the connection
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


def raw_stats(path):
    sql = """
        SELECT
          (SELECT count(*) FROM governance_unit WHERE path LIKE %(p)s AND level = 'community'),
          (SELECT count(*) FROM governance_unit WHERE path LIKE %(p)s AND level = 'grid'),
          (SELECT count(*) FROM governance_unit WHERE path LIKE %(p)s AND level = 'building'),
          (SELECT count(*) FROM governance_household h JOIN governance_unit b ON b.id = h.building_id
            WHERE b.path LIKE %(p)s),
          (SELECT count(*) FROM governance_resident r JOIN governance_household h ON h.id = r.household_id
            JOIN governance_unit b ON b.id = h.building_id WHERE b.path LIKE %(p)s AND r.moved_out_on IS NULL),
          (SELECT count(*) FROM governance_resident_tags rt JOIN governance_residenttag t ON t.id = rt.residenttag_id
            JOIN governance_resident r ON r.id = rt.resident_id JOIN governance_household h ON h.id = r.household_id
            JOIN governance_unit b ON b.id = h.building_id
            WHERE t.code = 'party_member' AND b.path LIKE %(p)s AND r.moved_out_on IS NULL),
          (SELECT count(DISTINCT po.user_id) FROM governance_position po JOIN governance_unit u ON u.id = po.unit_id
            WHERE po.role = 'grid_worker' AND u.path LIKE %(p)s)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"p": path + "%"})
        return cursor.fetchone()


def main():
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    print(f"residents: {Resident.objects.count():,}  units: {Unit.objects.count():,}")
    street = Unit.objects.filter(level=Level.STREET).order_by("path").first()
    community = Unit.objects.filter(level=Level.COMMUNITY, path__startswith=street.path).order_by("path").first()
    admin = User.objects.get(username="admin")
    staff = Position.objects.filter(role=Role.STREET_STAFF, unit=street).select_related("user").first().user

    client = APIClient()
    rows = []
    for label, unit, user in (("street", street, admin), ("community", community, admin)):
        client.force_authenticate(user)
        api = timed(lambda u=unit: client.get(f"/api/v1/units/{u.pk}/stats/"))
        raw = timed(lambda u=unit: raw_stats(u.path))
        body = client.get(f"/api/v1/units/{unit.pk}/stats/").json()
        rows.append((f"stats of a {label} ({body['residents']:,} residents)", api, raw))

    client.force_authenticate(staff)
    api = timed(lambda: client.get("/api/v1/residents/", {"unit": street.pk}))
    rows.append(("residents list, first page, street staff", api, None))
    api = timed(lambda: client.get("/api/v1/units/", {"level": "building"}))
    rows.append(("units list, first page of buildings, street staff", api, None))

    print(f"{'what':58} {'API median':>11} {'API min':>9} {'raw SQL median':>15}")
    for label, (median, best), raw in rows:
        raw_text = f"{raw[0]:.1f} ms" if raw else "—"
        print(f"{label:58} {median:8.1f} ms {best:6.1f} ms {raw_text:>15}")


if __name__ == "__main__":
    main()
