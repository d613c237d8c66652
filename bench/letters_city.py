"""Letters on the city: BENCH_LETTERS (150,000) letters to the secretaries of the 150 communities, for the load run.

Needs the city of `seed_demo --scale city`:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python bench/letters_city.py [--rebuild]

A thousand letters per community over the last year, each from a resident of that community and written down by its secretary; a third of them
answered, rated, and published with their public copy (the writer allowed it), the rest spread over the open
states with their deadlines. Built with `bulk_create` (no event log: nothing here reads it), then ANALYZE.
"""

import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from governance.models import Level, Position, Resident, Role, Unit  # noqa: E402
from mailbox.models import Letter, LetterCategory, LetterState  # noqa: E402

TOTAL = int(os.environ.get("BENCH_LETTERS", "150000"))
OPEN = [LetterState.SUBMITTED, LetterState.ACCEPTED, LetterState.ASSIGNED, LetterState.DRAFTED]


def build():
    rng = random.Random(2026)
    now = timezone.now()
    categories = list(LetterCategory.objects.values_list("pk", flat=True))
    communities = list(Unit.objects.filter(level=Level.COMMUNITY).values_list("pk", "path"))
    # Written down by the community's secretary (most writers have no account of their own).
    secretaries = dict(Position.objects.filter(role=Role.SECRETARY).values_list("unit_id", "user_id"))
    per_community = TOTAL // len(communities)
    rows, serial = [], 0
    for unit_id, path in communities:
        writers = list(
            Resident.objects.filter(household__building__path__startswith=path, moved_out_on__isnull=True)
            .order_by("?")
            .values_list("pk", flat=True)[:per_community]
        )
        for i in range(per_community):
            serial += 1
            created = now - dt.timedelta(minutes=rng.randint(60, 365 * 24 * 60))
            answered = i % 3 == 0
            state = LetterState.CLOSED if answered else OPEN[i % len(OPEN)]
            subject = f"关于小区第{i % 40 + 1}栋楼道照明的建议"
            body = "楼道的灯坏了两个月，晚上老人上下楼很不方便，希望尽快修好。"
            reply = "已联系物业，三日内更换灯具，谢谢您的来信。" if answered else ""
            rows.append(
                Letter(
                    number=f"XB{serial:09d}",
                    unit_id=unit_id,
                    category_id=categories[i % len(categories)],
                    subject=subject,
                    body=body,
                    writer_id=writers[i % len(writers)],
                    submitted_by_id=secretaries[unit_id],
                    allow_publication=answered,
                    state=state,
                    created_at=created,
                    accepted_at=created + dt.timedelta(hours=4) if state != LetterState.SUBMITTED else None,
                    accept_deadline=created + dt.timedelta(days=2),
                    reply_deadline=created + dt.timedelta(days=10),
                    reply=reply,
                    replied_at=created + dt.timedelta(days=3) if answered else None,
                    answered_at=created + dt.timedelta(days=3) if answered else None,
                    closed_at=created + dt.timedelta(days=5) if answered else None,
                    rating=rng.randint(3, 5) if answered else None,
                    rated_at=created + dt.timedelta(days=5) if answered else None,
                    published=answered,
                    published_at=created + dt.timedelta(days=5) if answered else None,
                    public_subject=subject if answered else "",
                    public_body=body if answered else "",
                    public_reply=reply,
                )
            )
        if len(rows) >= 10000:
            Letter.objects.bulk_create(rows, batch_size=5000)
            rows = []
    Letter.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mailbox_letter")


def main():
    if "--rebuild" in sys.argv:
        Letter.objects.filter(number__startswith="XB").delete()
    if Letter.objects.filter(number__startswith="XB").exists():
        print(f"letters already built: {Letter.objects.count():,}")
        return
    started = time.perf_counter()
    build()
    print(f"built {Letter.objects.count():,} letters in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
