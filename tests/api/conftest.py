"""Seeded data for tests that drive the whole API from the outside (Schemathesis, bad input)."""

from __future__ import annotations

import pytest

from tests.factories import ApiKeyFactory, MembershipFactory, TenantFactory, UserFactory
from tests.serving.factories import make_model, make_served_need


@pytest.fixture
def seeded(db, settings):
    """A tenant with a served need, a stored item, a batch job, a training run and a full key."""
    from serving import services as serving_services
    from tenants.models import Role

    settings.ALIAS_POLL_SECONDS = 0
    settings.SERVING_ASYNC_WRITES = False
    tenant = TenantFactory(
        slug="seeded", name="Seeded", quota_requests_per_minute=1_000_000
    )
    user = UserFactory(username="seeded-admin")
    MembershipFactory(user=user, tenant=tenant, role=Role.ADMIN)
    version = make_model()
    need = make_served_need(
        tenant=tenant, slug="news", version=version, label_mapping={"Sport": "news.sport"}
    )
    serving_services.stream_items_ingest(
        tenant=tenant, need=need, ids=["item-1"], texts=["The striker scored twice."]
    )
    key = ApiKeyFactory(tenant=tenant, name="schemathesis")
    return {"tenant": tenant, "user": user, "need": need, "version": version, "key": key}
