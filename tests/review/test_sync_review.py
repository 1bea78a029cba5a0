"""Sync predictions in review: a need's opt-in share of sync texts is kept in the prediction log
line, rounds sample those predictions beside stream and batch ones with weights that account for
the share, and the texts are purged after the need's retention."""

from __future__ import annotations

import random

import pytest

from review import sampling, services, sync_texts
from review.models import NeedReviewConfig, ReviewItem
from serving import predlog
from serving.models import Channel, PredictionLog
from serving.redis_pool import writer
from serving.runtime import get_runtime
from tenants.authentication import clear_key_cache
from tests.review.factories import log_stream, log_sync, sha
from tests.serving.factories import make_model, make_served_need

pytestmark = pytest.mark.django_db

SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"
#: COPY's text format must carry these through unchanged (tab, newline, backslash, its NULL).
TRICKY = "tab\there\nnew line \\ backslash \\N not null 足球"


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.ALIAS_POLL_SECONDS = 0
    settings.SERVING_ASYNC_WRITES = False
    settings.SYNC_REVIEW_SHARE_REFRESH_SECONDS = 0  # a settings change is seen at once
    get_runtime().forget()
    clear_key_cache()
    predlog._local.clear()
    sync_texts.forget_shares()
    yield
    writer.flush()
    predlog._local.clear()
    get_runtime().forget()
    clear_key_cache()
    sync_texts.forget_shares()


@pytest.fixture
def news(tenant_a):
    return make_served_need(tenant=tenant_a, slug="news", version=make_model())


