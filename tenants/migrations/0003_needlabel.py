"""A need's labels become rows (NeedLabel); 0004 carries the JSON over, 0005 drops the JSON."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

# Django has no composite foreign keys: on PostgreSQL the database itself holds a label row's
# tenant to its need's tenant (ON UPDATE CASCADE: a need moved to another tenant takes its rows).
_FK = "tenants_needlabel_need_tenant_fk"


def add_need_tenant_fk(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE tenants_needlabel ADD CONSTRAINT {_FK} FOREIGN KEY (need_id, tenant_id) "
            "REFERENCES tenants_need (id, tenant_id) ON UPDATE CASCADE"
        )


def drop_need_tenant_fk(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE tenants_needlabel DROP CONSTRAINT IF EXISTS {_FK}")


class Migration(migrations.Migration):
    dependencies = [
        ("taxonomy", "0003_labelchange_keeps_key"),
        ("tenants", "0002_need_audit_scopes_support"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="need",
            constraint=models.UniqueConstraint(fields=("id", "tenant"), name="uniq_need_id_tenant"),
        ),
        migrations.CreateModel(
            name="NeedLabel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(blank=True, max_length=200)),
                (
                    "threshold",
                    models.FloatField(
                        blank=True,
                        null=True,
                        validators=[
                            django.core.validators.MinValueValidator(0.0),
                            django.core.validators.MaxValueValidator(1.0),
                        ],
                    ),
                ),
                ("requested", models.BooleanField(default=False)),
                ("position", models.PositiveIntegerField(default=0)),
                (
                    "label",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="need_labels",
                        to="taxonomy.label",
                    ),
                ),
                (
                    "need",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="labels",
                        to="tenants.need",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["need", "position"],
                "constraints": [
                    models.UniqueConstraint(fields=("need", "label"), name="uniq_need_label"),
                    models.UniqueConstraint(
                        condition=models.Q(("name", ""), _negated=True),
                        fields=("need", "name"),
                        name="uniq_need_label_name",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("threshold__isnull", True),
                            models.Q(("threshold__gte", 0.0), ("threshold__lte", 1.0)),
                            _connector="OR",
                        ),
                        name="need_label_threshold_0_1",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("requested", True),
                            models.Q(("name", ""), _negated=True),
                            ("threshold__isnull", False),
                            _connector="OR",
                        ),
                        name="need_label_says_something",
                    ),
                ],
            },
        ),
        migrations.RunPython(add_need_tenant_fk, drop_need_tenant_fk, elidable=False),
    ]
