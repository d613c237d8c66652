"""What the pages of every app share: the refusal page, and putting a service's refusal next to its field."""

from dataclasses import dataclass

from django.shortcuts import render
from django.utils.translation import gettext as _

from .errors import DomainError, NotAllowed


def resident_search(request, residents, *, label=None, page_size=20) -> dict:
    """The context of a "find the resident first" page: the form, what was asked, a page of the `residents`
    (a scoped queryset) matching it, and the query string for the pager."""
    from django.core.paginator import Paginator
    from django.utils.http import urlencode

    from .forms import ResidentSearchForm
    from .selectors import residents_matching

    form = ResidentSearchForm(request.GET, label=label)
    form.is_valid()
    q = form.cleaned_data.get("q", "").strip()
    results = Paginator(residents_matching(residents, q), page_size).get_page(request.GET.get("page")) if q else None
    return {"form": form, "q": q, "results": results, "querystring": urlencode({"q": q})}


def forbidden(request, message, *, back=None):
    """The 403 page: what was refused and why, a way back."""
    return render(request, "forbidden.html", {"message": message, "back": back}, status=403)


def show_error(form, error: DomainError, aliases=None) -> int:
    """Put a service's refusal next to its field (or above the form); the status code to answer with."""
    field = getattr(error, "field", None)
    field = (aliases or {}).get(field, field)
    form.add_error(field if field in form.fields else None, str(error.message))
    return error.status_code


def error_summary(form) -> list[str]:
    """The form's errors as "label: message" lines, for the box at the top of the page."""
    lines = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        lines += [f"{label}：{e}" if label else str(e) for e in errors]
    return lines


# --- The steps of a workflow on an object's page (a case's, a letter's) --------------------------------------


@dataclass
class StepOutcome:
    """What a POSTed step came to: a response to send (done, or refused with 403), or the bound form to show
    again with its error and the status to answer with."""

    response: object = None
    name: str | None = None
    form: object = None
    error: str | None = None
    status: int = 200


def take_step(request, *, obj, flow, step_forms, may, make_form, service_for, object_kwarg) -> StepOutcome:
    """Handle `POST action=<step>` on an object's page: the role first (403 page), then the form (400 with the
    errors), then the service (its refusal next to its field: 400/409; NotAllowed: the 403 page); done:
    a message and a redirect back to the object."""
    from django.contrib import messages
    from django.shortcuts import redirect

    name = request.POST.get("action", "")
    if name not in step_forms:
        return StepOutcome(error=_("未知的操作。"), status=400)
    back = obj.get_absolute_url()
    if not may(request.user, obj, name):
        return StepOutcome(
            response=forbidden(request, _("您的角色不能执行「%(action)s」。") % {"action": flow.label(name)}, back=back)
        )
    form = make_form(name, request.POST, request.FILES)
    if not form.is_valid():
        return StepOutcome(
            name=name, form=form, status=400, error=_("请检查填写的内容：") + "；".join(error_summary(form))
        )
    try:
        service_for(name)(**{object_kwarg: obj}, by=request.user, **form.cleaned_data)
    except NotAllowed as refusal:
        return StepOutcome(response=forbidden(request, str(refusal.message), back=back))
    except DomainError as refusal:
        status = show_error(form, refusal)
        return StepOutcome(name=name, form=form, status=status, error=str(refusal.message))
    messages.success(request, _("「%(action)s」已完成。") % {"action": flow.label(name)})
    return StepOutcome(response=redirect(obj))


def step_panels(names, *, flow, make_form, outcome: StepOutcome, quiet=()) -> list[dict]:
    """One panel per step the viewer may take, with its form (the bound one again after a refusal). With a single
    step to take besides the `quiet` ones, its panel is open at once (a resident's rating, say)."""
    main = [name for name in names if name not in quiet]
    panels = []
    for name in names:
        form = outcome.form if name == outcome.name else make_form(name)
        panels.append(
            {
                "name": name,
                "label": flow.label(name),
                "form": form,
                "open": name == outcome.name or (outcome.name is None and main == [name]),
                "multipart": form.is_multipart(),
            }
        )
    return panels


# --- The same step on many objects at once (bulk actions of the staff's lists) ------------------------------------

BULK_MAX = 100


def bulk_step(request, *, queryset, step, flow, may, service, object_kwarg, fields=None):
    """Take `step` on each object of `queryset` (already scoped to the user) whose id was ticked (`ids`): the ones
    the role and state allow are done one by one through the service, the others are reported with the reason.
    Returns the counts (done, refused reasons) for the page's message; nothing half-done is left behind, as each
    step is its own transaction."""
    from django.contrib import messages

    ids = []
    for value in request.POST.getlist("ids")[:BULK_MAX]:
        if value.isascii() and value.isdigit():
            ids.append(int(value))
    done, refused = 0, []
    for obj in queryset.filter(pk__in=ids):
        label = getattr(obj, "number", None) or str(obj.pk)
        if not may(request.user, obj, step):
            refused.append(f"{label}：{_('您的角色不能执行「%(action)s」。') % {'action': flow.label(step)}}")
            continue
        try:
            service(**{object_kwarg: obj}, by=request.user, **(fields or {}))
            done += 1
        except DomainError as refusal:
            refused.append(f"{label}：{refusal.message}")
    if done:
        messages.success(request, _("已批量%(action)s %(n)d 件。") % {"action": flow.label(step), "n": done})
    if refused:
        messages.error(request, _("以下未能办理：") + "；".join(refused))
    if not ids:
        messages.error(request, _("请先勾选要办理的条目。"))
    return done, refused
