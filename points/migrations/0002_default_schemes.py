from django.db import migrations


def load(apps, schema_editor):
    Scheme = apps.get_model("points", "Scheme")
    Scheme.objects.get_or_create(code="resident", defaults={"name": "居民积分", "order": 0})
    Scheme.objects.get_or_create(code="party", defaults={"name": "党员积分", "order": 1, "party_members_only": True})


def unload(apps, schema_editor):
    apps.get_model("points", "Scheme").objects.filter(code__in=["resident", "party"], rules=None).delete()


class Migration(migrations.Migration):
    dependencies = [("points", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
