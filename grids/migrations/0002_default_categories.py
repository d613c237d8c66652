"""The default catalogue of case categories (two levels), editable afterwards in the admin.

Each leaf: code, name, sign-for hours, handling working days, whistle item (吹哨事项), can be solved on the
spot, visible to the grid's residents. Default departments are linked by the demo generator or in the admin.
"""

from django.db import migrations

CATALOGUE = [
    (
        "city",
        "市容环境",
        True,
        [
            ("city-clutter", "乱堆乱放", 2, 3, True, True, True),
            ("city-street-vending", "占道经营", 2, 3, True, True, True),
            ("city-garbage", "垃圾清运不及时", 2, 2, True, False, True),
            ("city-illegal-building", "违章搭建", 4, 10, True, False, True),
            ("city-noise-fumes", "油烟噪声扰民", 4, 5, True, False, True),
        ],
    ),
    (
        "safety",
        "安全隐患",
        True,
        [
            ("safety-fire-lane", "消防通道堵塞", 1, 2, True, True, True),
            ("safety-gas", "燃气安全隐患", 1, 2, True, False, True),
            ("safety-house", "房屋安全隐患", 2, 5, True, False, True),
            ("safety-ebike-charging", "电动车违规充电", 2, 3, True, True, True),
        ],
    ),
    (
        "dispute",
        "矛盾纠纷",
        False,
        [
            ("dispute-neighbours", "邻里纠纷", 4, 5, False, True, False),
            ("dispute-property", "物业纠纷", 4, 10, True, False, False),
            ("dispute-wages", "劳资纠纷", 4, 10, True, False, False),
            ("dispute-family", "家庭矛盾", 4, 5, False, True, False),
        ],
    ),
    (
        "livelihood",
        "民生服务",
        True,
        [
            ("livelihood-hardship", "困难救助", 4, 10, True, False, False),
            ("livelihood-elderly", "养老服务", 4, 10, True, False, False),
            ("livelihood-employment", "就业社保", 4, 10, True, False, False),
            ("livelihood-health", "卫生健康", 4, 5, True, False, True),
        ],
    ),
    (
        "property",
        "物业管理",
        True,
        [
            ("property-facilities", "小区设施损坏", 4, 5, False, True, True),
            ("property-lift", "电梯故障", 1, 3, True, False, True),
            ("property-water", "二次供水问题", 2, 3, True, False, True),
        ],
    ),
    (
        "public",
        "公共设施",
        True,
        [
            ("public-road", "道路破损", 4, 10, True, False, True),
            ("public-streetlight", "路灯损坏", 4, 5, True, False, True),
            ("public-manhole", "井盖缺失破损", 1, 2, True, False, True),
            ("public-greenery", "绿化损毁", 4, 5, True, True, True),
        ],
    ),
    (
        "security",
        "治安防控",
        False,
        [
            ("security-suspicious", "可疑人员情况", 1, 3, True, False, False),
            ("security-fraud", "诈骗与非法集资线索", 2, 5, True, False, False),
        ],
    ),
]


def load(apps, schema_editor):
    CaseCategory = apps.get_model("grids", "CaseCategory")
    for group_order, (code, name, public, leaves) in enumerate(CATALOGUE):
        group = CaseCategory.objects.create(code=code, name=name, order=group_order * 10, is_public=public)
        for order, (leaf_code, leaf_name, sign_hours, days, whistle, on_site, leaf_public) in enumerate(leaves):
            CaseCategory.objects.create(
                parent=group,
                code=leaf_code,
                name=leaf_name,
                sign_limit_hours=sign_hours,
                handle_limit_days=days,
                whistle_allowed=whistle,
                on_site_allowed=on_site,
                is_public=leaf_public,
                order=order,
            )


def unload(apps, schema_editor):
    CaseCategory = apps.get_model("grids", "CaseCategory")
    codes = [code for code, *_ in CATALOGUE] + [leaf[0] for *_, leaves in CATALOGUE for leaf in leaves]
    CaseCategory.objects.filter(code__in=codes, parent__isnull=False).delete()
    CaseCategory.objects.filter(code__in=codes).delete()


class Migration(migrations.Migration):
    dependencies = [("grids", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
