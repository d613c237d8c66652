from django.db import migrations

DEFAULT_TAGS = [
    ("party_member", "党员"),
    ("volunteer", "志愿者"),
    ("elderly_alone", "独居老人"),
    ("low_income", "低保户"),
    ("disabled", "残疾人"),
    ("veteran", "退役军人"),
    ("left_behind_child", "留守儿童"),
    ("key_care", "重点关爱对象"),
]


def add_tags(apps, schema_editor):
    ResidentTag = apps.get_model("governance", "ResidentTag")
    for order, (code, name) in enumerate(DEFAULT_TAGS):
        ResidentTag.objects.get_or_create(code=code, defaults={"name": name, "order": order})


def remove_tags(apps, schema_editor):
    ResidentTag = apps.get_model("governance", "ResidentTag")
    ResidentTag.objects.filter(code__in=[code for code, _ in DEFAULT_TAGS], residents=None).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [migrations.RunPython(add_tags, remove_tags)]
