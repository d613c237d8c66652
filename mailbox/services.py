"""Every write to letters: writing one, each step of the workflow, publication, and the deadline sweep.

Each step: lock the letter row, check the role (403) and the state (409) through `LETTER_FLOW` — the same
mechanism cases use (`governance.workflow`) —, change the fields, write one `LetterEvent`. Deadlines are counted
on the shared working-day calendar; reminders go through the shared notification interface.

The steps:
    submitted ─accept→ accepted ─assign→ assigned ─reply→ replied ─rate→ closed
              └reject→ rejected          (a handler's reply → drafted ─sign-off→ replied)
    replied ─follow-up (once)→ follow_up ─reply→ replied;  closed (1–2 stars) ─reopen (once)→ assigned/accepted
    replied and not rated within 7 days → closed as unrated.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from governance import redaction
from governance.errors import DomainError, InvalidInput, NotAllowed, RateLimited
from governance.masking import mask_name
from governance.models import Department, Level, Resident, Role, Unit, User
from governance.notifications import notify
from governance.selectors import STEP, residents_visible_to, scope_of
from governance.uploads import check_attachments
from governance.workdays import add_working_days
from governance.workflow import Action, Workflow, check_stars, close_unrated, mark_overdue, require_note

from . import selectors
from .models import (
    Channel,
    ClosedReason,
    ContactPreference,
    Intake,
    Letter,
    LetterAttachment,
    LetterCategory,
    LetterState,
)

S = LetterState
LETTER_FLOW = Workflow(
    LetterState,
    [
        Action("accept", gettext_lazy("受理"), (S.SUBMITTED,), S.ACCEPTED),
        Action("reject", gettext_lazy("不予受理"), (S.SUBMITTED,), S.REJECTED),
        Action("assign", gettext_lazy("交办"), (S.ACCEPTED, S.ASSIGNED), S.ASSIGNED),
        # Replied by the secretary; drafted by anyone else, for the secretary to sign off.
        Action("reply", gettext_lazy("答复"), (S.ACCEPTED, S.ASSIGNED, S.FOLLOW_UP)),
        Action("sign-off", gettext_lazy("审签答复"), (S.DRAFTED,)),
        Action("follow-up", gettext_lazy("追问"), (S.REPLIED,), S.FOLLOW_UP),
        Action("rate", gettext_lazy("评价"), (S.REPLIED,), S.CLOSED),
        Action("reopen", gettext_lazy("重办"), (S.CLOSED,)),
        Action("publish", gettext_lazy("公开"), ()),
        Action("unpublish", gettext_lazy("取消公开"), ()),
        Action("make-private", gettext_lazy("不再公开"), ()),
    ],
    events={
        "submit": gettext_lazy("来信"),
        "auto-close": gettext_lazy("超期未评价，自动办结"),
        "accept-overdue": gettext_lazy("受理超期"),
        "reply-overdue": gettext_lazy("答复超期"),
    },
)

RATING_WINDOW = dt.timedelta(days=7)
DUPLICATE_WINDOW = dt.timedelta(minutes=1)
LOW_RATING = 2
MAX_SUBJECT = 100
MAX_BODY = 3000
MAX_REPLY = 5000


def _settings(name, default):
    return getattr(settings, name, default)


def refusal(letter: Letter, name: str):
    """Conditions beyond the state itself (the page hides the step; the service says why)."""
    if name == "follow-up" and letter.follow_up_at:
        return _("每封来信只能追问一次。")
    if name == "reopen":
        if letter.closed_reason != ClosedReason.RATED or (letter.rating or 5) > LOW_RATING:
            return _("只有评价为一星或二星的来信可以重办。")
        if letter.reopen_count:
            return _("该来信已重办过一次，不能再次重办。")
    if name == "publish":
        if not letter.allow_publication:
            return _("来信人未同意公开，这封来信不能公开。")
        if not letter.reply:
            return _("来信尚未答复，答复后才能公开。")
    if name == "unpublish" and not letter.published:
        return _("这封来信尚未公开。")
    if name == "make-private" and not letter.allow_publication:
        return _("这封来信本来就不公开。")
    if name == "assign" and letter.case_id:
        return _("这封来信已转为网格事件办理。")
    return None


def _begin(letter: Letter, by: User, name: str) -> Letter:
    """Lock the letter and run the checks of a step: role (403), state (409), further conditions (409)."""
    letter = (
        Letter.objects.select_for_update(of=("self",))
        .select_related("unit", "assignee_unit", "writer")
        .get(pk=letter.pk)
    )
    LETTER_FLOW.check(letter, name, allowed=selectors.ACTION_ROLES[name](scope_of(by), by, letter))
    why = refusal(letter, name)
    if why:
        raise DomainError(why, code="invalid_state")
    return letter


def _save(letter: Letter, *fields):
    letter.save(update_fields=list(fields))


def _text(value, *, field: str, limit: int, missing: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(missing, field=field)
    if len(value) > limit:
        raise InvalidInput(_("内容过长：最多 %(n)d 字。") % {"n": limit}, field=field)
    return value


def _attach(letter: Letter, event, files, by: User):
    prepared = check_attachments(
        files,
        max_count=_settings("MAILBOX_MAX_ATTACHMENTS", 5),
        max_bytes=_settings("MAILBOX_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024),
    )
    for kind, content, name, size in prepared:
        LetterAttachment.objects.create(
            letter=letter, event=event, file=content, kind=kind, name=name, size=size, uploaded_by=by
        )


# --- Writing ---------------------------------------------------------------------------------------------


def _writer_for(by: User, writer: Resident | None, intake: str) -> tuple[Resident, str]:
    """Who the letter is from. A resident writes for themselves (online); staff write down a letter for a
    resident of their places who came in or phoned (代写), and the resident is recorded as the writer."""
    scope = scope_of(by)
    if writer is None or writer.pk in scope.resident_ids:
        if not scope.resident_ids:
            raise InvalidInput(_("代写来信时请选择来信的居民。"), field="writer")
        writer = writer or Resident.objects.get(pk=scope.resident_ids[0])
        return writer, Intake.ONLINE
    if not scope.is_staff_member or scope.is_admin and not scope.paths():
        raise NotAllowed(_("居民只能以本人名义来信。"))
    if not residents_visible_to(by).filter(pk=writer.pk).exists():
        raise InvalidInput(_("请选择您负责范围内的居民。"), field="writer")
    if intake not in (Intake.VISIT, Intake.PHONE):
        intake = Intake.VISIT
    return writer, intake


@transaction.atomic
def letter_submit(
    *,
    by: User,
    subject: str,
    body: str,
    category: LetterCategory,
    unit: Unit | None = None,
    channel: str = Channel.MAILBOX,
    writer: Resident | None = None,
    intake: str = Intake.ONLINE,
    allow_publication: bool = False,
    contact_preference: str = ContactPreference.APP,
    attachments=(),
    now: dt.datetime | None = None,
) -> tuple[Letter, bool]:
    """A letter to the secretary of the writer's community (the default) or street. Returns (letter, created):
    the same letter sent again within a minute (a double tap, a retried request) is the one already there.
    More than `MAILBOX_DAILY_LIMIT` (5) letters from one resident in a day: 429."""
    now = now or timezone.now()
    writer, intake = _writer_for(by, writer, intake)
    # Lock the writer: two submissions of theirs at the same moment are counted and compared one after the other.
    writer = Resident.objects.select_for_update().select_related("household__building").get(pk=writer.pk)
    if writer.moved_out_on is not None:
        raise DomainError(_("该居民已迁出，不能再以其名义来信。"), code="moved_out")
    places = selectors.recipient_units(writer)
    if unit is None:
        unit = places[0]
    elif unit.pk not in {u.pk for u in places}:
        raise InvalidInput(_("只能写给所在社区或街道的书记。"), field="unit")
    subject = _text(subject, field="subject", limit=MAX_SUBJECT, missing=_("请填写标题。"))
    body = _text(body, field="body", limit=MAX_BODY, missing=_("请填写来信内容。"))
    if not category.active:
        raise InvalidInput(_("请选择一个启用的分类。"), field="category")
    if channel not in Channel.values:
        raise InvalidInput(_("请选择来信渠道。"), field="channel")
    if contact_preference not in ContactPreference.values:
        raise InvalidInput(_("请选择联系方式。"), field="contact_preference")

    mine = Letter.objects.filter(writer=writer)
    same = mine.filter(subject=subject, body=body, created_at__gte=now - DUPLICATE_WINDOW).order_by("-id").first()
    if same is not None:
        return same, False
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    limit = _settings("MAILBOX_DAILY_LIMIT", 5)
    if mine.filter(created_at__gte=day_start).count() >= limit:
        raise RateLimited(_("每位居民每天最多来信 %(n)d 封，请明天再写。") % {"n": limit})

    letter = Letter.objects.create(
        unit=unit,
        channel=channel,
        category=category,
        subject=subject,
        body=body,
        writer=writer,
        submitted_by=by,
        intake=intake,
        allow_publication=bool(allow_publication),
        contact_preference=contact_preference,
        created_at=now,
        accept_deadline=add_working_days(now, _settings("MAILBOX_ACCEPT_DAYS", 2)),
    )
    letter.number = f"XJ-{timezone.localtime(now).year}-{letter.pk:06d}"
    _save(letter, "number")
    event = letter.events.create(actor=by, action="submit", to_state=letter.state, created_at=now)
    _attach(letter, event, attachments, by)
    _notify_office(letter, "letter_new", _("新来信待受理"))
    return letter, True


# --- Intake: accept, reject, assign ---------------------------------------------------------------------


@transaction.atomic
def letter_accept(*, letter: Letter, by: User, note: str = "", now=None) -> Letter:
    """受理: the reply deadline starts (10 working days, `MAILBOX_REPLY_DAYS`)."""
    now = now or timezone.now()
    letter = _begin(letter, by, "accept")
    before = letter.state
    letter.state = S.ACCEPTED
    letter.accepted_at = now
    letter.accepted_on_time = now <= letter.accept_deadline if letter.accept_deadline else True
    letter.reply_deadline = add_working_days(now, _settings("MAILBOX_REPLY_DAYS", 10))
    _save(letter, "state", "accepted_at", "accepted_on_time", "reply_deadline")
    LETTER_FLOW.record(letter, "accept", by=by, from_state=before, note=note.strip(), at=now)
    _notify_writer(letter, "letter_accepted", _("您的来信已受理"), note)
    return letter


@transaction.atomic
def letter_reject(*, letter: Letter, by: User, note: str, now=None) -> Letter:
    """不予受理, with the reason the writer is shown."""
    now = now or timezone.now()
    letter = _begin(letter, by, "reject")
    reason = require_note(note, message=_("请说明不予受理的理由，来信人会看到。"))
    before = letter.state
    letter.state, letter.reject_reason, letter.closed_at = S.REJECTED, reason, now
    letter.accepted_on_time = now <= letter.accept_deadline if letter.accept_deadline else True
    _save(letter, "state", "reject_reason", "closed_at", "accepted_on_time")
    LETTER_FLOW.record(letter, "reject", by=by, from_state=before, note=reason, at=now)
    _notify_writer(letter, "letter_rejected", _("您的来信不予受理"), reason)
    return letter


@transaction.atomic
def letter_assign(
    *,
    letter: Letter,
    by: User,
    unit: Unit | None = None,
    department: Department | None = None,
    deadline: dt.datetime | None = None,
    case_grid: Unit | None = None,
    case_category=None,
    note: str = "",
    now=None,
) -> Letter:
    """交办: to the staff of a unit under the letter's unit, to a department, or — with `case_grid` and
    `case_category` — turned into a grid case of that grid (source "书记信箱"), linked both ways; the case then
    runs its own workflow, and the secretary replies to the writer when it is done. `deadline` (default: the
    reply deadline) is when the handler's answer is due."""
    now = now or timezone.now()
    letter = _begin(letter, by, "assign")
    targets = [t for t in (unit, department, case_grid) if t is not None]
    if len(targets) != 1:
        raise InvalidInput(_("请选择承办单位、承办部门或转为网格事件，三者选一。"), field="unit")
    if deadline is not None:
        if deadline <= now:
            raise InvalidInput(_("办理期限须晚于现在。"), field="deadline")
        if letter.reply_deadline and deadline > letter.reply_deadline:
            raise InvalidInput(_("办理期限不能晚于答复时限。"), field="deadline")
    before = letter.state
    data = {}
    case = None
    if case_grid is not None:
        case = _file_case(letter, by, case_grid, case_category, note, now)
        letter.case = case
        letter.assignee_unit, letter.assignee_department = None, None
        data = {"case": case.number}
    elif unit is not None:
        if not unit.path.startswith(letter.unit.path) or unit.depth > selectors.ASSIGNEE_DEPTH:
            raise InvalidInput(_("只能交办给本单位或下属的社区、网格。"), field="unit")
        letter.assignee_unit, letter.assignee_department = unit, None
        data = {"unit": unit.name}
    else:
        if not department.is_active:
            raise InvalidInput(_("「%(name)s」已停用，不能交办。") % {"name": department.name}, field="department")
        letter.assignee_unit, letter.assignee_department = None, department
        data = {"department": department.name}
    letter.state = S.ASSIGNED
    letter.draft, letter.drafted_by = "", None
    due = deadline or letter.reply_deadline
    letter.assign_deadline = due
    if due:
        data["until"] = due.isoformat()
    _save(letter, "state", "assignee_unit", "assignee_department", "case", "assign_deadline", "draft", "drafted_by")
    LETTER_FLOW.record(letter, "assign", by=by, from_state=before, note=note.strip(), data=data, at=now)
    if case is None:
        _notify_assignee(letter, _("新交办来信"), note, due)
    return letter


