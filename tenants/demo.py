"""Demo step: tenants A-D, their admins and needs, as in the seed story.

A tags news topics (on the shared `news-topics`); B tags Chinese news sentiment; C wants finer
topics (a request for a new label set); D arrives asking for nearly what A has and is offered the
shared `news-topics` label set and, once the registry has trained it, its shared model (models for
a shared label set are platform-owned, which is what lets D reuse "A's" model). Nothing here needs
a model to exist. Idempotent: existing rows are left alone.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model

from taxonomy.models import LabelSet
from tenants import services
from tenants.models import Delivery, Membership, Need, NeedStatus, Role, Tenant

TENANTS = [
    ("tenant-a", "Tenant A · News desk", "alice"),
    ("tenant-b", "Tenant B · 中文新闻", "bob"),
    ("tenant-c", "Tenant C · Sports & culture", "carol"),
    ("tenant-d", "Tenant D · Media monitoring", "dave"),
]

NEEDS = {
    "tenant-a": {
        "slug": "news-topics",
        "name": "News topics",
        "goal": "Route incoming articles to the right desk",
        "label_set": "news-topics",
        "label_mapping": {
            "Business": "news.business",
            "Entertainment": "news.entertainment",
            "Politics": "news.politics",
            "Sport": "news.sport",
            "Tech": "news.tech",
        },
        "threshold": 0.3,
        "top_k": 1,
        "delivery": [Delivery.SYNC, Delivery.BATCH],
        "latency_budget_ms": 50.0,
        "approve": True,
    },
    "tenant-b": {
        "slug": "zh-sentiment",
        "name": "中文新闻情感 (Chinese news sentiment)",
        "goal": "Watch the tone of Chinese news coverage",
        "label_set": "news-sentiment",
        "label_mapping": {
            "正面": "sentiment.positive",
            "中性": "sentiment.neutral",
            "负面": "sentiment.negative",
        },
        "top_k": 1,
        "delivery": [Delivery.SYNC, Delivery.STREAM, Delivery.BATCH],
        "latency_budget_ms": 100.0,
        "approve": True,
    },
    "tenant-c": {
        "slug": "finer-topics",
        "name": "Finer sport and culture topics",
        "goal": "Tag football, tennis, film and music stories separately",
        "requested_labels": ["Football", "Tennis", "Cricket", "Film", "Music", "Video games"],
        "top_k": 2,
        "delivery": [Delivery.BATCH],
    },
    "tenant-d": {
        "slug": "media-topics",
        "name": "Media monitoring topics",
        "goal": "Sort press clippings by topic",
        "requested_labels": ["Business", "Politics", "Sports", "Technology"],
        "delivery": [Delivery.SYNC],
    },
}


def _user(username: str):
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    if created:
        user.set_password(username)  # demo only: the README lists these logins
        user.save(update_fields=["password"])
    return user


def load_tenants(stdout) -> None:
    admin_user = get_user_model().objects.filter(username=settings.DEMO_ADMIN_USERNAME).first()
    for slug, name, username in TENANTS:
        tenant = Tenant.objects.filter(slug=slug).first() or services.tenant_create(
            slug=slug,
            name=name,
            contact_email=f"team@{slug}.example.com",
            time_zone=settings.DEMO_TIME_ZONE,
        )
        user = _user(username)
        if not Membership.objects.dangerously_unscoped().filter(tenant=tenant, user=user).exists():
            services.membership_set(tenant=tenant, user=user, role=Role.ADMIN)
        spec = dict(NEEDS[slug])
        need_slug, approve = spec.pop("slug"), spec.pop("approve", False)
        if Need.objects.owned_by(tenant).filter(slug=need_slug).exists():
            stdout.write(f"{slug}: need '{need_slug}' already exists")
            continue
        if "label_set" in spec:
            spec["label_set"] = LabelSet.objects.get(slug=spec["label_set"], tenant__isnull=True)
        need = services.need_create(tenant=tenant, slug=need_slug, created_by=user, **spec)
        if approve and admin_user is not None and need.status == NeedStatus.REQUESTED:
            need = services.need_approve(need=need, actor=admin_user)
        stdout.write(f"{slug}: {username}/{username} admin, need '{need_slug}' ({need.status})")
