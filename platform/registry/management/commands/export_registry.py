"""Write the whole registry (metadata + verified artifacts) to a portable bundle."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.artifacts import ArtifactError
from registry.bundle.export import export_bundle
from registry.bundle.format import BundleError


class Command(BaseCommand):
    help = (
        "Export label sets, training samples used by snapshots, snapshots, registered models, "
        "versions, aliases, alias events, runs and artifact files to PATH (a new directory, or a "
        ".tar.gz file). Restore with import_registry."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options):
        try:
            manifest = export_bundle(path)
        except (BundleError, ArtifactError) as exc:
            raise CommandError(str(exc)) from exc
        counts = ", ".join(f"{n} {key}" for key, n in manifest["counts"].items())
        self.stdout.write(
            self.style.SUCCESS(
                f"exported to {path}: {counts}; {len(manifest['artifacts'])} artifacts"
            )
        )
