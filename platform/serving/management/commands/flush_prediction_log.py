from django.core.management.base import BaseCommand

from serving import predlog


class Command(BaseCommand):
    help = "Write the buffered prediction log into PredictionLog now (normally a periodic task)."

    def handle(self, *args, **options):
        written = predlog.flush()
        self.stdout.write(f"flushed {written} prediction log rows")
