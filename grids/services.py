"""Every write to cases: filing, each step of the workflow, photos, supports, and the deadline sweep.

Each step: lock the case row, check the role (403) and the state (409) through `CASE_FLOW`, change the fields,
write one `CaseEvent`. Deadlines are counted on the shared working-day calendar; reminders go through the
shared notification interface.
"""

import datetime as dt

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from governance import uploads
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Department, Level, Resident, Role, Unit, User
from governance.notifications import notify
from governance.selectors import STEP, residents_visible_to, scope_of, units_visible_to
from governance.workdays import add_working_days, add_working_hours, working_seconds_between
from governance.workflow import Action, Workflow, check_stars, close_unrated, mark_overdue, require_note

from . import selectors
from .models import (
    OPEN_STATES,
    Case,
    CaseCategory,
    CaseDispatch,
    CasePhoto,
    CaseState,
    CaseSupport,
    ClosedReason,
    Source,
    Urgency,
)

S = CaseState
CASE_FLOW = Workflow(
    CaseState,
    [
        Action("resolve-on-site", gettext_lazy("现场处置"), (S.REPORTED,), S.VERIFIED),
        Action("accept", gettext_lazy("受理"), (S.REPORTED, S.ESCALATED), S.IN_PROGRESS),
        Action("return", gettext_lazy("退回补充"), (S.REPORTED,), S.RETURNED),
        Action("resubmit", gettext_lazy("补充后重新上报"), (S.RETURNED,), S.REPORTED),
        Action("close", gettext_lazy("作废关闭"), (S.REPORTED, S.RETURNED), S.CLOSED),
        Action("escalate", gettext_lazy("吹哨上报街道"), (S.REPORTED,), S.ESCALATED),
        Action("dispatch", gettext_lazy("派单"), (S.ESCALATED,), S.DISPATCHED),
        Action("sign", gettext_lazy("签收"), (S.DISPATCHED, S.IN_PROGRESS)),
        Action("send-back", gettext_lazy("退单"), (S.DISPATCHED,), S.ESCALATED),
        Action("request-extension", gettext_lazy("申请延期"), (S.IN_PROGRESS,)),
        Action("decide-extension", gettext_lazy("审批延期"), (S.IN_PROGRESS,)),
        Action("handle", gettext_lazy("办结"), (S.IN_PROGRESS,), S.HANDLED),
        Action("verify", gettext_lazy("核查"), (S.HANDLED,)),
        Action("rate", gettext_lazy("评价"), (S.VERIFIED,), S.CLOSED),
        Action("reopen", gettext_lazy("重办"), (S.CLOSED,), S.IN_PROGRESS),
        Action("review-department", gettext_lazy("评价部门响应"), (S.HANDLED, S.VERIFIED, S.CLOSED)),
        Action("comment", gettext_lazy("留言"), ()),
        Action("support", gettext_lazy("附议"), tuple(OPEN_STATES) + (S.HANDLED, S.VERIFIED)),
    ],
    events={
        "file": gettext_lazy("上报"),
        "auto-close": gettext_lazy("超期未评价，自动结案"),
        "sign-overdue": gettext_lazy("签收超时"),
        "handle-overdue": gettext_lazy("办理超期"),
    },
)

RATING_WINDOW = dt.timedelta(days=7)
LOW_RATING = 2
MAX_PHOTOS = 9


def state_extra_allows(case: Case, name: str) -> bool:
    """State conditions beyond the state itself, for the page's buttons (the services say why)."""
    return _extra_refusal(case, name) is None


def _extra_refusal(case: Case, name: str):
    if name == "request-extension" and case.extension_requested_until:
        return _("已有待审批的延期申请。")
    if name == "decide-extension" and not case.extension_requested_until:
        return _("没有待审批的延期申请。")
    if name == "reopen":
        if case.closed_reason != ClosedReason.RATED or (case.rating or 5) > LOW_RATING:
            return _("只有评价为一星或二星的事件可以重办。")
        if case.reopen_count:
            return _("该事件已重办过一次，不能再次重办。")
    if name == "resolve-on-site" and not case.category.on_site_allowed:
        return _("该分类的事件不能现场处置。")
    if name == "dispatch" and not case.category.whistle_allowed:
        return _("该分类不在街道吹哨事项清单内，请由街道受理办理。")
    return None


def _begin(case: Case, by: User, name: str) -> Case:
    """Lock the case and run the three checks of a step: role (403), state (409), extra conditions (409)."""
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("grid", "holder_unit", "category")
        .prefetch_related("dispatches")
        .get(pk=case.pk)
    )
    scope = scope_of(by)
    CASE_FLOW.check(case, name, allowed=selectors.ACTION_ROLES[name](scope, by, case))
    refusal = _extra_refusal(case, name)
    if refusal:
        raise DomainError(refusal, code="invalid_state")
    return case


def _forget_dispatches(case: Case):
    """Drop the dispatches `_begin` prefetched, so the returned case shows the rows as they are now."""
    getattr(case, "_prefetched_objects_cache", {}).pop("dispatches", None)


