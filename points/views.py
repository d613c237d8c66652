"""Pages of points: a resident's own points and a resident's page for staff, recording on a phone, the monthly
board with objections, the points supermarket (the residents' shop and the counter), objections to resolve and
the tally runs.

Every page starts from a `points.selectors.*_visible_to(user)` accessor (outside it: 404). A service's refusal
becomes a page, never a 500: NotAllowed → 403, InvalidInput → the form with the error next to its field (400),
any other DomainError → the page with the message (409).
"""

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from governance import exports
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Level, Resident, Unit
from governance.pages import error_summary, forbidden, resident_search, show_error
from governance.selectors import STEP, residents_visible_to, scope_of, under, units_visible_to
from governance.uploads import serve_file
from governance.validators import parse_id
from grids.stats import parse_month

from . import forms, selectors, services, shop, tally
from .api import balances_of, schemes_for
from .models import Account, EntryKind, ObjectionState, RedemptionState, Tally, TallyRun

PAGE_SIZE = 20


def _with_residents(qs):
    return qs.select_related("household__building").prefetch_related(
        Prefetch("point_accounts", queryset=Account.objects.select_related("scheme").order_by("scheme__order"))
    )


def _is_staff(scope) -> bool:
    return scope.is_admin or bool(scope.paths())


# --- A resident's points (their own, or a resident's page for staff) ---------------------------------------


def _entries_page(user, resident, page_number):
    entries = (
        selectors.entries_visible_to(user)
        .filter(account__resident=resident)
        .select_related("account__scheme", "rule", "recorded_by", "reversed_by")
        .order_by("-created_at", "-id")
    )
    return Paginator(entries, PAGE_SIZE).get_page(page_number)


def _ranks(resident) -> list[dict]:
    """This month's and last month's ranks per scheme (the tally of a month is made after it ends)."""
    this_month, last_month = tally.month_start(timezone.localdate()), tally.previous_month()
    tallies = {
        (t.month, t.scheme_id): t
        for t in Tally.objects.filter(resident=resident, month__in=[this_month, last_month]).select_related("scheme")
    }
    rows = []
    for scheme in schemes_for(resident):
        rows.append(
            {
                "scheme": scheme,
                "this_month": tallies.get((this_month, scheme.pk)),
                "last_month": tallies.get((last_month, scheme.pk)),
            }
        )
    return rows


def _account_context(user, resident, page_number) -> dict:
    accounts = list(Account.objects.filter(resident=resident).select_related("scheme"))
    balances, totals = balances_of(accounts, schemes_for(resident))
    redemptions = list(
        selectors.redemptions_visible_to(user)
        .filter(resident=resident)
        .select_related("reward")
        .order_by("-created_at", "-id")[:PAGE_SIZE]
    )
    return {
        "resident": resident,
        "balances": balances,
        "totals": totals,
        "ranks": _ranks(resident),
        "this_month": tally.month_start(timezone.localdate()),
        "last_month": tally.previous_month(),
        "entries": _entries_page(user, resident, page_number),
        "redemptions": redemptions,
        "open_redemptions": [r for r in redemptions if r.state == RedemptionState.RESERVED],
    }


@login_required
def points_home(request):
    """A resident: their balances, ranks, history and redemptions. Staff: a search of the residents of their
    places, each linking to that resident's points page."""
    user = request.user
    scope = scope_of(user)
    is_staff = _is_staff(scope)
    own = list(Resident.objects.filter(pk__in=scope.resident_ids).select_related("household__building").order_by("id"))
    if not own and not is_staff:
        return forbidden(request, _("积分只对居民和街道、社区、网格的工作人员开放。"))
    context = {"is_staff": is_staff, "accounts": []}
    for resident in own:
        context["accounts"].append(_account_context(user, resident, request.GET.get("page")))
    if is_staff:
        form = forms.ResidentSearchForm(request.GET)
        form.is_valid()
        q = form.cleaned_data.get("q", "").strip()
        found = residents_visible_to(user).filter(moved_out_on=None)
        if q:
            found = found.filter(Q(name__icontains=q) | Q(household__room__icontains=q))
        found = _with_residents(found).order_by("household__building__path", "household__room", "id")
        results = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page") if not own else request.GET.get("rpage"))
        for resident in results.object_list:
            resident.totals = balances_of(list(resident.point_accounts.all()))[1]
        context.update(
            {
                "form": form,
                "q": q,
                "results": results,
                "page_param": "rpage" if own else "page",
                "may_record": bool(scope.paths(*selectors.RECORDERS)),
            }
        )
    return render(request, "points/home.html", context)


