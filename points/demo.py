"""Demo points for `seed_demo`: each community's covenant rules and a street-wide party members' rule, three
months of awards and deductions recorded through the real services by the grid workers and community staff, a
shelf in every community's points supermarket with a few counter sales and reservations, last month tallied and
its boards published (in their notice period, with one open objection), so that every persona finds the points
pages in use."""

import datetime as dt
import random

from django.utils import timezone

from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Level, Position, Resident, ResidentTag, Role, Unit

from . import services, shop, tally
from .models import Account, Board, Reward, Rule, RuleKind, Scheme

# (code, name, kind, points, daily cap, monthly cap, evidence required, weight in the demo)
COVENANT = [
    ("garbage-sorting", "垃圾分类准确投放", RuleKind.BASE, 2, 2, 20, False, 30),
    ("meeting", "参加居民议事会", RuleKind.BASE, 5, 5, 10, False, 10),
    ("courtyard", "庭院楼道整洁", RuleKind.BASE, 3, 3, 6, False, 12),
    ("volunteer-hour", "志愿服务（每小时）", RuleKind.BONUS, 3, 12, 60, True, 18),
    ("neighbour-help", "邻里互助", RuleKind.BONUS, 5, 10, 30, True, 8),
    ("elder-care", "关爱独居老人", RuleKind.BONUS, 5, 5, 20, False, 5),
    ("blood-donation", "无偿献血", RuleKind.BONUS, 20, 20, 20, True, 1),
    ("brave-deed", "见义勇为", RuleKind.BONUS, 50, None, None, True, 0),
    ("littering", "乱扔垃圾", RuleKind.DEDUCTION, -5, None, None, False, 5),
    ("parking", "乱停乱放占用通道", RuleKind.DEDUCTION, -3, None, None, False, 4),
    ("fire-lane", "占用消防通道", RuleKind.DEDUCTION, -10, None, None, True, 1),
    ("throwing", "高空抛物", RuleKind.DEDUCTION, -20, None, None, True, 0),
]
PARTY_RULES = [
    ("party-meeting", "参加组织生活", RuleKind.BASE, 5, 5, 10, False, 6),
    ("double-report", "双报到志愿服务", RuleKind.BONUS, 5, 10, 30, True, 6),
    ("wish", "认领微心愿", RuleKind.BONUS, 10, 10, 20, True, 2),
]
NOTES = {
    "volunteer-hour": ["社区清扫志愿服务 1 小时", "疫苗接种点引导 1 小时", "文明交通劝导 1 小时"],
    "neighbour-help": ["帮助邻居老人买菜", "帮邻居照看孩子", "协助邻居搬运家具"],
    "blood-donation": ["在市中心血站献血 300 毫升"],
    "fire-lane": ["电动车停放在消防通道，经劝导已挪走"],
    "double-report": ["到居住地社区报到，参加环境整治", "参加社区夜间巡逻"],
    "wish": ["认领困难儿童微心愿：书包一个"],
}
# (name, cost, stock)
SHELF = [
    ("东北大米 5 公斤", 200, 30),
    ("菜籽油 1.8 升", 150, 30),
    ("洗衣液 2 公斤", 80, 50),
    ("抽纸一提", 30, 100),
    ("毛巾两条", 25, 80),
    ("环保购物袋", 10, 100),
    ("社区理发服务券", 40, 20),
    ("家电清洗上门一次", 300, 5),
]