def _file_case(letter: Letter, by: User, grid: Unit, category, note: str, now):
    from grids import services as case_services
    from grids.models import Source

    if grid.level != Level.GRID or not grid.path.startswith(letter.unit.path):
        raise InvalidInput(_("请选择本单位所辖的网格。"), field="case_grid")
    if category is None:
        raise InvalidInput(_("转为网格事件时请选择事件分类。"), field="case_category")
    writer_lives_there = letter.writer.household.building.path.startswith(grid.path)
    description = letter.body + "\n\n" + _("（由书记信箱来信 %(number)s 转办）") % {"number": letter.number}
    if note.strip():
        description += "\n" + note.strip()
    try:
        return case_services.case_file(
            by=by,
            title=letter.subject,
            description=description[:2000],
            category=category,
            grid=grid,
            source=Source.LETTER,
            affected_resident=letter.writer if writer_lives_there else None,
            via_letter=True,
            now=now,
        )
    except InvalidInput as error:
        field = {"grid": "case_grid", "category": "case_category"}.get(error.field, error.field)
        raise InvalidInput(error.message, field=field) from None


# --- Replies ----------------------------------------------------------------------------------------------


def _follow_up_pending(letter: Letter) -> bool:
    return bool(letter.follow_up_at) and not letter.follow_up_replied_at


