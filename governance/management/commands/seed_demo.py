"""Build a demo city: streets, communities, grids, buildings, households, residents, party organisations,
departments, staff accounts and the grid service teams, plus nine logins, one per persona.

    python manage.py seed_demo                       # demo scale, password generated and printed
    python manage.py seed_demo --password secret     # the logins use this password
    python manage.py seed_demo --scale city          # a prefecture-level city, for benchmarks
    python manage.py seed_demo --reset               # delete the governance data first, then seed

Sizes (exact):

    scale   streets  communities  grids  buildings  households  residents
    demo          2            6     40        300       5,000     12,000
    city         12          150  3,500     20,000     400,000  1,000,000
    (tiny         2            3      4          8          40        100   — for the test suite)

Everything is generated from `random.Random(42)` and a seeded Faker, so two runs on empty databases give the
same city. Rows are written with `bulk_create`; tree paths are computed here (treebeard materialised path,
steplen 4) instead of one `add_child` per node. The whole run is one transaction: a failure leaves nothing.
"""

import random
import secrets
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext as _
from faker import Faker

from governance.models import (
    LEVEL_DEPTH,
    PARTY_ORG_KIND_FOR_LEVEL,
    Department,
    DepartmentKind,
    Gender,
    GridKind,
    GridTeamMember,
    GridWorkerKind,
    Household,
    Level,
    Notification,
    PartyOrg,
    Position,
    Resident,
    ResidentTag,
    Role,
    TeamRole,
    Unit,
    User,
)
from governance.services import PARTY_ORG_SUFFIX
from governance.validators import id_number_check_digit

SEED = 42
BATCH = 5000
URL = "http://127.0.0.1:8000/"
# Ages are computed against a fixed day so that two runs give the same birth dates whatever today is.
REFERENCE_DAY = date(2025, 1, 1)


@dataclass(frozen=True)
class Scale:
    streets: int
    communities: int
    grids: int
    buildings: int
    households: int
    residents: int
    # Demo cases filed and moved through the workflow (the city scale leaves cases to bench/cases_city.py).
    cases: int = 0
    # Demo point entries recorded through the ledger services (the city scale leaves them to bench/points_city.py).
    points: int = 0
    # Demo letters to the secretaries, moved through the mailbox's workflow.
    letters: int = 0


SCALES = {
    "tiny": Scale(
        streets=2, communities=3, grids=4, buildings=8, households=40, residents=100, cases=12, points=60, letters=18
    ),
    "demo": Scale(
        streets=2,
        communities=6,
        grids=40,
        buildings=300,
        households=5_000,
        residents=12_000,
        cases=240,
        points=2_000,
        letters=160,
    ),
    "city": Scale(streets=12, communities=150, grids=3_500, buildings=20_000, households=400_000, residents=1_000_000),
}

LOGINS = (
    "admin",
    "street_staff",
    "community_staff",
    "secretary",
    "grid_worker",
    "grid_worker_2",
    "department_staff",
    "resident",
    "resident_2",
)

# --- Name pools -----------------------------------------------------------------------------------------

