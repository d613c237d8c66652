"""Every write to the hierarchy, its people and its departments.

Views, the API, the admin and management commands all call these functions; none of them holds a business
rule of its own. Each takes keyword arguments, checks the role of `by` (a 403 when it may not), validates
(a 400 with the field), and writes inside one transaction.
"""

from datetime import date

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .errors import DomainError, InvalidInput
from .models import (
    CHILD_LEVEL,
    PARENT_LEVEL,
    PARTY_ORG_KIND_FOR_LEVEL,
    ROLE_LEVEL,
    ApiKey,
    Department,
    GridTeamMember,
    Household,
    Level,
    Notification,
    PartyOrg,
    Position,
    Resident,
    Role,
    Unit,
    User,
)
from .selectors import check_can_edit_hierarchy, check_can_keep_records
from .validators import validate_id_number, validate_phone

UNIT_DETAIL_FIELDS = ("grid_kind", "compound_name", "target_households", "address", "latitude", "longitude")
PARTY_ORG_SUFFIX = {
    Level.STREET: "党工委",
    Level.COMMUNITY: "党委",
    Level.GRID: "党支部",
    Level.BUILDING: "党小组",
}


# --- Units ----------------------------------------------------------------------------------------------


def _check_unit_details(level, details):
    if details.get("grid_kind") and level != Level.GRID:
        raise InvalidInput(_("只有网格才有网格类型。"), field="grid_kind")
    if level == Level.GRID and not details.get("grid_kind"):
        details["grid_kind"] = "comprehensive"


def _check_code_free(code, *, exclude_pk=None):
    qs = Unit.objects.filter(code=code)
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise InvalidInput(_("编码“%(code)s”已被使用。") % {"code": code}, field="code")


@transaction.atomic
def unit_create(
    *, by: User | None, name: str, code: str, parent: Unit | None = None, level: str | None = None, **details
) -> Unit:
    """Create a unit under `parent` (a street when there is none) together with its party organisation.
    `by=None` is for trusted callers (seeding, imports) that checked permissions themselves."""
    if by is not None:
        check_can_edit_hierarchy(by)
    expected = CHILD_LEVEL.get(parent.level) if parent else Level.STREET
    if parent is not None and expected is None:
        raise InvalidInput(_("楼栋是最底层，不能再添加下级。"), field="parent")
    if level and level != expected:
        if parent is None:
            raise InvalidInput(_("只有街道可以作为顶级单元；请选择上级单元。"), field="parent")
        raise InvalidInput(
            _("%(parent)s（%(parent_level)s）下只能添加%(expected)s。")
            % {"parent": parent.name, "parent_level": parent.get_level_display(), "expected": Level(expected).label},
            field="level",
        )
    _check_code_free(code)
    _check_unit_details(expected, details)
    unit = Unit(name=name, code=code, level=expected, **details)
    unit = Unit.objects.add_child(parent, instance=unit) if parent else Unit.objects.add_root(instance=unit)
    PartyOrg.objects.create(
        unit=unit, name=f"{name}{PARTY_ORG_SUFFIX[unit.level]}", kind=PARTY_ORG_KIND_FOR_LEVEL[unit.level]
    )
    return unit


@transaction.atomic
def unit_update(*, by: User, unit: Unit, **fields) -> Unit:
    check_can_edit_hierarchy(by)
    allowed = {"name", "code", *UNIT_DETAIL_FIELDS}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(_("不能修改字段：%(fields)s") % {"fields": ", ".join(sorted(unknown))})
    if "code" in fields:
        _check_code_free(fields["code"], exclude_pk=unit.pk)
    if "grid_kind" in fields and fields["grid_kind"] and unit.level != Level.GRID:
        raise InvalidInput(_("只有网格才有网格类型。"), field="grid_kind")
    for name, value in fields.items():
        setattr(unit, name, value)
    unit.save(update_fields=list(fields) or None)
    return unit


