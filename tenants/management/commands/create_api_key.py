from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tenants import services
from tenants.models import ApiKeyScope, Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("name", help="a name for the key, unique in the tenant")
        parser.add_argument(
            "--scopes",
            default=",".join(ApiKeyScope.values),
            help=f"comma-separated, from {','.join(ApiKeyScope.values)} (default: all)",
        )
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, tenant: str, name: str, scopes: str, expires_in_days, **options):
        try:
            owner = Tenant.objects.get(slug=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant '{tenant}'.") from None
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            api_key, plain = services.api_key_create(
                tenant=owner,
                name=name,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                expires_at=expires_at,
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        self.stdout.write(f"API key for {owner.slug} ({', '.join(api_key.scopes)}), shown once:")
        self.stdout.write(plain)
