"""Demo step: import the bundled data sets and train the shared demo models in the background.

Runs after the taxonomy step (which creates the shared label sets `news-topics` and
`news-sentiment`). Idempotent: samples are imported once, a model already in production is not
retrained, and a run still queued is simply re-sent (its compare-and-set claim makes that safe).
"""

from __future__ import annotations

from registry import datasets
from registry.models import RegisteredModel, RunStatus, TrainingRun
from registry.selectors import production_alias, serving_versions
from registry.services.datasets import current_revision, samples_import
from registry.services.training import (
    registered_model_get_or_create,
    training_run_create,
    training_run_enqueue,
)
from taxonomy.models import LabelSet
from tenants.models import Need, NeedStatus
from tenants.services import need_go_live

ALGORITHM = "tfidf-logreg"
#: (bundled data set, shared label set, need it serves as (tenant slug, need slug))
DEMO_MODELS = [
    ("bbc", "news-topics", ("tenant-a", "news-topics")),
    ("zh-inews", "news-sentiment", ("tenant-b", "zh-sentiment")),
]


def _attach(model: RegisteredModel, need_ref: tuple[str, str], stdout) -> None:
    tenant_slug, need_slug = need_ref
    need = (
        Need.objects.dangerously_unscoped().filter(tenant__slug=tenant_slug, slug=need_slug).first()
    )
    if need is None:
        stdout.write(f"  need {tenant_slug}/{need_slug} not found; not attaching {model.name}")
    elif need.model_id is None:
        Need.objects.dangerously_unscoped().filter(pk=need.pk).update(model=model)
        stdout.write(f"  {tenant_slug}/{need_slug} is now served by {model.name}")
    if need is None:
        return
    need.refresh_from_db()
    if need.status == NeedStatus.APPROVED and serving_versions(need).exists():
        need_go_live(need=need)
        stdout.write(f"  {tenant_slug}/{need_slug} is live")


def train_demo_models(stdout) -> None:
    for dataset, slug, need_ref in DEMO_MODELS:
        label_set = (
            LabelSet.objects.dangerously_unscoped().filter(slug=slug, tenant__isnull=True).first()
        )
        if label_set is None or label_set.current_revision is None:
            stdout.write(
                f"  skipping {dataset}: shared label set {slug!r} is missing (the taxonomy demo "
                "step creates it)"
            )
            continue
        model = registered_model_get_or_create(label_set=label_set, algorithm=ALGORITHM)
        production = production_alias(model)
        if production is not None:
            stdout.write(f"  {model.name} already in production (v{production.version.version})")
            _attach(model, need_ref, stdout)
            continue
        report = samples_import(
            revision=current_revision(label_set),
            tenant=None,
            rows=datasets.BUNDLED[dataset]["rows"](),
            source_ref=datasets.BUNDLED[dataset]["source_ref"],
            keep_first_on_conflict=True,
        )
        stdout.write(
            f"  {dataset}: {report.created} new samples ({report.unchanged} already present)"
        )
        pending = (
            TrainingRun.objects.dangerously_unscoped()
            .filter(registered_model=model, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
            .first()
        )
        if pending is not None:
            if pending.status == RunStatus.QUEUED:
                training_run_enqueue(run=pending)
            stdout.write(f"  {model.name}: run #{pending.pk} is {pending.status}; see /models/")
        else:
            run = training_run_create(
                label_set=label_set, tenant=None, algorithm=ALGORITHM, promote_to="production"
            )
            stdout.write(
                f"  {model.name}: training run #{run.pk} queued on the training queue; it promotes "
                "to production when done (progress at /models/)"
            )
        _attach(model, need_ref, stdout)