@transaction.atomic
def unit_move(*, by: User, unit: Unit, parent: Unit) -> Unit:
    """Move `unit` and its whole subtree under `parent`. Levels never change: a grid moves to another
    community, a building to another grid; a street stays a root."""
    check_can_edit_hierarchy(by)
    signals.unit_moving.send(sender=Unit, unit=unit)
    unit = Unit.objects.select_for_update().get(pk=unit.pk)
    parent = Unit.objects.select_for_update().get(pk=parent.pk)
    if unit.level == Level.STREET:
        raise DomainError(_("街道是顶级单元，不能移动到其他单元下。"), code="illegal_move")
    expected = PARENT_LEVEL[unit.level]
    if parent.level != expected:
        raise DomainError(
            _("%(unit)s是%(level)s，只能移动到%(expected)s下，而%(parent)s是%(parent_level)s。")
            % {
                "unit": unit.name,
                "level": unit.get_level_display(),
                "expected": Level(expected).label,
                "parent": parent.name,
                "parent_level": parent.get_level_display(),
            },
            code="illegal_move",
        )
    if unit.path.startswith(parent.path) and len(unit.path) == len(parent.path) + Unit.steplen:
        return unit  # already there
    Unit.objects.move(unit, parent, "last-child")
    unit.refresh_from_db()
    signals.unit_moved.send(sender=Unit, unit=unit)  # in the same transaction: what keeps its units follows
    return unit


@transaction.atomic
def unit_delete(*, by: User, unit: Unit) -> None:
    """Delete an empty unit. Units with anything under them are refused: records are never dropped by
    accident; move or archive what is below first."""
    check_can_edit_hierarchy(by)
    unit = Unit.objects.select_for_update().get(pk=unit.pk)
    if Unit.objects.filter(path__startswith=unit.path).exclude(pk=unit.pk).exists():
        raise DomainError(
            _("%(unit)s下还有下级单元，不能删除。请先移走或删除下级单元。") % {"unit": unit.name}, code="not_empty"
        )
    if unit.level == Level.BUILDING and Household.objects.filter(building=unit).exists():
        raise DomainError(_("%(unit)s下还有住户，不能删除。") % {"unit": unit.name}, code="not_empty")
    if Position.objects.filter(unit=unit).exclude(role=Role.SECRETARY).exists():
        raise DomainError(_("%(unit)s还有在岗人员，不能删除。请先调整其职务。") % {"unit": unit.name}, code="not_empty")
    Position.objects.filter(unit=unit, role=Role.SECRETARY).delete()
    Unit.objects.filter(pk=unit.pk).delete()


# --- Party organisations --------------------------------------------------------------------------------


@transaction.atomic
def party_org_update(*, by: User, org: PartyOrg, secretary: User | None | object = ..., **fields) -> PartyOrg:
    """Change an organisation's name or founding date, and (when `secretary` is passed) its secretary; None
    leaves the post vacant."""
    check_can_edit_hierarchy(by)
    unknown = set(fields) - {"name", "founded_on"}
    if unknown:
        raise InvalidInput(_("不能修改字段：%(fields)s") % {"fields": ", ".join(sorted(unknown))})
    for name, value in fields.items():
        setattr(org, name, value)
    if fields:
        org.save(update_fields=list(fields))
    if secretary is not ...:
        Position.objects.filter(role=Role.SECRETARY, unit=org.unit).delete()
        if secretary is not None:
            Position.objects.create(user=secretary, role=Role.SECRETARY, unit=org.unit)
    return org


def party_org_secretaries(orgs) -> dict:
    """unit id -> secretary user for the given organisations, in one query."""
    unit_ids = [o.unit_id for o in orgs]
    return {
        p.unit_id: p.user
        for p in Position.objects.filter(role=Role.SECRETARY, unit_id__in=unit_ids).select_related("user")
    }


# --- Households and residents ---------------------------------------------------------------------------


def _check_building(building):
    if building.level != Level.BUILDING:
        raise InvalidInput(_("住户只能登记在楼栋下。"), field="building")


