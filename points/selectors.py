"""Reads of the points ledger: who sees which accounts, entries, rules, rewards, redemptions, boards; who may
record; drift between kept balances and the ledger."""

from django.db import connection
from django.db.models import Q, QuerySet

from governance.models import Resident, ResidentTag, Role, Unit
from governance.selectors import STEP, Scope, scope_of, under

from .models import Account, Board, Entry, Objection, Redemption, Reward, Rule, Tally

# Who keeps the ledger of a place: grid workers for their grids, community staff for their communities.
RECORDERS = (Role.GRID_WORKER, Role.COMMUNITY_STAFF)
# Who runs a community's points supermarket and resolves objections.
SHOPKEEPERS = (Role.COMMUNITY_STAFF,)


def _ancestors(path: str) -> list[str]:
    return [path[:i] for i in range(STEP, len(path) + 1, STEP)]


def accounts_visible_to(user) -> QuerySet[Account]:
    """Staff: the accounts of the residents in their subtrees. A resident: their own."""
    scope = scope_of(user)
    if scope.is_admin:
        return Account.objects.all()
    return Account.objects.filter(
        under(scope.paths(), "resident__household__building__path") | Q(resident_id__in=scope.resident_ids)
    )


def entries_visible_to(user) -> QuerySet[Entry]:
    scope = scope_of(user)
    if scope.is_admin:
        return Entry.objects.all()
    return Entry.objects.filter(
        under(scope.paths(), "account__resident__household__building__path")
        | Q(account__resident_id__in=scope.resident_ids)
    )


def rules_visible_to(user) -> QuerySet[Rule]:
    """The rules that apply in one's places (made by a unit at or above them) and those made below them."""
    scope = scope_of(user)
    if scope.is_admin:
        return Rule.objects.all()
    places = list(scope.paths()) + list(scope.resident_building_paths)
    above = {a for path in places for a in _ancestors(path)}
    return Rule.objects.filter(Q(unit__path__in=above) | under(scope.paths(), "unit__path"))


def rules_applying_to(resident: Resident, day) -> QuerySet[Rule]:
    """The active rules of the units above (and at) the resident's building on `day`."""
    path = resident.household.building.path
    return Rule.objects.filter(unit__path__in=_ancestors(path), active_from__lte=day).filter(
        Q(active_until__isnull=True) | Q(active_until__gte=day)
    )


def rewards_visible_to(user) -> QuerySet[Reward]:
    """Staff: the rewards of the communities in (or above) their places; residents: their community's."""
    scope = scope_of(user)
    if scope.is_admin:
        return Reward.objects.all()
    places = list(scope.paths()) + list(scope.resident_building_paths)
    communities = {p[: 2 * STEP] for p in places if len(p) >= 2 * STEP}
    return Reward.objects.filter(Q(community__path__in=communities) | under(scope.paths(), "community__path"))


def redemptions_visible_to(user) -> QuerySet[Redemption]:
    scope = scope_of(user)
    if scope.is_admin:
        return Redemption.objects.all()
    return Redemption.objects.filter(
        under(scope.paths(), "resident__household__building__path") | Q(resident_id__in=scope.resident_ids)
    )


def boards_visible_to(user) -> QuerySet[Board]:
    """Boards are public within their place: staff see those of their subtrees (and above), residents those of
    their grid and community."""
    scope = scope_of(user)
    if scope.is_admin:
        return Board.objects.all()
    places = list(scope.paths()) + list(scope.resident_building_paths)
    above = {a for path in places for a in _ancestors(path)}
    return Board.objects.filter(Q(unit__path__in=above) | under(scope.paths(), "unit__path"))


def tallies_visible_to(user) -> QuerySet[Tally]:
    scope = scope_of(user)
    if scope.is_admin:
        return Tally.objects.all()
    return Tally.objects.filter(under(scope.paths(), "grid__path") | Q(resident_id__in=scope.resident_ids))


def objections_visible_to(user) -> QuerySet[Objection]:
    scope = scope_of(user)
    if scope.is_admin:
        return Objection.objects.all()
    return Objection.objects.filter(under(scope.paths(), "board__unit__path") | Q(resident_id__in=scope.resident_ids))


def may_record_for(scope: Scope, resident: Resident) -> bool:
    """Grid workers record for the residents of their grids, community staff for their community's."""
    return scope.covers(resident.household.building.path, *RECORDERS)


def may_keep_shop(scope: Scope, community: Unit) -> bool:
    return scope.is_admin or scope.covers(community.path, *SHOPKEEPERS)


def is_party_member(resident: Resident) -> bool:
    return resident.tags.filter(code=ResidentTag.PARTY_MEMBER).exists()


def balance_drift() -> list[tuple[int, int, int]]:
    """Accounts whose kept balance differs from the sum of their entries: (account id, kept, ledger sum).
    One grouped statement over the whole ledger."""
    sql = """
        SELECT a.id, a.balance, COALESCE(e.total, 0)
        FROM points_account a
        LEFT JOIN (SELECT account_id, SUM(points) AS total FROM points_entry GROUP BY account_id) e
          ON e.account_id = a.id
        WHERE a.balance <> COALESCE(e.total, 0)
        ORDER BY a.id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]


def first_entry_drift() -> list[tuple[int, object, object]]:
    """Accounts whose kept first day differs from their earliest entry's: (account id, kept, ledger). The tally
    counts an account from that day's month on. One grouped statement over the whole ledger."""
    sql = """
        SELECT a.id, a.first_entry_on, e.first_on
        FROM points_account a
        LEFT JOIN (SELECT account_id, MIN(occurred_on) AS first_on FROM points_entry GROUP BY account_id) e
          ON e.account_id = a.id
        WHERE a.first_entry_on IS NULL AND e.first_on IS NOT NULL
           OR a.first_entry_on IS NOT NULL AND e.first_on IS NULL
           OR a.first_entry_on <> e.first_on
        ORDER BY a.id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
