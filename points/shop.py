"""The points supermarket (积分超市): a community's rewards, and redemptions that take points and stock together.

A redemption is made at the counter by the community staff (fulfilled at once), or reserved online by the
resident and fulfilled at pick-up with a six-digit code; a reservation may be cancelled, which gives the
points back by a reversal entry and the stock back. Points move only through `services.post`, which refuses
to take a balance below zero; stock moves only by conditional updates that refuse to take it below zero.

Lock order, everywhere in this module: the resident's account first (`account_for` / SELECT … FOR UPDATE),
then the redemption row, then the reward row (taken by the conditional stock update, last, so that the row
every buyer of a reward waits on is held for the shortest time). Services that touch only a reward or only a
redemption take that one lock. Keeping this order is what rules out deadlocks between a counter sale, an
online reservation and a cancellation running at the same moment.
"""

import secrets

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Level, Resident, Unit, User
from governance.selectors import scope_of
from governance.uploads import check_photos

from . import selectors
from .models import Account, Entry, EntryKind, Redemption, RedemptionState, Reward, Scheme
from .services import account_for, post

# Bounds that keep every product of cost × quantity and every stock inside the database's integer columns.
MAX_COST = 100_000
MAX_STOCK = 1_000_000
MAX_QUANTITY = 99
PICKUP_CODE_DIGITS = 6
_PICKUP_CODE_ATTEMPTS = 20


class _Unchanged:
    """Marks an argument of `reward_update` that was not given."""

    def __repr__(self):
        return "UNCHANGED"


UNCHANGED = _Unchanged()


# --- Checks ---------------------------------------------------------------------------------------------------


def _check_int(value, *, field: str, low: int, high: int, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(message, field=field)
    return value


def _check_cost(cost) -> int:
    return _check_int(
        cost,
        field="cost",
        low=1,
        high=MAX_COST,
        message=_("所需积分须为 1 到 %(max)d 之间的整数。") % {"max": MAX_COST},
    )


def _check_name(name) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("请填写商品名称。"), field="name")
    if len(name) > Reward._meta.get_field("name").max_length:
        raise InvalidInput(_("商品名称过长。"), field="name")
    return name


def _check_photo(photo):
    """The checked upload, or None. The photo checks of the cases, reported against this form's field."""
    if not photo:
        return None
    try:
        return check_photos([photo])[0]
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="photo") from None


def _check_quantity(quantity) -> int:
    return _check_int(
        quantity,
        field="quantity",
        low=1,
        high=MAX_QUANTITY,
        message=_("数量须为 1 到 %(max)d 之间的整数。") % {"max": MAX_QUANTITY},
    )


def _check_keeps_shop(by: User, community: Unit):
    if not selectors.may_keep_shop(scope_of(by), community):
        raise NotAllowed(_("只有本社区的工作人员可以管理积分超市。"))


def _check_on_sale(reward: Reward):
    if not reward.active:
        raise DomainError(_("「%(name)s」已下架，不能兑换。") % {"name": reward.name}, code="reward_inactive")


def _lives_in(resident: Resident, community: Unit) -> bool:
    return resident.household.building.path.startswith(community.path)


def _reload_reward(reward: Reward) -> Reward:
    return Reward.objects.select_related("community", "scheme").get(pk=reward.pk)


# --- Rewards --------------------------------------------------------------------------------------------------


@transaction.atomic
def reward_create(
    *,
    by: User,
    community: Unit,
    scheme: Scheme,
    name: str,
    cost: int,
    stock: int = 0,
    photo=None,
    active: bool = True,
) -> Reward:
    """Put a reward on the shelf of a community's supermarket (its staff, or an administrator)."""
    if community.level != Level.COMMUNITY:
        raise InvalidInput(_("积分超市的商品须属于一个社区。"), field="community")
    _check_keeps_shop(by, community)
    if not scheme.active:
        raise InvalidInput(_("该积分类别已停用。"), field="scheme")
    reward = Reward(
        community=community,
        scheme=scheme,
        name=_check_name(name),
        cost=_check_cost(cost),
        stock=_check_int(
            stock,
            field="stock",
            low=0,
            high=MAX_STOCK,
            message=_("库存须为 0 到 %(max)d 之间的整数。") % {"max": MAX_STOCK},
        ),
        active=bool(active),
    )
    photo = _check_photo(photo)
    if photo is not None:
        reward.photo = photo
    reward.save()
    return reward