def tag(api, items, slug="news"):
    response = api.post(f"/api/v1/needs/{slug}/tag", {"items": items}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def logged(need):
    predlog.flush()
    return list(PredictionLog.objects.for_tenant(need.tenant_id).filter(need=need).order_by("id"))


# --- Keeping texts on the hot path -----------------------------------------------------------
def test_sync_texts_are_not_kept_by_default(api_a, news):
    tag(api_a, [{"id": "1", "text": SPORT}, {"id": "2", "text": TECH}])
    rows = logged(news)
    assert len(rows) == 2
    assert all(row.text is None and row.text_share is None for row in rows)


def test_a_need_that_opts_in_keeps_its_sync_texts_in_the_same_log_line(api_a, news, settings):
    settings.PREDICTION_LOG_SAMPLE_RATE = 1.0
    services.config_update(need=news, sync_review_share=1.0)
    tag(api_a, [{"id": "1", "text": SPORT}, {"id": "2", "text": TRICKY}])
    rows = logged(news)
    assert [row.text for row in rows] == [SPORT, TRICKY]  # COPY round trip, escapes included
    assert [row.text_hash for row in rows] == [sha(SPORT), sha(TRICKY)]
    assert all(row.text_share == 1.0 for row in rows)


def test_the_kept_share_is_sampled_and_records_rate_times_share(news, settings):
    settings.PREDICTION_LOG_SAMPLE_RATE = 1.0
    services.config_update(need=news, sync_review_share=0.25)
    served = get_runtime().need(tenant_id=news.tenant_id, slug="news")
    texts = [f"{SPORT} {i}" for i in range(400)]
    random.seed(11)
    results = get_runtime().tag(served, texts)
    predlog.record(
        tenant_id=news.tenant_id,
        need_id=news.pk,
        channel=Channel.SYNC,
        item_refs=[str(i) for i in range(400)],
        results=results,
        texts=texts,
    )
    rows = logged(news)
    kept = [row for row in rows if row.text is not None]
    assert len(rows) == 400
    assert 60 <= len(kept) <= 140  # Binomial(400, 0.25): mean 100, sd 8.7
    assert {row.text_share for row in kept} == {0.25}
    assert all(row.text == f"{SPORT} {row.item_ref}" for row in kept)


def test_the_logs_own_sync_sample_rate_is_part_of_the_share(news, settings):
    settings.PREDICTION_LOG_SAMPLE_RATE = 0.5
    services.config_update(need=news, sync_review_share=1.0)
    served = get_runtime().need(tenant_id=news.tenant_id, slug="news")
    random.seed(3)
    for i in range(40):
        results = get_runtime().tag(served, [f"{TECH} {i}"])
        predlog.record(
            tenant_id=news.tenant_id,
            need_id=news.pk,
            channel=Channel.SYNC,
            item_refs=[str(i)],
            results=results,
            texts=[f"{TECH} {i}"],
        )
    rows = logged(news)
    assert 0 < len(rows) < 40
    assert {row.text_share for row in rows} == {0.5}  # each stands for 2 sync predictions


def test_stream_and_batch_lines_never_carry_a_text(news):
    services.config_update(need=news, sync_review_share=1.0)
    served = get_runtime().need(tenant_id=news.tenant_id, slug="news")
    results = get_runtime().tag(served, [SPORT])
    for channel in (Channel.STREAM, Channel.BATCH):
        predlog.record(
            tenant_id=news.tenant_id,
            need_id=news.pk,
            channel=channel,
            item_refs=["x"],
            results=results,
            texts=[SPORT],
        )
    assert all(row.text is None for row in logged(news))


def test_a_failing_share_provider_keeps_nothing_and_fails_nothing(api_a, news, monkeypatch):
    def broken(need_id):
        raise RuntimeError("database gone")

    monkeypatch.setattr(predlog, "_text_share_provider", broken)
    tag(api_a, [{"id": "1", "text": SPORT}])
    assert [row.text for row in logged(news)] == [None]


def test_the_predictions_api_never_shows_a_kept_text(api_a, news):
    services.config_update(need=news, sync_review_share=1.0)
    tag(api_a, [{"id": "1", "text": SPORT}])
    logged(news)
    body = api_a.get("/api/v1/predictions/?need=news").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert rows and all("text" not in row for row in rows)
    assert SPORT not in str(body)


# --- Weights ---------------------------------------------------------------------------------
def test_item_weights_are_unbiased_for_the_stratum_total_and_the_sync_count():
    """A stratum of 100 stream predictions and 20 kept sync texts at a share of 0.1 (standing for
    200 sync predictions): over many draws of 12, the weights add up to the 300 predictions and
    the sync items' weights to the 200 sync ones."""
    pool = [1.0] * 100 + [10.0] * 20
    size = sum(pool)
    mean = size / len(pool)
    rng = random.Random(7)
    totals, sync_totals = [], []
    for _ in range(4000):
        drawn = rng.sample(pool, 12)
        weights = [
            sampling.item_weight(expansion=e, size=size, drawn=12, pool_mean_expansion=mean)
            for e in drawn
        ]
        totals.append(sum(weights))
        sync_totals.append(sum(w for w, e in zip(weights, drawn, strict=True) if e > 1))
    assert abs(sum(totals) / len(totals) - 300) < 6
    assert abs(sum(sync_totals) / len(sync_totals) - 200) < 8


def test_with_equal_expansions_the_weights_are_the_old_ones():
    assert sampling.item_weight(expansion=1.0, size=50, drawn=5, pool_mean_expansion=1.0) == 10
    assert sampling.expansion(None) == 1.0 and sampling.expansion(0.25) == 4.0


def test_a_round_weights_sync_items_by_their_share_and_estimates_all_traffic(tenant_a, alice):
    """10 stream predictions and 4 kept sync texts at a share of 0.2 (20 sync predictions), all
    of label sport. Stream answers are right, sync ones wrong: true accuracy is 10 / 30."""
    version = make_model()
    need = make_served_need(tenant=tenant_a, slug="news", version=version)
    log_stream(need, version, {"news.sport": [f"stream {i}" for i in range(10)]})
    log_sync(need, version, {"news.sport": [f"sync {i}" for i in range(4)]}, share=0.2)
    review_round = services.round_start(need=need, sample_size=14, actor=alice)
    assert review_round.population == 30
    assert review_round.strata == {"news.sport": [30.0, 14]}
    items = list(ReviewItem.objects.for_tenant(tenant_a).filter(round=review_round))
    by_channel = {item.channel: item.weight for item in items}
    assert by_channel == {"stream": pytest.approx(1.0), "sync": pytest.approx(5.0)}
    assert sum(item.weight for item in items) == pytest.approx(30.0)
    assert {item.text for item in items if item.channel == "sync"} == {
        f"sync {i}" for i in range(4)
    }
    for _ in items:
        item = services.item_claim_next(review_round=review_round, reviewer=alice)
        assert item is not None
        if item.channel == "sync":
            services.verdict_record(
                item=item, decision="correct", labels=["news.tech"], reviewer=alice
            )
        else:
            services.verdict_record(item=item, decision="confirm", reviewer=alice)
    closed = services.round_close(review_round=review_round)
    assert closed.result["accuracy"]["estimate"] == pytest.approx(10 / 30, abs=1e-3)


def test_a_round_on_sync_traffic_alone_can_start(tenant_a):
    version = make_model()
    need = make_served_need(tenant=tenant_a, slug="news", version=version)
    log_sync(need, version, {"news.tech": ["only sync"]}, share=0.5)
    review_round = services.round_start(need=need, sample_size=5)
    assert [(i.channel, i.weight) for i in review_round.items.all()] == [("sync", 2.0)]


def test_sync_predictions_without_a_kept_text_are_not_reviewable(tenant_a):
    version = make_model()
    need = make_served_need(tenant=tenant_a, slug="news", version=version)
    rows = log_sync(need, version, {"news.tech": ["gone"]}, share=0.5)
    PredictionLog.objects.for_tenant(tenant_a).filter(pk=rows[0].pk).update(text=None)
    with pytest.raises(services.DomainError) as exc:
        services.round_start(need=need)
    assert exc.value.code == "no_predictions"


# --- Purge -----------------------------------------------------------------------------------
def test_purge_clears_texts_past_each_needs_retention_and_is_idempotent(tenant_a, tenant_b):
    from workers.tasks.monitoring import purge_sync_review_texts

    version = make_model()
    short = make_served_need(tenant=tenant_a, slug="short", version=version)
    long = make_served_need(tenant=tenant_b, slug="long", version=version)
    services.config_update(need=short, sync_text_retention_days=2)
    services.config_update(need=long, sync_text_retention_days=30)
    old_short = log_sync(short, version, {"news.tech": ["old a"]}, share=1.0, ago_hours=72)
    new_short = log_sync(short, version, {"news.tech": ["new a"]}, share=1.0, ago_hours=1)
    old_long = log_sync(long, version, {"news.tech": ["old b"]}, share=1.0, ago_hours=72)
    assert purge_sync_review_texts.apply().get() == {"cleared": 1}
    assert purge_sync_review_texts.apply().get() == {"cleared": 0}

    def text(row):
        return PredictionLog.objects.for_tenant(row.tenant_id).get(pk=row.pk).text

    assert text(old_short[0]) is None
    assert text(new_short[0]) == "new a"
    assert text(old_long[0]) == "old b"  # the other need keeps it 30 days
    kept = PredictionLog.objects.for_tenant(tenant_a).get(pk=old_short[0].pk)
    assert kept.text_share == 1.0 and kept.top_label == "news.tech"  # the row itself stays


def test_the_platform_cap_purges_whatever_a_need_says(tenant_a, settings):
    version = make_model()
    need = make_served_need(tenant=tenant_a, slug="news", version=version)
    services.config_update(need=need, sync_text_retention_days=30)
    settings.SYNC_REVIEW_TEXT_MAX_DAYS = 2
    rows = log_sync(need, version, {"news.tech": ["old"]}, share=1.0, ago_hours=72)
    NeedReviewConfig.objects.for_tenant(tenant_a).filter(need=need).delete()  # no settings left
    assert sync_texts.sync_texts_purge_all_tenants() == {"cleared": 1}
    assert PredictionLog.objects.for_tenant(tenant_a).get(pk=rows[0].pk).text is None


# --- Settings: service, API, portal ----------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("sync_review_share", 1.5, "invalid_share"),
        ("sync_review_share", -0.1, "invalid_share"),
        ("sync_review_share", "half", "invalid_share"),
        ("sync_text_retention_days", 0, "invalid_retention"),
        ("sync_text_retention_days", 91, "invalid_retention"),
    ],
)
def test_the_service_refuses_bad_settings_and_writes_nothing(news, field, value, code):
    with pytest.raises(services.DomainError) as exc:
        services.config_update(need=news, **{"sync_review_share": 0.3, field: value})
    assert exc.value.code == code
    assert services.config_for(news).sync_review_share == 0.0


