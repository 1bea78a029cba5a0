"""`manage.py loop_demo`: the improvement loop end to end on BBC News (see tagging_platform/
loop_demo.py). Its Celery tasks run inline, so no worker is needed; each run uses a new tenant."""

from dataclasses import fields

from django.core.management.base import BaseCommand

from tagging_platform.loop_demo import LoopSettings, loop_run


class Command(BaseCommand):
    help = (
        "Run the improvement loop on BBC News: incomplete champion, traffic shift, drift alerts, "
        "a review round, cases, retrain, champion vs challenger, guarded promotion, recovery."
    )

    def add_arguments(self, parser):
        for spec in fields(LoopSettings):
            parser.add_argument(
                f"--{spec.name.replace('_', '-')}",
                type=type(spec.default),
                default=spec.default,
                help=f"(default {spec.default})",
            )

    def handle(self, *args, **options):
        from tagging_platform.celery import app

        settings = LoopSettings(**{spec.name: options[spec.name] for spec in fields(LoopSettings)})
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = True  # the demo's tasks run inline, in this process
        try:
            result = loop_run(stdout=self.stdout, settings=settings)
        finally:
            app.conf.task_always_eager = eager
        verdict = "promoted" if result.promoted else "not promoted (the guard refused it)"
        self.stdout.write(self.style.SUCCESS(f"loop demo done: the challenger was {verdict}"))
