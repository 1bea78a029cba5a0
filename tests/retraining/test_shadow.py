"""Shadow mode: a sampled share of live sync traffic is scored by the challenger off the hot
path; callers only ever get the champion's answer; agreement is recorded."""

from __future__ import annotations

import pytest

from retraining import services, shadow
from retraining.models import RetrainStatus, ShadowAgreement
from serving import shadow as serving_shadow
from serving.redis_pool import get_redis, writer
from serving.runtime import get_runtime
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
