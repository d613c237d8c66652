"""Demo cases for `seed_demo`: a few hundred cases over the last four months in every state, filed and moved
through the real services (so every row, event and deadline is what the product itself would write), with
the event times set to when each step happened."""

import datetime as dt
import inspect
import random

from django.utils import timezone

from governance.models import Department, Position, Resident, Role, Unit

from . import services
from .models import CaseCategory, Source, Urgency

# Which department a category goes to by default (department codes of the demo city).
DEFAULT_DEPARTMENTS = {
    "city": "cgj",
    "city-noise-fumes": "sthjj",
    "safety": "yjglj",
    "safety-house": "zjj",
    "dispute": "zzzx",
    "dispute-wages": "rsj",
    "livelihood": "mzj",
    "livelihood-employment": "rsj",
    "livelihood-health": "wjj",
    "property": "zjj",
    "property-lift": "scjgj",
    "public": "zjj",
    "public-streetlight": "cgj",
    "public-manhole": "cgj",
    "public-greenery": "cgj",
    "security": "gafj",
}

TITLES = {
    "city-clutter": ("楼道堆放杂物", "单元楼道堆满纸箱和旧家具，影响通行和消防安全。"),
    "city-street-vending": ("小区门口占道经营", "早市摊贩占用人行道，行人只能走机动车道。"),
    "city-garbage": ("垃圾桶满溢未清运", "垃圾桶已满两天无人清运，气味很大。"),
    "city-illegal-building": ("楼顶违章搭建", "顶楼住户在屋顶搭建彩钢棚。"),
    "city-noise-fumes": ("餐馆油烟扰民", "临街餐馆油烟直排，楼上住户无法开窗。"),
    "safety-fire-lane": ("消防通道被占", "私家车长期停放在消防通道上。"),
    "safety-gas": ("燃气管道老化", "老旧小区燃气管道锈蚀，有异味。"),
    "safety-house": ("外墙瓷砖脱落", "外墙瓷砖松动脱落，楼下有行人经过。"),
    "safety-ebike-charging": ("电动车楼道充电", "有住户从窗口拉线给电动车充电。"),
    "dispute-neighbours": ("楼上楼下漏水纠纷", "楼上卫生间漏水，双方对维修费用有争议。"),
    "dispute-property": ("物业费纠纷", "业主对物业服务不满拒交物业费。"),
    "dispute-wages": ("装修工人讨薪", "装修队工人反映被拖欠工资。"),
    "dispute-family": ("家庭矛盾调解", "老人反映子女不尽赡养义务。"),
    "livelihood-hardship": ("困难家庭申请救助", "独居老人生活困难，需要临时救助。"),
    "livelihood-elderly": ("高龄老人助餐需求", "八十岁以上独居老人希望参加社区助餐。"),
    "livelihood-employment": ("失业人员求职帮扶", "居民失业半年，希望获得就业推荐。"),
    "livelihood-health": ("慢病老人上门随访", "行动不便的慢病老人需要家庭医生上门。"),
    "property-facilities": ("单元门禁损坏", "单元门禁坏了一周，陌生人随意进出。"),
    "property-lift": ("电梯频繁故障", "电梯本周停运三次，有老人被困。"),
    "property-water": ("二次供水水质浑浊", "早上放水发黄，持续十几分钟。"),
    "public-road": ("路面坑洼积水", "小区出口路面塌陷，雨天积水严重。"),
    "public-streetlight": ("路灯不亮", "巷子里三盏路灯不亮，夜间出行不便。"),
    "public-manhole": ("井盖缺失", "人行道上井盖缺失，已用砖头临时围挡。"),
    "public-greenery": ("绿化带被毁", "绿化带被踩踏种菜。"),
    "security-suspicious": ("可疑人员徘徊", "深夜有陌生人在车棚附近徘徊。"),
    "security-fraud": ("保健品推销疑似诈骗", "有人以免费体检为名向老人推销高价保健品。"),
}

# How far cases get: (state to reach, weight). Most old cases are closed; recent ones are still moving.
OUTCOMES = [
    ("reported", 6),
    ("returned", 2),
    ("in_progress_community", 8),
    ("escalated", 4),
    ("dispatched", 6),
    ("in_progress", 8),
    ("handled", 6),
    ("verified", 6),
    ("closed", 45),
    ("closed_low", 4),
    ("invalid", 3),
]


def _step(service, case, at, **kwargs):
    """One step through its service at the time `at`; the event row is dated then too."""
    if "now" in inspect.signature(service).parameters:
        kwargs["now"] = at
    case = service(case=case, **kwargs)
    case.events.filter(pk=case.events.latest("id").pk).update(created_at=at)
    return case


def link_default_departments() -> int:
    """Point each category at its usual department (leaves inherit their group's), where the demo city has it."""
    departments = {d.code: d for d in Department.objects.all()}
    linked = 0
    for category in CaseCategory.objects.select_related("parent"):
        code = DEFAULT_DEPARTMENTS.get(category.code)
        if code is None and category.parent:
            code = DEFAULT_DEPARTMENTS.get(category.parent.code)
        if code in departments and category.default_department_id != departments[code].pk:
            category.default_department = departments[code]
            category.save(update_fields=["default_department"])
            linked += 1
    return linked


