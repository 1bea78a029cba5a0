from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from monitoring.demo import monitoring_demo_run


class Command(BaseCommand):
    help = (
        "Replay a few days of normal traffic, then shifted traffic (a news topic vanishes, "
        "sentiment skews negative) with feedback whose CTR drops, and run the monitoring tasks "
        "so the dashboards and alerts show it. Safe to run again: it replaces its own rows."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=14, help="days to replay (default 14)")
        parser.add_argument(
            "--shift-days", type=int, default=4, help="how many of the last days are shifted"
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--replay",
            action="store_true",
            help="run the 60-day acceptance replay of real held-out texts instead (trains two "
            "small models; a few minutes) and print its table; the dashboards then show the last "
            "scenario",
        )

    def handle(self, *args, days: int, shift_days: int, seed: int, replay: bool, **options):
        if replay:
            from monitoring import replay as acceptance

            self.stdout.write("Monitoring replay (45 stable days, then each shift):")
            result = acceptance.replay(stdout=self.stdout)
            self.stdout.write(acceptance.result_table(result))
            return
        self.stdout.write("Monitoring demo:")
        try:
            result = monitoring_demo_run(
                stdout=self.stdout, days=days, shift_days=shift_days, seed=seed
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Done. Open /monitoring/needs/news-topics/ as a tenant-a member (e.g. alice), "
                f"/monitoring/needs/zh-sentiment/ as tenant-b, or the admin dashboard at "
                f"/admin/monitoring/monitoringdashboard/. {result['alerts']} open alerts."
            )
        )