@login_required
def points_resident(request, pk):
    """A resident's points for staff (and for the resident): balances, history with reversal for recorders,
    redemptions."""
    user = request.user
    resident = get_object_or_404(residents_visible_to(user).select_related("household__building"), pk=pk)
    scope = scope_of(user)
    may_reverse = scope.is_admin or selectors.may_record_for(scope, resident)
    bound_entry, bound_form, error, status = None, None, None, 200
    if request.method == "POST":
        entry = get_object_or_404(
            selectors.entries_visible_to(user).filter(account__resident=resident),
            pk=parse_id_or_404(request.POST.get("entry")) or 0,
        )
        if not may_reverse:
            return forbidden(
                request, _("只有本网格的网格员或本社区的工作人员可以冲正该居民的积分。"), back=request.path
            )
        bound_entry, bound_form = entry.pk, forms.ReverseForm(request.POST, prefix=f"e{entry.pk}")
        if bound_form.is_valid():
            try:
                services.points_reverse(by=user, entry=entry, **bound_form.cleaned_data)
            except NotAllowed as refusal:
                return forbidden(request, str(refusal.message), back=request.path)
            except DomainError as refusal:
                status = show_error(bound_form, refusal)
                error = str(refusal.message)
            else:
                messages.success(request, _("已冲正该记录，余额已相应调整。"))
                return redirect("points-resident", pk=resident.pk)
        else:
            status = 400
    context = _account_context(user, resident, request.GET.get("page"))
    for entry in context["entries"].object_list:
        entry.reversible = (
            may_reverse and entry.kind in (EntryKind.AWARD, EntryKind.DEDUCTION) and not _has_reversal(entry)
        )
        entry.reverse_form = bound_form if entry.pk == bound_entry else forms.ReverseForm(prefix=f"e{entry.pk}")
    context.update(
        {
            "may_reverse": may_reverse,
            "may_record": selectors.may_record_for(scope, resident) and resident.moved_out_on is None,
            "bound_entry": bound_entry,
            "error": error,
        }
    )
    return render(request, "points/resident.html", context, status=status)


def _has_reversal(entry) -> bool:
    try:
        return entry.reversed_by is not None
    except type(entry).reversed_by.RelatedObjectDoesNotExist:
        return False


@login_required
def entry_evidence(request, pk):
    entry = get_object_or_404(selectors.entries_visible_to(request.user), pk=pk)
    return _image(entry.evidence)


def _image(image):
    """A stored photo (governance.uploads.serve_file: its type read from its content)."""
    return serve_file(image)


# --- Recording ------------------------------------------------------------------------------------------------


def _recordable_residents(user):
    """The residents the user records for: those of their grids (grid workers) and communities (staff)."""
    scope = scope_of(user)
    return residents_visible_to(user).filter(
        under(scope.paths(*selectors.RECORDERS), "household__building__path"), moved_out_on=None
    )


@login_required
def points_record(request):
    """Record points on a phone: find a resident by name or room, pick a rule, the day, a note and a photo."""
    user = request.user
    scope = scope_of(user)
    if not scope.paths(*selectors.RECORDERS):
        return forbidden(request, _("只有网格员和社区工作人员可以记分。"))
    resident_id = request.POST.get("resident") if request.method == "POST" else request.GET.get("resident")
    if not resident_id:
        return _record_search(request, user)
    resident = get_object_or_404(
        residents_visible_to(user).select_related("household__building"), pk=parse_id_or_404(resident_id)
    )
    status, error = 200, None
    if request.method == "POST":
        form = forms.RecordForm(request.POST, request.FILES, resident=resident)
        if form.is_valid():
            try:
                entry = services.points_record(by=user, resident=resident, **form.cleaned_data)
            except NotAllowed as refusal:
                return forbidden(request, str(refusal.message), back=reverse("points-record"))
            except InvalidInput as refusal:
                status = show_error(form, refusal, forms.RECORD_FIELD_ALIASES)
            except DomainError as refusal:  # over a cap, nothing left to deduct, moved out
                status = show_error(form, refusal)
                error = str(refusal.message)
            else:
                messages.success(
                    request,
                    _("已为%(name)s记分：%(rule)s %(points)+d 分。「%(scheme)s」余额 %(balance)d 分。")
                    % {
                        "name": resident.name,
                        "rule": entry.rule.name,
                        "points": entry.points,
                        "scheme": entry.rule.scheme.name,
                        "balance": entry.balance_after,
                    },
                )
                return redirect(f"{reverse('points-record')}?resident={resident.pk}")
        else:
            status = 400
    else:
        form = forms.RecordForm(resident=resident)
    accounts = list(Account.objects.filter(resident=resident).select_related("scheme"))
    balances, _totals = balances_of(accounts, schemes_for(resident))
    return render(
        request,
        "points/record.html",
        {
            "resident": resident,
            "balances": balances,
            "form": form,
            "error": error,
            "errors": error_summary(form) if form.is_bound and status == 400 else [],
            "photo_dropped": bool(request.FILES) and status != 200,
            "selected_rule": str(form["rule"].value() or ""),
        },
        status=status,
    )


