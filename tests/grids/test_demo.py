"""The demo city comes with cases that went through the real workflow."""

import io

from django.core.management import call_command

from governance.models import User
from grids.models import Case, CaseCategory, CaseState
from grids.selectors import cases_visible_to


def test_demo_cases_cover_the_workflow_and_every_persona_has_some(db):
    call_command("seed_demo", "--scale", "tiny", "--password", "pw-123456", stdout=io.StringIO())
    assert Case.objects.count() == 12
    call_command("seed_demo", "--reset", "--scale", "demo", "--password", "pw-123456", stdout=io.StringIO())
    assert Case.objects.count() == 240
    states = set(Case.objects.values_list("state", flat=True))
    assert {CaseState.REPORTED, CaseState.DISPATCHED, CaseState.IN_PROGRESS, CaseState.CLOSED} <= states
    for case in Case.objects.filter(state=CaseState.CLOSED, closed_reason="rated")[:20]:
        events = list(case.events.order_by("id").values_list("created_at", flat=True))
        assert events == sorted(events)  # the steps are dated in the order they happened
        assert events[0] == case.created_at
    for username in ("grid_worker", "community_staff", "street_staff", "department_staff", "resident"):
        assert cases_visible_to(User.objects.get(username=username)).exists(), username
    assert CaseCategory.objects.filter(parent__isnull=False, default_department__isnull=True).count() == 0
