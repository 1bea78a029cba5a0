"""The JSON label fields go, now that NeedLabel rows hold them (0004)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_need_labels_from_json")]

    operations = [
        migrations.RemoveField(model_name="need", name="label_mapping"),
        migrations.RemoveField(model_name="need", name="per_label_thresholds"),
        migrations.RemoveField(model_name="need", name="requested_labels"),
    ]