def _save(case: Case, *fields):
    case.save(update_fields=list(fields))


# --- Photos ----------------------------------------------------------------------------------------------

# Photos are checked and prepared by the uploads module every app shares (names kept here for callers).
PHOTO_MAX_SIDE = uploads.PHOTO_MAX_SIDE


def check_photos(photos) -> list:
    return uploads.check_photos(photos, max_count=MAX_PHOTOS)


def _attach(case: Case, event, photos, by: User):
    for photo in photos:
        CasePhoto.objects.create(case=case, event=event, image=photo, uploaded_by=by)


# --- Filing ----------------------------------------------------------------------------------------------


def _place(by: User, grid: Unit | None, building: Unit | None, *, anywhere: bool = False) -> tuple[Unit, Unit | None]:
    visible = Unit.objects.all() if anywhere else units_visible_to(by)
    if building is not None:
        if building.level != Level.BUILDING or not visible.filter(pk=building.pk).exists():
            raise InvalidInput(_("请选择您网格内的楼栋。"), field="building")
        if grid is not None and not building.path.startswith(grid.path):
            raise InvalidInput(_("所选楼栋不在所选网格内。"), field="building")
        grid = Unit.objects.get(path=building.path[: 3 * STEP])
    if grid is None:
        raise InvalidInput(_("请选择事件所在的网格或楼栋。"), field="grid")
    if grid.level != Level.GRID or not visible.filter(pk=grid.pk).exists():
        raise InvalidInput(_("请选择您负责的网格。"), field="grid")
    return grid, building


@transaction.atomic
def case_file(
    *,
    by: User,
    title: str,
    description: str,
    category: CaseCategory,
    grid: Unit | None = None,
    building: Unit | None = None,
    address: str = "",
    latitude=None,
    longitude=None,
    urgency: str = Urgency.NORMAL,
    source: str = Source.PATROL,
    affected_resident: Resident | None = None,
    photos=(),
    resolved_on_site: str = "",
    via_letter: bool = False,
    from_outside: bool = False,
    now: dt.datetime | None = None,
) -> Case:
    """File a case in a grid of the filer's (grid worker: their grid; community staff: their community's).
    It lands at the grid's community for triage — or, with `resolved_on_site` (what was done), the grid worker
    files a simple case they already fixed on the spot: filed and resolved in one step, the photos as the
    evidence, nothing for the community to triage.

    `via_letter`: the secretary (or office) of a letter turns it into a case (`mailbox.services.letter_assign`,
    which has checked their role); the grid need only be one they can see.

    `from_outside`: another system's report (Open311, `grids.open311`), filed by its key's service account in
    the grid its location was matched to (`open311_place`)."""
    now = now or timezone.now()
    grid, building = _place(by, grid, building, anywhere=from_outside)
    # The case keeps its grid's community and street: the grid as it is now, read once no move is under way (a
    # move waits for this filing, or this filing for the move: `cases_hold_for_move`).
    _hold_cases("ROW EXCLUSIVE")
    grid = Unit.objects.get(pk=grid.pk)
    if not (via_letter or from_outside) and not selectors.may_file_in(scope_of(by), grid):
        raise NotAllowed(_("只有本网格的网格员或本社区的工作人员可以上报事件。"))
    if category.parent_id is None or not category.active:
        raise InvalidInput(_("请选择一个启用的具体分类（二级分类）。"), field="category")
    if affected_resident is not None:
        in_grid = affected_resident.household.building.path.startswith(grid.path)
        if (
            not in_grid
            or affected_resident.moved_out_on is not None
            or not residents_visible_to(by).filter(pk=affected_resident.pk).exists()
        ):
            raise InvalidInput(_("当事居民须是本网格的居民。"), field="affected_resident")
    title, description = (title or "").strip(), (description or "").strip()
    if not title:
        raise InvalidInput(_("请填写标题。"), field="title")
    if not description:
        raise InvalidInput(_("请填写事件描述。"), field="description")
    photos = check_photos(photos)
    above = {u.path: u for u in Unit.objects.filter(path__in=(grid.path[:STEP], grid.path[: 2 * STEP]))}
    community, street = above[grid.path[: 2 * STEP]], above[grid.path[:STEP]]
    case = Case.objects.create(
        title=title,
        description=description,
        category=category,
        grid=grid,
        building=building,
        address=address,
        latitude=latitude,
        longitude=longitude,
        urgency=urgency,
        source=source,
        reporter=by,
        affected_resident=affected_resident,
        holder_unit=community,
        community=community,
        street=street,
        created_at=now,
    )
    case.number = f"SJ-{timezone.localtime(now).year}-{case.pk:06d}"
    _save(case, "number")
    event = case.events.create(actor=by, action="file", to_state=case.state, note=description, created_at=now)
    _attach(case, event, photos, by)
    if resolved_on_site.strip():
        return case_resolve_on_site(case=case, by=by, note=resolved_on_site, now=now)
    _notify_unit_staff(case, community, (Role.COMMUNITY_STAFF, Role.SECRETARY), "case_new", _("新事件待分流"))
    return case


