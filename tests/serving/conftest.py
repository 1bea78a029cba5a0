from __future__ import annotations

import pytest

from serving import authentication
from tests.serving.factories import make_model, make_served_need
from workers.runtime import get_runtime


@pytest.fixture(autouse=True)
def _fresh_runtime(settings):
    """Each test starts with an empty model cache, need bindings and key cache."""
    settings.ALIAS_POLL_SECONDS = 0  # tests change rows and expect the next request to see it
    get_runtime().forget()
    authentication.clear_cache()
    yield
    get_runtime().forget()
    authentication.clear_cache()


@pytest.fixture
def model_version(db):
    return make_model()


@pytest.fixture
def need_a(tenant_a, model_version):
    return make_served_need(
        tenant=tenant_a,
        slug="news",
        version=model_version,
        label_mapping={"Sport": "news.sport", "Money": "news.business"},
    )


@pytest.fixture
def need_b(tenant_b, model_version):
    return make_served_need(tenant=tenant_b, slug="bravo-news", version=model_version)
