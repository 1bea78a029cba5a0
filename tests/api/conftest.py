"""Seeded data for tests that drive the whole API from the outside (Schemathesis, bad input)."""

from __future__ import annotations

import pytest

from tests.factories import (
    ApiKeyFactory,
    MembershipFactory,
    NeedFactory,
    TenantFactory,
    UserFactory,
)


@pytest.fixture
def seeded(db, settings):
    """One tenant with something behind every route: labels (with and without parents), label
    sets, a served need and a requested one (no model), a stored item, a batch job, a training
    run, a dead letter, and an API key with every scope."""
    from registry.services.training import training_run_create
    from serving import services as serving_services
    from serving.models import BatchSource, WebhookDelivery
    from taxonomy import services as taxonomy_services
    from tenants.models import Role
    from tests.serving.factories import make_model, make_served_need
    from tests.taxonomy.factories import build_news_tree, shared_label_sets

    settings.ALIAS_POLL_SECONDS = 0
    settings.SERVING_ASYNC_WRITES = False
    build_news_tree()
    shared_label_sets()
    from taxonomy.models import Label

    # A deprecated label with `replaced_by`, and the history rows that come with it.
    taxonomy_services.label_deprecate(
        label=Label.objects.get(key="news.tech"), replaced_by=Label.objects.get(key="news")
    )
    tenant = TenantFactory(slug="seeded", name="Seeded", quota_requests_per_minute=1_000_000)
    user = UserFactory(username="seeded-admin")
    MembershipFactory(user=user, tenant=tenant, role=Role.ADMIN)
    version = make_model()
    need = make_served_need(
        tenant=tenant, slug="news", version=version, label_mapping={"Sport": "news.sport"}
    )
    NeedFactory(tenant=tenant, slug="requested", status="requested", requested_labels=["news"])
    serving_services.stream_items_ingest(
        tenant=tenant, need=need, ids=["item-1"], texts=["The striker scored twice."]
    )
    job = serving_services.batch_job_create(
        tenant=tenant,
        need=need,
        rows=[("row-1", "Shares fell after the results.")],
        source=BatchSource.UPLOAD,
        filename="seed.csv",
        user=user,
    )
    run = training_run_create(
        label_set=version.registered_model.label_set,
        snapshot=version.snapshot,
        tenant=tenant,
        enqueue=False,
    )
    delivery = WebhookDelivery.objects.create(
        tenant=tenant, need=need, status="dead", payload={"items": []}, item_count=0
    )
    key = ApiKeyFactory(tenant=tenant, name="schemathesis")
    return {
        "tenant": tenant,
        "user": user,
        "need": need,
        "version": version,
        "key": key,
        "job": job,
        "run": run,
        "delivery": delivery,
    }
