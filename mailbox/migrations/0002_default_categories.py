from django.db import migrations

CATEGORIES = [
    ("environment", "环境卫生"),
    ("property", "物业管理"),
    ("facilities", "公共设施"),
    ("neighbours", "邻里关系"),
    ("security", "治安消防"),
    ("welfare", "社会保障"),
    ("elderly", "养老助残"),
    ("education-health", "教育医疗"),
    ("employment", "就业创业"),
    ("suggestion", "意见建议"),
    ("praise", "表扬感谢"),
    ("other", "其他"),
]


def load(apps, schema_editor):
    LetterCategory = apps.get_model("mailbox", "LetterCategory")
    for order, (code, name) in enumerate(CATEGORIES):
        LetterCategory.objects.get_or_create(code=code, defaults={"name": name, "order": order})


def unload(apps, schema_editor):
    apps.get_model("mailbox", "LetterCategory").objects.filter(
        code__in=[code for code, _name in CATEGORIES], letters=None
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("mailbox", "0001_letters")]
    operations = [migrations.RunPython(load, unload)]
