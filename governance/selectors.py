"""Reads: who may see what, and the figures of a subtree.

Every list and detail view, API endpoint and admin list starts from one of the `*_visible_to(user)`
accessors. An object outside the result is a 404 for that user, exactly like a missing one; an object inside
it that the user's role may not change is a 403 (see the `check_*` functions).
"""

from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.db.models import BooleanField, Count, F, Func, Q, QuerySet, Subquery

from .errors import NotAllowed
from .models import (
    LEVEL_DEPTH,
    Department,
    GridTeamMember,
    Household,
    Level,
    Notification,
    PartyOrg,
    Position,
    Resident,
    ResidentTag,
    Role,
    Unit,
)

STEP = Unit.steplen


@dataclass(frozen=True)
class Scope:
    """Where a user's positions put them. Built once per request from one query (`scope_of`)."""

    is_admin: bool = False
    roles: frozenset = frozenset()
    # unit-bound positions: role -> tuple of subtree root paths
    unit_paths: dict = field(default_factory=dict)
    department_ids: tuple = ()
    resident_ids: tuple = ()
    resident_building_paths: tuple = ()
    household_ids: tuple = ()
    # the units the positions are held at, id -> path: always visible to their holder
    own_units: dict = field(default_factory=dict)

    def paths(self, *roles):
        """Subtree root paths of the given unit-bound roles (all unit-bound roles when none are named)."""
        roles = roles or tuple(self.unit_paths)
        return tuple(p for r in roles for p in self.unit_paths.get(r, ()))

    def covers(self, path, *roles):
        """Whether a unit with `path` lies in a subtree held through one of `roles`."""
        return any(path.startswith(p) for p in self.paths(*roles))

    @property
    def is_staff_member(self):
        return self.is_admin or bool(self.unit_paths) or bool(self.department_ids)


# What a scope is built from, per position: one row of these columns (`scope_of`, and the token
# authentication that reads them in the same query as the token: governance.authentication).
SCOPE_COLUMNS = (
    "role",
    "unit__path",
    "department_id",
    "resident_id",
    "resident__moved_out_on",
    "resident__household_id",
    "resident__household__building__path",
    "unit_id",
)


def scope_of(user) -> Scope:
    """The user's scope, cached on the user object for the rest of the request."""
    if not getattr(user, "is_authenticated", False):
        return Scope()
    cached = getattr(user, "_governance_scope", None)
    if cached is not None:
        return cached
    # The columns the scope needs and no model objects: this runs on every signed-in request (1.8 ms instead
    # of 2.8 ms for the objects with everything joined).
    positions = Position.objects.filter(user=user).order_by("id").values_list(*SCOPE_COLUMNS)
    return remember_scope(user, positions)


def remember_scope(user, positions) -> Scope:
    """The scope of `user` from their positions' `SCOPE_COLUMNS` rows, kept on the user for the request."""
    unit_paths: dict = {}
    departments, residents, building_paths, households, roles, own_units = [], [], [], [], set(), {}
    is_admin = user.is_superuser
    for role, unit_path, department_id, resident_id, moved_out_on, household_id, building_path, unit_id in positions:
        roles.add(role)
        if role == Role.ADMINISTRATOR:
            is_admin = True
        elif unit_path is not None:
            unit_paths.setdefault(role, ())
            unit_paths[role] += (unit_path,)
            own_units[unit_id] = unit_path
        elif department_id:
            departments.append(department_id)
        elif resident_id and moved_out_on is None:
            residents.append(resident_id)
            households.append(household_id)
            building_paths.append(building_path)
    scope = Scope(
        is_admin=is_admin,
        roles=frozenset(roles) | ({Role.ADMINISTRATOR} if is_admin else frozenset()),
        unit_paths=unit_paths,
        department_ids=tuple(departments),
        resident_ids=tuple(residents),
        resident_building_paths=tuple(building_paths),
        household_ids=tuple(households),
        own_units=own_units,
    )
    user._governance_scope = scope
    return scope


def under(prefixes, lookup="path") -> Q:
    """Q for rows whose unit path starts with any of `prefixes` (one indexed range scan each)."""
    if not prefixes:
        return Q(pk__in=[])
    return reduce(or_, (Q(**{f"{lookup}__startswith": p}) for p in prefixes))


