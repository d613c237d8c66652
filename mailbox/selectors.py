"""Reads for letters: who sees which letter, who may take which step, the public letters, the writer's places."""

import hashlib
import uuid

from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils.translation import get_language

from governance.models import LEVEL_DEPTH, Level, Position, Resident, Role, Unit
from governance.selectors import STEP, AmongIds, Scope, scope_of, under

from .models import Letter, LetterCategory, LetterEvent

# The mailbox office of a unit: its secretary and its staff (community staff at a community, street staff at a
# street). Letters to a unit are theirs; street positions also see the letters to the street's communities.
OFFICE_ROLES = (Role.SECRETARY, Role.COMMUNITY_STAFF, Role.STREET_STAFF)
# Staff of a unit a letter is assigned to (交办): the unit's office, and grid workers for a grid.
ASSIGNEE_ROLES = (*OFFICE_ROLES, Role.GRID_WORKER)
# How deep in the tree the units of letters lie: a letter is written to a street or a community
# (`recipient_units`) and assigned to one of them or to a grid (`services.letter_assign`), never to a building;
# `check_invariants` checks it (governance.invariants).
LETTER_UNIT_DEPTH = LEVEL_DEPTH[Level.COMMUNITY]
ASSIGNEE_DEPTH = LEVEL_DEPTH[Level.GRID]


def letters_visible_to(user) -> QuerySet[Letter]:
    """Administrators: all. Secretaries and staff of streets and communities: the letters to the units of their
    subtrees. Whoever a letter is assigned to: that letter (grid workers only those, never their community's
    mailbox). Department staff: the letters assigned to their department. Residents: the letters they wrote
    (or that were written down for them)."""
    scope = scope_of(user)
    if scope.is_admin:
        return Letter.objects.all()
    q = Q(pk__in=[])
    # By the ids of the units in the subtrees rather than by a join on their paths: an OR of two joined paths
    # makes PostgreSQL read every letter (a community's count: 10 ms), an OR of two id lists two index scans
    # (`AmongIds`: as arrays, which PostgreSQL estimates rightly). Only the units that can hold letters
    # (`LETTER_UNIT_DEPTH`, `ASSIGNEE_DEPTH`), not a street's 2,000 buildings: PostgreSQL reads them from the
    # partial index `unit_path_to_grids` for every page and count (a street's page: 1.7 ms before, 0.5 ms now).
    office = scope.paths(*OFFICE_ROLES)
    if office:
        units = Unit.objects.filter(under(office), depth__lte=LETTER_UNIT_DEPTH)
        q |= Q(AmongIds("unit_id", units.values("id")))
    assignee = scope.paths(*ASSIGNEE_ROLES)
    if assignee:
        units = Unit.objects.filter(under(assignee), depth__lte=ASSIGNEE_DEPTH)
        q |= Q(AmongIds("assignee_unit_id", units.values("id")))
    if scope.department_ids:
        q |= Q(assignee_department_id__in=scope.department_ids)
    if scope.resident_ids:
        q |= Q(writer_id__in=scope.resident_ids)
    return Letter.objects.filter(q)


def office_letters_of(scope: Scope, path: str) -> QuerySet[Letter] | None:
    """The letters that `letters_visible_to` and `unit=` naming the unit at `path` give together, when the scope
    is one office position there and nothing else: the letters to the units of that subtree, exactly.

    Such a scope is the letters to the subtree's units or assigned to a unit in it; `unit=` keeps those written to
    the subtree's units, so what is left is the first part alone (letters are written to streets and communities
    only, `LETTER_UNIT_DEPTH`). Asked as that, PostgreSQL walks the newest letters checking one short array of
    units where it checked two, the second a street's 350 units, one by one for each letter walked, and joins no
    unit for the filter's path (a street's page: 0.34 → 0.32 ms). None for any other scope: then both stay."""
    if scope.is_admin or scope.department_ids or scope.resident_ids or not scope.unit_paths:
        return None
    if set(scope.unit_paths) - set(OFFICE_ROLES) or set(scope.paths()) != {path}:
        return None
    units = Unit.objects.filter(under([path]), depth__lte=LETTER_UNIT_DEPTH)
    return Letter.objects.filter(AmongIds("unit_id", units.values("id")))


def public_letters() -> QuerySet[Letter]:
    """What anyone may read without logging in: published letters whose writer allowed it (both, always)."""
    return Letter.objects.filter(published=True, allow_publication=True)


PUBLIC_GENERATION_KEY = "public-letters:generation"


def public_letters_cache_key(request) -> str:
    """The cache key of a page of the public letters: the query, the language and the address the page's links
    are built on, and what the letters are now (the newest event of any letter's log, and a generation that
    every save of a letter renews, `forget_public_letters`)."""
    newest = LetterEvent.objects.order_by("-id").values_list("id", flat=True).first()
    generation = cache.get(PUBLIC_GENERATION_KEY)
    if generation is None:
        generation = uuid.uuid4().hex
        cache.set(PUBLIC_GENERATION_KEY, generation, None)
    query = sorted(request.query_params.lists())
    seed = repr((request.build_absolute_uri("/"), get_language(), query, newest, generation))
    return "public-letters:" + hashlib.sha256(seed.encode()).hexdigest()