def _publish_copy(letter: Letter, **reviewed):
    """Write the public copy: each text redacted (also when the secretary edited it: review can only take more
    out, never put personal data back)."""
    names = [letter.writer.name]
    fields = {
        "public_subject": letter.subject,
        "public_body": letter.body,
        "public_reply": letter.reply,
        "public_follow_up": letter.follow_up_question,
        "public_follow_up_reply": letter.follow_up_reply,
    }
    for field, original in fields.items():
        text = reviewed.get(field)
        text = original if text is None or not str(text).strip() else str(text)
        setattr(letter, field, redaction.redact(text, names=names)[0])


def _finish_reply(letter: Letter, by: User, text: str, now, *, reviewed: dict) -> list[str]:
    """The signed answer: the reply, or the answer to the follow-up question. Returns the fields changed."""
    if _follow_up_pending(letter):
        letter.follow_up_reply, letter.follow_up_replied_at = text, now
        fields = ["follow_up_reply", "follow_up_replied_at"]
    else:
        letter.reply, letter.replied_at, letter.replied_by = text, now, by
        fields = ["reply", "replied_at", "replied_by"]
        if letter.replied_on_time is None:  # the first reply is the one measured
            letter.replied_on_time = letter.reply_deadline is None or now <= letter.reply_deadline
            fields.append("replied_on_time")
    letter.state, letter.answered_at = S.REPLIED, now
    letter.draft, letter.drafted_by = "", None
    fields += ["state", "answered_at", "draft", "drafted_by"]
    if letter.allow_publication:
        # Published automatically once answered, as the writer allowed: the redacted copy, reviewed if given.
        _publish_copy(letter, **reviewed)
        if not letter.published:
            letter.published, letter.published_at = True, now
        fields += [
            "published",
            "published_at",
            "public_subject",
            "public_body",
            "public_reply",
            "public_follow_up",
            "public_follow_up_reply",
        ]
    return fields