# (district code, district name) — Deyang, Sichuan; the street code starts with its district's code.
DISTRICTS = {
    "510603": "德阳市旌阳区",
    "510604": "德阳市罗江区",
    "510681": "广汉市",
    "510682": "什邡市",
    "510683": "绵竹市",
}
STREETS = [
    ("旌阳街道", "510603"),
    ("城北街道", "510603"),
    ("城南街道", "510603"),
    ("旌东街道", "510603"),
    ("工农街道", "510603"),
    ("天元街道", "510603"),
    ("八角井街道", "510603"),
    ("东湖街道", "510603"),
    ("万安街道", "510604"),
    ("雒城街道", "510681"),
    ("方亭街道", "510682"),
    ("剑南街道", "510683"),
]
COMMUNITY_WORDS = (
    "龙泉 泰山 长江 岷江 珠江 黄河 嘉陵 庐山 华山 衡山 天山 蒙山 峨眉 青城 文庙 孝泉 旌湖 西湖 东山 南街 北街 东街 "
    "西街 太平 安居 和平 幸福 团结 胜利 光明 红星 金沙 银河 龙井 凤凰 白塔 钟鼓 玉泉 石亭 北站 南苑 东苑 西苑 新华 "
    "友谊 民主 建设 青年 花园 桂花 梧桐 银杏 松柏 竹林 桃源 杏花 荷花 柳岸 滨河 清江 沱江 雁江 广福 永安 长宁 永兴 "
    "金桥 八角 天元"
).split()
DIRECTIONS = ("东", "西", "南", "北", "中")
ROADS = (
    "长江东路 长江西路 泰山南路 泰山北路 岷江西路 珠江东路 黄河路 嘉陵江路 庐山南路 庐山北路 华山南路 华山北路 "
    "天山南路 衡山路 蒙山街 沱江路 龙泉山路 青衣江路 金沙江路 韶山路 井冈山路 峨眉山路 黄山路 钟鼓楼街 文庙街 "
    "少城路 旌湖路 东山路 凯江路 绵远河路"
).split()
COMPOUND_HEADS = (
    "锦绣 阳光 翠苑 金色 碧水 龙湖 滨江 天府 凤凰 梧桐 书香 紫荆 银杏 南山 东湖 蓝天 丽景 和平 幸福 康居 怡心 雅居 "
    "御景 花语 博雅 望江 泰和 瑞祥 金桂 明珠 水岸 香榭 盛世 华府 东方 德润 旌城 鑫源"
).split()
COMPOUND_TAILS = "花园 小区 家园 苑 新村 华庭 公馆 名都 雅苑 佳苑 城 公寓".split()
OLD_COMPOUNDS = ("东方电机厂宿舍", "东方汽轮机厂宿舍", "二重宿舍", "供电局宿舍", "粮食局宿舍", "一中教师宿舍")
DEDICATED = {
    GridKind.MARKET: ("农贸市场", "建材市场", "小商品市场"),
    GridKind.SCHOOL: ("小学", "中学", "实验学校"),
    GridKind.HOSPITAL: ("人民医院", "中医院", "社区卫生服务中心"),
    GridKind.ENTERPRISE: ("工业园", "产业园", "商务中心"),
}
DEPARTMENTS = [
    ("城管局", "cgj", DepartmentKind.CITY_MANAGEMENT, "0838-2512301"),
    ("综治中心", "zzzx", DepartmentKind.COMPREHENSIVE_GOVERNANCE, "0838-2512302"),
    ("住建局", "zjj", DepartmentKind.HOUSING, "0838-2512303"),
    ("民政局", "mzj", DepartmentKind.CIVIL_AFFAIRS, "0838-2512304"),
    ("应急管理局", "yjglj", DepartmentKind.EMERGENCY, "0838-2512305"),
    ("生态环境局", "sthjj", DepartmentKind.ENVIRONMENT, "0838-2512306"),
    ("卫健局", "wjj", DepartmentKind.HEALTH, "0838-2512307"),
    ("人社局", "rsj", DepartmentKind.HUMAN_RESOURCES, "0838-2512308"),
    ("公安分局", "gafj", DepartmentKind.PUBLIC_SECURITY, "0838-2512309"),
    ("市场监管局", "scjgj", DepartmentKind.MARKET_REGULATION, "0838-2512310"),
]
DEFAULT_TAG_NAMES = {
    "party_member": "党员",
    "volunteer": "志愿者",
    "elderly_alone": "独居老人",
    "low_income": "低保户",
    "disabled": "残疾人",
    "veteran": "退役军人",
    "left_behind_child": "留守儿童",
    "key_care": "重点关爱对象",
}
# Surnames with rough weights (the commonest first).
_SURNAMES = (
    "王8 李8 张8 刘7 陈6 杨5 黄3 赵3 吴3 周3 徐2 孙2 马2 朱2 胡2 郭2 何2 高2 林2 罗2 郑1 梁1 谢1 宋1 唐1 许1 韩1 "
    "冯1 邓1 曹1 彭1 曾1 肖1 田1 董1 袁1 潘1 于1 蒋1 蔡1 余1 杜1 叶1 程1 苏1 魏1 吕1 丁1 任1 沈1 姚1 卢1 姜1 "
    "崔1 钟1 谭1 陆1 汪1 范1 金1 石1 廖1 贾1 夏1 韦1 付1 方1 白1 邹1 孟1 熊1 秦1 邱1 江1 尹1 薛1 段1 雷1 侯1 "
    "龙1 史1 陶1 黎1 贺1 顾1 毛1 郝1 龚1 邵1 万1 严1 武1 戴1 孔1 向1 汤1"
).split()
SURNAMES = [s[0] for s in _SURNAMES]
SURNAME_WEIGHTS = [int(s[1:]) for s in _SURNAMES]
MALE_CHARS = list(
    "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林洋亮成建文国志海峰东兵德福贵荣晨博轩睿泽宏毅"
)
FEMALE_CHARS = list("芳娜敏静丽艳娟霞秀玲桂英梅琳燕萍红雪慧莉婷倩颖佳欣怡璐瑶琪涵萱悦晶丹蓉兰凤洁月妍彤雯")
MOBILE_PREFIXES = (
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 "
    "166 173 175 176 177 180 181 182 183 185 186 187 188 189 191 198 199"
).split()
# Where residents' ID numbers were issued: mostly Deyang, some from elsewhere in Sichuan.
ID_REGIONS = ("510603", "510623", "510681", "510682", "510683", "510604", "510626", "510104", "510703", "511002")
ID_REGION_WEIGHTS = (40, 10, 8, 8, 8, 6, 4, 6, 6, 4)
MAX_ORDER_SLOTS = 499  # 3-digit order code, last digit odd for men, even for women


def apportion(total, weights, minimum=1):
    """Split `total` into len(weights) whole parts, each at least `minimum`, proportional to `weights`
    (largest remainders), summing exactly to `total`."""
    n = len(weights)
    if total < n * minimum:
        raise ValueError(f"cannot split {total} into {n} parts of at least {minimum}")
    extra = total - n * minimum
    weight_sum = sum(weights) or 1
    raw = [extra * w / weight_sum for w in weights]
    counts = [int(r) for r in raw]
    short = extra - sum(counts)
    if short:
        for i in sorted(range(n), key=lambda i: raw[i] - counts[i], reverse=True)[:short]:
            counts[i] += 1
    return [c + minimum for c in counts]


def split(items, counts):
    """Cut `items` into consecutive groups of the given sizes."""
    out, start = [], 0
    for c in counts:
        out.append(items[start : start + c])
        start += c
    return out


class Clock:
    def __init__(self, write):
        self.write = write
        self.started = self.last = time.perf_counter()
        self.phases = []

    def lap(self, label):
        now = time.perf_counter()
        self.phases.append((label, now - self.last))
        self.write(_("  %(label)s：%(seconds).1f 秒") % {"label": label, "seconds": now - self.last})
        self.last = now

    @property
    def total(self):
        return time.perf_counter() - self.started