def _record_search(request, user):
    context = resident_search(request, _recordable_residents(user), page_size=PAGE_SIZE)
    return render(request, "points/record_search.html", context)


# --- The points supermarket ---------------------------------------------------------------------------------


def _shop_communities(user):
    """The communities whose supermarket the user keeps (`selectors.may_keep_shop`)."""
    scope = scope_of(user)
    communities = Unit.objects.filter(level=Level.COMMUNITY)
    if not scope.is_admin:
        communities = communities.filter(under(scope.paths(*selectors.SHOPKEEPERS)))
    return communities.order_by("path")


class _Bound:
    """The form a POST bound (shown again with its errors), keyed by the action and the object it acts on."""

    def __init__(self, action=None, key=None, form=None):
        self.action, self.key, self.form = action, key, form

    def get(self, action, key, make):
        if self.action == action and self.key == key and self.form is not None:
            return self.form
        return make()


def _run(request, form, call, *, aliases=None):
    """Call a service with a valid form. Returns (result, status, error): a NotAllowed is re-raised for the
    caller's 403 page; an InvalidInput goes next to its field (400); any other refusal is the page's (409)."""
    if not form.is_valid():
        return None, 400, None
    try:
        return call(), 200, None
    except NotAllowed:
        raise
    except InvalidInput as refusal:
        return None, show_error(form, refusal, aliases), None
    except DomainError as refusal:
        form.add_error(None, str(refusal.message))
        return None, refusal.status_code, str(refusal.message)


