"""Shadow mode: a sampled share of live sync traffic is scored by the challenger off the hot
path; callers only ever get the champion's answer; agreement is recorded."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from retraining import services, shadow
from retraining.models import RetrainStatus, ShadowAgreement
from serving import shadow as serving_shadow
from serving.redis_pool import get_redis, writer
from serving.runtime import get_runtime
from tenants.models import Tenant
from tests.retraining.conftest import shifted_rows


@pytest.fixture
def shadow_ready(shifted_need, run_retrain, settings, requires_redis):
    settings.ALIAS_POLL_SECONDS = 0
    settings.SERVING_ASYNC_WRITES = False
    settings.SHADOW_REFRESH_SECONDS = 0
    get_runtime().forget()
    get_redis().delete(serving_shadow.BUFFER_KEY)
    retrain = run_retrain(shifted_need)
    assert retrain.status == RetrainStatus.READY
    shadow.forget_shares()
    yield retrain
    writer.flush()
    get_redis().delete(serving_shadow.BUFFER_KEY)
    get_runtime().forget()
    shadow.forget_shares()


def _tag(client, texts):
    items = [{"id": str(i), "text": text} for i, text in enumerate(texts)]
    return client.post("/api/v1/needs/topics/tag", {"items": items}, format="json")


def test_shadowed_traffic_is_scored_by_the_challenger_and_never_returned(shadow_ready, api_a):
    retrain = shadow_ready
    services.retrain_policy_update(need=retrain.need, shadow_share=0.5)
    texts = [row.text for row in shifted_rows(per_label=20, seed=9, start=5000, tech_share=0.5)]

    response = _tag(api_a, texts)

    assert response.status_code == 200
    served = {item["model"]["version"] for item in response.json()["items"]}
    assert served == {retrain.champion.version}  # the challenger's answers never go back
    buffered = get_redis().llen(serving_shadow.BUFFER_KEY)
    assert 0 < buffered < len(texts)  # sampled, about half

    scored = shadow.shadow_drain_all_tenants()

    assert scored == buffered
    row = ShadowAgreement.objects.for_tenant(retrain.tenant).get()
    assert (row.champion_id, row.challenger_id, row.scored) == (
        retrain.champion_id,
        retrain.challenger_id,
        buffered,
    )
    assert 0 < row.agreed <= row.scored
    body = api_a.get(f"/api/v1/retraining/retrains/{retrain.pk}/").json()
    assert body["shadow"]["scored"] == buffered


def test_no_shadow_without_a_share_or_once_the_challenger_is_promoted(shadow_ready, api_a):
    retrain = shadow_ready
    texts = [row.text for row in shifted_rows(per_label=10, seed=9, start=6000)]
    _tag(api_a, texts)
    assert get_redis().llen(serving_shadow.BUFFER_KEY) == 0  # shadow_share is 0 by default

    services.retrain_policy_update(need=retrain.need, shadow_share=0.5)
    services.retrain_promote(retrain=retrain)
    shadow.forget_shares()
    _tag(api_a, texts)
    assert get_redis().llen(serving_shadow.BUFFER_KEY) == 0


def test_the_per_process_cap_bounds_shadowed_items(shadow_ready, api_a, settings):
    retrain = shadow_ready
    services.retrain_policy_update(need=retrain.need, shadow_share=0.5)
    settings.SHADOW_MAX_ITEMS_PER_SECOND = 3
    serving_shadow._bucket._tokens = 0.0  # an empty bucket refills at 3 per second
    texts = [row.text for row in shifted_rows(per_label=60, seed=9, start=7000)]
    _tag(api_a, texts)
    assert get_redis().llen(serving_shadow.BUFFER_KEY) <= 3


def _buffer(retrain, moments, text):
    lines = [
        json.dumps(
            {
                "t": moment.timestamp(),
                "tn": retrain.tenant_id,
                "nd": retrain.need_id,
                "mv": retrain.champion_id,
                "cv": retrain.challenger_id,
                "tl": "",
                "x": text,
            }
        )
        for moment in moments
    ]
    get_redis().rpush(serving_shadow.BUFFER_KEY, *lines)


@pytest.mark.parametrize(
    ("time_zone", "days"),
    [
        # 23:30 and 00:30 Beijing time are two Beijing days (but 15:30 and 16:30 of one UTC day).
        ("Asia/Shanghai", [date(2026, 3, 10), date(2026, 3, 11)]),
        ("UTC", [date(2026, 3, 10)]),
    ],
)
def test_agreement_days_are_cut_on_the_tenants_wall_clock(shadow_ready, time_zone, days):
    retrain = shadow_ready
    Tenant.objects.filter(pk=retrain.tenant_id).update(time_zone=time_zone)
    beijing = ZoneInfo("Asia/Shanghai")
    served = [
        datetime(2026, 3, 10, 23, 30, tzinfo=beijing),
        datetime(2026, 3, 11, 0, 30, tzinfo=beijing),
    ]
    assert {moment.astimezone(UTC).date() for moment in served} == {date(2026, 3, 10)}
    text = shifted_rows(per_label=1, seed=9, start=8000)[0].text

    _buffer(retrain, served, text)
    assert shadow.shadow_drain_all_tenants() == 2

    rows = ShadowAgreement.objects.for_tenant(retrain.tenant_id).order_by("day")
    assert [row.day for row in rows] == days
    assert sum(row.scored for row in rows) == 2
