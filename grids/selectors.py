"""Reads for cases: who sees which case, who may take which action on it, possible duplicates, and the KPIs."""

import datetime as dt
from functools import reduce
from operator import or_

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from governance.models import Role, Unit
from governance.selectors import STEP, Scope, scope_of

from .models import OPEN_STATES, Case, CaseCategory, CaseDispatch, CaseState

DUPLICATE_WINDOW = dt.timedelta(days=30)


def cases_visible_to(user) -> QuerySet[Case]:
    """Administrators: all. Street, community, secretary and grid worker positions: the cases of the grids in
    their subtrees. Department staff: the cases ever dispatched to their department. Residents: the cases
    that concern them, and the public-category cases of their own grid (to follow them and say "me too")."""
    scope = scope_of(user)
    if scope.is_admin:
        return Case.objects.all()
    q = reduce(or_, (in_unit(depth, unit_id) for unit_id, depth in _scope_units(scope)), Q(pk__in=[]))
    if scope.department_ids:
        q |= Q(Exists(CaseDispatch.objects.filter(case=OuterRef("pk"), department_id__in=scope.department_ids)))
    if scope.resident_ids:
        grids = {path[: 3 * STEP] for path in scope.resident_building_paths}
        q |= Q(affected_resident_id__in=scope.resident_ids) | Q(grid__path__in=grids, category__is_public=True)
    return Case.objects.filter(q)


# A case's units by depth: its street, community and grid are columns of the case (`Case.community`).
_CASE_UNIT = {1: "street_id", 2: "community_id", 3: "grid_id", 4: "building_id"}


def in_unit(depth: int, unit_id: int) -> Q:
    """The cases of the grids under the unit (a street, a community, a grid), or filed at it (a building): one
    equality on an indexed column of the case, whose newest cases are then the first entries of its index."""
    return Q(**{_CASE_UNIT[depth]: unit_id})


def _scope_units(scope: Scope):
    """(unit id, depth) of the units the scope's unit-bound positions are held at, down to grids (a position
    at a building sees no cases through it: cases belong to grids)."""
    for unit_id, path in scope.own_units.items():
        depth = len(path) // STEP
        if depth <= 3:
            yield unit_id, depth


def is_exactly_the_subtree(scope: Scope, path: str) -> bool:
    """Whether `cases_visible_to` gives exactly the cases of the grids under `path`: one unit-bound position,
    there, and nothing else (no department, no resident, not an administrator). A `unit=` filter naming that
    unit then adds nothing, and is left out: PostgreSQL would multiply the selectivity of the same condition
    twice and plan a street's 95,000 cases as if they were 9,500."""
    return not scope.is_admin and scope.paths() == (path,) and not scope.department_ids and not scope.resident_ids


def categories_visible_to(user) -> QuerySet[CaseCategory]:
    return CaseCategory.objects.all() if scope_of(user).is_staff_member else CaseCategory.objects.none()


def community_path(case: Case) -> str:
    return case.grid.path[: 2 * STEP]


def street_path(case: Case) -> str:
    return case.grid.path[:STEP]


def holds_at(scope: Scope, path: str, *roles) -> bool:
    """A position of one of `roles` at exactly the unit with `path` (not merely above it)."""
    return any(path in scope.unit_paths.get(role, ()) for role in roles)


# --- Who may act (the 403 checks; the state checks are the workflow's) -------------------------------------


def may_file_in(scope: Scope, grid: Unit) -> bool:
    """Grid workers file in their grids, community staff in their community's grids."""
    return scope.covers(grid.path, Role.GRID_WORKER) or holds_at(scope, grid.path[: 2 * STEP], Role.COMMUNITY_STAFF)


def is_reporter_side(scope: Scope, user, case: Case) -> bool:
    return case.reporter_id == user.pk or may_file_in(scope, case.grid)


def is_community(scope: Scope, case: Case) -> bool:
    return holds_at(scope, community_path(case), Role.COMMUNITY_STAFF, Role.SECRETARY)


def is_street(scope: Scope, case: Case) -> bool:
    return holds_at(scope, street_path(case), Role.STREET_STAFF, Role.SECRETARY)


def is_holder(scope: Scope, case: Case) -> bool:
    if case.holder_department_id:
        return case.holder_department_id in scope.department_ids
    if case.holder_unit_id:
        return holds_at(scope, case.holder_unit.path, Role.STREET_STAFF, Role.COMMUNITY_STAFF, Role.SECRETARY)
    return False


def is_assisting(scope: Scope, case: Case) -> bool:
    return any(
        d.department_id in scope.department_ids and not d.is_lead and d.sent_back_at is None
        for d in case.dispatches.all()
    )