class AmongIds(Func):
    """`column IN (subquery)`, written for PostgreSQL as `column = ANY(ARRAY(subquery))`.

    The two ask the same, but PostgreSQL estimates them differently. An OR of two `IN (subquery)` (a letter's
    unit or its assignee in a subtree) is guessed to keep three rows in four: for a community's 1,000 of 150,000
    letters it read every letter to count them (70–100 ms). `= ANY(ARRAY(…))` is an array computed once, before the
    query runs, that an index scan can take: the same count reads the two indexes (0.25 ms), and a street's page
    walks its newest letters as before (0.5 ms). The array is the database's, made when the query runs: no
    query is run for it beforehand, and a kept plan (`ListPlan`) keeps no unit ids."""

    output_field = BooleanField()

    def __init__(self, column: str, subquery: QuerySet):
        super().__init__(F(column), Subquery(subquery.order_by()))  # in no order, as `IN` has it

    def as_sql(self, compiler, connection, **extra):
        column, column_params = compiler.compile(self.source_expressions[0])
        subquery, subquery_params = compiler.compile(self.source_expressions[1])  # "(SELECT …)"
        return f"{column} IN {subquery}", (*column_params, *subquery_params)

    def as_postgresql(self, compiler, connection, **extra):
        column, column_params = compiler.compile(self.source_expressions[0])
        subquery, subquery_params = compiler.compile(self.source_expressions[1])
        return f"{column} = ANY(ARRAY{subquery})", (*column_params, *subquery_params)


def _ancestor_paths(path):
    return [path[:i] for i in range(STEP, len(path) + 1, STEP)]


# --- Scoped accessors -----------------------------------------------------------------------------------


def units_visible_to(user) -> QuerySet[Unit]:
    """Administrators see the whole tree; staff their subtrees; department staff the whole tree (read only:
    departments serve every street); a resident the chain from their street down to their building."""
    scope = scope_of(user)
    if scope.is_admin or scope.department_ids:
        return Unit.objects.all()
    q = under(scope.paths())
    ancestors = [a for path in scope.resident_building_paths for a in _ancestor_paths(path)]
    # Staff also see the units above their own (names only), so that the chain to their street shows.
    ancestors += [a for path in scope.paths() for a in _ancestor_paths(path)]
    if ancestors:
        q |= Q(path__in=ancestors)
    return Unit.objects.filter(q)


def party_orgs_visible_to(user) -> QuerySet[PartyOrg]:
    scope = scope_of(user)
    if scope.is_admin:
        return PartyOrg.objects.all()
    return PartyOrg.objects.filter(under(scope.paths(), "unit__path"))


def households_visible_to(user) -> QuerySet[Household]:
    scope = scope_of(user)
    if scope.is_admin:
        return Household.objects.all()
    return Household.objects.filter(under(scope.paths(), "building__path") | Q(pk__in=scope.household_ids))


def residents_visible_to(user) -> QuerySet[Resident]:
    """Staff see the residents of their subtrees; a resident only themselves; department staff nobody."""
    scope = scope_of(user)
    if scope.is_admin:
        return Resident.objects.all()
    return Resident.objects.filter(under(scope.paths(), "household__building__path") | Q(pk__in=scope.resident_ids))


def residents_matching(queryset: QuerySet[Resident], q: str) -> QuerySet[Resident]:
    """The residents of `queryset` whose name or room contains `q`, in the order of their buildings and rooms."""
    q = (q or "").strip()
    if q:
        queryset = queryset.filter(Q(name__icontains=q) | Q(household__room__icontains=q))
    return queryset.select_related("household__building").order_by("household__building__path", "household__room", "id")


def departments_visible_to(user) -> QuerySet[Department]:
    scope = scope_of(user)
    if scope.is_staff_member:
        return Department.objects.all()
    return Department.objects.none()


def team_members_visible_to(user) -> QuerySet[GridTeamMember]:
    scope = scope_of(user)
    if scope.is_admin:
        return GridTeamMember.objects.all()
    return GridTeamMember.objects.filter(under(scope.paths(), "grid__path"))


# --- Permissions inside the scope (403) -----------------------------------------------------------------

# Roles that keep household and resident records, and so see ID numbers and phones whole.
RECORD_KEEPERS = (Role.COMMUNITY_STAFF, Role.GRID_WORKER)


def check_can_edit_hierarchy(user):
    if not scope_of(user).is_admin:
        raise NotAllowed()


def check_can_keep_records(user, building_path: str):
    """Households and residents under `building_path` are kept by administrators and by the community staff
    and grid workers above them."""
    scope = scope_of(user)
    if not (scope.is_admin or scope.covers(building_path, *RECORD_KEEPERS)):
        raise NotAllowed()


def check_can_see_figures(user, unit: Unit):
    """Subtree figures are for administrators and the staff whose subtree holds the unit; the units above
    one's own are visible by name only."""
    scope = scope_of(user)
    if not (scope.is_admin or scope.covers(unit.path)):
        raise NotAllowed()


def can_keep_any_records(user) -> bool:
    scope = scope_of(user)
    return scope.is_admin or bool(scope.paths(*RECORD_KEEPERS))


def can_see_personal_data(user, *, building_path: str, resident_id=None) -> bool:
    """Whole ID numbers and phones: administrators, the record keepers of the building, the person themselves."""
    scope = scope_of(user)
    return scope.is_admin or scope.covers(building_path, *RECORD_KEEPERS) or resident_id in scope.resident_ids


# --- Figures --------------------------------------------------------------------------------------------