def _shop_post(request, user, community, own):
    """Handle one action of the shop page. Returns a redirect on success, else (bound, status, error)."""
    name = request.POST.get("action", "")
    target = parse_id_or_404(request.POST.get("target"))
    if target is None and name != "reward-add":
        return _Bound(), 400, _("未知的操作。")
    here = request.get_full_path()

    if name == "reserve":
        reward = get_object_or_404(selectors.rewards_visible_to(user), pk=target)
        form = forms.ReserveForm(request.POST, prefix=f"reserve{target}")
        redemption, status, error = _run(
            request, form, lambda: shop.redemption_reserve(by=user, reward=reward, **form.cleaned_data)
        )
        if redemption:
            messages.success(
                request,
                _("预约成功！取货码 %(code)s，请凭取货码到社区积分超市领取「%(name)s」。")
                % {"code": redemption.pickup_code, "name": reward.name},
            )
            return redirect(here)
        return _Bound(name, target, form), status, error

    if name == "cancel":
        redemption = get_object_or_404(selectors.redemptions_visible_to(user), pk=target)
        form = forms.CancelForm(request.POST, prefix=f"cancel{target}")
        done, status, error = _run(
            request, form, lambda: shop.redemption_cancel(by=user, redemption=redemption, **form.cleaned_data)
        )
        if done:
            messages.success(request, _("已取消兑换，积分和库存已退回。"))
            return redirect(here)
        return _Bound(name, target, form), status, error

    if community is None:
        return _Bound(), 400, _("请先选择社区。")
    rewards = selectors.rewards_visible_to(user).filter(community=community)

    if name == "redeem":
        reward = get_object_or_404(rewards, pk=target)
        resident = get_object_or_404(
            residents_visible_to(user).select_related("household__building"),
            pk=parse_id_or_404(request.POST.get("resident")) or 0,
        )
        form = forms.RedeemForm(request.POST, prefix=f"redeem{target}")
        redemption, status, error = _run(
            request,
            form,
            lambda: shop.redemption_redeem(by=user, resident=resident, reward=reward, **form.cleaned_data),
        )
        if redemption:
            messages.success(
                request,
                _("已为%(resident)s兑换「%(name)s」× %(quantity)d，扣 %(points)d 分。")
                % {
                    "resident": resident.name,
                    "name": reward.name,
                    "quantity": redemption.quantity,
                    "points": redemption.points,
                },
            )
            return redirect(here)
        return _Bound(name, target, form), status, error

    if name == "fulfil":
        redemption = get_object_or_404(
            selectors.redemptions_visible_to(user).filter(reward__community=community), pk=target
        )
        form = forms.PickupCodeForm(request.POST, prefix=f"fulfil{target}")
        done, status, error = _run(
            request,
            form,
            lambda: shop.redemption_fulfil(by=user, redemption=redemption, pickup_code=form.cleaned_data["code"]),
            aliases={"pickup_code": "code"},
        )
        if done:
            messages.success(request, _("已发放，兑换完成。"))
            return redirect(f"{reverse('points-shop')}?community={community.pk}")
        return _Bound(name, target, form), status, error

    if name == "reward-add":
        form = forms.RewardForm(request.POST, request.FILES, prefix="add")
        reward, status, error = _run(
            request, form, lambda: shop.reward_create(by=user, community=community, **form.cleaned_data)
        )
        if reward:
            messages.success(request, _("已上架「%(name)s」。") % {"name": reward.name})
            return redirect(here)
        return _Bound(name, None, form), status, error

    reward = get_object_or_404(rewards, pk=target)
    if name == "reward-edit":
        form = forms.RewardEditForm(request.POST, request.FILES, prefix=f"edit{target}")
        done, status, error = _run(
            request, form, lambda: shop.reward_update(by=user, reward=reward, **form.service_kwargs())
        )
    elif name == "restock":
        form = forms.RestockForm(request.POST, prefix=f"restock{target}")
        done, status, error = _run(
            request, form, lambda: shop.reward_restock(by=user, reward=reward, **form.cleaned_data)
        )
    elif name in ("deactivate", "activate"):
        form = forms.ConfirmForm(request.POST)
        done, status, error = _run(
            request, form, lambda: shop.reward_update(by=user, reward=reward, active=name == "activate")
        )
    else:
        return _Bound(), 400, _("未知的操作。")
    if done:
        messages.success(request, _("「%(name)s」已更新。") % {"name": reward.name})
        return redirect(here)
    return _Bound(name, target, form), status, error


@login_required
def points_shop(request):
    """Residents: their community's shelf, their balance, reserving (with a pick-up code), their reservations.
    Community staff: the counter (find a resident, redeem), hand-over by pick-up code, and the rewards."""
    user = request.user
    scope = scope_of(user)
    own = list(Resident.objects.filter(pk__in=scope.resident_ids).select_related("household__building").order_by("id"))
    communities = list(_shop_communities(user)[:500])
    if not own and not communities:
        return forbidden(request, _("积分超市只对居民和社区工作人员开放。"))
    community = None
    chosen = parse_id_or_404(request.GET.get("community"))
    if chosen:
        community = next((c for c in communities if c.pk == chosen), None)
        if community is None:
            raise Http404
    elif len(communities) == 1:
        community = communities[0]

    bound, status, error = _Bound(), 200, None
    if request.method == "POST":
        try:
            outcome = _shop_post(request, user, community, own)
        except NotAllowed as refusal:
            return forbidden(request, str(refusal.message), back=request.get_full_path())
        if not isinstance(outcome, tuple):
            return outcome
        bound, status, error = outcome

    context = {"own": [], "communities": communities, "community": community, "bound": bound, "error": error}
    for resident in own:
        context["own"].append(_resident_shelf(user, resident, bound))
    if community is not None:
        context.update(_counter(request, user, community, bound))
    return render(request, "points/shop.html", context, status=status)