@transaction.atomic
def reward_update(
    *,
    by: User,
    reward: Reward,
    name=UNCHANGED,
    cost=UNCHANGED,
    photo=UNCHANGED,
    active=UNCHANGED,
) -> Reward:
    """Change what is given; the rest stays. `photo=None` removes the photo.

    The stock is not set here: it moves only by `reward_restock` and by redemptions, so that a form showing a
    stock read a minute ago cannot overwrite the redemptions made since. A changed cost applies to new
    redemptions only; a reservation keeps the points it took."""
    reward = Reward.objects.select_for_update().get(pk=reward.pk)
    _check_keeps_shop(by, Unit.objects.get(pk=reward.community_id))
    changed = []
    if name is not UNCHANGED:
        reward.name = _check_name(name)
        changed.append("name")
    if cost is not UNCHANGED:
        reward.cost = _check_cost(cost)
        changed.append("cost")
    if active is not UNCHANGED:
        reward.active = bool(active)
        changed.append("active")
    if photo is not UNCHANGED:
        reward.photo = _check_photo(photo) or ""
        changed.append("photo")
    if changed:
        reward.save(update_fields=changed)
    return reward


@transaction.atomic
def reward_restock(*, by: User, reward: Reward, quantity: int) -> Reward:
    """Add goods to the stock (an addition, never an absolute figure, so concurrent redemptions are kept)."""
    community = Unit.objects.get(pk=reward.community_id)
    _check_keeps_shop(by, community)
    quantity = _check_int(
        quantity,
        field="quantity",
        low=1,
        high=MAX_STOCK,
        message=_("补货数量须为 1 到 %(max)d 之间的整数。") % {"max": MAX_STOCK},
    )
    added = Reward.objects.filter(pk=reward.pk, stock__lte=MAX_STOCK - quantity).update(stock=F("stock") + quantity)
    if not added:
        raise InvalidInput(_("补货后库存将超过 %(max)d 件。") % {"max": MAX_STOCK}, field="quantity")
    return _reload_reward(reward)


# --- Redemptions ----------------------------------------------------------------------------------------------


def _take_points_and_stock(*, by: User, account: Account, redemption: Redemption, reward: Reward) -> Entry:
    """Post the redemption entry, then take the stock. Call inside a transaction holding the lock on `account`
    (the resident's account in the reward's scheme); any refusal rolls back the redemption with it."""
    entry = post(
        account=account,
        kind=EntryKind.REDEMPTION,
        points=-redemption.points,
        by=by,
        occurred_on=timezone.localdate(),
        note=_("兑换「%(name)s」× %(quantity)d") % {"name": reward.name, "quantity": redemption.quantity},
        redemption=redemption,
    )
    quantity = redemption.quantity
    # Conditional: of two buyers of the last item the second updates no row (PostgreSQL re-checks the WHERE
    # after waiting for the first one's row lock), so the stock never goes below zero.
    taken = Reward.objects.filter(pk=reward.pk, stock__gte=quantity, active=True).update(stock=F("stock") - quantity)
    if not taken:
        current = Reward.objects.filter(pk=reward.pk).values("stock", "active").get()
        if not current["active"]:
            raise DomainError(_("「%(name)s」已下架，不能兑换。") % {"name": reward.name}, code="reward_inactive")
        raise DomainError(
            _("库存不足：「%(name)s」仅剩 %(stock)d 件，需要 %(quantity)d 件。")
            % {"name": reward.name, "stock": current["stock"], "quantity": quantity},
            code="out_of_stock",
        )
    return entry


@transaction.atomic
def redemption_redeem(*, by: User, resident: Resident, reward: Reward, quantity: int = 1) -> Redemption:
    """At the counter: the community staff exchange a resident's points for goods handed over at once."""
    reward = _reload_reward(reward)
    _check_keeps_shop(by, reward.community)
    quantity = _check_quantity(quantity)
    resident = Resident.objects.select_related("household__building").get(pk=resident.pk)
    if resident.moved_out_on is not None:
        raise DomainError(_("该居民已迁出，不能兑换。"), code="moved_out")
    if not _lives_in(resident, reward.community):
        raise InvalidInput(_("该居民不住在本社区，不能在本社区积分超市兑换。"), field="resident")
    _check_on_sale(reward)

    account = account_for(resident, reward.scheme)  # lock 1: the account
    now = timezone.now()
    redemption = Redemption.objects.create(
        resident=resident,
        reward=reward,
        quantity=quantity,
        points=reward.cost * quantity,
        state=RedemptionState.FULFILLED,
        created_by=by,
        fulfilled_by=by,
        fulfilled_at=now,
    )
    _take_points_and_stock(by=by, account=account, redemption=redemption, reward=reward)  # lock 2: the reward
    return redemption


def _new_pickup_code() -> str:
    return f"{secrets.randbelow(10**PICKUP_CODE_DIGITS):0{PICKUP_CODE_DIGITS}d}"