UNIT_STATS_CACHE_SECONDS = 900  # refreshed every ten minutes by the beat (dashboard.refresh_history)


def unit_stats_cached(unit: Unit) -> dict:
    """`unit_stats` for the home page, kept ten minutes in the cache: counting a street's hundred thousand
    residents takes a sixth of a second, and the population does not change by the minute. The API's
    `/units/{id}/stats/` always counts afresh."""
    from django.core.cache import cache

    key = f"unit-stats:{unit.pk}"
    figures = cache.get(key)
    if figures is None:
        figures = unit_stats(unit)
        cache.set(key, figures, UNIT_STATS_CACHE_SECONDS)
    return figures


def unit_stats(unit: Unit) -> dict:
    """Counts for the subtree of `unit` (itself included) in five queries, whatever the subtree's size."""
    by_level = dict(
        Unit.objects.filter(path__startswith=unit.path).values_list("level").annotate(n=Count("id")).order_by()
    )
    in_subtree = {"household__building__path__startswith": unit.path, "moved_out_on": None}
    tagged = Resident.tags.through.objects.filter(
        residenttag__code=ResidentTag.PARTY_MEMBER, **{f"resident__{k}": v for k, v in in_subtree.items()}
    )
    return {
        "communities": by_level.get(Level.COMMUNITY, 0),
        "grids": by_level.get(Level.GRID, 0),
        "buildings": by_level.get(Level.BUILDING, 0),
        "households": Household.objects.filter(building__path__startswith=unit.path).count(),
        "residents": Resident.objects.filter(**in_subtree).count(),
        "party_members": tagged.count(),
        "grid_workers": Position.objects.filter(role=Role.GRID_WORKER, unit__path__startswith=unit.path)
        .values("user")
        .distinct()
        .count(),
    }


UNIT_STATS = ("communities", "grids", "buildings", "households", "residents", "party_members", "grid_workers")


def units_stats(units) -> dict:
    """`unit_stats` of each of `units` (streets and communities), {pk: figures}, in six grouped queries
    whatever their number: the counts grouped by community and summed up to the streets, and the grid workers
    counted by street and by community apart, since one person may work in two communities of a street."""
    from django.db.models.functions import Substr

    if any(len(unit.path) > 2 * STEP for unit in units):
        raise ValueError("units_stats counts streets and communities")
    figures = {unit.path: dict.fromkeys(UNIT_STATS, 0) for unit in units}

    def grouped(queryset, path_field, length=2 * STEP, *also, n=None):
        return queryset.values_list(Substr(path_field, 1, length), *also).annotate(n=n or Count("pk")).order_by()

    def add(key, name, n):
        # `key`: a community's path, or a street's own for the units above the communities.
        for prefix in {key[:STEP], key}:
            if prefix in figures:
                figures[prefix][name] += n

    level_names = {Level.COMMUNITY: "communities", Level.GRID: "grids", Level.BUILDING: "buildings"}
    for key, level, n in grouped(Unit.objects.all(), "path", 2 * STEP, "level"):
        if level in level_names:
            add(key, level_names[level], n)
    present = Resident.objects.filter(moved_out_on=None)
    party = Resident.tags.through.objects.filter(
        residenttag__code=ResidentTag.PARTY_MEMBER, resident__moved_out_on=None
    )
    for name, queryset, path_field in (
        ("households", Household.objects.all(), "building__path"),
        ("residents", present, "household__building__path"),
        ("party_members", party, "resident__household__building__path"),
    ):
        for key, n in grouped(queryset, path_field):
            add(key, name, n)
    workers = Position.objects.filter(role=Role.GRID_WORKER)
    for length in (STEP, 2 * STEP):
        for key, n in grouped(workers, "unit__path", length, n=Count("user", distinct=True)):
            if len(key) == length and key in figures:
                figures[key]["grid_workers"] = n
    return {unit.pk: figures[unit.path] for unit in units}


def roles_of(user) -> list[Position]:
    return list(
        Position.objects.filter(user=user)
        .select_related("unit", "department", "resident__household__building")
        .order_by("role", "id")
    )


def unit_chain(unit: Unit) -> list[Unit]:
    """The unit's ancestors from the street down, and itself, in one query."""
    return list(Unit.objects.filter(path__in=_ancestor_paths(unit.path)).order_by("depth"))


def home_units_of(user) -> list[Unit]:
    """The units a staff member works at, topmost first, for the home page."""
    scope = scope_of(user)
    if scope.is_admin and not scope.paths():
        return list(Unit.objects.filter(depth=LEVEL_DEPTH[Level.STREET]).order_by("path")[:50])
    return list(Unit.objects.filter(path__in=scope.paths()).order_by("depth", "path"))


def notifications_visible_to(user) -> QuerySet[Notification]:
    """Everyone sees their own notifications only."""
    if not getattr(user, "is_authenticated", False):
        return Notification.objects.none()
    return Notification.objects.filter(user=user)
