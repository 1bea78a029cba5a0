"""Restore a bundle written by export_registry. Verifies every artifact; safe to run twice."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.artifacts import ArtifactError
from registry.bundle.format import BundleError
from registry.bundle.restore import import_bundle


class Command(BaseCommand):
    help = (
        "Import a registry bundle (directory or .tar.gz). Every artifact's sha256 is checked "
        "before anything is written; a corrupted bundle is refused whole. Rows already present "
        "are kept, so importing the same bundle twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options):
        try:
            summary = import_bundle(path)
        except (BundleError, ArtifactError) as exc:
            raise CommandError(str(exc)) from exc
        created = ", ".join(f"{n} {k}" for k, n in summary.created.items() if n) or "nothing new"
        self.stdout.write(
            self.style.SUCCESS(
                f"imported {path}: created {created}; {summary.artifacts_copied} artifacts copied"
            )
        )
        for warning in summary.warnings:
            self.stdout.write(self.style.WARNING(warning))