def _resident_shelf(user, resident, bound) -> dict:
    community_path = resident.household.building.path[: 2 * STEP]
    rewards = list(
        selectors.rewards_visible_to(user)
        .filter(active=True, community__path=community_path)
        .select_related("scheme")
        .order_by("cost", "id")
    )
    balances = {a.scheme_id: a.balance for a in Account.objects.filter(resident=resident)}
    for reward in rewards:
        reward.balance = balances.get(reward.scheme_id, 0)
        reward.affordable = reward.balance >= reward.cost and reward.stock > 0
        reward.form = bound.get("reserve", reward.pk, lambda r=reward: forms.ReserveForm(prefix=f"reserve{r.pk}"))
    redemptions = list(
        selectors.redemptions_visible_to(user)
        .filter(resident=resident)
        .select_related("reward")
        .order_by("-created_at", "-id")[:PAGE_SIZE]
    )
    for redemption in redemptions:
        redemption.cancel_form = bound.get(
            "cancel", redemption.pk, lambda r=redemption: forms.CancelForm(prefix=f"cancel{r.pk}")
        )
    accounts = list(Account.objects.filter(resident=resident).select_related("scheme"))
    return {
        "resident": resident,
        "rewards": rewards,
        "balances": balances_of(accounts, schemes_for(resident))[0],
        "reserved": [r for r in redemptions if r.state == RedemptionState.RESERVED],
        "redemptions": redemptions,
    }


def _counter(request, user, community, bound) -> dict:
    """The staff's side of a community's shop: the counter, the hand-over by code, the rewards."""
    rewards = list(
        selectors.rewards_visible_to(user)
        .filter(community=community)
        .select_related("scheme")
        .order_by("-active", "cost", "id")
    )
    search = forms.ResidentSearchForm(request.GET)
    search.is_valid()
    q = search.cleaned_data.get("q", "").strip()
    in_community = residents_visible_to(user).filter(
        household__building__path__startswith=community.path, moved_out_on=None
    )
    found = []
    if q:
        found = list(
            in_community.filter(Q(name__icontains=q) | Q(household__room__icontains=q))
            .select_related("household__building")
            .order_by("household__building__path", "household__room", "id")[:PAGE_SIZE]
        )
    customer, customer_balances = None, []
    resident_id = parse_id_or_404(request.POST.get("resident") or request.GET.get("resident"))
    if resident_id:
        customer = get_object_or_404(in_community.select_related("household__building"), pk=resident_id)
        accounts = list(Account.objects.filter(resident=customer).select_related("scheme"))
        customer_balances = balances_of(accounts, schemes_for(customer))[0]
        balances = {a.scheme_id: a.balance for a in accounts}
        for reward in rewards:
            reward.balance = balances.get(reward.scheme_id, 0)
            reward.redeem_form = bound.get(
                "redeem", reward.pk, lambda r=reward: forms.RedeemForm(prefix=f"redeem{r.pk}")
            )
    code_form = forms.PickupCodeForm(request.GET if "code" in request.GET else None)
    code = code_form.cleaned_data["code"].strip() if code_form.is_bound and code_form.is_valid() else ""
    pickups = []
    if code:
        pickups = list(
            selectors.redemptions_visible_to(user)
            .filter(reward__community=community, state=RedemptionState.RESERVED, pickup_code=code)
            .select_related("resident__household__building", "reward")
        )
        for pickup in pickups:
            pickup.form = bound.get(
                "fulfil",
                pickup.pk,
                lambda p=pickup: forms.PickupCodeForm(initial={"code": code}, prefix=f"fulfil{p.pk}"),
            )
    elif bound.action == "fulfil":
        pickups = list(
            selectors.redemptions_visible_to(user)
            .filter(pk=bound.key)
            .select_related("resident__household__building", "reward")
        )
        for pickup in pickups:
            pickup.form = bound.form
    waiting = list(
        selectors.redemptions_visible_to(user)
        .filter(reward__community=community, state=RedemptionState.RESERVED)
        .select_related("resident__household__building", "reward")
        .order_by("created_at", "id")[:50]
    )
    for redemption in waiting:
        redemption.cancel_form = bound.get(
            "cancel", redemption.pk, lambda r=redemption: forms.CancelForm(prefix=f"cancel{r.pk}")
        )
    for reward in rewards:
        reward.edit_form = bound.get(
            "reward-edit",
            reward.pk,
            lambda r=reward: forms.RewardEditForm(initial={"name": r.name, "cost": r.cost}, prefix=f"edit{r.pk}"),
        )
        reward.restock_form = bound.get(
            "restock", reward.pk, lambda r=reward: forms.RestockForm(prefix=f"restock{r.pk}")
        )
    return {
        "rewards": rewards,
        "search": search,
        "q": q,
        "found": found,
        "customer": customer,
        "customer_balances": customer_balances,
        "code_form": code_form,
        "code": code,
        "pickups": pickups,
        "waiting": waiting,
        "add_form": bound.get("reward-add", None, lambda: forms.RewardForm(prefix="add")),
    }


