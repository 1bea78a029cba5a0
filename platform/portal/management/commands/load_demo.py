from django.core.management.base import BaseCommand
from django.db import transaction

from tagging_platform.demo import STEPS


class Command(BaseCommand):
    help = "Load the demo (admin user, taxonomy, tenants, models). Safe to run again."

    def handle(self, *args, **options):
        for name, step in STEPS:
            self.stdout.write(f"demo: {name}")
            with transaction.atomic():
                step(self.stdout)
        self.stdout.write(self.style.SUCCESS("demo loaded"))