def forget_public_letters(**kwargs):
    cache.delete(PUBLIC_GENERATION_KEY)


def categories_for_writing() -> QuerySet[LetterCategory]:
    return LetterCategory.objects.filter(active=True).order_by("order", "code")


def holds_at(scope: Scope, path: str, *roles) -> bool:
    """A position of one of `roles` at exactly the unit with `path` (not merely above it)."""
    return any(path in scope.unit_paths.get(role, ()) for role in roles)


def recipient_units(resident: Resident) -> list[Unit]:
    """Whom a resident may write to: the secretary of their community (the default, first) or of their street."""
    path = resident.household.building.path
    return list(Unit.objects.filter(path__in=[path[: 2 * STEP], path[:STEP]]).order_by("-depth"))


def resident_has_login(resident_id) -> bool:
    return Position.objects.filter(resident_id=resident_id, role=Role.RESIDENT).exists()


# --- Who may act (the 403 checks; the state checks are the workflow's) -------------------------------------


def is_secretary(scope: Scope, letter: Letter) -> bool:
    return holds_at(scope, letter.unit.path, Role.SECRETARY)


def is_office(scope: Scope, letter: Letter) -> bool:
    """The secretary or the staff of the unit the letter was written to."""
    return holds_at(scope, letter.unit.path, *OFFICE_ROLES)


def is_assignee(scope: Scope, letter: Letter) -> bool:
    if letter.assignee_department_id:
        return letter.assignee_department_id in scope.department_ids
    if letter.assignee_unit_id:
        return scope.covers(letter.assignee_unit.path, *ASSIGNEE_ROLES)
    return False


def is_writer(scope: Scope, letter: Letter) -> bool:
    return letter.writer_id in scope.resident_ids


def speaks_for_writer(scope: Scope, letter: Letter) -> bool:
    """The writer answers for themselves (follow-up, rating). A writer without a login of their own (a letter
    written down for them at the counter or on the phone) is called back by the office, which records it."""
    if resident_has_login(letter.writer_id):
        return is_writer(scope, letter)
    return is_office(scope, letter)


ACTION_ROLES = {
    "accept": lambda s, u, lt: is_office(s, lt),
    "reject": lambda s, u, lt: is_office(s, lt),
    "assign": lambda s, u, lt: is_office(s, lt),
    "reply": lambda s, u, lt: is_office(s, lt) or is_assignee(s, lt),
    "sign-off": lambda s, u, lt: is_secretary(s, lt),
    "follow-up": lambda s, u, lt: speaks_for_writer(s, lt),
    "rate": lambda s, u, lt: speaks_for_writer(s, lt),
    "reopen": lambda s, u, lt: is_secretary(s, lt),
    "publish": lambda s, u, lt: is_secretary(s, lt),
    "unpublish": lambda s, u, lt: is_secretary(s, lt),
    "make-private": lambda s, u, lt: speaks_for_writer(s, lt),
}


def may(user, letter: Letter, action: str) -> bool:
    return ACTION_ROLES[action](scope_of(user), user, letter)


def actions_for(user, letter: Letter) -> list[str]:
    """The steps this user may take on the letter now (role and state both allow), for the page's buttons."""
    from .services import LETTER_FLOW, refusal

    return [
        name
        for name in LETTER_FLOW.actions
        if LETTER_FLOW.state_allows(letter.state, name) and refusal(letter, name) is None and may(user, letter, name)
    ]


def may_see_writer(viewer, letter: Letter) -> bool:
    """The writer's name and contact are for the office, the handlers and the writer, never for the public."""
    scope = scope_of(viewer)
    return scope.is_staff_member or is_writer(scope, letter)


def writer_phone_for(viewer, letter: Letter) -> str:
    """The writer's phone as this viewer may see it: whole for those who keep the writer's records (and the
    writer), and for the office and the handler of a letter whose writer asked to be called back; masked for
    other staff; nothing for anyone else."""
    from governance.masking import mask_phone
    from governance.selectors import can_see_personal_data

    from .models import ContactPreference

    scope = scope_of(viewer)
    if not (scope.is_staff_member or is_writer(scope, letter)):
        return ""
    phone = letter.writer.phone
    if can_see_personal_data(viewer, building_path=letter.writer.household.building.path, resident_id=letter.writer_id):
        return phone
    wants_a_call = letter.contact_preference in (ContactPreference.PHONE, ContactPreference.VISIT)
    if wants_a_call and (is_office(scope, letter) or is_assignee(scope, letter)):
        return phone
    return mask_phone(phone)


def is_office_anywhere(user) -> bool:
    scope = scope_of(user)
    return scope.is_admin or bool(scope.paths(*OFFICE_ROLES))


def writer_phone_shown(viewer, letter: Letter, *, request=None, via: str) -> str:
    """`writer_phone_for`, and a line in the personal-data log when the whole number goes to someone other
    than the writer (the office calling the writer back)."""
    from governance import privacy

    phone = writer_phone_for(viewer, letter)
    if phone and phone == letter.writer.phone and not is_writer(scope_of(viewer), letter):
        privacy.log_access(
            viewer, what="letter_writer", object_ids=[letter.writer_id], fields=["phone"], via=via, request=request
        )
    return phone