def _hold_cases(mode: str) -> None:
    """A table lock on the cases for the rest of the transaction (PostgreSQL; SQLite writes one at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(Case._meta.db_table)} IN {mode} MODE")


def cases_hold_for_move(**kwargs) -> None:
    """A unit is about to move (`governance.signals.unit_moving`): no case is filed, or changed, until the move
    has committed, and the move waits for the filings under way. Taken before the move locks any unit, so a
    filing never holds a case lock while it waits for a unit the move holds: the two cannot deadlock. Moves are
    an administrator's rare step; reading cases is not held up."""
    _hold_cases("SHARE ROW EXCLUSIVE")


def cases_follow_unit(*, unit: Unit, **kwargs) -> None:
    """A grid or a community has moved (`governance.signals.unit_moved`): its cases take their grid's new
    community and street, in one UPDATE."""
    if unit.level == Level.GRID:
        above = {u.path: u.pk for u in Unit.objects.filter(path__in=(unit.path[:STEP], unit.path[: 2 * STEP]))}
        Case.objects.filter(grid=unit).update(
            community_id=above[unit.path[: 2 * STEP]], street_id=above[unit.path[:STEP]]
        )
    elif unit.level == Level.COMMUNITY:
        Case.objects.filter(community=unit).update(street_id=Unit.objects.get(path=unit.path[:STEP]).pk)


# --- Triage at the community, the street's whistle -------------------------------------------------------


def _start_handling(case: Case, now: dt.datetime):
    case.handle_deadline = add_working_days(now, case.category.handle_limit_days)
    case.handle_overdue = False


@transaction.atomic
def case_resolve_on_site(*, case: Case, by: User, note: str, photos=(), now=None) -> Case:
    """A simple case the grid worker fixed on the spot: handled and verified at once, awaiting the rating."""
    now = now or timezone.now()
    case = _begin(case, by, "resolve-on-site")
    note = require_note(note, message=_("请说明现场处置的情况。"))
    photos = check_photos(photos)
    if not photos and not case.photos.exists():
        raise InvalidInput(_("现场处置须上传处置后的照片。"), field="photos")
    before = case.state
    case.state = S.VERIFIED
    case.accepted_at = case.handled_at = case.verified_at = now
    case.handle_deadline, case.handled_on_time, case.handle_seconds = now, True, 0
    _save(
        case,
        "state",
        "accepted_at",
        "handled_at",
        "verified_at",
        "handle_deadline",
        "handled_on_time",
        "handle_seconds",
    )
    event = CASE_FLOW.record(case, "resolve-on-site", by=by, from_state=before, note=note)
    _attach(case, event, photos, by)
    _notify_rater(case)
    return case


@transaction.atomic
def case_accept(*, case: Case, by: User, note: str = "", now=None) -> Case:
    """The community (or, for an escalated case, the street) takes the case on itself."""
    now = now or timezone.now()
    case = _begin(case, by, "accept")
    before = case.state
    case.state = S.IN_PROGRESS
    case.accepted_at = now
    _start_handling(case, now)
    _save(case, "state", "accepted_at", "handle_deadline", "handle_overdue")
    CASE_FLOW.record(case, "accept", by=by, from_state=before, note=note)
    return case


@transaction.atomic
def case_return(*, case: Case, by: User, note: str) -> Case:
    case = _begin(case, by, "return")
    note = require_note(note, message=_("请说明需要补充的信息。"))
    before, case.state = case.state, S.RETURNED
    _save(case, "state")
    CASE_FLOW.record(case, "return", by=by, from_state=before, note=note)
    notify(
        [case.reporter],
        kind="case_returned",
        key=f"case:{case.pk}:returned:{case.events.count()}",
        title=_("事件 %(number)s 被退回补充") % {"number": case.number},
        body=note,
        url=case.get_absolute_url(),
    )
    return case


@transaction.atomic
def case_resubmit(*, case: Case, by: User, note: str, description: str | None = None, photos=()) -> Case:
    case = _begin(case, by, "resubmit")
    note = require_note(note, message=_("请说明补充的内容。"))
    photos = check_photos(photos)
    before, case.state = case.state, S.REPORTED
    if description and description.strip():
        case.description = description.strip()
    _save(case, "state", "description")
    event = CASE_FLOW.record(case, "resubmit", by=by, from_state=before, note=note)
    _attach(case, event, photos, by)
    community = Unit.objects.get(path=selectors.community_path(case))
    _notify_unit_staff(case, community, (Role.COMMUNITY_STAFF, Role.SECRETARY), "case_resubmitted", _("补充后重新上报"))
    return case


