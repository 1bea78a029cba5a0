"""The whole demo of `make run` (the README's first command) loads on a fresh database from the
real bundled data sets, and loads again without changes.

The unit tests of each demo step use small stand-ins; this one runs them all on the real corpora
(BBC: one source file per sample), which is how a fresh machine failed once (a records section
over its size limit). Training is queued, not run: the runs' messages are sent on commit, which
the test's transaction never reaches, as on a machine whose workers have not started yet."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from records.models import Section
from registry.models import TrainingRun, TrainingSample
from tenants.models import Need

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_the_full_demo_loads_from_the_real_data_sets_and_again_without_changes():
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    assert "demo loaded" in out.getvalue()
    samples = TrainingSample.objects.dangerously_unscoped().count()
    assert samples > 9000  # BBC and zh-inews
    assert TrainingRun.objects.dangerously_unscoped().count() == 2
    assert set(
        Need.objects.dangerously_unscoped().values_list("tenant__slug", "slug", "status")
    ) >= {("tenant-a", "news-topics", "approved"), ("tenant-b", "zh-sentiment", "approved")}
    data = Section.objects.dangerously_unscoped().filter(kind="data")
    assert data.count() == 2 and all(len(s.body) < 5000 for s in data)

    again = io.StringIO()
    call_command("load_demo", stdout=again)
    assert "demo loaded" in again.getvalue()
    assert TrainingSample.objects.dangerously_unscoped().count() == samples
    assert TrainingRun.objects.dangerously_unscoped().count() == 2