@transaction.atomic
def letter_reply(*, letter: Letter, by: User, text: str, attachments=(), now=None, **reviewed) -> Letter:
    """答复. The secretary's reply goes to the writer at once; anyone else's (the office, the handler it was
    assigned to) is a draft for the secretary to sign off. `reviewed`: the secretary's edited public copy
    (`public_body`, `public_reply` …), used when the letter is published."""
    now = now or timezone.now()
    letter = _begin(letter, by, "reply")
    text = _text(text, field="text", limit=MAX_REPLY, missing=_("请填写答复内容。"))
    before = letter.state
    scope = scope_of(by)
    if selectors.is_secretary(scope, letter):
        fields = _finish_reply(letter, by, text, now, reviewed=reviewed)
        _save(letter, *fields)
        event = LETTER_FLOW.record(letter, "reply", by=by, from_state=before, note=text, at=now)
        _notify_writer(letter, "letter_replied", _("您的来信已答复，请评价"))
    else:
        letter.state, letter.draft, letter.drafted_by = S.DRAFTED, text, by
        _save(letter, "state", "draft", "drafted_by")
        event = LETTER_FLOW.record(letter, "reply", by=by, from_state=before, note=text, data={"draft": True}, at=now)
        _notify_secretary(letter, "letter_draft", _("答复待审签"))
    _attach(letter, event, attachments, by)
    return letter


