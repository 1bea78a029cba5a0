"""Migrations 0003-0005 carry needs' JSON labels over to NeedLabel rows, and back on reverse."""

import logging

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("tenants", "0002_need_audit_scopes_support")]
AFTER = [("tenants", "0005_remove_need_json_labels")]
TAXONOMY = ("taxonomy", "0003_labelchange_keeps_key")


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state([*targets, TAXONOMY]).apps


@pytest.mark.django_db(transaction=True)
def test_json_labels_become_rows_and_come_back(caplog):
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = _migrate(BEFORE)
        Tenant, Need = old.get_model("tenants", "Tenant"), old.get_model("tenants", "Need")
        Label = old.get_model("taxonomy", "Label")
        for key in ("news.sport", "news.tech", "news.business"):
            Label.objects.create(key=key, name_en=key)
        t1 = Tenant.objects.create(slug="t1", name="T1")
        t2 = Tenant.objects.create(slug="t2", name="T2")
        clean = Need.objects.create(
            tenant=t1,
            slug="clean",
            name="Clean",
            requested_labels=["news.tech", "news.sport"],
            label_mapping={"Sport": "news.sport"},
            per_label_thresholds={"news.sport": 0.25},
        )
        # What the JSON allowed and rows do not: two names for one label (the runtime showed the
        # last), a threshold keyed by a name, an unknown key, a threshold out of range.
        odd = Need.objects.create(
            tenant=t2,
            slug="odd",
            name="Odd",
            label_mapping={"IT": "news.tech", "Tech": "news.tech", "X": "gone.key"},
            per_label_thresholds={"Tech": 0.4, "news.business": 2, "gone.key": 0.1},
        )
        bare = Need.objects.create(tenant=t2, slug="bare", name="Bare")

        with caplog.at_level(logging.WARNING):
            new = _migrate(AFTER)
        NeedLabel = new.get_model("tenants", "NeedLabel")
        rows = {
            need_id: [
                (r.tenant_id, r.label.key, r.name, r.threshold, r.requested)
                for r in NeedLabel.objects.filter(need_id=need_id).order_by("position")
            ]
            for need_id in (clean.pk, odd.pk, bare.pk)
        }
        assert rows[clean.pk] == [
            (t1.pk, "news.tech", "", None, True),
            (t1.pk, "news.sport", "Sport", 0.25, True),
        ]
        assert rows[odd.pk] == [(t2.pk, "news.tech", "Tech", 0.4, False)]
        assert rows[bare.pk] == []
        logged = caplog.text
        assert "'news.tech' named 'IT' and 'Tech': kept 'Tech'" in logged
        assert "'gone.key'" in logged and "threshold 2 for 'news.business'" in logged
        assert not hasattr(new.get_model("tenants", "Need")(), "label_mapping")

        back = _migrate(BEFORE)
        Need = back.get_model("tenants", "Need")
        clean, odd, bare = (Need.objects.get(slug=s) for s in ("clean", "odd", "bare"))
        assert clean.requested_labels == ["news.tech", "news.sport"]
        assert clean.label_mapping == {"Sport": "news.sport"}
        assert clean.per_label_thresholds == {"news.sport": 0.25}
        assert (odd.requested_labels, odd.label_mapping, odd.per_label_thresholds) == (
            [],
            {"Tech": "news.tech"},
            {"news.tech": 0.4},
        )
        assert (bare.requested_labels, bare.label_mapping, bare.per_label_thresholds) == (
            [],
            {},
            {},
        )
    finally:
        MigrationExecutor(connection).migrate(leaves)
