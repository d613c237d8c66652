"""Demo letters for `seed_demo`: letters to every community's and street's secretary over the last four months,
written online by the two resident personas and written down by community staff for residents who came in or
phoned, and moved through the real services to every state, each step dated when it happened."""

import datetime as dt
import random

from django.utils import timezone

from governance.errors import RateLimited
from governance.models import Level, Position, Resident, Role, Unit
from governance.workflow import close_unrated

from . import services
from .models import Channel, ClosedReason, ContactPreference, Intake, Letter, LetterCategory, LetterState

# (category code, subject, body, reply)
LETTERS = [
    (
        "environment",
        "小区垃圾清运不及时",
        "北门垃圾站最近三天都没有清运，夏天气味很大，老人小孩路过都捂着鼻子。希望社区督促环卫公司按时清运。我的电话13981234567。",
        "已约谈环卫公司，恢复每日早晚两次清运，并在垃圾站加装除臭设备。",
    ),
    (
        "property",
        "物业不修单元门禁",
        "我住5栋2单元302室，单元门禁坏了两周，物业一直说等配件，陌生人随便进出，很不安全。",
        "已督促物业三日内更换门禁主板，社区网格员将跟进核查。",
    ),
    (
        "facilities",
        "希望在广场增设休息座椅",
        "社区广场傍晚跳舞散步的老人很多，但是座椅太少，建议增加几张长椅。",
        "已列入本季度社区微改造项目，月底前安装六张长椅。",
    ),
    (
        "neighbours",
        "楼上深夜噪音扰民",
        "楼上住户每天晚上十一点以后还在拖动家具，孩子没法睡觉，沟通过两次没有效果。",
        "网格员已上门调解，双方签订了邻里公约，约定晚十点后保持安静。",
    ),
    (
        "security",
        "电动车在楼道充电有隐患",
        "3栋1单元有住户把电动车推进楼道充电，电线从窗户拉出来，担心起火。",
        "已联合物业开展楼道清理，在小区新增两处集中充电桩。",
    ),
    (
        "welfare",
        "咨询高龄津贴怎么申请",
        "我父亲今年满80岁，听说可以申请高龄津贴，需要准备哪些材料？到哪里办理？",
        "请携带老人身份证、户口本和银行卡到社区便民服务中心办理，行动不便可预约上门。",
    ),
    (
        "elderly",
        "希望社区开办老年助餐",
        "小区独居老人多，做饭不方便，希望社区能办一个老年食堂或者送餐服务。",
        "社区已与辖区餐饮企业合作开设长者助餐点，下月起每天中午供餐。",
    ),
    (
        "education-health",
        "家庭医生签约服务",
        "想给家里老人签约家庭医生，社区卫生服务站说名额满了，能否增加名额？",
        "已协调卫生服务中心增派一个家庭医生团队，本周可办理签约。",
    ),
    (
        "employment",
        "失业人员就业帮扶",
        "我失业半年了，四十五岁，有驾照，希望社区能推荐一些工作机会。",
        "已将您纳入就业援助对象，人社所下周组织专场招聘会，届时通知您参加。",
    ),
    (
        "suggestion",
        "建议定期召开居民议事会",
        "小区很多事情大家有意见但没有地方说，建议社区每月开一次居民议事会。",
        "采纳您的建议，每月第一个周六上午在社区活动室召开居民议事会。",
    ),
    (
        "praise",
        "感谢网格员帮忙修水管",
        "前天晚上家里水管爆裂，网格员半夜赶来帮忙联系维修，非常感谢！",
        "感谢您的肯定，我们会继续做好网格服务。",
    ),
    (
        "facilities",
        "路灯不亮影响夜间出行",
        "长江东路123号门前的三盏路灯坏了半个月，晚上路过很黑，希望尽快修复。",
        "已报城管部门修复，现已全部恢复照明。",
    ),
]

# Where each demo letter ends up, by weight.
OUTCOMES = [
    ("submitted", 8),
    ("accepted", 5),
    ("assigned", 10),
    ("drafted", 5),
    ("replied", 10),
    ("follow_up", 4),
    ("closed", 50),
    ("unrated", 4),
    ("rejected", 4),
]


