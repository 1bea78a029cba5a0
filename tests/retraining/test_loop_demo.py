"""`manage.py loop_demo` on a small slice of BBC News: every step prints its numbers, and the
challenger trained on the accepted cases beats the incomplete champion where it matters."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from registry.selectors import serving_version
from retraining.models import Retrain, RetrainStatus
from tenants.models import Need, Tenant

pytestmark = pytest.mark.slow


def test_loop_demo_runs_the_whole_story_and_the_challenger_wins(db, settings):
    out = StringIO()
    call_command(
        "loop_demo",
        "--normal-days", "3",
        "--shift-days", "3",
        "--after-days", "2",
        "--daily-volume", "220",
        "--round-size", "120",
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    for step in range(1, 8):
        assert f"== {step}." in text
    assert "weighted accuracy" in text and "McNemar" in text and "guard" in text
    tenant = Tenant.objects.get(slug="loop-demo")
    need = Need.objects.for_tenant(tenant).get(slug="desk-topics")
    retrain = Retrain.objects.for_tenant(tenant).get(need=need)
    assert retrain.trigger == "signoff"
    fresh = retrain.comparison["fresh"]
    assert fresh["n"] > 0
    assert fresh["overall"]["macro_f1"]["challenger"] > fresh["overall"]["macro_f1"]["champion"]
    assert (
        fresh["per_label"]["news.tech"]["recall_challenger"]
        > (fresh["per_label"]["news.tech"]["recall_champion"])
    )
    if retrain.guard["passed"]:
        assert retrain.status == RetrainStatus.PROMOTED
        assert serving_version(need).pk == retrain.challenger_id
    assert "| macro-F1, fresh set" in text