def _create_reservation(*, by: User, resident: Resident, reward: Reward, quantity: int) -> Redemption:
    """A reserved redemption with a pick-up code no other open reservation of the reward holds. The database's
    partial unique constraint decides, also between two reservations drawing the same code at the same moment;
    a code drawn twice is drawn again."""
    for _attempt in range(_PICKUP_CODE_ATTEMPTS):
        code = _new_pickup_code()
        try:
            with transaction.atomic():
                return Redemption.objects.create(
                    resident=resident,
                    reward=reward,
                    quantity=quantity,
                    points=reward.cost * quantity,
                    state=RedemptionState.RESERVED,
                    pickup_code=code,
                    created_by=by,
                )
        except IntegrityError:  # held by another open reservation of the reward (1 in 10⁶ per open one)
            continue
    raise DomainError(_("暂时无法生成取货码，请稍后再试。"), code="pickup_code_exhausted")


@transaction.atomic
def redemption_reserve(*, by: User, reward: Reward, quantity: int = 1) -> Redemption:
    """Online: a resident reserves a reward of their community's supermarket for themselves. The points and
    the stock are taken now; the goods are handed over at pick-up against the code."""
    reward = _reload_reward(reward)
    scope = scope_of(by)
    resident = next(
        (
            r
            for r in Resident.objects.filter(pk__in=scope.resident_ids).select_related("household__building")
            if _lives_in(r, reward.community)
        ),
        None,
    )
    if resident is None:
        raise NotAllowed(_("只有本社区的居民可以在线预约兑换本社区积分超市的商品。"))
    quantity = _check_quantity(quantity)
    _check_on_sale(reward)

    account = account_for(resident, reward.scheme)  # lock 1: the account
    redemption = _create_reservation(by=by, resident=resident, reward=reward, quantity=quantity)
    _take_points_and_stock(by=by, account=account, redemption=redemption, reward=reward)  # lock 2: the reward
    return redemption


@transaction.atomic
def redemption_fulfil(*, by: User, redemption: Redemption, pickup_code: str) -> Redemption:
    """At pick-up: the community staff hand over a reserved reward against its pick-up code."""
    reward = _reload_reward(redemption.reward)
    _check_keeps_shop(by, reward.community)
    # Only the redemption row is locked: no points or stock move here.
    redemption = Redemption.objects.select_for_update().get(pk=redemption.pk)
    if redemption.state != RedemptionState.RESERVED:
        raise DomainError(
            _("该兑换%(state)s，不能再领取。") % {"state": redemption.get_state_display()}, code="not_reserved"
        )
    if not secrets.compare_digest(str(pickup_code or "").strip(), redemption.pickup_code):
        raise InvalidInput(_("取货码不正确。"), field="pickup_code")
    redemption.state = RedemptionState.FULFILLED
    redemption.fulfilled_by = by
    redemption.fulfilled_at = timezone.now()
    redemption.save(update_fields=["state", "fulfilled_by", "fulfilled_at"])
    return redemption


@transaction.atomic
def redemption_cancel(*, by: User, redemption: Redemption, note: str = "") -> Redemption:
    """Cancel a reservation (the resident themselves, or the community staff): the points come back by a
    reversal of the redemption entry, the stock comes back, each exactly once."""
    redemption = Redemption.objects.select_related("reward__community").get(pk=redemption.pk)
    scope = scope_of(by)
    if not (
        redemption.resident_id in scope.resident_ids or selectors.may_keep_shop(scope, redemption.reward.community)
    ):
        raise NotAllowed(_("只有兑换的居民本人或本社区的工作人员可以取消兑换。"))
    original = Entry.objects.get(redemption=redemption, kind=EntryKind.REDEMPTION)
    account = Account.objects.select_for_update().get(pk=original.account_id)  # lock 1: the account
    redemption = Redemption.objects.select_for_update().get(pk=redemption.pk)  # lock 2: the redemption
    if redemption.state != RedemptionState.RESERVED:
        raise DomainError(
            _("该兑换%(state)s，不能取消。") % {"state": redemption.get_state_display()}, code="not_reserved"
        )
    post(
        account=account,
        kind=EntryKind.REVERSAL,
        points=-original.points,
        by=by,
        occurred_on=timezone.localdate(),
        note=(note or "").strip() or _("取消兑换"),
        reverses=original,
        redemption=redemption,
    )
    # Lock 3: the reward. Back on the shelf even if it was taken off sale meanwhile: the goods are there.
    Reward.objects.filter(pk=redemption.reward_id).update(stock=F("stock") + redemption.quantity)
    redemption.state = RedemptionState.CANCELLED
    redemption.cancelled_at = timezone.now()
    redemption.save(update_fields=["state", "cancelled_at"])
    return redemption
