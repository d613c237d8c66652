"""Pages of the mailbox: the inbox (staff) or "my letters" (residents), writing a letter (phone-first; staff write
one down for a resident), the letter with its steps and the rating, attachments, the statistics, and the public
letters (no login).

Every page starts from `selectors.letters_visible_to(user)` (outside it: 404) or `selectors.public_letters()`.
A service's refusal becomes a page, never a 500: NotAllowed → 403, InvalidInput → the form with the error
(400), RateLimited → 429, any other DomainError → the page with the message (409).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, F, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from governance import exports
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.masking import mask_name
from governance.models import Level, Resident, Role, Unit
from governance.pages import (
    StepOutcome,
    bulk_step,
    error_summary,
    forbidden,
    resident_search,
    show_error,
    step_panels,
    take_step,
)
from governance.selectors import residents_visible_to, scope_of, under, unit_chain
from governance.validators import parse_id
from points.views import parse_id_or_404

from . import forms, selectors, services, stats
from .api import overdue_q
from .models import OPEN_STATES, LetterState

PAGE_SIZE = 20


# --- The inbox / my letters -----------------------------------------------------------------------------------


def _mine_q(user):
    """Letters waiting for me: to accept or assign (my unit's office), to answer (assigned to me or my unit), to
    sign off (my unit's secretary), to rate or follow up (mine)."""
    scope = scope_of(user)
    q = Q(pk__in=[])
    for path in scope.paths(*selectors.OFFICE_ROLES):
        q |= Q(unit__path=path, state__in=[LetterState.SUBMITTED, LetterState.ACCEPTED, LetterState.FOLLOW_UP])
    for path in scope.paths(Role.SECRETARY):
        q |= Q(unit__path=path, state=LetterState.DRAFTED)
    assignee = scope.paths(*selectors.ASSIGNEE_ROLES)
    if assignee:
        q |= under(assignee, "assignee_unit__path") & Q(state__in=[LetterState.ASSIGNED, LetterState.FOLLOW_UP])
    if scope.department_ids:
        q |= Q(assignee_department_id__in=scope.department_ids, state__in=[LetterState.ASSIGNED, LetterState.FOLLOW_UP])
    if scope.resident_ids:
        q |= Q(writer_id__in=scope.resident_ids, state=LetterState.REPLIED)
    return q


LETTER_SORTS = {
    "new": ("-created_at", "-id"),
    "old": ("created_at", "id"),
    "deadline": (F("reply_deadline").asc(nulls_last=True), "id"),
    "number": ("number",),
}


@login_required
def letter_list(request):
    user = request.user
    scope = scope_of(user)
    if not (scope.is_staff_member or scope.resident_ids):
        return forbidden(request, _("书记信箱只对居民和工作人员开放。"))
    if request.method == "POST" and request.POST.get("bulk") == "accept":
        # The office accepts many letters at once (受理): each through the service, refusals reported.
        bulk_step(
            request,
            queryset=selectors.letters_visible_to(user).select_related("unit", "assignee_unit", "writer"),
            step="accept",
            flow=services.LETTER_FLOW,
            may=selectors.may,
            service=services.letter_accept,
            object_kwarg="letter",
        )
        return redirect(request.get_full_path())
    now = timezone.now()
    staff_view = scope.is_staff_member
    form = forms.LetterFilterForm(request.GET)
    form.is_valid()  # a bad filter is shown with its error and ignored; the good ones still apply
    data = form.cleaned_data
    letters = selectors.letters_visible_to(user)
    if data.get("q"):
        letters = letters.filter(Q(number__icontains=data["q"]) | Q(subject__icontains=data["q"]))
    for name in ("state", "channel"):
        if data.get(name):
            letters = letters.filter(**{name: data[name]})
    if data.get("category"):
        letters = letters.filter(category_id=data["category"])
    if data.get("overdue"):
        letters = letters.filter(overdue_q(now))
    if data.get("mine"):
        letters = letters.filter(_mine_q(user))
    if data.get("open"):
        letters = letters.filter(state__in=OPEN_STATES)
    sort = request.GET.get("sort") if request.GET.get("sort") in LETTER_SORTS else "new"
    letters = letters.select_related("unit", "category", "writer").order_by(*LETTER_SORTS[sort])
    if exports.wants_export(request) and scope_of(user).is_staff_member:
        return _export_letters(request, letters, now)
    page = Paginator(letters, PAGE_SIZE).get_page(request.GET.get("page"))
    for letter in page.object_list:
        letter.overdue_now = _overdue(letter, now)
        letter.writer_shown = letter.writer.name if staff_view else mask_name(letter.writer.name)
        letter.bulk_accept = letter.state == LetterState.SUBMITTED and selectors.may(user, letter, "accept")
    params = request.GET.copy()
    params.pop("page", None)
    sort_params = params.copy()
    sort_params.pop("sort", None)
    return render(
        request,
        "mailbox/list.html",
        {
            "form": form,
            "page": page,
            "querystring": params.urlencode(),
            "staff_view": staff_view,
            "sort": sort,
            "sort_querystring": sort_params.urlencode(),
            "bulk": any(letter.bulk_accept for letter in page.object_list),
            "filtered": any(data.get(n) for n in ("q", "state", "channel", "category", "overdue", "mine", "open")),
        },
    )


def _overdue(letter, now) -> bool:
    if letter.state == LetterState.SUBMITTED:
        return bool(letter.accept_deadline and letter.accept_deadline < now)
    return letter.state in OPEN_STATES and bool(letter.reply_deadline and letter.reply_deadline < now)


# --- Writing --------------------------------------------------------------------------------------------------


def _may_write_for_others(scope) -> bool:
    return bool(scope.paths(*selectors.ASSIGNEE_ROLES))


@login_required
def letter_write(request):
    user = request.user
    scope = scope_of(user)
    proxy = _may_write_for_others(scope) and not scope.resident_ids
    if not scope.resident_ids and not proxy:
        return forbidden(request, _("只有居民本人，或替居民代写的社区、网格工作人员可以写信。"))
    writer = None
    if proxy:
        resident_id = request.POST.get("writer") if request.method == "POST" else request.GET.get("resident")
        if not resident_id:
            return _writer_search(request, user)
        writer = get_object_or_404(
            residents_visible_to(user).select_related("household__building"), pk=parse_id_or_404(resident_id)
        )
    else:
        writer = Resident.objects.select_related("household__building").get(pk=scope.resident_ids[0])
    status, error = 200, None
    if request.method == "POST":
        form = forms.LetterWriteForm(request.POST, request.FILES, writer=writer, proxy=proxy)
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                letter, created = services.letter_submit(by=user, writer=writer if proxy else None, **data)
            except NotAllowed as refusal:
                return forbidden(request, str(refusal.message))
            except DomainError as refusal:  # bad input (400), too many today (429), moved out (409)
                status = show_error(form, refusal)
                error = str(refusal.message)
            else:
                if created:
                    messages.success(
                        request, _("来信已送达，编号 %(number)s。书记会尽快受理。") % {"number": letter.number}
                    )
                else:
                    messages.info(
                        request, _("这封信刚才已经送达（编号 %(number)s），没有重复提交。") % {"number": letter.number}
                    )
                return redirect(letter)
        else:
            status = 400
    else:
        form = forms.LetterWriteForm(writer=writer, proxy=proxy)
    return render(
        request,
        "mailbox/write.html",
        {
            "form": form,
            "writer": writer,
            "proxy": proxy,
            "error": error,
            "errors": error_summary(form) if form.is_bound and status == 400 else [],
            "files_dropped": bool(request.FILES) and status != 200,
            "accept_days": settings.MAILBOX_ACCEPT_DAYS,
            "reply_days": settings.MAILBOX_REPLY_DAYS,
        },
        status=status,
    )


def _writer_search(request, user):
    residents = residents_visible_to(user).filter(moved_out_on=None)
    context = resident_search(request, residents, label=_("查找来信的居民（姓名或房号）"), page_size=PAGE_SIZE)
    return render(request, "mailbox/write_search.html", context)


# --- The letter -------------------------------------------------------------------------------------------------


def _visible_letter(user, pk):
    return get_object_or_404(
        selectors.letters_visible_to(user)
        .select_related(
            "unit",
            "category",
            "writer__household__building",
            "assignee_unit",
            "assignee_department",
            "case",
            "replied_by",
            "drafted_by",
            "submitted_by",
        )
        .prefetch_related("attachments"),
        pk=pk,
    )


def _step_form(name, letter, user, preview, *args):
    kwargs = {"letter": letter, "user": user, "auto_id": f"id_{name}_%s"}
    if name in forms.WITH_PREVIEW:
        kwargs["preview"] = preview
    return forms.STEP_FORMS[name](*args, **kwargs)


def _state_label(state):
    return LetterState(state).label if state in LetterState.values else state


def _timeline(letter, viewer_is_staff):
    events = list(letter.events.select_related("actor").prefetch_related("attachments").order_by("created_at", "id"))

    def actor(event):
        if not event.actor_id:
            return _("系统")
        if event.actor_id == letter.submitted_by_id and event.action == "submit" and not viewer_is_staff:
            return _("本人") if letter.intake == "online" else event.actor.display_name
        return event.actor.display_name

    rows = []
    for event in events:
        details = []
        data = event.data or {}
        if data.get("stars"):
            details.append((_("星级"), "★" * int(data["stars"])))
        for key, label in (("unit", _("承办单位")), ("department", _("承办部门")), ("case", _("转办事件"))):
            if data.get(key):
                details.append((label, data[key]))
        if "approved" in data:
            details.append((_("审签结果"), _("同意") if data["approved"] else _("退回修改")))
        note = event.note
        internal = (
            data.get("draft") or event.action == "assign" or (event.action == "sign-off" and not data.get("approved"))
        )
        if internal and not viewer_is_staff:
            note = ""  # drafts, assignment notes and sent-back drafts are between the staff
        rows.append(
            {
                "event": event,
                "label": _("答复（草稿）") if data.get("draft") else services.LETTER_FLOW.label(event.action),
                "actor": actor(event),
                "from_state": _state_label(event.from_state) if event.from_state != event.to_state else "",
                "to_state": _state_label(event.to_state) if event.from_state != event.to_state else "",
                "note": note,
                "details": details,
                "photos": [a for a in event.attachments.all() if a.kind == "image"],
                "files": [a for a in event.attachments.all() if a.kind == "pdf"],
            }
        )
    return rows


@login_required
def letter_detail(request, pk):
    user = request.user
    letter = _visible_letter(user, pk)
    scope = scope_of(user)
    is_secretary = selectors.is_secretary(scope, letter)
    preview = services.redaction_preview(letter) if is_secretary else None

    def make_form(name, *args):
        return _step_form(name, letter, user, preview, *args)

    outcome = StepOutcome()
    if request.method == "POST":
        outcome = take_step(
            request,
            obj=letter,
            flow=services.LETTER_FLOW,
            step_forms=forms.STEP_FORMS,
            may=selectors.may,
            make_form=make_form,
            service_for=lambda name: getattr(services, "letter_" + name.replace("-", "_")),
            object_kwarg="letter",
        )
        if outcome.response is not None:
            return outcome.response
    steps = step_panels(
        selectors.actions_for(user, letter),
        flow=services.LETTER_FLOW,
        make_form=make_form,
        outcome=outcome,
        quiet=("unpublish", "make-private", "publish"),
    )
    staff_view = scope.is_staff_member
    writer = letter.writer
    now = timezone.now()
    return render(
        request,
        "mailbox/detail.html",
        {
            "letter": letter,
            "staff_view": staff_view,
            "writer_name": writer.name if staff_view or selectors.is_writer(scope, letter) else mask_name(writer.name),
            "writer_phone": selectors.writer_phone_shown(user, letter, request=request, via="page")
            if staff_view
            else "",
            "overdue_now": _overdue(letter, now),
            "attachments": [a for a in letter.attachments.all() if a.event_id is None or staff_view],
            "timeline": _timeline(letter, staff_view),
            "steps": steps,
            "preview": preview if letter.allow_publication else None,
            "error": outcome.error,
        },
        status=outcome.status,
    )


@login_required
def letter_attachment(request, pk, attachment_pk):
    from .api import attachment_response

    letter = get_object_or_404(selectors.letters_visible_to(request.user), pk=pk)
    return attachment_response(letter, attachment_pk)


# --- Statistics ------------------------------------------------------------------------------------------------


def _pct(rate):
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _shown(row: dict) -> dict:
    shown = dict(row)
    for key, value in row.items():
        if key.endswith("_rate"):
            shown[key] = _pct(value)
        elif key == "rating_avg":
            shown[key] = "—" if value is None else f"{value:.2f}"
    return shown


def _export_letters(request, letters, now):
    """The inbox as shown, filters applied: the writer's name and phone masked unless the viewer keeps the
    writer's records (as on the letter's page)."""
    from governance.masking import mask_name, mask_phone
    from governance.selectors import can_see_personal_data

    letters = letters.select_related("writer__household__building", "assignee_unit", "assignee_department")
    headers = ["编号", "主题", "分类", "渠道", "来信人", "联系电话", "收信单位", "承办", "状态", "来信时间", "受理时限",
               "答复时限", "当前超期", "评价星级", "已公开"]  # fmt: skip
    rows, ids, whole = [], [], []
    letters = list(letters[: exports.MAX_ROWS + 1])
    more = len(letters) > exports.MAX_ROWS
    for letter in letters[: exports.MAX_ROWS]:
        writer = letter.writer
        allowed = can_see_personal_data(
            request.user, building_path=writer.household.building.path, resident_id=writer.pk
        )
        if allowed:
            whole.append(writer.pk)
        assignee = letter.assignee_department or letter.assignee_unit
        rows.append(
            [
                letter.number, letter.subject, letter.category.name if letter.category_id else "",
                letter.get_channel_display(), writer.name if allowed else mask_name(writer.name),
                writer.phone if allowed else mask_phone(writer.phone), letter.unit.name,
                assignee.name if assignee else "", letter.get_state_display(), letter.created_at,
                letter.accept_deadline, letter.reply_deadline, _overdue(letter, now), letter.rating, letter.published,
            ]
        )  # fmt: skip
        ids.append(letter.pk)
    return exports.respond(
        request,
        filename="来信列表",
        sheets=[("来信列表", headers, exports.capped(rows, more))],
        what="letters",
        object_ids=ids,
        personal_fields=["writer", "phone"] if whole else [],
    )


@login_required
def letter_stats(request):
    user = request.user
    errors, figures, unit, status = {}, None, None, 200
    month_value = request.GET.get("month", "")
    try:
        month = stats.parse_month(month_value)
        unit = stats.stats_unit_for(user, parse_id(request.GET.get("unit"), field="unit"))
        figures = stats.letter_stats(unit=unit, month=month)
    except NotAllowed as refusal:
        return forbidden(request, str(refusal.message))
    except InvalidInput as refusal:
        errors[refusal.field or "unit"] = str(refusal.message)
        status = 400 if request.GET else 200
    scope = scope_of(user)
    if scope.is_admin:
        options = list(Unit.objects.filter(level=Level.STREET).order_by("path")[:200])
    else:
        options = list(
            Unit.objects.filter(
                path__in=scope.paths(*selectors.OFFICE_ROLES), level__in=[Level.STREET, Level.COMMUNITY]
            ).order_by("path")
        )
    chain = []
    if unit is not None:
        chain = [u for u in unit_chain(unit) if scope.is_admin or scope.covers(u.path, *selectors.OFFICE_ROLES)]
        if all(u.pk != unit.pk for u in options):
            options.append(unit)
    context = {"errors": errors, "unit": unit, "unit_options": options, "chain": chain, "month": month_value}
    if figures and exports.wants_export(request):
        return _export_letter_stats(request, figures, unit)
    if figures:
        trend = [_shown(row) for row in figures["trend"]]
        most = max([row["received"] for row in figures["trend"]] + [1])
        for row, raw in zip(trend, figures["trend"], strict=True):
            row["bar"] = round(100 * raw["received"] / most)
        context.update(
            {
                "month": figures["month"],
                "summary": _shown(figures["summary"]),
                "by_category": [_shown(r) for r in figures["by_category"]],
                "by_unit": [_shown(r) for r in figures["by_unit"]],
                "trend": trend,
                "secretaries": [
                    {**person, "months": [_shown(m) for m in person["months"]]} for person in figures["secretaries"]
                ],
            }
        )
    return render(request, "mailbox/stats.html", context, status=status)


# --- The public letters (no login) --------------------------------------------------------------------------------


def public_letter_list(request):
    letters = selectors.public_letters().select_related("writer", "unit", "category").order_by("-published_at", "-id")
    unit = None
    unit_id = request.GET.get("unit")
    if unit_id:
        try:
            unit = Unit.objects.filter(pk=parse_id(unit_id, field="unit")).first()
        except InvalidInput:
            unit = None
        letters = letters.filter(unit__path__startswith=unit.path) if unit else letters.none()
    page = Paginator(letters, PAGE_SIZE).get_page(request.GET.get("page"))
    for letter in page.object_list:
        letter.writer_shown = mask_name(letter.writer.name)
    streets = list(Unit.objects.filter(level=Level.STREET).order_by("path").only("id", "name")[:100])
    figures = selectors.public_letters()
    if unit is not None:
        figures = figures.filter(unit__path__startswith=unit.path)
    return render(
        request,
        "mailbox/public_list.html",
        {"page": page, "unit": unit, "streets": streets, "summary": _public_summary(figures)},
    )


def _public_summary(letters) -> dict:
    counts = letters.aggregate(
        published=Count("id"),
        rated=Count("id", filter=Q(rating__isnull=False)),
        satisfied=Count("id", filter=Q(rating__gte=4)),
    )
    counts["satisfaction"] = _pct(counts["satisfied"] / counts["rated"]) if counts["rated"] else "—"
    return counts


def public_letter_detail(request, pk):
    letter = get_object_or_404(selectors.public_letters().select_related("writer", "unit", "category"), pk=pk)
    return render(request, "mailbox/public_detail.html", {"letter": letter, "writer": mask_name(letter.writer.name)})


def _export_letter_stats(request, figures, unit):
    summary = [{**figures["summary"], "name": unit.name if unit else "全市"}]
    sheets = [
        ("汇总", *exports.figure_rows(summary, "name", "范围", exports.LETTER_FIGURES)),
        ("按分类", *exports.figure_rows(figures["by_category"], "category", "分类", exports.LETTER_FIGURES)),
        ("按单元", *exports.figure_rows(figures["by_unit"], "unit", "单元", exports.LETTER_FIGURES)),
        ("近十二个月", *exports.figure_rows(figures["trend"], "month", "月份", exports.LETTER_FIGURES)),
    ]
    return exports.respond(request, filename=f"来信统计-{figures['month']}", sheets=sheets, what="letter_stats")