@transaction.atomic
def case_close(
    *, case: Case, by: User, reason: str, note: str = "", duplicate_of: Case | None = None, now=None
) -> Case:
    """Close a case as invalid, or as a duplicate of another case (which must be visible and still a case of
    its own)."""
    now = now or timezone.now()
    case = _begin(case, by, "close")
    if reason not in (ClosedReason.INVALID, ClosedReason.DUPLICATE):
        raise InvalidInput(_("关闭原因须为无效事件或重复事件。"), field="reason")
    if reason == ClosedReason.DUPLICATE:
        if duplicate_of is None or duplicate_of.pk == case.pk:
            raise InvalidInput(_("请指明与哪一件事件重复。"), field="duplicate_of")
        if not selectors.cases_visible_to(by).filter(pk=duplicate_of.pk).exists():
            raise InvalidInput(_("所指的原事件不存在。"), field="duplicate_of")
        # A duplicate of a duplicate points at the original itself.
        duplicate_of = Case.objects.get(pk=duplicate_of.pk)
        while duplicate_of.duplicate_of_id:
            duplicate_of = Case.objects.get(pk=duplicate_of.duplicate_of_id)
        if duplicate_of.pk == case.pk:
            raise InvalidInput(_("请指明与哪一件事件重复。"), field="duplicate_of")
    else:
        duplicate_of = None
        note = require_note(note, message=_("请说明为何无效。"))
    before = case.state
    case.state, case.closed_reason, case.duplicate_of, case.closed_at = S.CLOSED, reason, duplicate_of, now
    _save(case, "state", "closed_reason", "duplicate_of", "closed_at")
    data = {"reason": reason, "duplicate_of": duplicate_of.number if duplicate_of else None}
    CASE_FLOW.record(case, "close", by=by, from_state=before, note=note, data=data)
    notify(
        [case.reporter],
        kind="case_closed",
        key=f"case:{case.pk}:closed",
        title=_("事件 %(number)s 已作废关闭：%(reason)s")
        % {"number": case.number, "reason": case.get_closed_reason_display()},
        body=note,
        url=case.get_absolute_url(),
    )
    return case


@transaction.atomic
def case_escalate(*, case: Case, by: User, note: str) -> Case:
    """吹哨: the community hands the case to its street."""
    case = _begin(case, by, "escalate")
    note = require_note(note, message=_("请说明需要街道协调的原因。"))
    street = Unit.objects.get(path=selectors.street_path(case))
    before = case.state
    case.state, case.holder_unit = S.ESCALATED, street
    _save(case, "state", "holder_unit")
    CASE_FLOW.record(case, "escalate", by=by, from_state=before, note=note)
    _notify_unit_staff(case, street, (Role.STREET_STAFF,), "case_escalated", _("社区吹哨，待派单"))
    return case


@transaction.atomic
def case_dispatch(*, case: Case, by: User, department: Department, assisting=(), note: str = "", now=None) -> Case:
    """报到: the street sends the case to a lead department, with optional assisting departments."""
    now = now or timezone.now()
    case = _begin(case, by, "dispatch")
    if not department.is_active:
        raise InvalidInput(_("「%(name)s」已停用，不能派单。") % {"name": department.name}, field="department")
    if any(not d.is_active for d in assisting):
        raise InvalidInput(_("协办部门中有已停用的部门。"), field="assisting")
    assisting = [d for d in assisting if d.pk != department.pk]
    # The sign-for limit counts office hours of working days, like the time to sign it is measured in.
    sign_deadline = add_working_hours(now, case.category.sign_limit_hours)
    rows = [CaseDispatch(department=department, is_lead=True)] + [
        CaseDispatch(department=d, is_lead=False) for d in {d.pk: d for d in assisting}.values()
    ]
    for row in rows:
        row.case, row.dispatched_by, row.dispatched_at, row.sign_deadline = case, by, now, sign_deadline
    CaseDispatch.objects.bulk_create(rows)
    _forget_dispatches(case)
    before = case.state
    case.state, case.holder_unit, case.holder_department = S.DISPATCHED, None, department
    case.dispatched_at, case.sign_deadline, case.sign_overdue = now, sign_deadline, False
    _save(case, "state", "holder_unit", "holder_department", "dispatched_at", "sign_deadline", "sign_overdue")
    data = {"department": department.name, "assisting": [d.name for d in assisting]}
    CASE_FLOW.record(case, "dispatch", by=by, from_state=before, note=note, data=data)
    for row in rows:
        users = _department_staff(row.department_id)
        notify(
            users,
            kind="case_dispatched",
            key=f"case:{case.pk}:dispatch:{row.pk or row.department_id}:{now.timestamp():.0f}",
            title=_("新派单：%(number)s %(title)s") % {"number": case.number, "title": case.title},
            body=_("请于 %(deadline)s 前签收。") % {"deadline": _fmt(sign_deadline)},
            url=case.get_absolute_url(),
        )
    return case


def _open_dispatch(case: Case, department_ids) -> CaseDispatch | None:
    for row in case.dispatches.all():
        if row.department_id in department_ids and row.sent_back_at is None and row.signed_at is None:
            return row
    return None


