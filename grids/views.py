"""Pages of cases: the list, the filing form, the case page with its steps, the photos, and the KPI page.

Every page starts from `selectors.cases_visible_to(user)` (outside it: 404). The steps call the services; a
service's refusal becomes a page, never a 500: NotAllowed → 403, InvalidInput → the form with the error (400),
any other DomainError → the page with the message (409).
"""

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from governance import exports
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Level, Unit
from governance.pages import StepOutcome, bulk_step, error_summary, forbidden, show_error, step_panels, take_step
from governance.selectors import scope_of, unit_chain
from governance.uploads import serve_file
from governance.validators import parse_id

from . import forms, selectors, services, stats
from .models import OPEN_STATES, CasePhoto, CaseState, ClosedReason

PAGE_SIZE = 20


# --- The list -------------------------------------------------------------------------------------------


def _overdue_q(now) -> Q:
    """Overdue now: the same test as `selectors.is_overdue_now`, as a query."""
    return Q(state=CaseState.DISPATCHED, sign_deadline__lt=now) | Q(state__in=OPEN_STATES, handle_deadline__lt=now)


def _mine_q(user) -> Q:
    """Cases I reported, or that my department or my unit holds (and, for a resident, the cases about them)."""
    scope = scope_of(user)
    q = Q(reporter=user)
    if scope.resident_ids:
        q |= Q(affected_resident_id__in=scope.resident_ids)
    if scope.department_ids:
        q |= Q(holder_department_id__in=scope.department_ids)
    if scope.paths():
        q |= Q(holder_unit__path__in=scope.paths())
    return q


# The list's orders, by the column header clicked (`?sort=`); the newest first by default.
CASE_SORTS = {
    "new": ("-created_at", "-id"),
    "old": ("created_at", "id"),
    "deadline": (F("handle_deadline").asc(nulls_last=True), "id"),
    "number": ("number",),
}


