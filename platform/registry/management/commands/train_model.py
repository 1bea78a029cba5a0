"""Train a model for a label set now, in this process (operators, CI, and measuring datasets)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from registry.errors import RegistryError
from registry.ml import ALGORITHMS
from registry.services.training import training_run_create, training_run_execute
from taxonomy.models import LabelSet
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Snapshot the label set's samples, train, evaluate and register a new version "
        "(synchronously; the portal and API queue the same work on the training queue)."
    )

    def add_arguments(self, parser):
        parser.add_argument("label_set", help="Label set slug, e.g. news-topics")
        parser.add_argument("--algorithm", default="tfidf-logreg", choices=ALGORITHMS)
        parser.add_argument("--tenant", help="Owner tenant slug (default: the platform, shared)")
        parser.add_argument("--promote", default="", choices=["", "production", "candidate"])
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--test-fraction", type=float, default=0.2)

    def handle(self, *args, **options):
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {options['tenant']!r}.")
        label_sets = LabelSet.objects.dangerously_unscoped().filter(slug=options["label_set"])
        label_set = (
            label_sets.filter(tenant=tenant).first()
            or label_sets.filter(tenant__isnull=True).first()
        )
        if label_set is None:
            raise CommandError(f"No label set {options['label_set']!r} visible to that owner.")
        try:
            run = training_run_create(
                label_set=label_set,
                tenant=tenant,
                algorithm=options["algorithm"],
                seed=options["seed"],
                test_fraction=options["test_fraction"],
                promote_to=options["promote"],
                enqueue=False,
            )
        except RegistryError as exc:
            raise CommandError(exc.message) from exc
        run = training_run_execute(run_id=run.pk)
        self.stdout.write(run.log)
        if run.status != "succeeded":
            raise CommandError(f"Training failed: {run.error}")
        version = run.model_version
        metrics = version.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"{version}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
                f"micro-F1 {metrics['micro_f1']:.4f} on {metrics['n_test']} test samples; "
                f"train {run.duration_seconds:.1f}s total"
            )
        )