def test_the_api_reads_and_sets_the_sync_review_settings(api_a, news):
    url = "/api/v1/needs/news/review-config"
    body = api_a.get(url).json()
    assert body["sync_review_share"] == 0.0 and body["sync_text_retention_days"] == 14
    response = api_a.patch(
        url, {"sync_review_share": 0.1, "sync_text_retention_days": 7}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["sync_review_share"] == 0.1
    assert sync_texts.share_for_need(news.pk) == 0.1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"sync_review_share": 2}, 400, "invalid"),
        ({"sync_review_share": "x"}, 400, "invalid"),
        ({"sync_text_retention_days": 0}, 400, "invalid"),
        ({"sync_text_retention_days": 200}, 400, "invalid_retention"),  # above the cap of 90
    ],
)
def test_the_api_refuses_bad_sync_review_settings(api_a, news, body, status, code):
    response = api_a.patch("/api/v1/needs/news/review-config", body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert services.config_for(news).sync_review_share == 0.0


def test_another_tenants_need_settings_are_404(api_b, news):
    url = "/api/v1/needs/news/review-config"
    assert api_b.get(url).status_code == 404
    assert api_b.patch(url, {"sync_review_share": 1}, format="json").status_code == 404
    assert services.config_for(news).sync_review_share == 0.0


def test_the_portal_settings_form_saves_the_share_and_retention(client, alice, news):
    client.force_login(alice)
    config = services.config_for(news)
    form = {
        "accuracy_target": config.accuracy_target,
        "sample_size": config.sample_size,
        "window_days": config.window_days,
        "double_review_share": config.double_review_share,
        "held_out_share": config.held_out_share,
        "schedule_crontab": "",
        "sync_review_share": "0.05",
        "sync_text_retention_days": "10",
    }
    response = client.post("/review/needs/news/settings/", form)
    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.sync_review_share, config.sync_text_retention_days) == (0.05, 10)
    page = client.get("/review/needs/news/").content.decode()
    assert 'name="sync_review_share"' in page and 'value="0.05"' in page
    bad = client.post("/review/needs/news/settings/", {**form, "sync_review_share": "3"})
    assert bad.status_code == 302
    config.refresh_from_db()
    assert config.sync_review_share == 0.05