def build_demo_points(*, count: int, rng: random.Random, today: dt.date | None = None) -> dict:
    """Record about `count` entries over the last three months; returns what was made."""
    today = today or timezone.localdate()
    start = tally.month_start(tally.month_start(today) - dt.timedelta(days=45))  # two months back
    resident_scheme = Scheme.objects.get(code=Scheme.RESIDENT)
    party_scheme = Scheme.objects.get(code=Scheme.PARTY)
    units = list(Unit.objects.filter(depth__lte=2).order_by("path"))
    unit_ids = {u.path: u.pk for u in units}
    communities = [u for u in units if u.level == Level.COMMUNITY]
    streets = [u for u in units if u.level == Level.STREET]
    rules_by_community = {}
    for community in communities:
        rules_by_community[community.pk] = [
            (_rule(community, resident_scheme, spec, start), spec[-1]) for spec in COVENANT
        ]
    party_rules = {
        street.pk: [(_rule(street, party_scheme, spec, start), spec[-1]) for spec in PARTY_RULES] for street in streets
    }

    recorders = {}
    for position in (
        Position.objects.filter(role__in=[Role.GRID_WORKER, Role.COMMUNITY_STAFF])
        .select_related("user", "unit")
        .order_by("id")
    ):
        recorders.setdefault(position.unit.path, position.user)
    persona_grid = Position.objects.select_related("unit").get(user__username="grid_worker", role=Role.GRID_WORKER).unit
    residents = list(
        Resident.objects.filter(moved_out_on__isnull=True)
        .select_related("household__building")
        .order_by("id")
        .values_list("id", "household__building__path")
    )
    party_members = set(Resident.objects.filter(tags__code=ResidentTag.PARTY_MEMBER).values_list("id", flat=True))
    paths = dict(residents)
    in_persona_grid = [r for r in residents if r[1].startswith(persona_grid.path)]
    # Regulars: a small share of residents earn most points, as in the seeds' rankings.
    regulars = rng.sample(residents, min(len(residents), max(count // 6, 1)))
    days = (today - start).days

    persona = Position.objects.filter(user__username="resident", role=Role.RESIDENT).first()
    persona_entries = 0
    made = refused = 0
    for i in range(count):
        pool = in_persona_grid if i % 4 == 0 and in_persona_grid else regulars
        resident_id, path = rng.choice(pool)
        if persona is not None and persona.resident_id in paths and i % 10 == 0 and persona_entries < 12:
            # The `resident` persona is a keen volunteer: enough points to reserve a reward.
            resident_id, path = persona.resident_id, paths[persona.resident_id]
            persona_entries += 1
        community_path, street_path = path[:8], path[:4]
        recorder = recorders.get(path[:12]) if rng.random() < 0.7 else None
        recorder = recorder or recorders.get(community_path)
        if recorder is None:
            continue
        choices = rules_by_community[unit_ids[community_path]]
        if resident_id in party_members and rng.random() < 0.4:
            choices = party_rules[unit_ids[street_path]]
        rule = rng.choices([r for r, _w in choices], weights=[w for _r, w in choices])[0]
        occurred_on = start + dt.timedelta(days=rng.randrange(days + 1))
        note = rng.choice(NOTES.get(rule.code, [""]))
        try:
            services.points_record(
                by=recorder,
                resident=Resident(pk=resident_id),
                rule=rule,
                occurred_on=occurred_on,
                note=note or ("" if not rule.evidence_required else rule.name),
            )
            made += 1
        except (InvalidInput, NotAllowed):
            raise
        except DomainError:  # over a cap, or a deduction with nothing to take: the service said no
            refused += 1

    rewards = _shelves(communities, resident_scheme, recorders)
    redemptions = _redemptions(rng, rewards, recorders, persona_grid)
    month = tally.previous_month(today)
    run = tally.tally_month(month=month)
    boards = tally.boards_publish_all(month=month)
    objection = _objection(month, persona_grid)
    return {
        "entries": made,
        "refused": refused,
        "rules": Rule.objects.count(),
        "rewards": len(rewards),
        "redemptions": redemptions,
        "tallied": run.rows,
        "boards": boards,
        "objections": int(objection),
    }


def _rule(unit, scheme, spec, start):
    code, name, kind, points, daily, monthly, evidence, _weight = spec
    return Rule.objects.create(
        unit=unit,
        scheme=scheme,
        code=code,
        name=name,
        kind=kind,
        points=points,
        daily_cap=daily,
        monthly_cap=monthly,
        evidence_required=evidence,
        active_from=start,
    )


def _shelves(communities, scheme, recorders):
    rewards = []
    for community in communities:
        staff = recorders.get(community.path)
        if staff is None:
            continue
        for name, cost, stock in SHELF:
            rewards.append(
                shop.reward_create(by=staff, community=community, scheme=scheme, name=name, cost=cost, stock=stock)
            )
    return rewards


def _redemptions(rng, rewards, recorders, persona_grid) -> int:
    """A few counter sales in every community to the residents with the most points, and a reservation by the
    `resident` persona when their balance allows one."""
    made = 0
    by_community = {}
    for reward in rewards:
        by_community.setdefault(reward.community_id, []).append(reward)
    for shelf in by_community.values():
        community = shelf[0].community
        staff = recorders[community.path]
        richest = (
            Account.objects.filter(
                scheme=shelf[0].scheme, resident__household__building__path__startswith=community.path
            )
            .select_related("resident")
            .order_by("-balance", "id")[:4]
        )
        for account in richest:
            affordable = [r for r in shelf if r.cost <= account.balance]
            if not affordable:
                continue
            try:
                shop.redemption_redeem(by=staff, resident=account.resident, reward=rng.choice(affordable))
                made += 1
            except DomainError:
                pass
    persona = Position.objects.filter(user__username="resident", role=Role.RESIDENT).select_related("user").first()
    if persona is not None:
        shelf = Reward.objects.filter(community__path=persona_grid.path[:8]).order_by("cost")
        for reward in shelf[:1]:
            try:
                shop.redemption_reserve(by=persona.user, reward=reward)
                made += 1
            except DomainError:
                pass
    return made


def _objection(month, persona_grid) -> bool:
    """The `resident` persona questions their grid's board, so that community staff have one to resolve."""
    persona = Position.objects.filter(user__username="resident", role=Role.RESIDENT).select_related("user").first()
    board = Board.objects.filter(month=month, unit=persona_grid, scheme__code=Scheme.RESIDENT).first()
    if persona is None or board is None:
        return False
    tally.objection_file(
        by=persona.user,
        board=board,
        reason="我 " + f"{month.month}" + " 月参加了两次社区清扫志愿服务，榜上只记了一次，请核实。",
    )
    return True