@transaction.atomic
def case_sign(*, case: Case, by: User, note: str = "", now=None) -> Case:
    """The lead department signs for the case (it starts the handling clock); an assisting department signs
    for its part (the case's state does not change)."""
    now = now or timezone.now()
    case = _begin(case, by, "sign")
    scope = scope_of(by)
    row = _open_dispatch(case, scope.department_ids)
    if row is None:
        raise DomainError(_("您的部门已签收，或没有待签收的派单。"), code="invalid_state")
    row.signed_at = now
    row.sign_seconds = working_seconds_between(row.dispatched_at, now)
    row.save(update_fields=["signed_at", "sign_seconds"])
    before = case.state
    if row.is_lead:
        if case.state != S.DISPATCHED:
            raise DomainError(_("当前状态不能签收。"), code="invalid_state")
        case.state, case.signed_at, case.sign_seconds = S.IN_PROGRESS, now, row.sign_seconds
        _start_handling(case, now)
        _save(case, "state", "signed_at", "sign_seconds", "handle_deadline", "handle_overdue")
    CASE_FLOW.record(case, "sign", by=by, from_state=before, note=note, data={"department": row.department.name})
    return case


@transaction.atomic
def case_send_back(*, case: Case, by: User, note: str, now=None) -> Case:
    """Not ours: the lead department returns the dispatch to the street (counted against the dispatch)."""
    now = now or timezone.now()
    case = _begin(case, by, "send-back")
    note = require_note(note, message=_("请说明退单理由。"))
    _forget_dispatches(case)
    CaseDispatch.objects.filter(case=case, sent_back_at=None, signed_at=None).update(
        sent_back_at=now, send_back_reason=note
    )
    street = Unit.objects.get(path=selectors.street_path(case))
    before = case.state
    case.state, case.holder_department, case.holder_unit = S.ESCALATED, None, street
    case.send_back_count = F("send_back_count") + 1
    case.sign_deadline = None
    _save(case, "state", "holder_department", "holder_unit", "send_back_count", "sign_deadline")
    case.refresh_from_db(fields=["send_back_count"])
    CASE_FLOW.record(case, "send-back", by=by, from_state=before, note=note)
    _notify_unit_staff(case, street, (Role.STREET_STAFF,), "case_sent_back", _("部门退单，请重新派单"))
    return case


@transaction.atomic
def case_request_extension(*, case: Case, by: User, until: dt.datetime, note: str) -> Case:
    case = _begin(case, by, "request-extension")
    note = require_note(note, message=_("请说明延期理由。"))
    if case.handle_deadline and until <= case.handle_deadline:
        raise InvalidInput(_("申请的期限须晚于现在的办理时限。"), field="until")
    case.extension_requested_until, case.extension_reason = until, note
    _save(case, "extension_requested_until", "extension_reason")
    CASE_FLOW.record(
        case, "request-extension", by=by, from_state=case.state, note=note, data={"until": until.isoformat()}
    )
    street = Unit.objects.get(path=selectors.street_path(case))
    _notify_unit_staff(case, street, (Role.STREET_STAFF,), "case_extension", _("延期申请待审批"))
    return case


@transaction.atomic
def case_decide_extension(
    *, case: Case, by: User, approve: bool, until: dt.datetime | None = None, note: str = "", now=None
) -> Case:
    now = now or timezone.now()
    case = _begin(case, by, "decide-extension")
    data = {"approved": approve}
    if approve:
        new_deadline = until or case.extension_requested_until
        if case.handle_deadline and new_deadline <= case.handle_deadline:
            raise InvalidInput(_("新的办理时限须晚于原时限。"), field="until")
        case.handle_deadline = new_deadline
        case.handle_overdue = new_deadline < now
        data["until"] = new_deadline.isoformat()
    else:
        note = require_note(note, message=_("请说明不予延期的理由。"))
    case.extension_requested_until, case.extension_reason = None, ""
    _save(case, "handle_deadline", "handle_overdue", "extension_requested_until", "extension_reason")
    CASE_FLOW.record(case, "decide-extension", by=by, from_state=case.state, note=note, data=data)
    # The holder asked and is waiting: tell them the answer (and the deadline they now work to).
    if approve:
        title, body = _("延期申请已批准"), _("办理时限：%(deadline)s") % {"deadline": _fmt(case.handle_deadline)}
    else:
        title, body = _("延期申请未获批准"), note
    _notify_holder(case, "case_extension_decided", title, body)
    return case