class _People:
    """Who does what in the demo city, read once."""

    def __init__(self):
        by_unit, self.departments = {}, {}
        for p in Position.objects.select_related("user").exclude(unit=None).order_by("id"):
            by_unit.setdefault((p.unit_id, p.role), []).append(p.user)
        for p in Position.objects.select_related("user").filter(role=Role.DEPARTMENT_STAFF).order_by("id"):
            self.departments.setdefault(p.department_id, []).append(p.user)
        self.by_unit = by_unit
        self.resident_users = {
            p.resident_id: p.user for p in Position.objects.select_related("user").filter(role=Role.RESIDENT)
        }

    def first(self, unit, *roles):
        for role in roles:
            users = self.by_unit.get((unit.pk, role))
            if users:
                return users[0]
        return None


def build_demo_cases(*, count: int, rng: random.Random, now: dt.datetime | None = None) -> int:
    """File `count` cases across the grids that have a grid worker, spread over the last 120 days, and move each
    to a state chosen by weight. Returns how many were made."""
    if count <= 0:
        return 0
    now = now or timezone.now()
    link_default_departments()
    people = _People()
    units = {u.path: u for u in Unit.objects.all()}
    grids = [u for u in units.values() if u.level == "grid" and people.first(u, Role.GRID_WORKER)]
    leaves = list(CaseCategory.objects.filter(parent__isnull=False, active=True).select_related("default_department"))
    fallback = Department.objects.order_by("code").first()
    grids.sort(key=lambda u: u.path)
    made = 0
    for i in range(count):
        # The personas' grid gets a share of its own so that every login has something to do.
        grid = grids[0] if i % 6 == 0 else rng.choice(grids)
        community, street = units[grid.path[:8]], units[grid.path[:4]]
        worker = people.first(grid, Role.GRID_WORKER)
        community_staff = people.first(community, Role.COMMUNITY_STAFF, Role.SECRETARY)
        street_staff = people.first(street, Role.STREET_STAFF, Role.SECRETARY)
        category = rng.choice(leaves)
        title, description = TITLES.get(category.code, (category.name, category.name))
        outcome = rng.choices([o for o, _w in OUTCOMES], weights=[w for _o, w in OUTCOMES])[0]
        age_days = (
            rng.uniform(0, 4) if outcome in ("reported", "returned", "escalated", "dispatched") else rng.uniform(3, 120)
        )
        # Filed in working hours (08:00–17:59 Beijing time), as grid patrols are.
        filed = timezone.localtime(now - dt.timedelta(days=age_days)).replace(
            hour=rng.randint(8, 17), minute=rng.randint(0, 59)
        )
        clock = [min(filed, now)]

        def later(hours, clock=clock):
            clock[0] = min(clock[0] + dt.timedelta(hours=hours * rng.uniform(0.3, 1.5)), now)
            return clock[0]

        # Most residents have no login, so the community rates for them; some of the first grid's cases concern
        # a resident who does (the `resident` persona), so that they have cases to follow and rate.
        resident = None
        if grid is grids[0] and i % 12 == 0 and people.resident_users:
            resident = Resident.objects.filter(
                pk__in=people.resident_users, household__building__path__startswith=grid.path
            ).first()
        case = services.case_file(
            by=worker,
            title=title,
            description=description,
            category=category,
            grid=grid,
            urgency=rng.choices([Urgency.NORMAL, Urgency.URGENT, Urgency.CRITICAL], weights=[85, 12, 3])[0],
            source=rng.choices([Source.PATROL, Source.RESIDENT, Source.HOTLINE], weights=[60, 30, 10])[0],
            affected_resident=resident,
            now=clock[0],
        )
        made += 1
        rater = people.resident_users.get(resident.pk) if resident else None
        rater = rater or community_staff
        department = category.default_department or fallback
        dept_user = (people.departments.get(department.pk) or [None])[0]

        if outcome == "reported":
            continue
        if outcome == "returned":
            _step(services.case_return, case, later(3), by=community_staff, note="请补充现场照片和具体位置。")
            continue
        if outcome == "invalid":
            _step(services.case_close, case, later(2), by=community_staff, reason="invalid", note="经核实情况不属实。")
            continue
        if outcome == "in_progress_community" or not category.whistle_allowed or dept_user is None:
            case = _step(services.case_accept, case, later(4), by=community_staff, note="社区受理，安排专人处理。")
            handler = community_staff
        else:
            case = _step(services.case_escalate, case, later(4), by=community_staff, note="需要职能部门协调处置。")
            if outcome == "escalated":
                continue
            case = _step(
                services.case_dispatch, case, later(2), by=street_staff, department=department, note="请按时限办理。"
            )
            if outcome == "dispatched":
                continue
            case = _step(services.case_sign, case, later(case.category.sign_limit_hours * 0.8), by=dept_user)
            handler = dept_user
        if outcome in ("in_progress", "in_progress_community"):
            continue
        days = case.category.handle_limit_days
        case = _step(
            services.case_handle, case, later(days * 24 * rng.uniform(0.2, 1.2)), by=handler, note="已处理完毕。"
        )
        if outcome == "handled":
            continue
        case = _step(services.case_verify, case, later(6), by=worker, confirmed=True, note="现场核查已解决。")
        if outcome == "verified":
            continue
        stars = rng.choice([1, 2]) if outcome == "closed_low" else rng.choices([5, 4, 3], weights=[70, 22, 8])[0]
        comment = "处理及时，非常满意。" if stars >= 4 else "问题只解决了一半。"
        case = _step(services.case_rate, case, later(30), by=rater, stars=stars, note=comment)
    return made