@login_required
def reward_photo(request, pk):
    reward = get_object_or_404(selectors.rewards_visible_to(request.user), pk=pk)
    return _image(reward.photo)


# --- The board ---------------------------------------------------------------------------------------------

BOARD_ROWS = 50


def _board_units(user) -> list:
    """The grids and communities whose boards the user may choose: a resident's grid and community; staff's
    communities and grids (and the community above a grid worker's grid)."""
    scope = scope_of(user)
    paths = set()
    for path in scope.resident_building_paths:
        paths |= {path[: 3 * STEP], path[: 2 * STEP]}
    for path in scope.paths():
        if len(path) >= 2 * STEP:
            paths.add(path[: 2 * STEP])
        if len(path) >= 3 * STEP:
            paths.add(path[: 3 * STEP])
    q = Q(path__in=paths)
    if scope.is_admin:
        q = Q(level=Level.COMMUNITY)
    elif scope.paths():
        q |= under(scope.paths())
    return list(
        Unit.objects.filter(q, level__in=(Level.COMMUNITY, Level.GRID))
        .order_by("path")
        .only("id", "name", "level", "path")[:500]
    )


def _home_board_unit(scope, units):
    """The board one sees first: a resident's grid; else the unit one works at (or the first one)."""
    homes = [p[: 3 * STEP] for p in scope.resident_building_paths] + list(scope.paths())
    for path in homes:
        found = next((u for u in units if u.path == path), None)
        if found is not None:
            return found
    return units[0] if units else None


@login_required
def points_board(request):
    """The month's board of a grid or community: masked names, the notice period and, for the residents of
    the place during it, an objection form."""
    user = request.user
    scope = scope_of(user)
    units = _board_units(user)
    if not units and not scope.is_admin:
        return forbidden(request, _("积分榜只对居民和街道、社区、网格的工作人员开放。"))
    params = request.POST if request.method == "POST" else request.GET
    errors = {}
    unit_id = parse_id_or_404(params.get("unit"))
    unit = next((u for u in units if u.pk == unit_id), None) if unit_id else _home_board_unit(scope, units)
    if unit_id and unit is None:
        unit = get_object_or_404(
            units_visible_to(user).filter(level__in=(Level.COMMUNITY, Level.GRID)), pk=unit_id
        )  # a unit above one's own, or a grid an administrator names
        units.append(unit)
    schemes = forms.scheme_choices()
    scheme = params.get("scheme") or (schemes[0][0] if schemes else "")
    if scheme not in {code for code, _label in schemes}:
        errors["scheme"] = _("请选择积分类别。")
        scheme = schemes[0][0] if schemes else ""
    month_value = params.get("month", "")
    month = None
    if month_value:
        try:
            month = parse_month(month_value)
        except InvalidInput as refusal:
            errors["month"] = str(refusal.message)
    boards = selectors.boards_visible_to(user).filter(unit=unit, scheme__code=scheme) if unit else None
    if month is None and boards is not None:
        latest = boards.order_by("-month").values_list("month", flat=True).first()
        month = latest or tally.previous_month()
    board = (
        boards.filter(month=month).select_related("unit", "scheme").first() if boards is not None and month else None
    )

    status, error, form = 200, None, None
    own = [
        rid
        for rid, path in zip(scope.resident_ids, scope.resident_building_paths, strict=True)
        if board and path.startswith(board.unit.path)
    ]
    may_object = bool(own) and board is not None and not tally.board_is_final(board)
    entries = []
    if may_object:
        entries = list(
            selectors.entries_visible_to(user)
            .filter(
                account__resident_id__in=own,
                account__scheme=board.scheme,
                occurred_on__gte=board.month,
                occurred_on__lte=tally.month_end(board.month),
                kind__in=(EntryKind.AWARD, EntryKind.DEDUCTION),
            )
            .select_related("rule")
            .order_by("occurred_on", "id")[:100]
        )
    if request.method == "POST":
        if board is None:
            raise Http404
        form = forms.ObjectionForm(request.POST, entries=entries)
        if form.is_valid():
            try:
                tally.objection_file(by=user, board=board, **form.cleaned_data)
            except NotAllowed as refusal:
                return forbidden(request, str(refusal.message), back=request.get_full_path())
            except DomainError as refusal:
                status = show_error(form, refusal)
                error = str(refusal.message) if status == 409 else None
            else:
                messages.success(request, _("异议已提交，社区工作人员会尽快核实处理。"))
                query = f"?unit={board.unit_id}&month={board.month:%Y-%m}&scheme={board.scheme.code}"
                return redirect(reverse("points-board") + query)
        else:
            status = 400
    elif may_object:
        form = forms.ObjectionForm(entries=entries)
    if board is not None and exports.wants_export(request):
        return _export_board(request, board, scope)
    mine = []
    if board is not None and scope.resident_ids:
        mine = list(
            selectors.objections_visible_to(user)
            .filter(board=board, resident_id__in=scope.resident_ids)
            .order_by("-created_at")
        )
    return render(
        request,
        "points/board.html",
        {
            "units": units,
            "unit": unit,
            "schemes": schemes,
            "scheme": scheme,
            "month": f"{month:%Y-%m}" if month else month_value,
            "errors": errors,
            "board": board,
            "rows": tally.board_rows(board, BOARD_ROWS) if board else [],
            "final": tally.board_is_final(board) if board else False,
            "may_object": may_object,
            "form": form,
            "error": error,
            "mine": mine,
        },
        status=400 if errors and status == 200 and request.GET else status,
    )