@transaction.atomic
def case_handle(*, case: Case, by: User, note: str, photos=(), now=None) -> Case:
    """The holder reports the result, with evidence; the grid checks it on site next."""
    now = now or timezone.now()
    case = _begin(case, by, "handle")
    note = require_note(note, message=_("请填写办理结果。"))
    photos = check_photos(photos)
    before = case.state
    started = case.signed_at or case.accepted_at or case.created_at
    if case.reopen_count:
        # A reopened case is handled again from the reopening; the time it sat closed is not handling time.
        reopened = case.events.filter(action="reopen").order_by("-id").values_list("created_at", flat=True).first()
        started = reopened or started
    case.state, case.handled_at = S.HANDLED, now
    case.handled_on_time = case.handle_deadline is None or now <= case.handle_deadline
    case.handle_seconds = working_seconds_between(started, now)
    case.extension_requested_until, case.extension_reason = None, ""
    _save(
        case,
        "state",
        "handled_at",
        "handled_on_time",
        "handle_seconds",
        "extension_requested_until",
        "extension_reason",
    )
    event = CASE_FLOW.record(case, "handle", by=by, from_state=before, note=note)
    _attach(case, event, photos, by)
    _notify_verifiers(case)
    return case


@transaction.atomic
def case_verify(*, case: Case, by: User, confirmed: bool, note: str = "", photos=(), now=None) -> Case:
    """On-site check: confirmed → awaiting the rating; not fixed → back to the same holder (rework)."""
    now = now or timezone.now()
    case = _begin(case, by, "verify")
    photos = check_photos(photos)
    before = case.state
    if confirmed:
        case.state, case.verified_at = S.VERIFIED, now
        _save(case, "state", "verified_at")
    else:
        note = require_note(note, message=_("请说明哪里没有解决。"))
        case.state, case.handled_at, case.handled_on_time = S.IN_PROGRESS, None, None
        case.rework_count = F("rework_count") + 1
        _save(case, "state", "handled_at", "handled_on_time", "rework_count")
        case.refresh_from_db(fields=["rework_count"])
    event = CASE_FLOW.record(case, "verify", by=by, from_state=before, note=note, data={"confirmed": confirmed})
    _attach(case, event, photos, by)
    if confirmed:
        _notify_rater(case)
    else:
        _notify_holder(case, "case_rework", _("核查未通过，请返工"), note)
    return case


@transaction.atomic
def case_rate(*, case: Case, by: User, stars: int, note: str = "", now=None) -> Case:
    now = now or timezone.now()
    case = _begin(case, by, "rate")
    stars = check_stars(stars)
    before = case.state
    case.state, case.closed_reason, case.closed_at = S.CLOSED, ClosedReason.RATED, now
    case.rating, case.rating_comment, case.rated_at = stars, note.strip(), now
    _save(case, "state", "closed_reason", "closed_at", "rating", "rating_comment", "rated_at")
    CASE_FLOW.record(case, "rate", by=by, from_state=before, note=note, data={"stars": stars})
    return case


@transaction.atomic
def case_reopen(*, case: Case, by: User, note: str, now=None) -> Case:
    """A one- or two-star case goes back once to the holder it had, with a fresh handling deadline."""
    now = now or timezone.now()
    case = _begin(case, by, "reopen")
    note = require_note(note, message=_("请说明重办的要求。"))
    before = case.state
    case.state, case.closed_reason, case.closed_at = S.IN_PROGRESS, "", None
    case.handled_at = case.verified_at = case.handled_on_time = None
    case.reopen_count = F("reopen_count") + 1
    _start_handling(case, now)
    _save(
        case,
        "state",
        "closed_reason",
        "closed_at",
        "handled_at",
        "verified_at",
        "handled_on_time",
        "reopen_count",
        "handle_deadline",
        "handle_overdue",
    )
    case.refresh_from_db(fields=["reopen_count"])
    CASE_FLOW.record(case, "reopen", by=by, from_state=before, note=note)
    _notify_holder(case, "case_reopened", _("群众不满意，事件重办"), note)
    return case


@transaction.atomic
def case_review_department(*, case: Case, by: User, department: Department, stars: int, note: str = "") -> Case:
    """吹哨报到双考核: the street rates a department's response to its whistle, once per dispatch."""
    case = _begin(case, by, "review-department")
    stars = check_stars(stars)
    # Sent back or not: a department that refused a whistle is assessed for that too (双考核).
    row = CaseDispatch.objects.filter(case=case, department=department).order_by("-dispatched_at").first()
    if row is None:
        raise InvalidInput(_("该部门没有承办此事件。"), field="department")
    if row.street_rating is not None:
        raise DomainError(_("已评价过该部门对此事件的响应。"), code="already_rated")
    row.street_rating, row.street_rating_comment = stars, note.strip()
    row.save(update_fields=["street_rating", "street_rating_comment"])
    data = {"department": department.name, "stars": stars}
    CASE_FLOW.record(case, "review-department", by=by, from_state=case.state, note=note, data=data)
    return case


@transaction.atomic
def case_comment(*, case: Case, by: User, note: str, photos=()) -> Case:
    case = _begin(case, by, "comment")
    note = require_note(note, message=_("请填写留言内容。"))
    photos = check_photos(photos)
    event = CASE_FLOW.record(case, "comment", by=by, from_state=case.state, note=note)
    _attach(case, event, photos, by)
    return case