@transaction.atomic
def letter_sign_off(
    *, letter: Letter, by: User, approved: bool, text: str = "", note: str = "", now=None, **reviewed
) -> Letter:
    """The secretary signs off a drafted reply (as drafted, or as edited in `text`), or sends it back to be
    redrafted with a note."""
    now = now or timezone.now()
    letter = _begin(letter, by, "sign-off")
    before = letter.state
    drafter = letter.drafted_by
    if approved:
        final = (text or "").strip() or letter.draft
        final = _text(final, field="text", limit=MAX_REPLY, missing=_("请填写答复内容。"))
        fields = _finish_reply(letter, by, final, now, reviewed=reviewed)
        _save(letter, *fields)
        LETTER_FLOW.record(letter, "sign-off", by=by, from_state=before, note=final, data={"approved": True}, at=now)
        _notify_writer(letter, "letter_replied", _("您的来信已答复，请评价"))
        return letter
    note = require_note(note, message=_("请说明需要如何修改答复。"))
    if _follow_up_pending(letter):
        letter.state = S.FOLLOW_UP
    elif letter.assignee_unit_id or letter.assignee_department_id or letter.case_id:
        letter.state = S.ASSIGNED
    else:
        letter.state = S.ACCEPTED
    _save(letter, "state")
    LETTER_FLOW.record(letter, "sign-off", by=by, from_state=before, note=note, data={"approved": False}, at=now)
    if drafter is not None:
        notify(
            [drafter],
            kind="letter_draft_returned",
            key=f"letter:{letter.pk}:draft-returned:{letter.events.count()}",
            title=_("答复未通过审签：%(number)s %(subject)s") % {"number": letter.number, "subject": letter.subject},
            body=note,
            url=letter.get_absolute_url(),
        )
    return letter