@login_required
def case_list(request):
    user = request.user
    now = timezone.now()
    if request.method == "POST" and request.POST.get("bulk") == "accept":
        # Community triage of many cases at once: accept the ticked ones (each through the service).
        bulk_step(
            request,
            queryset=selectors.cases_visible_to(user).select_related("grid", "holder_unit", "category"),
            step="accept",
            flow=services.CASE_FLOW,
            may=selectors.may,
            service=services.case_accept,
            object_kwarg="case",
        )
        return redirect(request.get_full_path())
    form = forms.CaseFilterForm(request.GET, user=user)
    form.is_valid()  # a bad filter is shown with its error and ignored; the good ones still apply
    data = form.cleaned_data
    cases = selectors.cases_visible_to(user)
    if data.get("q"):
        cases = cases.filter(Q(number__icontains=data["q"]) | Q(title__icontains=data["q"]))
    if data.get("state"):
        cases = cases.filter(state=data["state"])
    if data.get("category"):
        cases = cases.filter(Q(category_id=data["category"]) | Q(category__parent_id=data["category"]))
    if data.get("unit"):
        unit = Unit.objects.filter(pk=data["unit"]).only("path").first()
        cases = cases.filter(selectors.in_unit(len(unit.path) // Unit.steplen, unit.pk)) if unit else cases.none()
    if data.get("overdue"):
        cases = cases.filter(_overdue_q(now))
    if data.get("mine"):
        cases = cases.filter(_mine_q(user))
    if data.get("open"):
        cases = cases.filter(state__in=OPEN_STATES)
    sort = request.GET.get("sort") if request.GET.get("sort") in CASE_SORTS else "new"
    cases = cases.select_related("category__parent", "grid", "holder_unit", "holder_department").order_by(
        *CASE_SORTS[sort]
    )
    if exports.wants_export(request):
        return _export_cases(request, cases, now)
    page = Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page"))
    for case in page.object_list:
        case.overdue_now = selectors.is_overdue_now(case, now)
        case.bulk_accept = case.state == CaseState.REPORTED and selectors.may(user, case, "accept")
    params = request.GET.copy()
    params.pop("page", None)
    sort_params = params.copy()
    sort_params.pop("sort", None)
    filtered = any(data.get(name) for name in ("q", "state", "category", "unit", "overdue", "mine", "open"))
    return render(
        request,
        "grids/case_list.html",
        {
            "form": form,
            "page": page,
            "querystring": params.urlencode(),
            "filtered": filtered,
            "may_file": forms.filing_grids(user).exists(),
            "sort": sort,
            "sort_querystring": sort_params.urlencode(),
            "bulk": any(case.bulk_accept for case in page.object_list),
        },
    )


def _export_cases(request, cases, now):
    """The case list as shown, filters and order applied, as a workbook (no personal data: no descriptions)."""
    cases = list(cases.select_related("reporter")[: exports.MAX_ROWS + 1])
    more = len(cases) > exports.MAX_ROWS
    cases = cases[: exports.MAX_ROWS]
    headers = [
        "编号", "标题", "大类", "分类", "网格", "状态", "承办单位", "承办部门", "来源", "紧急程度", "上报人",
        "上报时间", "受理时间", "办结时间", "结案时间", "办理时限", "当前超期", "按期办结", "评价星级",
    ]  # fmt: skip
    rows, ids = [], []
    for case in cases:
        ids.append(case.pk)
        rows.append(
            [
                case.number, case.title, case.category.parent.name if case.category.parent_id else "",
                case.category.name, case.grid.name, case.get_state_display(),
                case.holder_unit.name if case.holder_unit_id else "",
                case.holder_department.name if case.holder_department_id else "", case.get_source_display(),
                case.get_urgency_display(), case.reporter.display_name, case.created_at, case.accepted_at,
                case.handled_at, case.closed_at, case.handle_deadline, selectors.is_overdue_now(case, now),
                case.handled_on_time, case.rating,
            ]
        )  # fmt: skip
    rows = exports.capped(rows, more)
    return exports.respond(
        request, filename="事件列表", sheets=[("事件列表", headers, rows)], what="cases", object_ids=ids
    )


# --- Filing ---------------------------------------------------------------------------------------------


@login_required
def case_new(request):
    user = request.user
    if not forms.filing_grids(user).exists():
        return forbidden(request, _("只有网格员和社区工作人员可以上报事件。"))
    duplicates, status = [], 200
    if request.method == "POST":
        form = forms.CaseFileForm(request.POST, request.FILES, user=user)
        if form.is_valid():
            data = form.cleaned_data
            if not data["not_duplicate"]:
                found = selectors.possible_duplicates(grid=data["grid"], category=data["category"])
                duplicates = list(
                    selectors.cases_visible_to(user)
                    .filter(pk__in=[c.pk for c in found])
                    .select_related("grid")
                    .order_by("-created_at", "-id")
                )
            if not duplicates:
                try:
                    case = services.case_file(by=user, **form.service_kwargs())
                except DomainError as error:
                    status = show_error(form, error, forms.FILE_FIELD_ALIASES)
                else:
                    messages.success(request, _("事件已上报，编号 %(number)s。") % {"number": case.number})
                    return redirect(case)
        else:
            status = 400
    else:
        form = forms.CaseFileForm(user=user)
    return render(
        request,
        "grids/case_new.html",
        {
            "form": form,
            "duplicates": duplicates,
            "errors": error_summary(form) if form.is_bound else [],
            # A browser cannot be told to keep chosen files: say so when the form comes back.
            "photos_dropped": bool(request.FILES),
        },
        status=status,
    )


# --- The case page --------------------------------------------------------------------------------------


def _visible_case(user, pk):
    return get_object_or_404(
        selectors.cases_visible_to(user)
        .select_related(
            "category__parent",
            "grid",
            "building",
            "reporter",
            "affected_resident",
            "holder_unit",
            "holder_department",
            "duplicate_of",
            "letter",
        )
        .prefetch_related("photos", "dispatches__department"),
        pk=pk,
    )


def _step_form(name, case, user, *args):
    return forms.STEP_FORMS[name](*args, case=case, user=user, auto_id=f"id_{name}_%s")


def _moment(value):
    try:
        return timezone.localtime(dt.datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return value


def _event_details(data: dict) -> list[tuple[str, str]]:
    """The action-specific data of an event, as labelled lines for the timeline."""
    details = []
    if data.get("stars"):
        details.append((_("星级"), "★" * int(data["stars"])))
    if data.get("department"):
        details.append((_("部门"), data["department"]))
    if data.get("assisting"):
        details.append((_("协办部门"), "、".join(data["assisting"])))
    if "approved" in data:
        details.append((_("审批结果"), _("同意") if data["approved"] else _("不同意")))
    if data.get("until"):
        details.append((_("期限"), _moment(data["until"])))
    if "confirmed" in data:
        details.append((_("核查结果"), _("已解决") if data["confirmed"] else _("未解决，退回返工")))
    if data.get("reason"):
        reason = data["reason"]
        details.append((_("关闭原因"), ClosedReason(reason).label if reason in ClosedReason.values else reason))
    if data.get("duplicate_of"):
        details.append((_("重复于"), data["duplicate_of"]))
    return details


def _state_label(state):
    return CaseState(state).label if state in CaseState.values else state


def _timeline(case, viewer, viewer_is_staff):
    """The event log, oldest first. Residents following a case of their grid see staff by name, but other
    residents (who said "me too" or left a comment) only as "a resident"."""
    events = list(case.events.select_related("actor").prefetch_related("photos").order_by("created_at", "id"))
    named = None if viewer_is_staff else selectors.names_shown_to(viewer, {e.actor_id for e in events if e.actor_id})

    def actor(event):
        if not event.actor_id:
            return _("系统")
        if named is not None and event.actor_id not in named:
            return _("居民")
        return event.actor.display_name

    return [
        {
            "event": event,
            "label": services.CASE_FLOW.label(event.action),
            "actor": actor(event),
            "from_state": _state_label(event.from_state) if event.from_state != event.to_state else "",
            "to_state": _state_label(event.to_state) if event.from_state != event.to_state else "",
            "note": event.note,
            "details": _event_details(event.data or {}),
            "photos": list(event.photos.all()),
        }
        for event in events
    ]


@login_required
def case_detail(request, pk):
    user = request.user
    case = _visible_case(user, pk)

    def make_form(name, *args):
        return _step_form(name, case, user, *args)

    outcome = StepOutcome()
    if request.method == "POST":
        outcome = take_step(
            request,
            obj=case,
            flow=services.CASE_FLOW,
            step_forms=forms.STEP_FORMS,
            may=selectors.may,
            make_form=make_form,
            service_for=lambda name: getattr(services, "case_" + name.replace("-", "_")),
            object_kwarg="case",
        )
        if outcome.response is not None:
            return outcome.response
    now = timezone.now()
    steps = step_panels(
        selectors.actions_for(user, case),
        flow=services.CASE_FLOW,
        make_form=make_form,
        outcome=outcome,
        quiet=("comment", "support"),
    )
    supported = any(s["name"] == "support" for s in steps) and case.supports.filter(user=user).exists()
    scope = scope_of(user)
    is_staff = scope.is_staff_member
    return render(
        request,
        "grids/case_detail.html",
        {
            "case": case,
            "overdue_now": selectors.is_overdue_now(case, now),
            "open": case.state in OPEN_STATES,
            "photos": list(case.photos.all()),
            "dispatches": list(case.dispatches.all()),
            "timeline": _timeline(case, user, is_staff),
            # The person concerned is named to staff and to themselves, not to the neighbours following the case.
            "show_resident": is_staff or case.affected_resident_id in scope.resident_ids,
            "steps": steps,
            "supported": supported,
            "error": outcome.error,
        },
        status=outcome.status,
    )


# --- Photos ---------------------------------------------------------------------------------------------


@login_required
def case_photo(request, pk, photo_pk):
    case = get_object_or_404(selectors.cases_visible_to(request.user), pk=pk)
    photo = get_object_or_404(CasePhoto, case=case, pk=photo_pk)
    return serve_file(photo.image)


# --- The KPI page ---------------------------------------------------------------------------------------


def _pct(rate):
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _decimal(value, places=1):
    return "—" if value is None else f"{value:.{places}f}"


def _shown(row: dict) -> dict:
    """A KPI row with its rates as percentages and its averages rounded, for the tables."""
    shown = dict(row)
    for key, value in row.items():
        if key.endswith("_rate"):
            shown[key] = _pct(value)
        elif key.endswith("_hours") or key == "score":
            shown[key] = _decimal(value)
        elif key == "street_rating_avg":
            shown[key] = _decimal(value, 2)
    return shown


def _unit_param(value):
    return parse_id(value, field="unit")


def _stats_units(user, unit):
    """The units to choose from: the ones the user works in (streets for administrators), and the one shown;
    and the chain above the shown unit that the user may open (a breadcrumb back up)."""
    scope = scope_of(user)
    if scope.is_admin:
        options = list(Unit.objects.filter(level=Level.STREET).order_by("path")[:200])
    else:
        paths = set(scope.paths())
        roots = [p for p in paths if not any(p != q and p.startswith(q) for q in paths)]
        options = list(Unit.objects.filter(path__in=roots, depth__lte=3).order_by("path"))
    chain = []
    if unit is not None:
        chain = [u for u in unit_chain(unit) if scope.is_admin or scope.covers(u.path)]
        if all(u.pk != unit.pk for u in options):
            options.append(unit)
    return options, chain


@login_required
def case_stats(request):
    user = request.user
    errors, kpis, unit, status = {}, None, None, 200
    month_value = request.GET.get("month", "")
    department_only = stats.is_department_only(user)
    try:
        month = stats.parse_month(month_value)
        if department_only:
            kpis = stats.department_kpis(user, month)
        else:
            unit = stats.kpi_unit_for(user, _unit_param(request.GET.get("unit")))
            kpis = stats.case_kpis(unit=unit, month=month)
    except NotAllowed as refusal:
        return forbidden(request, str(refusal.message))
    except InvalidInput as refusal:
        errors[refusal.field or "unit"] = str(refusal.message)
        # Someone working in several units arrives without a choice made: that is a question, not an error.
        status = 400 if request.GET else 200
    options, chain = _stats_units(user, unit)
    context = {
        "errors": errors,
        "unit": unit,
        "unit_options": options,
        "chain": chain,
        "is_admin": scope_of(user).is_admin,
        "month": kpis["month"] if kpis else month_value,
    }
    context["department_only"] = department_only
    if kpis and department_only:
        context.update(
            {
                "by_department": [_shown(row) for row in kpis["by_department"]],
                "department_ranking": [_shown(row) for row in kpis["ranking"]["departments"]],
            }
        )
    elif kpis:
        ranking = kpis["ranking"]
        context.update(
            {
                "summary": _shown(kpis["summary"]),
                "by_unit": [_shown(row) for row in kpis["by_unit"]],
                "by_department": [_shown(row) for row in kpis["by_department"]],
                "department_ranking": [_shown(row) for row in ranking["departments"]],
                "community_ranking": [_shown(row) for row in ranking["communities"]],
                "child_level": _child_level(unit),
            }
        )
    if kpis and exports.wants_export(request):
        return _export_kpis(request, kpis, unit)
    return render(request, "grids/case_stats.html", context, status=status)


def _export_kpis(request, kpis, unit):
    sheets = []
    if kpis.get("summary"):
        headers, rows = exports.figure_rows(
            [{**kpis["summary"], "name": unit.name if unit else "全市"}], "name", "范围"
        )
        sheets.append(("汇总", headers, rows))
    if kpis.get("by_unit"):
        sheets.append(("下级单元", *exports.figure_rows(kpis["by_unit"], "unit", "单元")))
    sheets.append(("职能部门", *exports.figure_rows(kpis["by_department"], "department", "部门")))
    sheets.append(("部门排名", *exports.figure_rows(kpis["ranking"]["departments"], "department", "部门")))
    if kpis["ranking"].get("communities"):
        sheets.append(("社区排名", *exports.figure_rows(kpis["ranking"]["communities"], "unit", "社区")))
    return exports.respond(request, filename=f"事件统计-{kpis['month']}", sheets=sheets, what="case_kpis")


def _child_level(unit):
    """What the rows of the per-unit table are: streets for the city, communities for a street, grids for a
    community (a grid has no rows)."""
    if unit is None:
        return _("街道")
    return {Level.STREET: _("社区"), Level.COMMUNITY: _("网格")}.get(unit.level, "")