@transaction.atomic
def case_support(*, case: Case, by: User) -> Case:
    """ "Me too": once per person; the count is kept on the case."""
    case = _begin(case, by, "support")
    try:
        with transaction.atomic():
            CaseSupport.objects.create(case=case, user=by)
    except IntegrityError:
        raise DomainError(_("您已附议过此事件。"), code="already_supported") from None
    case.support_count = F("support_count") + 1
    _save(case, "support_count")
    case.refresh_from_db(fields=["support_count"])
    CASE_FLOW.record(case, "support", by=by, from_state=case.state)
    return case


# --- Deadlines and reminders ----------------------------------------------------------------------------

REMIND_BEFORE_SIGN = dt.timedelta(minutes=30)


def case_sweep(*, now: dt.datetime | None = None) -> dict:
    """Mark overdue cases and write the reminders (催办) — safe to run any number of times: a flag or a
    notification key makes each mark and each reminder happen once. Also closes cases left unrated for
    seven days. Returns the counts of what it did now."""
    now = now or timezone.now()
    done = {"sign_reminded": 0, "sign_overdue": 0, "handle_reminded": 0, "handle_overdue": 0, "auto_closed": 0}

    # Dispatches still waiting for a signature. An assisting department signs for its part while the case is
    # dispatched or already in progress (the lead signed first); once handled there is nothing left to sign.
    unsigned = CaseDispatch.objects.filter(
        signed_at=None, sent_back_at=None, sign_overdue=False, case__state__in=CASE_FLOW.actions["sign"].sources
    )

    # Before the sign-for deadline: remind the departments that have not signed.
    soon = unsigned.filter(sign_deadline__gt=now, sign_deadline__lte=now + REMIND_BEFORE_SIGN).select_related("case")
    for row in soon:
        sent = notify(
            _department_staff(row.department_id),
            kind="case_sign_due",
            key=f"case:{row.case_id}:sign-due:{row.pk}",
            title=_("催办：%(number)s 即将超过签收时限") % {"number": row.case.number},
            body=_("请于 %(deadline)s 前签收。") % {"deadline": _fmt(row.sign_deadline)},
            url=row.case.get_absolute_url(),
        )
        done["sign_reminded"] += bool(sent)

    # After it: mark the dispatch and the case, tell the street that dispatched it.
    late = unsigned.filter(sign_deadline__lte=now).select_related("case__grid", "department")
    for row in late:
        with transaction.atomic():
            if not CaseDispatch.objects.filter(pk=row.pk, sign_overdue=False).update(sign_overdue=True):
                continue  # another run got there first
            if row.is_lead:
                Case.objects.filter(pk=row.case_id).update(sign_overdue=True)
                row.case.events.create(action="sign-overdue", from_state=row.case.state, to_state=row.case.state)
            street = Unit.objects.get(path=selectors.street_path(row.case))
            _notify_unit_staff(
                row.case,
                street,
                (Role.STREET_STAFF,),
                "case_sign_overdue",
                _("%(department)s签收超时") % {"department": row.department.name},
                key=f"case:{row.case_id}:sign-overdue:{row.pk}",
                body=row.department.name,  # with assisting departments, which one is late
            )
            done["sign_overdue"] += 1

    # Handling: remind the holder the working day before, mark and escalate the news after.
    open_cases = Case.objects.filter(state=S.IN_PROGRESS, handle_deadline__isnull=False).select_related(
        "grid", "holder_unit"
    )
    for case in open_cases.filter(
        # Due by the end of the next working day (明天到期): reminded on a working day, never on a Sunday for Monday.
        handle_overdue=False,
        handle_deadline__gt=now,
        handle_deadline__lte=add_working_days(now, 1),
    ):
        sent = _notify_holder(
            case,
            "case_handle_due",
            _("催办：即将超过办理时限"),
            _("办理时限：%(deadline)s") % {"deadline": _fmt(case.handle_deadline)},
            key=f"case:{case.pk}:handle-due:{case.handle_deadline.isoformat()}",
        )
        done["handle_reminded"] += bool(sent)

    def tell_the_street(case):
        street = Unit.objects.get(path=selectors.street_path(case))
        _notify_unit_staff(
            case,
            street,
            (Role.STREET_STAFF,),
            "case_handle_overdue",
            _("事件办理超期"),
            key=f"case:{case.pk}:handle-overdue:{case.handle_deadline.isoformat()}",
        )

    done["handle_overdue"] = mark_overdue(
        open_cases.filter(handle_deadline__lte=now),
        flag="handle_overdue",
        action="handle-overdue",
        on_marked=tell_the_street,
    )

    # Unrated for seven days: closed as unrated (not counted as satisfied).
    done["auto_closed"] = close_unrated(
        Case.objects.filter(verified_at__lte=now - RATING_WINDOW),
        waiting=S.VERIFIED,
        closed=S.CLOSED,
        reason=ClosedReason.UNRATED,
        now=now,
    )
    return done


# --- Who hears about it ------------------------------------------------------------------------------------


