"""The demo the README's first command loads. Each step is idempotent: a second run reuses rows."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model

from records.demo import load_records
from registry.demo import train_demo_models
from taxonomy import demo as taxonomy_demo
from tenants import demo as tenants_demo


def ensure_admin(stdout) -> None:
    User = get_user_model()
    username = settings.DEMO_ADMIN_USERNAME
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"},
    )
    if created:
        user.set_password(settings.DEMO_ADMIN_PASSWORD)
        user.save(update_fields=["password"])
        stdout.write(f"created admin user '{username}'")
    else:
        stdout.write(f"admin user '{username}' already exists")


#: Ordered demo steps; later steps may rely on earlier ones.
STEPS: list[tuple[str, Callable]] = [
    ("admin user", ensure_admin),
    ("taxonomy and shared label sets", taxonomy_demo.load_taxonomy),
    ("tenants A-D, users and needs", tenants_demo.load_tenants),
    ("registry: data sets and demo models (after taxonomy)", train_demo_models),
    ("records: project records written from what the demo did (after registry)", load_records),
]