# --- The writer: follow-up, rating; the secretary: reopen ------------------------------------------------


@transaction.atomic
def letter_follow_up(*, letter: Letter, by: User, note: str, now=None) -> Letter:
    """追问: one question on the reply, answered the same way (`MAILBOX_FOLLOW_UP_DAYS`, 5 working days)."""
    now = now or timezone.now()
    letter = _begin(letter, by, "follow-up")
    question = _text(note, field="note", limit=MAX_BODY, missing=_("请填写追问的问题。"))
    before = letter.state
    letter.state, letter.follow_up_question, letter.follow_up_at = S.FOLLOW_UP, question, now
    letter.reply_deadline = add_working_days(now, _settings("MAILBOX_FOLLOW_UP_DAYS", 5))
    letter.reply_overdue = False
    _save(letter, "state", "follow_up_question", "follow_up_at", "reply_deadline", "reply_overdue")
    LETTER_FLOW.record(letter, "follow-up", by=by, from_state=before, note=question, at=now)
    _notify_secretary(letter, "letter_follow_up", _("来信人追问"), question)
    if letter.assignee_unit_id or letter.assignee_department_id:
        _notify_assignee(letter, _("来信人追问"), question, letter.reply_deadline)
    return letter


@transaction.atomic
def letter_rate(*, letter: Letter, by: User, stars: int, note: str = "", now=None) -> Letter:
    now = now or timezone.now()
    letter = _begin(letter, by, "rate")
    stars = check_stars(stars)
    before = letter.state
    letter.state, letter.closed_reason, letter.closed_at = S.CLOSED, ClosedReason.RATED, now
    letter.rating, letter.rating_comment, letter.rated_at = stars, (note or "").strip(), now
    _save(letter, "state", "closed_reason", "closed_at", "rating", "rating_comment", "rated_at")
    LETTER_FLOW.record(
        letter, "rate", by=by, from_state=before, note=letter.rating_comment, data={"stars": stars}, at=now
    )
    if stars <= LOW_RATING:
        _notify_secretary(letter, "letter_low_rating", _("来信人不满意（%(n)d 星），可重办") % {"n": stars})
    return letter


@transaction.atomic
def letter_reopen(*, letter: Letter, by: User, note: str, now=None) -> Letter:
    """重办: a one- or two-star letter goes back once to whoever handled it, with a fresh reply deadline."""
    now = now or timezone.now()
    letter = _begin(letter, by, "reopen")
    note = require_note(note, message=_("请说明重办的要求。"))
    before = letter.state
    handled = letter.assignee_unit_id or letter.assignee_department_id or letter.case_id
    letter.state = S.ASSIGNED if handled else S.ACCEPTED
    letter.closed_reason, letter.closed_at = "", None
    letter.reply_deadline = add_working_days(now, _settings("MAILBOX_REPLY_DAYS", 10))
    letter.reply_overdue = False
    letter.reopen_count = F("reopen_count") + 1
    _save(letter, "state", "closed_reason", "closed_at", "reply_deadline", "reply_overdue", "reopen_count")
    letter.refresh_from_db(fields=["reopen_count"])
    LETTER_FLOW.record(letter, "reopen", by=by, from_state=before, note=note, at=now)
    if letter.assignee_unit_id or letter.assignee_department_id:
        _notify_assignee(letter, _("来信人不满意，来信重办"), note, letter.reply_deadline)
    _notify_writer(letter, "letter_reopened", _("您的来信已安排重新办理"), note)
    return letter


# --- Publication -----------------------------------------------------------------------------------------