def test_end_to_end_sync_calls_reach_a_round_with_weights_for_their_share(api_a, news):
    """A service tags through the sync API with half its texts kept; a round started through the
    API holds those sync predictions beside stream ones; every stratum's weights add up to its
    predictions (stream rows + kept sync rows / 0.5), and a sync item weighs twice a stream one."""
    patch = api_a.patch(
        "/api/v1/needs/news/review-config", {"sync_review_share": 0.5}, format="json"
    )
    assert patch.status_code == 200
    version = news.model.versions.get()
    log_stream(news, version, {"news.sport": [f"stream sport {i}" for i in range(6)]})
    random.seed(2)
    sent = {}
    for i in range(30):
        text = f"{SPORT if i % 2 else TECH} call {i}"
        sent[str(i)] = text
        tag(api_a, [{"id": str(i), "text": text}])
    rows = [row for row in logged(news) if row.channel == Channel.SYNC]
    kept = [row for row in rows if row.text is not None]
    assert len(rows) == 30 and 5 < len(kept) < 25
    assert all(row.text == sent[row.item_ref] and row.text_share == 0.5 for row in kept)

    started = api_a.post("/api/v1/needs/news/review-rounds", {"sample_size": 500}, format="json")
    assert started.status_code == 201, started.content
    round_id = started.json()["id"]
    items = list(ReviewItem.objects.for_tenant(news.tenant_id).filter(round_id=round_id))
    assert {item.channel for item in items} == {"sync", "stream"}
    assert len([i for i in items if i.channel == "sync"]) == len(kept)
    expected: dict[str, float] = {}
    for row in kept:
        expected[row.labels[0]] = expected.get(row.labels[0], 0.0) + 2.0
    expected["news.sport"] = expected.get("news.sport", 0.0) + 6
    for stratum, total in expected.items():
        in_stratum = [i for i in items if i.stratum == stratum]
        assert sum(i.weight for i in in_stratum) == pytest.approx(total)
        weights = {i.channel: i.weight for i in in_stratum}
        if len(weights) == 2:
            assert weights["sync"] == pytest.approx(2 * weights["stream"])
    # The reviewer's queue (a labelling tool with the key) hands out the sync items too.
    seen = set()
    while True:
        claim = api_a.post(f"/api/v1/review-rounds/{round_id}/claim")
        if claim.status_code == 204:
            break
        item = claim.json()
        seen.add(item["channel"])
        if item["channel"] == "sync":
            assert item["text"] == sent[item["item_ref"]]
        answer = api_a.post(
            f"/api/v1/review-rounds/{round_id}/items/{item['id']}/verdict",
            {"decision": "confirm"},
            format="json",
        )
        assert answer.status_code == 200
    assert seen == {"sync", "stream"}


def test_a_low_confidence_sync_prediction_with_a_kept_text_becomes_a_case(tenant_a):
    from review.models import Case, CaseSource

    version = make_model()
    need = make_served_need(tenant=tenant_a, slug="news", version=version, threshold=0.5)
    services.config_update(need=need, low_confidence_case_share=1.0)
    log_sync(need, version, {"news.tech": ["unsure sync call"]}, share=0.5, score=0.3)
    log_sync(need, version, {"news.tech": ["sure sync call"]}, share=0.5, score=0.9)
    assert services.cases_collect(need=need)["low_confidence"] == 1
    case = Case.objects.for_tenant(tenant_a).get(need=need)
    assert (case.text, case.source) == ("unsure sync call", CaseSource.LOW_CONFIDENCE)
    assert services.cases_collect(need=need)["low_confidence"] == 0  # the cursor moved on
