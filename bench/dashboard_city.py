"""Benchmark: the home page's dashboard on the city (1,000,000 residents, 1,000,000 cases, 10,000,000 point entries).

Needs the city of `bench/hierarchy_city.py`, the cases of `bench/cases_city.py` and the ledger of
`bench/points_city.py` in the same database. Then:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python bench/dashboard_city.py

It times `governance.dashboard.unit_dashboard` for the largest street, a community and the whole city, and the
whole home page (`/`, the view, the template, the charts) as that street's staff through the test client, and
counts the queries each takes. Median of BENCH_RUNS (7) after a warm-up.
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

from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from governance import dashboard  # noqa: E402
from governance.models import Level, Position, Resident, Role, Unit  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def timed(fn, runs=RUNS, cold=False):
    """Median and best of `runs` (after a warm-up) and the queries of one run. `cold`: the cache is emptied
    before each run (the dashboards keep their history figures there ten minutes), as for the first visitor."""
    fn()
    samples = []
    if cold:
        cache.clear()
    with CaptureQueriesContext(connection) as queries:
        fn()
    for _ in range(runs):
        if cold:
            cache.clear()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples), len(queries)


def residents_under(unit) -> int:
    return Resident.objects.filter(household__building__path__startswith=unit.path, moved_out_on=None).count()


def main():
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    streets = list(Unit.objects.filter(level=Level.STREET).order_by("path"))
    sizes = {s.pk: residents_under(s) for s in streets}
    street = max(streets, key=lambda s: sizes[s.pk])
    community = Unit.objects.filter(level=Level.COMMUNITY, path__startswith=street.path).order_by("path").first()
    print(f"largest street: {street.name}, {sizes[street.pk]:,} residents; community {community.name}")
    rows = []
    for label, unit in (
        (f"{street.name} ({sizes[street.pk]:,} residents)", street),
        (community.name, community),
        ("the city (1,000,000 residents)", None),
    ):
        rows.append((f"unit_dashboard of {label}, cold", timed(lambda u=unit: dashboard.unit_dashboard(u), cold=True)))
        rows.append((f"unit_dashboard of {label}, warm", timed(lambda u=unit: dashboard.unit_dashboard(u))))
    staff = Position.objects.filter(role=Role.STREET_STAFF, unit=street).select_related("user").first()
    if staff is not None:
        client = Client()
        client.force_login(staff.user)

        def home():
            response = client.get("/")
            assert response.status_code == 200, response.status_code

        rows.append((f"GET / as staff of {street.name} (the whole page), cold", timed(home, cold=True)))
        rows.append((f"GET / as staff of {street.name} (the whole page), warm", timed(home)))
    print(f"{'what':64} {'median':>10} {'min':>10} {'queries':>8}")
    for label, (median, best, queries) in rows:
        print(f"{label:64} {median:7.1f} ms {best:7.1f} ms {queries:8d}")


if __name__ == "__main__":
    main()
