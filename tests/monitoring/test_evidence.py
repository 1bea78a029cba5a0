"""Evidence for people: sentences with the tenant's names, escaped, and a sparkline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.evidence import alert_cards, html_sentence, label_names, plain_sentence
from monitoring.models import Alert, AlertKind, Severity
from tests.factories import set_need_labels
from tests.monitoring.conftest import DAY

pytestmark = pytest.mark.django_db


def _alert(need, **evidence) -> Alert:
    days = [
        {"day": (DAY - timedelta(days=i)).isoformat(), "status": s, "value": v, "reference": 0.1}
        for i, s, v in [(2, "ok", 0.1), (1, "ok", 0.11), (0, "flagged", 0.0)]
    ]
    return Alert.objects.create(
        tenant=need.tenant,
        need=need,
        kind=AlertKind.LABEL_SHARE,
        label="t.c",
        severity=Severity.WARNING,
        first_seen=DAY - timedelta(days=1),
        last_seen=DAY,
        consecutive_days=2,
        message="",
        evidence={
            "value": 0.0,
            "reference": 0.1,
            "observed": 0,
            "expected": 40,
            "evidence_days": 1,
            "reference_days": 14,
            "days": days,
            **evidence,
        },
    )


def test_sentences_use_the_tenants_names_and_escape_them(topics):
    need, _ = topics
    set_need_labels(need, label_mapping={"<b>Gamma</b>": "t.c"})
    alert = _alert(need)
    names = label_names(need)
    assert names["t.c"] == "<b>Gamma</b>"
    assert plain_sentence(alert, names) == (
        "<b>Gamma</b> (t.c) fell from 10.0 % of predictions (usual, previous 14 days) to 0.0 % "
        "on the last day (expected ≈40, observed 0) — seen on 2 consecutive days."
    )
    html = html_sentence(alert, names)
    assert '<span class="label-name" title="t.c">&lt;b&gt;Gamma&lt;/b&gt;</span>' in html
    assert "<b>" not in html


def test_cards_carry_a_table_and_a_sparkline(topics):
    need, _ = topics
    [card] = alert_cards([_alert(need)])
    assert [(r.day, r.value, r.status) for r in card.rows] == [
        ((DAY - timedelta(days=2)).isoformat(), "10.0 %", "clean"),
        ((DAY - timedelta(days=1)).isoformat(), "11.0 %", "clean"),
        (DAY.isoformat(), "0.0 %", "flagged"),
    ]
    points = [tuple(map(float, p.split(","))) for p in card.spark["points"].split()]
    assert [x for x, _ in points] == [0.0, 60.0, 120.0]
    # SVG y grows downwards: the flagged day (0 %) is drawn lowest.
    assert points[2][1] > points[0][1] > points[1][1]