@transaction.atomic
def household_create(*, by: User | None, building: Unit, room: str, is_party_central: bool = False) -> Household:
    _check_building(building)
    if by is not None:
        check_can_keep_records(by, building.path)
    if Household.objects.filter(building=building, room=room).exists():
        raise InvalidInput(
            _("%(building)s已有房号“%(room)s”。") % {"building": building.name, "room": room}, field="room"
        )
    return Household.objects.create(building=building, room=room, is_party_central=is_party_central)


@transaction.atomic
def household_update(*, by: User, household: Household, **fields) -> Household:
    check_can_keep_records(by, household.building.path)
    unknown = set(fields) - {"room", "is_party_central"}
    if unknown:
        raise InvalidInput(_("不能修改字段：%(fields)s") % {"fields": ", ".join(sorted(unknown))})
    if (
        "room" in fields
        and Household.objects.filter(building=household.building, room=fields["room"]).exclude(pk=household.pk).exists()
    ):
        raise InvalidInput(_("该楼栋已有此房号。"), field="room")
    for name, value in fields.items():
        setattr(household, name, value)
    household.save(update_fields=list(fields) or None)
    return household


def _clean_person(fields, *, exclude_pk=None):
    if fields.get("id_number"):
        fields["id_number"] = fields["id_number"].strip().upper()
        validate_id_number(fields["id_number"], field="id_number")
        if Resident.objects.filter(id_number=fields["id_number"]).exclude(pk=exclude_pk).exists():
            raise InvalidInput(_("该身份证号已登记。"), field="id_number")
    if fields.get("phone"):
        fields["phone"] = fields["phone"].strip()
        validate_phone(fields["phone"], field="phone")
    if fields.get("birth_date") and fields["birth_date"] > timezone.localdate():
        raise InvalidInput(_("出生日期不能晚于今天。"), field="birth_date")


@transaction.atomic
def resident_create(*, by: User | None, household: Household, name: str, gender: str, tags=(), **fields) -> Resident:
    if by is not None:
        check_can_keep_records(by, household.building.path)
    _clean_person(fields)
    resident = Resident.objects.create(household=household, name=name, gender=gender, **fields)
    if tags:
        resident.tags.set(tags)
    return resident