def _export_board(request, board, scope):
    """The board as published (names masked, as in public) and, for the staff who keep the place's records, the
    whole month's tally of its residents (names whole)."""
    from governance.masking import mask_name

    headers = ["名次", "姓名", "网格", "本月获得", "本月扣除", "本月兑换", "本月净得", "月末余额"]
    keys = ["rank", "name", "grid", "earned", "deducted", "redeemed", "net", "balance"]
    rows = [[row[k] for k in keys] for row in tally.board_rows(board, tally.BOARD_MAX_ROWS)]
    sheets = [(f"积分榜 {board.month:%Y-%m}", headers, rows)]
    place = "grid_id" if board.unit.level == Level.GRID else "community_id"
    keeper = scope.is_admin or scope.covers(board.unit.path[: 2 * STEP], *selectors.SHOPKEEPERS)
    ids = []
    if keeper or scope.covers(board.unit.path):
        tallies = (
            Tally.objects.filter(month=board.month, scheme_id=board.scheme_id, **{place: board.unit_id})
            .select_related("resident__household", "grid")
            .order_by("grid__path", "resident__household__room", "resident_id")[: exports.MAX_ROWS]
        )
        full = []
        for t in tallies:
            ids.append(t.resident_id)
            name = t.resident.name if keeper else mask_name(t.resident.name)
            full.append(
                [name, t.grid.name, t.resident.household.room, t.earned, t.deducted, t.redeemed, t.net, t.balance]
            )
        sheets.append(
            ("月度积分", ["姓名", "网格", "房号", "本月获得", "本月扣除", "本月兑换", "本月净得", "月末余额"], full)
        )
    return exports.respond(
        request,
        filename=f"积分榜-{board.unit.name}-{board.month:%Y-%m}",
        sheets=sheets,
        what="points_board",
        object_ids=ids,
        personal_fields=["name"] if keeper and ids else [],
    )


# --- Objections ---------------------------------------------------------------------------------------------


def _may_resolve(scope, objection) -> bool:
    return scope.is_admin or scope.covers(objection.board.unit.path[: 2 * STEP], *selectors.SHOPKEEPERS)