def redaction_preview(letter: Letter) -> dict:
    """What publishing would show, and what the redaction took out, for the secretary to review."""
    names = [letter.writer.name]
    texts = {
        "public_subject": letter.subject,
        "public_body": letter.body,
        "public_reply": letter.reply or letter.draft,
        "public_follow_up": letter.follow_up_question,
        "public_follow_up_reply": letter.follow_up_reply,
    }
    preview, removed = {}, []
    for field, text in texts.items():
        redacted, hits = redaction.redact(text, names=names)
        preview[field] = redacted
        removed += [{"field": field, "kind": hit.kind, "text": hit.text} for hit in hits]
    return {"writer": mask_name(letter.writer.name), **preview, "removed": removed}


@transaction.atomic
def letter_publish(*, letter: Letter, by: User, now=None, **reviewed) -> Letter:
    """公开 the redacted copy (the secretary's reviewed texts, if given, redacted once more)."""
    now = now or timezone.now()
    letter = _begin(letter, by, "publish")
    _publish_copy(letter, **reviewed)
    if not letter.published:
        letter.published_at = now
    letter.published = True
    _save(
        letter,
        "published",
        "published_at",
        "public_subject",
        "public_body",
        "public_reply",
        "public_follow_up",
        "public_follow_up_reply",
    )
    LETTER_FLOW.record(letter, "publish", by=by, from_state=letter.state, at=now)
    return letter


@transaction.atomic
def letter_unpublish(*, letter: Letter, by: User, note: str = "", now=None) -> Letter:
    letter = _begin(letter, by, "unpublish")
    letter.published = False
    _save(letter, "published")
    LETTER_FLOW.record(letter, "unpublish", by=by, from_state=letter.state, note=(note or "").strip(), at=now)
    return letter


@transaction.atomic
def letter_make_private(*, letter: Letter, by: User, note: str = "", now=None) -> Letter:
    """The writer withdraws their consent: the letter leaves the public page at once and for good."""
    letter = _begin(letter, by, "make-private")
    letter.allow_publication = letter.published = False
    _save(letter, "allow_publication", "published")
    LETTER_FLOW.record(letter, "make-private", by=by, from_state=letter.state, note=(note or "").strip(), at=now)
    return letter


# --- Deadlines and reminders ------------------------------------------------------------------------------

REPLY_STATES = (S.ACCEPTED, S.ASSIGNED, S.DRAFTED, S.FOLLOW_UP)


def letter_sweep(*, now: dt.datetime | None = None) -> dict:
    """Remind before the accept and reply deadlines, mark letters overdue after them (telling the secretary and,
    for a community's letter, the street's secretary), tell the secretary when the case a letter became is done,
    and close letters left unrated for seven days. Safe to run any number of times."""
    now = now or timezone.now()
    done = {}
    tomorrow = add_working_days(now, 1)
    letters = Letter.objects.select_related("unit", "assignee_unit")

    due = letters.filter(
        state=S.SUBMITTED, accept_overdue=False, accept_deadline__gt=now, accept_deadline__lte=tomorrow
    )
    done["accept_reminded"] = sum(
        bool(_notify_office(lt, "letter_accept_due", _("催办：来信即将超过受理时限"), key=_key(lt, "accept-due")))
        for lt in due
    )
    done["accept_overdue"] = mark_overdue(
        letters.filter(state=S.SUBMITTED, accept_deadline__lte=now),
        flag="accept_overdue",
        action="accept-overdue",
        on_marked=lambda lt: _tell_overdue(lt, _("来信受理超期"), "accept-overdue"),
    )

    due = letters.filter(
        state__in=REPLY_STATES, reply_overdue=False, reply_deadline__gt=now, reply_deadline__lte=tomorrow
    )
    reminded = 0
    for lt in due:
        key = _key(lt, "reply-due")
        sent = _notify_office(lt, "letter_reply_due", _("催办：来信即将超过答复时限"), key=key)
        if lt.assignee_unit_id or lt.assignee_department_id:
            sent += _notify_assignee(lt, _("催办：来信即将超过答复时限"), "", lt.reply_deadline, key=key)
        reminded += bool(sent)
    done["reply_reminded"] = reminded
    done["reply_overdue"] = mark_overdue(
        letters.filter(state__in=REPLY_STATES, reply_deadline__lte=now),
        flag="reply_overdue",
        action="reply-overdue",
        on_marked=lambda lt: _tell_overdue(lt, _("来信答复超期"), "reply-overdue"),
    )

    from grids.models import CaseState

    finished = letters.filter(
        state=S.ASSIGNED, case__state__in=[CaseState.HANDLED, CaseState.VERIFIED, CaseState.CLOSED]
    ).select_related("case")
    done["case_done"] = sum(
        bool(
            _notify_secretary(
                lt,
                "letter_case_done",
                _("转办的网格事件 %(case)s 已办结，请答复来信人") % {"case": lt.case.number},
                key=f"letter:{lt.pk}:case-done:{lt.case.handled_at.isoformat() if lt.case.handled_at else ''}",
            )
        )
        for lt in finished
    )

    done["auto_closed"] = close_unrated(
        Letter.objects.filter(answered_at__lte=now - RATING_WINDOW),
        waiting=S.REPLIED,
        closed=S.CLOSED,
        reason=ClosedReason.UNRATED,
        now=now,
    )
    return done