class Command(BaseCommand):
    help = _(
        "生成演示城市：街道、社区、网格、楼栋、住户、居民、党组织、职能部门、工作人员与网格服务团队，以及九个演示账号"
        "（admin、street_staff、community_staff、secretary、grid_worker、grid_worker_2、department_staff、resident、"
        "resident_2）。规模 demo：2个街道、6个社区、40个网格、300栋楼、5000户、12000名居民；规模 city：12个街道、150个社区、"
        "3500个网格、20000栋楼、400000户、1000000名居民（用于性能测试）。数据由固定随机种子生成，可重复。"
    )

    def add_arguments(self, parser):
        parser.add_argument("--password", help=_("演示账号的密码；不指定则随机生成并打印出来。"))
        parser.add_argument(
            "--scale",
            choices=sorted(SCALES),
            default="demo",
            metavar="{demo,city}",
            help=_("数据规模：demo（默认，约1.2万居民）或 city（约100万居民，用于性能测试）。"),
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help=_(
                "先删除现有的治理数据（组织单元、住户、居民、党组织、部门、职务、网格服务团队、演示账号和全部非超级用户账号），再重新生成。"
            ),
        )

    def handle(self, *args, **options):
        scale_name = options["scale"]
        scale = SCALES[scale_name]
        password = options["password"]
        generated = not password
        if generated:
            password = secrets.token_urlsafe(9)
        write = self.stdout.write

        existing = Unit.objects.count()
        if existing and not options["reset"]:
            write(
                self.style.WARNING(
                    _(
                        "演示城市已经存在（数据库中已有 %(count)d 个组织单元），本次未做任何修改。\n"
                        "如需从头开始：%(fresh)s后重新执行 migrate 再运行本命令，"
                        "或运行 python manage.py seed_demo --reset（会先删除全部治理数据）。"
                    )
                    % {"count": existing, "fresh": _how_to_start_afresh()}
                )
            )
            return

        clock = Clock(write if options["verbosity"] else (lambda *args: None))
        write(_("正在生成演示城市（规模：%(scale)s）……") % {"scale": scale_name})
        with transaction.atomic():
            if options["reset"]:
                deleted = reset_governance_data()
                clock.lap(_("清空旧数据（删除 %(rows)d 行）") % {"rows": deleted})
            builder = CityBuilder(scale, password, write=write, clock=clock, verbosity=options["verbosity"])
            logins = builder.build()
        # Fresh planner statistics: right after a bulk load PostgreSQL's estimates are those of an empty
        # table, and subtree queries pick plans that are many times slower until autovacuum catches up.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        clock.lap(_("更新数据库统计信息"))
        self._summary(scale_name, password, generated, logins, clock)

    def _summary(self, scale_name, password, generated, logins, clock):
        write = self.stdout.write
        party = Resident.tags.through.objects.filter(residenttag__code=ResidentTag.PARTY_MEMBER).count()
        counts = [
            (_("街道"), Unit.objects.filter(level=Level.STREET).count()),
            (_("社区"), Unit.objects.filter(level=Level.COMMUNITY).count()),
            (_("网格"), Unit.objects.filter(level=Level.GRID).count()),
            (_("楼栋"), Unit.objects.filter(level=Level.BUILDING).count()),
            (_("住户"), Household.objects.count()),
            (_("居民"), Resident.objects.count()),
            (_("其中党员"), party),
            (_("党组织"), PartyOrg.objects.count()),
            (_("职能部门"), Department.objects.count()),
            (_("账号"), User.objects.count()),
            (_("职务"), Position.objects.count()),
            (_("网格服务团队成员"), GridTeamMember.objects.count()),
        ]
        write("")
        write(self.style.SUCCESS(_("演示城市已生成（规模：%(scale)s）。") % {"scale": scale_name}))
        for label, n in counts:
            write(f"  {label}：{n:,}")
        write("")
        write(_("演示账号（密码均为 %(password)s）：") % {"password": password})
        rows = [(_("用户名"), _("姓名"), _("角色"), _("所在"), _("密码"))] + [
            (username, name, role, where, password) for username, name, role, where in logins
        ]
        widths = [max(_display_width(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            write("  " + "  ".join(_pad(cell, widths[i]) for i, cell in enumerate(r)).rstrip())
        if generated:
            write(self.style.WARNING(_("密码为随机生成，请妥善保存；可用 --password 指定。")))
        write(_("其余生成的工作人员账号（用户名如 gw_<网格编码>、cs_<社区编码>_1、dept_cgj_1）使用同一密码。"))
        write(_("耗时合计：%(seconds).1f 秒") % {"seconds": clock.total})
        write(_("启动服务（python manage.py runserver）后访问 %(url)s 登录。") % {"url": URL})


def _how_to_start_afresh():
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite":
        try:
            name = str(Path(name).resolve().relative_to(Path(settings.BASE_DIR).resolve()))
        except ValueError:
            pass
        return _("删除数据库文件 %(name)s ") % {"name": name}
    return _("删除并重建数据库 %(name)s ") % {"name": name}


def _display_width(text):
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in str(text))


def _pad(text, width):
    text = str(text)
    return text + " " * (width - _display_width(text))


# --- Reset ----------------------------------------------------------------------------------------------


def _purge(queryset, depth=0):
    """Delete every row of `queryset`; rows elsewhere that protect them (cases, letters, … added by other
    apps) are deleted first. Returns the number of rows deleted."""
    if depth > 8:
        raise CommandError(_("无法清空数据：存在循环保护的关联记录。请删除数据库文件后重新 migrate。"))
    total = 0
    for _attempt in range(20):
        try:
            with transaction.atomic():
                return total + queryset.delete()[0]
        except ProtectedError as error:
            blockers = {type(obj) for obj in error.protected_objects}
        except RestrictedError as error:
            blockers = {type(obj) for obj in error.restricted_objects}
        for model in blockers:
            total += _purge(model._default_manager.all(), depth + 1)
    raise CommandError(_("无法清空数据，请删除数据库文件后重新 migrate。"))


# The points ledger is append-only (on PostgreSQL a trigger refuses DELETE); a reset empties its tables with
# TRUNCATE there, which is the one way to start a demo ledger over.
POINTS_TABLES = [
    "points.Objection",
    "points.Board",
    "points.HouseholdTally",
    "points.Tally",
    "points.TallyRun",
    "points.Entry",
    "points.Redemption",
    "points.Reward",
    "points.Account",
    "points.Rule",
]

RESET_FIRST = [
    "mailbox.LetterAttachment",
    "mailbox.LetterEvent",
    "mailbox.Letter",
    "grids.CaseSupport",
    "grids.CasePhoto",
    "grids.CaseEvent",
    "grids.CaseDispatch",
    "grids.Case",
]


def _installed(label):
    app_label, _model = label.split(".")
    return apps.is_installed(app_label)


def reset_governance_data():
    """Delete the governance data, leaves first. Superusers (other than the demo `admin`) and the resident
    tags (configuration from the migrations) stay."""
    through = Resident.tags.through
    # Records of the other apps that point at units and people go first (cases protect their grid).
    emptied = _empty_points_ledger()
    others = [apps.get_model(label).objects.all() for label in RESET_FIRST if _installed(label)]
    steps = [
        *others,
        Notification.objects.all(),
        GridTeamMember.objects.all(),
        Position.objects.all(),
        through.objects.all(),
        Resident.objects.all(),
        Household.objects.all(),
        PartyOrg.objects.all(),
        Unit.objects.all(),
        Department.objects.all(),
        User.objects.filter(is_superuser=False),
        User.objects.filter(username__in=LOGINS),
    ]
    return emptied + sum(_purge(qs) for qs in steps)


def _empty_points_ledger() -> int:
    if not apps.is_installed("points"):
        return 0
    models = [apps.get_model(label) for label in POINTS_TABLES]
    rows = sum(m.objects.count() for m in models)
    if connection.vendor == "postgresql":
        tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses while FK checks are pending
            cursor.execute(f"TRUNCATE {tables}")
    else:
        for model in models:
            model.objects.all().delete()
    return rows


# --- The builder ----------------------------------------------------------------------------------------


class CityBuilder:
    def __init__(self, scale, password, *, write, clock, verbosity=1):
        self.scale = scale
        self.password = password
        self.write = write
        self.clock = clock
        self.verbosity = verbosity
        self.rng = random.Random(SEED)
        self.faker = Faker("zh_CN")
        self.faker.seed_instance(SEED)
        self.surname_cum = _cumulative(SURNAME_WEIGHTS)
        self.region_cum = _cumulative(ID_REGION_WEIGHTS)
        self.id_slots = {}

    # .. small generators ..................................................................................

    def person_name(self, gender, surname=None):
        rng = self.rng
        surname = surname or rng.choices(SURNAMES, cum_weights=self.surname_cum)[0]
        chars = MALE_CHARS if gender == Gender.MALE else FEMALE_CHARS
        if rng.random() < 0.7:
            return surname + rng.choice(chars) + rng.choice(chars)
        return surname + rng.choice(chars)

    def mobile(self):
        return self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(100_000_000):08d}"

    def staff_phone(self):
        return self.faker.phone_number()

    def id_number(self, birth_date, male):
        """A valid, city-wide unique ID number: region + birth date + order code + check digit. Uniqueness is by
        construction: the order code counts up per (region, birth date, sex)."""
        rng = self.rng
        region_index = rng.choices(range(len(ID_REGIONS)), cum_weights=self.region_cum)[0]
        ordinal = birth_date.toordinal()
        for step in range(len(ID_REGIONS)):
            index = (region_index + step) % len(ID_REGIONS)
            key = (ordinal * 16 + index) * 2 + male
            k = self.id_slots.get(key, 0)
            if k < MAX_ORDER_SLOTS:
                self.id_slots[key] = k + 1
                break
        else:  # pragma: no cover - 4,990 people born on the same day
            raise CommandError("too many residents born on one day")
        order = 2 * k + (1 if male else 2)
        first17 = f"{ID_REGIONS[index]}{birth_date.year:04d}{birth_date.month:02d}{birth_date.day:02d}{order:03d}"
        return first17 + id_number_check_digit(first17)

    def birth_date(self, age):
        return REFERENCE_DAY - timedelta(days=int(age * 365.25) + self.rng.randrange(365))

    # .. phases .............................................................................................

    def build(self):
        self.tags = self._tags()
        self._units()
        self.clock.lap(_("组织单元 %(n)d 个") % {"n": len(self.all_units)})
        self._party_orgs()
        self.clock.lap(_("党组织 %(n)d 个") % {"n": len(self.all_units)})
        self._departments()
        self.clock.lap(_("职能部门 %(n)d 个") % {"n": len(self.departments)})
        self._staff()
        self.clock.lap(_("工作人员账号 %(users)d 个、职务 %(positions)d 个") % self.staff_counts)
        self._households_and_residents()
        self.clock.lap(_("住户 %(households)d 户、居民 %(residents)d 人、标签 %(tags)d 条") % self.people_counts)
        self._teams()
        self.clock.lap(_("网格服务团队成员 %(n)d 人") % {"n": self.team_count})
        logins = self._logins()
        self.clock.lap(_("演示账号 %(n)d 个") % {"n": len(logins)})
        if self.scale.cases and apps.is_installed("grids"):
            from grids.demo import build_demo_cases

            made = build_demo_cases(count=self.scale.cases, rng=self.rng)
            self.clock.lap(_("网格事件 %(n)d 件") % {"n": made})
        if self.scale.letters and apps.is_installed("mailbox"):
            from mailbox.demo import build_demo_letters

            made = build_demo_letters(count=self.scale.letters, rng=self.rng)
            self.clock.lap(_("书记信箱来信 %(n)d 封") % {"n": made})
        if self.scale.points and apps.is_installed("points"):
            from points.demo import build_demo_points

            made = build_demo_points(count=self.scale.points, rng=self.rng)
            self.clock.lap(
                _(
                    "积分规则 %(rules)d 条、积分记录 %(entries)d 条、超市商品 %(rewards)d 件、兑换 %(redemptions)d 次、积分榜 %(boards)d 个"
                )
                % made
            )
        return logins

    def _tags(self):
        tags = {t.code: t for t in ResidentTag.objects.all()}
        for order, (code, name) in enumerate(DEFAULT_TAG_NAMES.items()):
            if code not in tags:
                tags[code] = ResidentTag.objects.create(code=code, name=name, order=order)
        return {code: tag.pk for code, tag in tags.items()}

    def _units(self):
        """Streets → communities → grids → buildings, with paths, depths and child counts computed here."""
        rng, scale = self.rng, self.scale

        def weights(n):
            return [rng.uniform(0.6, 1.4) for _i in range(n)]

        communities_per_street = apportion(scale.communities, weights(scale.streets))
        grids_per_community = apportion(scale.grids, weights(scale.communities))
        buildings_per_grid = apportion(scale.buildings, weights(scale.grids))
        self.households_per_building = apportion(scale.households, weights(scale.buildings))

        community_names = self._community_names(scale.communities)
        streets, communities, grids, buildings = [], [], [], []
        community_iter = iter(zip(grids_per_community, community_names, strict=True))
        grid_iter = iter(buildings_per_grid)
        building_households = iter(self.households_per_building)

        for s_index, n_communities in enumerate(communities_per_street):
            s_name, district = STREETS[s_index] if s_index < len(STREETS) else (f"第{s_index + 1}街道", "510603")
            s_path = Unit._get_path("", 1, s_index + 1)
            s_code = f"{district}{s_index + 1:03d}"
            streets.append(
                Unit(
                    name=s_name,
                    code=s_code,
                    level=Level.STREET,
                    path=s_path,
                    depth=1,
                    numchild=n_communities,
                    address=f"{DISTRICTS[district]}{rng.choice(ROADS)}{rng.randrange(1, 300)}号",
                )
            )
            for c_index in range(n_communities):
                n_grids, c_name = next(community_iter)
                c_path = Unit._get_path(s_path, 2, c_index + 1)
                c_code = f"{s_code}{c_index + 1:03d}"
                road = rng.choice(ROADS)
                communities.append(
                    Unit(
                        name=c_name,
                        code=c_code,
                        level=Level.COMMUNITY,
                        path=c_path,
                        depth=2,
                        numchild=n_grids,
                        address=f"{DISTRICTS[district]}{road}{rng.randrange(1, 300)}号",
                    )
                )
                compounds = set()
                for g_index in range(n_grids):
                    n_buildings = next(grid_iter)
                    g_path = Unit._get_path(c_path, 3, g_index + 1)
                    kind = GridKind.COMPREHENSIVE
                    if g_index > 0 and rng.random() < 0.08:
                        kind = rng.choice(list(DEDICATED))
                    if kind == GridKind.COMPREHENSIVE:
                        compound = self._compound_name(compounds)
                    else:
                        compound = c_name.removesuffix("社区") + rng.choice(DEDICATED[kind])
                        if compound in compounds:  # one market (school, …) of a name per community
                            kind, compound = GridKind.COMPREHENSIVE, self._compound_name(compounds)
                        compounds.add(compound)
                    g_road = rng.choice(ROADS)
                    g_address = f"{DISTRICTS[district]}{g_road}{rng.randrange(1, 500)}号"
                    households = sum(self.households_per_building[len(buildings) : len(buildings) + n_buildings])
                    grids.append(
                        Unit(
                            name=f"{c_name}第{g_index + 1}网格",
                            code=f"{c_code}{g_index + 1:03d}",
                            level=Level.GRID,
                            grid_kind=kind,
                            compound_name=compound,
                            target_households=max(100, -(-households // 50) * 50),
                            path=g_path,
                            depth=3,
                            numchild=n_buildings,
                            address=f"{g_address}{compound}",
                        )
                    )
                    for b_index in range(n_buildings):
                        next(building_households)
                        buildings.append(
                            Unit(
                                name=f"{b_index + 1}栋",
                                code=f"{c_code}{g_index + 1:03d}{b_index + 1:03d}",
                                level=Level.BUILDING,
                                path=Unit._get_path(g_path, 4, b_index + 1),
                                depth=4,
                                numchild=0,
                                address=f"{g_address}{compound}{b_index + 1}栋",
                            )
                        )
        for level_units in (streets, communities, grids, buildings):
            Unit.objects.bulk_create(level_units, batch_size=BATCH)
        self.streets, self.communities, self.grids, self.buildings = streets, communities, grids, buildings
        self.all_units = streets + communities + grids + buildings
        self.grids_per_community = grids_per_community
        self.buildings_per_grid = buildings_per_grid
        assert all(u.depth == LEVEL_DEPTH[u.level] for u in (streets[0], communities[0], grids[0], buildings[0]))

    def _founded(self, level):
        first_year = {Level.STREET: 1985, Level.COMMUNITY: 2000, Level.GRID: 2015, Level.BUILDING: 2018}[level]
        return date(self.rng.randrange(first_year, 2024), self.rng.randrange(1, 13), self.rng.randrange(1, 29))

    def _community_names(self, n):
        words = list(COMMUNITY_WORDS)
        self.rng.shuffle(words)
        names = [f"{w}社区" for w in words]
        for d in DIRECTIONS:
            if len(names) >= n:
                break
            names += [f"{w}{d}社区" for w in words]
        while len(names) < n:  # pragma: no cover - more than 400 communities
            names.append(f"第{len(names) + 1}社区")
        return names[:n]

    def _compound_name(self, taken):
        rng = self.rng
        for _attempt in range(20):
            if rng.random() < 0.1:
                name = rng.choice(OLD_COMPOUNDS)
            else:
                name = rng.choice(COMPOUND_HEADS) + rng.choice(COMPOUND_TAILS)
            if name not in taken:
                break
        taken.add(name)
        return name

    def _party_orgs(self):
        orgs = (
            PartyOrg(
                unit_id=u.pk,
                name=f"{u.name}{PARTY_ORG_SUFFIX[u.level]}",  # the convention of services.unit_create
                kind=PARTY_ORG_KIND_FOR_LEVEL[u.level],
                founded_on=self._founded(u.level),
            )
            for u in self.all_units
        )
        _bulk(PartyOrg, orgs)

    def _departments(self):
        existing = {d.code: d for d in Department.objects.all()}
        new = [
            Department(name=name, code=code, kind=kind, phone=phone)
            for name, code, kind, phone in DEPARTMENTS
            if code not in existing
        ]
        Department.objects.bulk_create(new)
        self.departments = {**existing, **{d.code: d for d in new}}

    def _staff(self):
        """Accounts for the street, community, grid and department staff, sharing one password hash (hashing is
        deliberately slow). The persona logins take the first slots; their passwords are set one by one later."""
        fake, rng = self.faker, self.rng
        shared_hash = make_password(self.password)
        taken = set(User.objects.filter(username__in=LOGINS[1:7]).values_list("username", flat=True))
        if taken:
            raise CommandError(
                _("账号 %(names)s 已存在。请使用 --reset 清空后重建，或删除数据库文件后重新 migrate。")
                % {"names": "、".join(sorted(taken))}
            )
        users, positions = [], []  # positions: (user index, role, unit, department, kind)

        def add(username, role, unit=None, department=None, kind=""):
            users.append(User(username=username, name=fake.name(), phone=self.staff_phone(), password=shared_hash))
            positions.append((len(users) - 1, role, unit, department, kind))
            return len(users) - 1

        street1, community1 = self.streets[0], self.communities[0]
        grid1 = self.grids[0]
        grid2 = self.grids[self.grids_per_community[0]]  # the first grid of the second community
        self.persona_units = {"grid_worker": grid1, "grid_worker_2": grid2}
        self.community_workers = {}  # community path -> user indexes

        for street in self.streets:
            for i in range(2):
                first = street is street1 and i == 0
                add("street_staff" if first else f"ss_{street.code}_{i + 1}", Role.STREET_STAFF, unit=street)
            add(f"sec_{street.code}", Role.SECRETARY, unit=street)
        grid_index = 0
        for c_index, community in enumerate(self.communities):
            households = sum(self.households_per_building[b] for b in self._building_range_of_community(c_index))
            n_staff = max(2, round(households * 2.5 * 18 / 10_000))
            workers = []
            for i in range(n_staff):
                first = community is community1 and i == 0
                username = "community_staff" if first else f"cs_{community.code}_{i + 1}"
                workers.append(add(username, Role.COMMUNITY_STAFF, unit=community))
            self.community_workers[community.path] = workers
            add("secretary" if community is community1 else f"sec_{community.code}", Role.SECRETARY, unit=community)
            for _g in range(self.grids_per_community[c_index]):
                grid = self.grids[grid_index]
                grid_index += 1
                if grid is grid1:
                    username, kind = "grid_worker", GridWorkerKind.FULL_TIME
                elif grid is grid2:
                    username, kind = "grid_worker_2", GridWorkerKind.PART_TIME
                else:
                    username = f"gw_{grid.code}"
                    kind = GridWorkerKind.FULL_TIME if rng.random() < 0.78 else GridWorkerKind.PART_TIME
                add(username, Role.GRID_WORKER, unit=grid, kind=kind)
        for _name, code, _kind, _phone in DEPARTMENTS:
            department = self.departments[code]
            for i in range(3):
                first = code == "cgj" and i == 0
                add(
                    "department_staff" if first else f"dept_{code}_{i + 1}",
                    Role.DEPARTMENT_STAFF,
                    department=department,
                )

        User.objects.bulk_create(users, batch_size=BATCH)
        _bulk(
            Position,
            (
                Position(
                    user_id=users[i].pk,
                    role=role,
                    unit_id=unit.pk if unit else None,
                    department_id=department.pk if department else None,
                    grid_worker_kind=kind,
                )
                for i, role, unit, department, kind in positions
            ),
        )
        self.staff_users = users
        self.grid_worker_of = {unit.pk: users[i] for i, role, unit, _d, _k in positions if role == Role.GRID_WORKER}
        self.staff_counts = {"users": len(users), "positions": len(positions)}

    def _building_range_of_community(self, c_index):
        if not hasattr(self, "_community_building_ranges"):
            ranges, b, g = [], 0, 0
            for n_grids in self.grids_per_community:
                n_buildings = sum(self.buildings_per_grid[g : g + n_grids])
                ranges.append(range(b, b + n_buildings))
                b += n_buildings
                g += n_grids
            self._community_building_ranges = ranges
        return self._community_building_ranges[c_index]

    # .. households and residents ..........................................................................

    def _household_sizes(self):
        """Residents per household: mostly 2–3, some alone, a few large families; exact total."""
        weights = self.rng.choices((0, 1, 2, 3, 4), weights=(17, 33, 25, 17, 8), k=self.scale.households)
        return apportion(self.scale.residents, weights, minimum=1)

    def _households_and_residents(self):
        sizes = iter(self._household_sizes())
        grid_of_building = []
        for grid, n in zip(self.grids, self.buildings_per_grid, strict=True):
            grid_of_building += [grid] * n
        self.team_candidates = {}  # grid pk -> {"heads": [...], "liaison": ..., "volunteer": ...}
        self.persona_residents = {}
        persona_grids = {u.pk: login for login, u in self.persona_units.items()}
        counts = {"households": 0, "residents": 0, "tags": 0}
        pending = []  # (building, room, members)
        report_every = max(self.scale.residents // 5, 1)
        next_report = report_every

        for building, n_households, grid in zip(
            self.buildings, self.households_per_building, grid_of_building, strict=True
        ):
            candidates = self.team_candidates.setdefault(grid.pk, {"heads": [], "liaison": None, "volunteer": None})
            for room_index, room in enumerate(self._rooms(n_households)):
                members = self._family(next(sizes))
                if room_index == 0 and len(candidates["heads"]) < 2:
                    candidates["heads"].append(members[0])
                pending.append((building, grid, room, members))
            if len(pending) >= BATCH:
                self._flush(pending, counts, persona_grids)
                pending = []
                if self.verbosity > 1 or counts["residents"] >= next_report:
                    self.write(_("    已生成居民 %(n)d 人……") % {"n": counts["residents"]})
                    next_report += report_every
        if pending:
            self._flush(pending, counts, persona_grids)
        self.people_counts = counts

    def _flush(self, pending, counts, persona_grids):
        tags = self.tags
        households = [
            Household(
                building_id=building.pk,
                room=room,
                is_party_central=any(tags["party_member"] in m[5] for m in members) and self.rng.random() < 0.3,
            )
            for building, _grid, room, members in pending
        ]
        Household.objects.bulk_create(households, batch_size=BATCH)
        residents, tag_rows = [], []
        for household, (_building, grid, _room, members) in zip(households, pending, strict=True):
            candidates = self.team_candidates[grid.pk]
            for name, gender, birth, id_number, phone, member_tags in members:
                resident = Resident(
                    household_id=household.pk,
                    name=name,
                    gender=gender,
                    birth_date=birth,
                    id_number=id_number,
                    phone=phone,
                )
                residents.append(resident)
                for tag in member_tags:
                    tag_rows.append((resident, tag))
                if phone:
                    is_head = any(head[3] == id_number for head in candidates["heads"])
                    if candidates["liaison"] is None and tags["party_member"] in member_tags and not is_head:
                        candidates["liaison"] = (name, gender, birth, id_number, phone, member_tags)
                    if candidates["volunteer"] is None and tags["volunteer"] in member_tags:
                        candidates["volunteer"] = (name, gender, birth, id_number, phone, member_tags)
                login = persona_grids.get(grid.pk)
                if login and login not in self.persona_residents and REFERENCE_DAY.year - birth.year >= 25 and phone:
                    self.persona_residents[login] = resident
        Resident.objects.bulk_create(residents, batch_size=BATCH)
        through = Resident.tags.through
        source = Resident.tags.field.m2m_field_name()
        target = Resident.tags.field.m2m_reverse_field_name()
        _bulk(through, (through(**{f"{source}_id": r.pk, f"{target}_id": t}) for r, t in tag_rows))
        counts["households"] += len(households)
        counts["residents"] += len(residents)
        counts["tags"] += len(tag_rows)

    def _rooms(self, n):
        """Room numbers like "2单元301" for `n` households: units of 2 flats a floor, at most 33 floors."""
        per_floor = 2
        units = 1 if n <= 12 else 2 if n <= 36 else max(3, -(-n // (per_floor * 33)))
        floors = -(-n // (units * per_floor))
        rooms = []
        for unit in range(1, units + 1):
            for floor in range(1, floors + 1):
                for door in range(1, per_floor + 1):
                    rooms.append(f"{unit}单元{floor}{door:02d}")
        return rooms[:n]

    def _family(self, size):
        """The members of one household as tuples (name, gender, birth date, id number, phone, tag ids)."""
        rng = self.rng
        people = []  # (age, gender, surname or None)
        if size == 1:
            age = rng.choice((rng.randint(20, 59), rng.randint(60, 92)))
            people.append((age, rng.choice((Gender.MALE, Gender.FEMALE)), None))
        else:
            left_behind = size >= 3 and rng.random() < 0.1
            if left_behind:
                head_age = rng.randint(55, 75)
            elif size == 2:
                head_age = rng.randint(24, 85)
            else:
                head_age = rng.randint(27, 70)
            head_gender = Gender.MALE if rng.random() < 0.75 else Gender.FEMALE
            surname = rng.choices(SURNAMES, cum_weights=self.surname_cum)[0]
            people.append((head_age, head_gender, surname))
            single_parent = size == 2 and rng.random() < 0.3 and head_age >= 40
            family_surname = surname
            if not single_parent:
                spouse_gender = Gender.FEMALE if head_gender == Gender.MALE else Gender.MALE
                spouse_surname = rng.choices(SURNAMES, cum_weights=self.surname_cum)[0]
                people.append((max(20, head_age + rng.randint(-5, 5)), spouse_gender, spouse_surname))
                if spouse_gender == Gender.MALE:
                    family_surname = spouse_surname  # children take the father's surname
            for i in range(size - len(people)):
                if left_behind:
                    age = rng.randint(3, 15)
                elif i == 0 and size >= 4 and head_age <= 55 and rng.random() < 0.4:
                    people.append(
                        (min(98, head_age + rng.randint(24, 32)), rng.choice((Gender.MALE, Gender.FEMALE)), None)
                    )
                    continue
                else:
                    age = max(0, head_age - rng.randint(22, 38))
                people.append((age, rng.choice((Gender.MALE, Gender.FEMALE)), family_surname))
        tags = self.tags
        members = []
        for index, (age, gender, surname) in enumerate(people):
            male = gender == Gender.MALE
            birth = self.birth_date(age)
            member_tags = []
            r = rng.random
            if age >= 18:
                party_rate = 0.06 if age < 36 else 0.085 if age < 60 else 0.11
                if r() < party_rate:
                    member_tags.append(tags["party_member"])
                if age <= 75 and r() < 0.06:
                    member_tags.append(tags["volunteer"])
                if male and 35 <= age <= 85 and r() < 0.04:
                    member_tags.append(tags["veteran"])
            if size == 1 and age >= 65 and r() < 0.85:
                member_tags.append(tags["elderly_alone"])
            if r() < 0.02:
                member_tags.append(tags["low_income"])
            disabled = r() < 0.015
            if disabled:
                member_tags.append(tags["disabled"])
            if age < 16 and index >= 2 and people[0][0] >= 55 and r() < 0.7:
                member_tags.append(tags["left_behind_child"])
            if (age >= 80 and r() < 0.5) or (disabled and r() < 0.5):
                member_tags.append(tags["key_care"])
            if age >= 16 and r() < (0.5 if age >= 80 else 0.93):
                phone = self.mobile()
            else:
                phone = ""
            members.append(
                (self.person_name(gender, surname), gender, birth, self.id_number(birth, male), phone, member_tags)
            )
        return members

    # .. teams and logins ..................................................................................

    def _teams(self):
        """1+1+1+N for every grid: its grid worker, a community worker, a police officer, and N others — the
        building heads, a household liaison (a party member), a volunteer, the property manager."""
        rng = self.rng
        members = []
        grid_to_community = {}
        g = 0
        for community, n in zip(self.communities, self.grids_per_community, strict=True):
            for grid in self.grids[g : g + n]:
                grid_to_community[grid.pk] = community
            g += n
        for g_index, grid in enumerate(self.grids):
            worker = self.grid_worker_of[grid.pk]
            members.append(
                GridTeamMember(
                    grid_id=grid.pk,
                    team_role=TeamRole.GRID_WORKER,
                    name=worker.name,
                    phone=worker.phone,
                    user_id=worker.pk,
                )
            )
            community = grid_to_community[grid.pk]
            workers = self.community_workers[community.path]
            cw = self.staff_users[workers[g_index % len(workers)]]
            members.append(
                GridTeamMember(
                    grid_id=grid.pk, team_role=TeamRole.COMMUNITY_WORKER, name=cw.name, phone=cw.phone, user_id=cw.pk
                )
            )
            police_gender = Gender.MALE if rng.random() < 0.8 else Gender.FEMALE
            members.append(
                GridTeamMember(
                    grid_id=grid.pk,
                    team_role=TeamRole.POLICE,
                    name=self.person_name(police_gender),
                    phone=self.mobile(),
                )
            )
            candidates = self.team_candidates.get(grid.pk, {"heads": [], "liaison": None, "volunteer": None})
            for head in candidates["heads"]:
                members.append(
                    GridTeamMember(
                        grid_id=grid.pk, team_role=TeamRole.BUILDING_HEAD, name=head[0], phone=head[4] or self.mobile()
                    )
                )
            if candidates["liaison"]:
                liaison = candidates["liaison"]
                members.append(
                    GridTeamMember(
                        grid_id=grid.pk, team_role=TeamRole.HOUSEHOLD_LIAISON, name=liaison[0], phone=liaison[4]
                    )
                )
            if candidates["volunteer"]:
                volunteer = candidates["volunteer"]
                members.append(
                    GridTeamMember(grid_id=grid.pk, team_role=TeamRole.VOLUNTEER, name=volunteer[0], phone=volunteer[4])
                )
            if grid.grid_kind == GridKind.COMPREHENSIVE and rng.random() < 0.7:
                gender = rng.choice((Gender.MALE, Gender.FEMALE))
                members.append(
                    GridTeamMember(
                        grid_id=grid.pk,
                        team_role=TeamRole.PROPERTY_STAFF,
                        name=self.person_name(gender),
                        phone=self.mobile(),
                    )
                )
        _bulk(GridTeamMember, members)
        self.team_count = len(members)

    def _logins(self):
        """The nine persona logins; returns rows (username, name, role, where) for the summary."""
        rows = []
        admin, created = User.objects.get_or_create(username="admin")
        admin.is_superuser = admin.is_staff = True
        admin.name = admin.name or "系统管理员"
        admin.set_password(self.password)
        admin.save()
        Position.objects.get_or_create(user=admin, role=Role.ADMINISTRATOR)
        rows.append(("admin", admin.name, Role.ADMINISTRATOR.label, _("全市")))

        for username in LOGINS[1:7]:
            user = User.objects.get(username=username)
            user.set_password(self.password)
            user.save(update_fields=["password"])
            position = Position.objects.select_related("unit", "department").get(user=user)
            where = position.unit or position.department
            role = position.get_role_display()
            if position.grid_worker_kind:
                role += f"（{position.get_grid_worker_kind_display()}）"
            rows.append((username, user.name, role, str(where)))

        for username, persona in (("resident", "grid_worker"), ("resident_2", "grid_worker_2")):
            record = self.persona_residents.get(persona)
            if record is None:  # pragma: no cover - the persona grid has no adult with a phone
                record = Resident.objects.filter(
                    household__building__path__startswith=self.persona_units[persona].path
                ).first()
            if User.objects.filter(username=username).exists():
                raise CommandError(
                    _("账号 %(names)s 已存在。请使用 --reset 清空后重建，或删除数据库文件后重新 migrate。")
                    % {"names": username}
                )
            user = User.objects.create_user(
                username=username, password=self.password, name=record.name, phone=record.phone
            )
            Position.objects.create(user=user, role=Role.RESIDENT, resident=record)
            household = Household.objects.select_related("building").get(pk=record.household_id)
            grid = self.persona_units[persona]
            rows.append(
                (username, user.name, Role.RESIDENT.label, f"{grid.name}{household.building.name}{household.room}")
            )
        order = {name: i for i, name in enumerate(LOGINS)}
        return sorted(rows, key=lambda r: order[r[0]])


def _cumulative(weights):
    out, total = [], 0
    for w in weights:
        total += w
        out.append(total)
    return out


def _bulk(model, objects):
    """bulk_create from an iterable in slices of BATCH, so that a million rows never sit in memory at once."""
    chunk = []
    for obj in objects:
        chunk.append(obj)
        if len(chunk) >= BATCH:
            model.objects.bulk_create(chunk, batch_size=BATCH)
            chunk = []
    if chunk:
        model.objects.bulk_create(chunk, batch_size=BATCH)
