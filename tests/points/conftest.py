"""Points for the personas' city: the two default schemes, `make_rule`, and `award`, which records through the
service as the grid worker."""

import datetime as dt

import pytest
from django.utils import timezone

from points import services
from points.models import Rule, RuleKind, Scheme


@pytest.fixture
def schemes(db):
    class S:
        resident = Scheme.objects.get(code=Scheme.RESIDENT)
        party = Scheme.objects.get(code=Scheme.PARTY)

    return S


@pytest.fixture
def make_rule(city, schemes):
    counter = {"n": 0}

    def make(*, unit=None, points=5, kind=None, scheme=None, **fields):
        counter["n"] += 1
        kind = kind or (RuleKind.DEDUCTION if points < 0 else RuleKind.BONUS)
        fields.setdefault("name", f"规则{counter['n']}")
        fields.setdefault("active_from", timezone.localdate() - dt.timedelta(days=400))
        return Rule.objects.create(
            unit=unit or city.c1,
            scheme=scheme or schemes.resident,
            code=fields.pop("code", f"r{counter['n']}"),
            kind=kind,
            points=points,
            **fields,
        )

    return make


@pytest.fixture
def award(grid_worker, resident_record):
    def record(rule, *, resident=None, by=None, **kwargs):
        return services.points_record(by=by or grid_worker, resident=resident or resident_record, rule=rule, **kwargs)

    return record
