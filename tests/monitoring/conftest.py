from __future__ import annotations

from datetime import date

import pytest

from tests.monitoring.factories import make_monitored_need

DAY = date(2025, 3, 12)  # a Wednesday


@pytest.fixture
def topics(tenant_a):
    """tenant_a's multi-class need with baseline a 50% / b 40% / c 10%."""
    return make_monitored_need(
        tenant=tenant_a, slug="topics", baseline={"t.a": 500, "t.b": 400, "t.c": 100}
    )