def is_verifier(scope: Scope, case: Case) -> bool:
    return scope.covers(case.grid.path, Role.GRID_WORKER) or is_community(scope, case)


def is_rater(scope: Scope, case: Case) -> bool:
    """The affected resident rates. With none, or one without a login of their own (most residents), the
    community rates: it calls or visits the resident and records their verdict (回访)."""
    if case.affected_resident_id and resident_has_login(case.affected_resident_id):
        return case.affected_resident_id in scope.resident_ids
    return is_community(scope, case)


def resident_has_login(resident_id) -> bool:
    from governance.models import Position

    return Position.objects.filter(resident_id=resident_id, role=Role.RESIDENT).exists()


ACTION_ROLES = {
    "resolve-on-site": lambda s, u, c: is_reporter_side(s, u, c) and s.covers(c.grid.path, Role.GRID_WORKER),
    "accept": lambda s, u, c: is_holder(s, c) and not c.holder_department_id,
    "return": lambda s, u, c: is_community(s, c),
    "resubmit": lambda s, u, c: c.reporter_id == u.pk or s.covers(c.grid.path, Role.GRID_WORKER),
    "close": lambda s, u, c: is_community(s, c),
    "escalate": lambda s, u, c: is_community(s, c),
    "dispatch": lambda s, u, c: is_street(s, c),
    "sign": lambda s, u, c: c.holder_department_id in s.department_ids or is_assisting(s, c),
    "send-back": lambda s, u, c: c.holder_department_id in s.department_ids,
    "request-extension": lambda s, u, c: is_holder(s, c),
    "decide-extension": lambda s, u, c: is_street(s, c),
    "handle": lambda s, u, c: is_holder(s, c),
    "verify": lambda s, u, c: is_verifier(s, c),
    "rate": lambda s, u, c: is_rater(s, c),
    "reopen": lambda s, u, c: is_rater(s, c) or is_community(s, c),
    "review-department": lambda s, u, c: is_street(s, c),
    "comment": lambda s, u, c: True,
    "support": lambda s, u, c: True,
}


def may(user, case: Case, action: str) -> bool:
    return ACTION_ROLES[action](scope_of(user), user, case)


def actions_for(user, case: Case) -> list[str]:
    """The actions this user may take on the case now (role and state both allow), for the page's buttons."""
    from .services import CASE_FLOW, state_extra_allows

    return [
        name
        for name in CASE_FLOW.actions
        if CASE_FLOW.state_allows(case.state, name)
        and state_extra_allows(case, name)
        and may(user, case, name)
        and (name != "sign" or has_dispatch_to_sign(scope_of(user), case))
    ]


def has_dispatch_to_sign(scope: Scope, case: Case) -> bool:
    """Whether one of the user's departments still has to sign: a lead dispatch while the case waits for it,
    or an assisting dispatch not yet signed."""
    for row in case.dispatches.all():
        if row.department_id in scope.department_ids and row.sent_back_at is None and row.signed_at is None:
            return not row.is_lead or case.state == CaseState.DISPATCHED
    return False


def possible_duplicates(*, grid: Unit, category: CaseCategory, now=None) -> QuerySet[Case]:
    """Open cases of the same category in the same grid filed within the last 30 days."""
    now = now or timezone.now()
    return Case.objects.filter(
        grid=grid, category=category, state__in=OPEN_STATES, created_at__gte=now - DUPLICATE_WINDOW
    ).order_by("-created_at")[:10]


def is_overdue_now(case: Case, now=None) -> bool:
    now = now or timezone.now()
    if case.state == CaseState.DISPATCHED and case.sign_deadline and case.sign_deadline < now:
        return True
    return case.state in OPEN_STATES and bool(case.handle_deadline) and case.handle_deadline < now


# --- What residents see of other residents ------------------------------------------------------------------


def staff_user_ids(user_ids) -> set:
    """Those of `user_ids` who act as staff (any position but a resident's, or a superuser)."""
    from governance.models import Position, User

    staff = Position.objects.filter(user_id__in=user_ids).exclude(role=Role.RESIDENT).values_list("user_id", flat=True)
    return set(staff) | set(User.objects.filter(pk__in=user_ids, is_superuser=True).values_list("pk", flat=True))


def names_shown_to(viewer, actor_ids) -> set | None:
    """Whose names a viewer may read in a case's log: staff see everyone's (None); a resident sees the staff's
    and their own, other residents appear as "a resident"."""
    if scope_of(viewer).is_staff_member:
        return None
    return staff_user_ids(actor_ids) | {viewer.pk}


def may_see_affected_resident(viewer, case: Case) -> bool:
    """The affected resident's name is for staff and for that resident, not for neighbours following the case."""
    scope = scope_of(viewer)
    return scope.is_staff_member or case.affected_resident_id in scope.resident_ids