def _key(letter: Letter, what: str) -> str:
    deadline = letter.accept_deadline if what.startswith("accept") else letter.reply_deadline
    return f"letter:{letter.pk}:{what}:{deadline.isoformat() if deadline else ''}"


def _tell_overdue(letter: Letter, title: str, what: str):
    key = _key(letter, what)
    _notify_secretary(letter, "letter_overdue", title, key=key)
    if letter.unit.level == Level.COMMUNITY:  # the street follows its communities' mailboxes
        street = Unit.objects.get(path=letter.unit.path[:STEP])
        _notify_users(letter, _unit_staff(street, (Role.SECRETARY,)), "letter_overdue", title, key=key)


# --- Who hears about it ------------------------------------------------------------------------------------


def _unit_staff(unit: Unit, roles) -> list[User]:
    return list(User.objects.filter(positions__unit=unit, positions__role__in=roles).distinct())


def _notify_users(letter: Letter, users, kind: str, title: str, body: str = "", key: str | None = None):
    return notify(
        users,
        kind=kind,
        key=key or f"letter:{letter.pk}:{kind}:{letter.events.count()}",
        title=f"{title}：{letter.number} {letter.subject}",
        body=body,
        url=letter.get_absolute_url(),
    )


def _notify_office(letter: Letter, kind: str, title: str, body: str = "", key: str | None = None):
    return _notify_users(letter, _unit_staff(letter.unit, selectors.OFFICE_ROLES), kind, title, body, key)


def _notify_secretary(letter: Letter, kind: str, title: str, body: str = "", key: str | None = None):
    users = _unit_staff(letter.unit, (Role.SECRETARY,)) or _unit_staff(letter.unit, selectors.OFFICE_ROLES)
    return _notify_users(letter, users, kind, title, body, key)


def _notify_assignee(letter: Letter, title: str, body: str = "", due=None, key: str | None = None):
    if letter.assignee_department_id:
        users = list(
            User.objects.filter(
                positions__department_id=letter.assignee_department_id, positions__role=Role.DEPARTMENT_STAFF
            )
        )
    elif letter.assignee_unit_id:
        users = _unit_staff(letter.assignee_unit, selectors.ASSIGNEE_ROLES)
    else:
        users = []
    if due:
        body = (body + "\n" if body else "") + _("答复时限：%(deadline)s") % {
            "deadline": timezone.localtime(due).strftime("%Y-%m-%d %H:%M")
        }
    return _notify_users(letter, users, "letter_assigned", title, body, key)


def _notify_writer(letter: Letter, kind: str, title: str, body: str = ""):
    users = list(User.objects.filter(positions__resident_id=letter.writer_id, positions__role=Role.RESIDENT))
    return _notify_users(letter, users, kind, title, body)