@login_required
def points_objections(request):
    """Open objections to the boards of one's places, with a resolve form for the community staff; and the
    ones resolved lately."""
    user = request.user
    scope = scope_of(user)
    if not _is_staff(scope):
        return forbidden(request, _("异议处理只对街道、社区、网格的工作人员开放。"))
    visible = selectors.objections_visible_to(user).select_related(
        "board__unit", "board__scheme", "resident__household__building", "entry__rule", "resolved_by"
    )
    bound_id, bound_form, status, error = None, None, 200, None
    if request.method == "POST":
        objection = get_object_or_404(visible, pk=parse_id_or_404(request.POST.get("objection")) or 0)
        if not _may_resolve(scope, objection):
            return forbidden(request, _("只有该社区的工作人员可以处理积分榜异议。"), back=request.path)
        bound_id, bound_form = objection.pk, forms.ResolveForm(request.POST, prefix=f"o{objection.pk}")
        if bound_form.is_valid():
            try:
                tally.objection_resolve(by=user, objection=objection, **bound_form.cleaned_data)
            except NotAllowed as refusal:
                return forbidden(request, str(refusal.message), back=request.path)
            except DomainError as refusal:
                status = show_error(bound_form, refusal)
                error = str(refusal.message) if status == 409 else None
            else:
                messages.success(request, _("异议已处理。"))
                return redirect("points-objections")
        else:
            status = 400
    page = Paginator(visible.filter(state=ObjectionState.OPEN).order_by("created_at", "id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for objection in page.object_list:
        objection.may_resolve = _may_resolve(scope, objection)
        objection.form = bound_form if objection.pk == bound_id else forms.ResolveForm(prefix=f"o{objection.pk}")
    resolved = list(visible.exclude(state=ObjectionState.OPEN).order_by("-resolved_at", "-id")[:PAGE_SIZE])
    return render(
        request,
        "points/objections.html",
        {"page": page, "resolved": resolved, "bound_id": bound_id, "error": error},
        status=status,
    )


# --- Tally runs ---------------------------------------------------------------------------------------------


@login_required
def points_tallies(request):
    """The runs of the monthly tally; administrators run (or re-run) a month and publish its boards."""
    user = request.user
    scope = scope_of(user)
    if not _is_staff(scope):
        return forbidden(request, _("月度统计只对街道、社区、网格的工作人员开放。"))
    status = 200
    initial = {"month": f"{tally.previous_month():%Y-%m}"}
    form = forms.TallyRunForm(initial=initial)
    if request.method == "POST":
        if not scope.is_admin:
            return forbidden(request, _("只有系统管理员可以运行月度统计。"), back=request.path)
        form = forms.TallyRunForm(request.POST)
        if form.is_valid():
            month = form.cleaned_data["month"]
            try:
                if request.POST.get("action") == "publish":
                    created = tally.boards_publish_all(month=month)
                    message = _("已公示 %(month)s 的积分榜（新增 %(n)d 张）。") % {
                        "month": f"{month:%Y-%m}",
                        "n": created,
                    }
                elif not settings.CELERY_TASK_ALWAYS_EAGER:
                    # A city's month takes tens of seconds: a worker runs it, this page shows it running.
                    tally._check_month_ended(month)
                    from .tasks import tally_month as tally_task

                    transaction.on_commit(lambda: tally_task.delay(month.isoformat(), user.pk))
                    message = _("已开始 %(month)s 的月度统计，完成后本页会自动显示结果。") % {"month": f"{month:%Y-%m}"}
                else:
                    run = tally.tally_month(month=month, by=user)
                    message = _("已完成 %(month)s 的月度统计：%(rows)d 行，用时 %(ms)d 毫秒。") % {
                        "month": f"{month:%Y-%m}",
                        "rows": run.rows,
                        "ms": run.duration_ms or 0,
                    }
            except DomainError as refusal:
                status = show_error(form, refusal)
            else:
                messages.success(request, message)
                return redirect("points-tallies")
        else:
            status = 400
    runs = Paginator(
        TallyRun.objects.select_related("triggered_by").order_by("-started_at", "-id"), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    # A run started in the last hour and not finished is running (an older one was cut off; a new run of its
    # month completes it): the page follows it, refreshing itself every few seconds.
    now = timezone.now()
    running = [
        {"run": run, "seconds": int((now - run.started_at).total_seconds())}
        for run in TallyRun.objects.filter(finished_at=None, started_at__gte=now - dt.timedelta(hours=1))
    ]
    return render(
        request,
        "points/tallies.html",
        {"runs": runs, "form": form, "is_admin": scope.is_admin, "running": running},
        status=status,
    )


def parse_id_or_404(value):
    """An id from a form or the query string; anything that is not one is a page that does not exist."""
    try:
        return parse_id(value, field="id")
    except InvalidInput:
        raise Http404 from None