def _fmt(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _department_staff(department_id) -> list[User]:
    return list(User.objects.filter(positions__department_id=department_id, positions__role=Role.DEPARTMENT_STAFF))


def _unit_staff(unit: Unit, roles) -> list[User]:
    return list(User.objects.filter(positions__unit=unit, positions__role__in=roles).distinct())


def _notify_unit_staff(case, unit, roles, kind, title, key=None, body=""):
    return notify(
        _unit_staff(unit, roles),
        kind=kind,
        key=key or f"case:{case.pk}:{kind}:{case.events.count()}",
        title=f"{title}：{case.number} {case.title}",
        body=body,
        url=case.get_absolute_url(),
    )


def _notify_holder(case, kind, title, body="", key=None):
    if case.holder_department_id:
        users = _department_staff(case.holder_department_id)
    elif case.holder_unit_id:
        users = _unit_staff(case.holder_unit, (Role.STREET_STAFF, Role.COMMUNITY_STAFF, Role.SECRETARY))
    else:
        users = []
    return notify(
        users,
        kind=kind,
        key=key or f"case:{case.pk}:{kind}:{case.events.count()}",
        title=f"{title}：{case.number} {case.title}",
        body=body,
        url=case.get_absolute_url(),
    )


def _notify_verifiers(case):
    users = list(User.objects.filter(positions__unit=case.grid, positions__role=Role.GRID_WORKER).distinct()) or [
        case.reporter
    ]
    notify(
        users,
        kind="case_to_verify",
        key=f"case:{case.pk}:to-verify:{case.events.count()}",
        title=_("待核查：%(number)s %(title)s") % {"number": case.number, "title": case.title},
        url=case.get_absolute_url(),
    )


def _notify_rater(case):
    users = []
    if case.affected_resident_id:
        users = list(User.objects.filter(positions__resident_id=case.affected_resident_id))
    if not users:  # no resident, or one without a login: the community calls them and rates for them
        community = Unit.objects.get(path=selectors.community_path(case))
        users = _unit_staff(community, (Role.COMMUNITY_STAFF,))
    notify(
        users,
        kind="case_to_rate",
        key=f"case:{case.pk}:to-rate:{case.events.count()}",
        title=_("请评价：%(number)s %(title)s") % {"number": case.number, "title": case.title}
        if case.affected_resident_id is None or any(u.positions.filter(role=Role.RESIDENT).exists() for u in users)
        else _("请回访居民并代为评价：%(number)s %(title)s") % {"number": case.number, "title": case.title},
        url=case.get_absolute_url(),
    )


# --- Reports from other systems (Open311) ------------------------------------------------------------------

MATCH_METRES = 500


def _metres(lat1, lon1, lat2, lon2) -> float:
    """Distance on the ground, equirectangular: exact enough within a street."""
    import math

    x = math.radians(float(lon2) - float(lon1)) * math.cos(math.radians((float(lat1) + float(lat2)) / 2))
    y = math.radians(float(lat2) - float(lat1))
    return 6_371_000 * math.hypot(x, y)


def open311_place(*, street: Unit, lat=None, long=None, address: str = "", address_id: str = "") -> tuple:
    """The grid (and building) of a location sent by another system, within the street: by the code of a grid or
    building (`address_id`), by the nearest grid or building with coordinates within 500 m, or by an address or
    compound name the text contains (the longest that does). Returns (grid, building, matched); unmatched, the
    street's first community takes it, in its first grid, for its staff to place."""
    units = Unit.objects.filter(path__startswith=street.path, level__in=(Level.GRID, Level.BUILDING))

    def found(unit):
        if unit.level == Level.BUILDING:
            return Unit.objects.get(path=unit.path[: 3 * STEP]), unit, True
        return unit, None, True

    if address_id:
        unit = units.filter(code=address_id).first()
        if unit is not None:
            return found(unit)
    if lat is not None and long is not None:
        located = (
            units.exclude(latitude=None).exclude(longitude=None).only("id", "path", "level", "latitude", "longitude")
        )
        best = min(
            ((_metres(lat, long, u.latitude, u.longitude), u.level != Level.BUILDING, u) for u in located),
            default=None,
            key=lambda t: (t[0], t[1]),
        )
        if best is not None and best[0] <= MATCH_METRES:
            return found(best[2])
    text = (address or "").strip()
    if text:
        named = [
            (len(name), unit)
            for unit in units.only("id", "path", "level", "address", "compound_name")
            for name in (unit.address, unit.compound_name)
            if name and len(name) >= 3 and name in text
        ]
        if named:
            return found(max(named, key=lambda t: (t[0], t[1].level == Level.BUILDING))[1])
    community = Unit.objects.filter(path__startswith=street.path, level=Level.COMMUNITY).order_by("path").first()
    grid = (
        Unit.objects.filter(path__startswith=community.path, level=Level.GRID).order_by("path").first()
        if community
        else None
    )
    if grid is None:
        raise InvalidInput(_("该街道下还没有网格，无法接收事件。"), field="jurisdiction_id")
    return grid, None, False