def build_demo_letters(*, count: int, rng: random.Random, now: dt.datetime | None = None) -> int:
    """Write `count` letters spread over the last 120 days and move each to a state chosen by weight."""
    if count <= 0:
        return 0
    now = now or timezone.now()
    categories = {c.code: c for c in LetterCategory.objects.filter(active=True)}
    by_unit: dict[tuple, list] = {}
    for p in Position.objects.select_related("user", "unit").exclude(unit=None).order_by("id"):
        by_unit.setdefault((p.unit.path, p.role), []).append(p.user)
    personas = {
        p.user.username: (p.user, p.resident)
        for p in Position.objects.filter(
            role=Role.RESIDENT, user__username__in=["resident", "resident_2"]
        ).select_related("user", "resident__household__building")
    }
    communities = list(Unit.objects.filter(level=Level.COMMUNITY).order_by("path"))
    made = 0
    residents: dict[int, list] = {}
    for i in range(count):
        persona = None
        if i % 8 == 0 and "resident" in personas:
            persona = personas["resident"]
        elif i % 8 == 4 and "resident_2" in personas:
            persona = personas["resident_2"]
        if persona:
            writer = persona[1]
            community = Unit.objects.get(path=writer.household.building.path[:8])
        else:
            community = communities[i % len(communities)]
            if community.pk not in residents:
                residents[community.pk] = list(
                    Resident.objects.filter(household__building__path__startswith=community.path, moved_out_on=None)
                    .select_related("household__building")
                    .order_by("id")[:200]
                )
            if not residents[community.pk]:
                continue
            writer = rng.choice(residents[community.pk])
        street_path = community.path[:4]
        to_street = rng.random() < 0.15
        unit = Unit.objects.get(path=street_path) if to_street else community
        secretary = (by_unit.get((unit.path, Role.SECRETARY)) or [None])[0]
        office = (
            by_unit.get((unit.path, Role.COMMUNITY_STAFF)) or by_unit.get((unit.path, Role.STREET_STAFF)) or [None]
        )[0]
        clerk = (by_unit.get((community.path, Role.COMMUNITY_STAFF)) or [None])[0]
        if secretary is None or office is None or clerk is None:
            continue
        code, subject, body, reply = LETTERS[i % len(LETTERS)]
        outcome = rng.choices([o for o, _w in OUTCOMES], weights=[w for _o, w in OUTCOMES])[0]
        fresh = outcome in ("submitted", "accepted", "assigned", "drafted", "follow_up")
        age = rng.uniform(0.2, 6) if fresh else rng.uniform(12, 120)
        clock = [
            timezone.localtime(now - dt.timedelta(days=age)).replace(hour=rng.randint(8, 20), minute=rng.randint(0, 59))
        ]
        if clock[0] > now:  # "today at 20:00" in the morning: yesterday then
            clock[0] -= dt.timedelta(days=1)

        def later(hours, clock=clock):
            clock[0] = min(clock[0] + dt.timedelta(hours=hours * rng.uniform(0.5, 1.5)), now)
            return clock[0]

        try:
            letter, created = services.letter_submit(
                by=persona[0] if persona else clerk,
                writer=None if persona else writer,
                intake=Intake.ONLINE if persona else rng.choice([Intake.VISIT, Intake.PHONE]),
                unit=unit,
                channel=Channel.SPEAK if rng.random() < 0.25 else Channel.MAILBOX,
                category=categories.get(code) or next(iter(categories.values())),
                subject=subject,
                body=body,
                allow_publication=rng.random() < 0.7,
                contact_preference=rng.choice(ContactPreference.values),
                now=clock[0],
            )
        except RateLimited:  # the persona wrote five that day already
            continue
        if not created:  # the same letter by the same writer within a minute: it is the one already there
            continue
        made += 1
        rater = persona[0] if persona else office
        if outcome == "submitted":
            continue
        if outcome == "rejected":
            services.letter_reject(
                letter=letter, by=secretary, note="该事项属于司法诉讼范围，建议通过法律途径解决。", now=later(20)
            )
            continue
        letter = services.letter_accept(letter=letter, by=secretary, now=later(18))
        if outcome == "accepted":
            continue
        handler_unit = Unit.objects.filter(path__startswith=community.path, level=Level.GRID).order_by("path").first()
        letter = services.letter_assign(
            letter=letter, by=secretary, unit=handler_unit or community, note="请核实情况并提出处理意见。", now=later(4)
        )
        if outcome == "assigned":
            continue
        handler = (by_unit.get((handler_unit.path, Role.GRID_WORKER)) if handler_unit else None) or [clerk]
        letter = services.letter_reply(letter=letter, by=handler[0], text=reply, now=later(24 * rng.uniform(1, 6)))
        if outcome == "drafted":
            continue
        letter = services.letter_sign_off(letter=letter, by=secretary, approved=True, now=later(6))
        if outcome == "replied":
            continue
        if outcome == "follow_up":
            services.letter_follow_up(letter=letter, by=rater, note="请问具体什么时候能办好？", now=later(24))
            continue
        if outcome == "unrated":
            close_unrated(
                Letter.objects.filter(pk=letter.pk),
                waiting=LetterState.REPLIED,
                closed=LetterState.CLOSED,
                reason=ClosedReason.UNRATED,
                now=later(24 * 8),
            )
            continue
        stars = rng.choices([5, 4, 3, 2, 1], weights=[72, 22, 3, 2, 1])[0]
        comment = "办理很及时，谢谢书记！" if stars >= 4 else "问题还没有完全解决。"
        services.letter_rate(letter=letter, by=rater, stars=stars, note=comment, now=later(30))
    return made