@transaction.atomic
def resident_update(*, by: User, resident: Resident, tags=None, **fields) -> Resident:
    check_can_keep_records(by, resident.household.building.path)
    if resident.moved_out_on:
        raise DomainError(_("该居民已迁出，档案只读。"), code="archived")
    allowed = {"name", "gender", "birth_date", "id_number", "phone", "household"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(_("不能修改字段：%(fields)s") % {"fields": ", ".join(sorted(unknown))})
    if "household" in fields:
        check_can_keep_records(by, fields["household"].building.path)
    _clean_person(fields, exclude_pk=resident.pk)
    for name, value in fields.items():
        setattr(resident, name, value)
    if fields:
        resident.save(update_fields=list(fields))
    if tags is not None:
        resident.tags.set(tags)
    return resident


@transaction.atomic
def resident_move_out(*, by: User, resident: Resident, moved_out_on: date | None = None) -> Resident:
    """Archive a resident who moved away. The record stays (their points, letters and cases refer to it)."""
    check_can_keep_records(by, resident.household.building.path)
    updated = Resident.objects.filter(pk=resident.pk, moved_out_on=None).update(
        moved_out_on=moved_out_on or timezone.localdate()
    )
    if not updated:
        raise DomainError(_("该居民已迁出。"), code="archived")
    resident.refresh_from_db(fields=["moved_out_on"])
    return resident


# --- Departments, positions, teams ----------------------------------------------------------------------


@transaction.atomic
def department_create(
    *, by: User | None, name: str, code: str, kind: str, phone: str = "", is_active: bool = True
) -> Department:
    if by is not None:
        check_can_edit_hierarchy(by)
    if Department.objects.filter(code=code).exists():
        raise InvalidInput(_("编码“%(code)s”已被使用。") % {"code": code}, field="code")
    return Department.objects.create(name=name, code=code, kind=kind, phone=phone, is_active=is_active)


@transaction.atomic
def department_update(*, by: User, department: Department, **fields) -> Department:
    check_can_edit_hierarchy(by)
    if "code" in fields and Department.objects.filter(code=fields["code"]).exclude(pk=department.pk).exists():
        raise InvalidInput(_("编码“%(code)s”已被使用。") % {"code": fields["code"]}, field="code")
    for name, value in fields.items():
        setattr(department, name, value)
    department.save(update_fields=list(fields) or None)
    return department


@transaction.atomic
def position_grant(
    *,
    by: User | None,
    user: User,
    role: str,
    unit: Unit | None = None,
    department: Department | None = None,
    resident: Resident | None = None,
    grid_worker_kind: str = "",
) -> Position:
    """Give `user` a role. Unit-bound roles sit at their level (street staff at a street, …)."""
    if by is not None:
        check_can_edit_hierarchy(by)
    level = ROLE_LEVEL.get(role)
    if level and (unit is None or unit.level != level):
        raise InvalidInput(
            _("%(role)s只能设在%(level)s。") % {"role": Role(role).label, "level": Level(level).label}, field="unit"
        )
    if role == Role.ADMINISTRATOR and not user.is_staff:
        user.is_staff = True  # administrators work in the Django admin
        user.save(update_fields=["is_staff"])
    if role == Role.GRID_WORKER and not grid_worker_kind:
        grid_worker_kind = "full_time"
    try:
        with transaction.atomic():
            return Position.objects.create(
                user=user,
                role=role,
                unit=unit,
                department=department,
                resident=resident,
                grid_worker_kind=grid_worker_kind,
            )
    except IntegrityError:
        raise DomainError(_("该职务已存在或与现有职务冲突。"), code="duplicate") from None


@transaction.atomic
def team_member_add(
    *, by: User | None, grid: Unit, team_role: str, name: str, phone: str = "", user=None
) -> GridTeamMember:
    if by is not None:
        check_can_edit_hierarchy(by)
    if grid.level != Level.GRID:
        raise InvalidInput(_("服务团队只能设在网格。"), field="grid")
    if phone:
        validate_phone(phone, field="phone")
    return GridTeamMember.objects.create(grid=grid, team_role=team_role, name=name, phone=phone, user=user)


def notifications_mark_read(*, by: User, ids=None) -> int:
    """Mark the caller's notifications read (the given ids, or all unread); returns how many changed."""
    qs = Notification.objects.filter(user=by, read_at=None)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())


ELDER_COOKIE = "elder_mode"


def elder_mode_set(*, by, on: bool) -> None:
    """Switch the elder-friendly mode on or off for a logged-in person (kept with their account)."""
    by.elder_mode = bool(on)
    by.save(update_fields=["elder_mode"])


# --- Two-factor sign-in ---------------------------------------------------------------------------------


def two_factor_pending_device(*, by: User):
    """The user's unconfirmed authenticator (a new secret the first time; the same one until confirmed, so a
    reload does not invalidate what was already scanned)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=by, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=by, name=_("验证器"), confirmed=False)


@transaction.atomic
def two_factor_confirm(*, by: User, device) -> None:
    """The first right code confirms the device: from now on, signing in asks for a code."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=by).exclude(pk=device.pk).delete()


def two_factor_off(*, by: User) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=by).delete()


# --- API keys of other systems --------------------------------------------------------------------------


def _digest(raw: str) -> str:
    import hashlib

    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """A new key and its service account; returns (key, the raw key), which is shown this once only."""
    import secrets

    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("请填写密钥名称（如“12345热线”）。"), field="name")
    raw = secrets.token_urlsafe(32)
    account = User.objects.create(username=f"apikey-{secrets.token_hex(6)}", name=name[:50])
    account.set_unusable_password()
    account.save(update_fields=["password"])
    key = ApiKey.objects.create(name=name, prefix=raw[:8], key_hash=_digest(raw), user=account)
    return key, raw


def api_key_for(raw: str | None):
    """The live key with this value, its last use noted (at most once a minute); None if unknown or revoked."""
    if not raw:
        return None
    key = ApiKey.objects.select_related("user").filter(key_hash=_digest(raw.strip()), revoked_at=None).first()
    if key is not None:
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def api_key_revoke(*, key) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at=None).update(revoked_at=timezone.now())
