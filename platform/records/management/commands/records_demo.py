from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from records.demo import load_records


class Command(BaseCommand):
    help = (
        "(Re)write the demo's project records for tenant-a and tenant-b from what the demo did: "
        "run it after the demo models finished training or after monitoring_demo. Changed "
        "sections get a new revision; unchanged ones are left alone."
    )

    def handle(self, *args, **options):
        self.stdout.write("Records demo:")
        with transaction.atomic():
            load_records(self.stdout)
