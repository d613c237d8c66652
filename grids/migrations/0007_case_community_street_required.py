import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("grids", "0006_fill_case_community_street")]

    operations = [
        migrations.AlterField(
            model_name="case",
            name="community",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="governance.unit",
                verbose_name="社区",
            ),
        ),
        migrations.AlterField(
            model_name="case",
            name="street",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="governance.unit",
                verbose_name="街道",
            ),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["community", "created_at", "id"], name="case_community_created_id"),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["street", "created_at", "id"], name="case_street_created_id"),
        ),
    ]
