"""The portal's Optimise pages as a signed-in member sees them."""

from __future__ import annotations

import json

import pytest

from optimisation import services
from optimisation.models import OptimisationRun, OptimisationStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(need, alice):
    run = services.optimisation_run_start(
        need=need, time_limit_seconds=60, max_trials=4, seed=2, actor=alice, enqueue=False
    )
    services.optimisation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_need_page_links_to_optimise_and_shows_the_start_form_with_the_needs_budgets(
    client, alice, need
):
    client.force_login(alice)
    detail = client.get(f"/tenant/needs/{need.slug}/").content.decode()
    assert f"/optimisation/needs/{need.slug}/" in detail
    page = client.get(f"/optimisation/needs/{need.slug}/").content.decode()
    assert 'id="optimise-form"' in page
    assert 'name="latency_budget_ms" value="1000.0"' in page


def test_starting_from_the_portal_runs_and_redirects_to_the_run(
    client, alice, need, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    form = {
        "latency_budget_ms": "1000",
        "size_budget_kb": "100000",
        "time_limit_seconds": "60",
        "max_trials": "3",
        "seed": "1",
        "target_requests_per_s": "200",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/optimisation/needs/{need.slug}/", form)
    assert response.status_code == 302
    run = OptimisationRun.objects.for_tenant(need.tenant).get()
    assert response["Location"] == f"/optimisation/runs/{run.pk}/"
    assert run.status == OptimisationStatus.SUCCEEDED
    page = client.get(response["Location"]).content.decode()
    assert 'id="chosen"' in page and 'id="front"' in page and 'id="capacity-chosen"' in page
    assert "200.0 /s" in page


def test_bad_budget_in_the_portal_is_a_400_with_the_reason(client, alice, need, settings):
    settings.OPTIMISATION_MAX_SECONDS = 120
    client.force_login(alice)
    base = {
        "latency_budget_ms": "0",
        "size_budget_kb": "10",
        "time_limit_seconds": "60",
        "seed": "1",
    }
    response = client.post(f"/optimisation/needs/{need.slug}/", base)
    assert response.status_code == 400
    response = client.post(
        f"/optimisation/needs/{need.slug}/",
        {**base, "latency_budget_ms": "5", "time_limit_seconds": "121"},
    )
    assert response.status_code == 400 and "120" in response.content.decode()
    assert not OptimisationRun.objects.for_tenant(need.tenant).exists()


def test_second_run_while_one_is_queued_is_refused_in_the_portal(client, alice, need):
    services.optimisation_run_start(need=need, time_limit_seconds=60, enqueue=False)
    client.force_login(alice)
    form = {
        "latency_budget_ms": "5",
        "size_budget_kb": "10",
        "time_limit_seconds": "60",
        "seed": "1",
    }
    response = client.post(f"/optimisation/needs/{need.slug}/", form)
    assert response.status_code == 409
    assert "already queued or running" in response.content.decode()


def test_viewer_sees_runs_but_cannot_start_or_cancel(client, bob, need, finished):
    client.force_login(bob)
    page = client.get(f"/optimisation/needs/{need.slug}/").content.decode()
    assert 'id="optimise-form"' not in page and f"#{finished.pk}" in page
    form = {
        "latency_budget_ms": "5",
        "size_budget_kb": "10",
        "time_limit_seconds": "60",
        "seed": "1",
    }
    assert client.post(f"/optimisation/needs/{need.slug}/", form).status_code == 403
    assert client.post(f"/optimisation/runs/{finished.pk}/cancel/").status_code == 403


def test_other_tenants_pages_are_404(client, charlie, need, finished):
    client.force_login(charlie)
    assert client.get(f"/optimisation/needs/{need.slug}/").status_code == 404
    assert client.get(f"/optimisation/runs/{finished.pk}/").status_code == 404
    assert client.get(f"/optimisation/runs/{finished.pk}/progress/").status_code == 404
    assert client.post(f"/optimisation/runs/{finished.pk}/cancel/").status_code == 404


def test_run_page_embeds_every_measured_trial_for_the_charts(client, alice, finished):
    client.force_login(alice)
    page = client.get(f"/optimisation/runs/{finished.pk}/").content.decode()
    start = page.index('id="optimisation-data"')
    data = json.loads(page[page.index(">", start) + 1 : page.index("</script>", start)])
    assert data["has_data"] and data["latency_budget_ms"] == 1000.0
    assert len(data["points"]) == finished.trials.filter(state="complete").count()
    assert sum(p["chosen"] for p in data["points"]) == 1
    assert sum(p["default"] for p in data["points"]) == 1
    assert any(p["pareto"] for p in data["points"])
    assert "<script>" not in page  # CSP: only static script files
    assert "optimisation/charts.js" in page


def test_progress_box_polls_while_active_and_reloads_the_page_when_done(client, alice, need):
    run = services.optimisation_run_start(need=need, time_limit_seconds=60, enqueue=False)
    client.force_login(alice)
    box = client.get(f"/optimisation/runs/{run.pk}/progress/")
    assert 'hx-trigger="every 2s"' in box.content.decode() and "HX-Refresh" not in box
    services.optimisation_run_cancel(run=run, actor=alice)
    done = client.get(f"/optimisation/runs/{run.pk}/progress/?was_active=1")
    assert done["HX-Refresh"] == "true"
    assert "hx-trigger" not in done.content.decode()


def test_cancel_button_cancels_a_queued_run(client, alice, need):
    run = services.optimisation_run_start(need=need, time_limit_seconds=60, enqueue=False)
    client.force_login(alice)
    assert 'id="cancel-run"' in client.get(f"/optimisation/runs/{run.pk}/").content.decode()
    client.post(f"/optimisation/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == OptimisationStatus.CANCELLED


def test_admin_lists_runs(client, staff_user, finished):
    client.force_login(staff_user)
    page = client.get("/admin/optimisation/optimisationrun/").content.decode()
    assert f"/admin/optimisation/optimisationrun/{finished.pk}/change/" in page
    detail = client.get(f"/admin/optimisation/optimisationrun/{finished.pk}/change/")
    assert detail.status_code == 200


def test_model_card_shows_the_variant_budgets_and_measurements(client, alice, finished):
    client.force_login(alice)
    version = finished.registered_version
    url = f"/models/{version.registered_model_id}/versions/{version.version}/"
    page = client.get(url).content.decode()
    assert 'id="deployment-budgets"' in page
    assert "p99 ≤ 1000.0 ms" in page and "variant.classifier" in page
    assert finished.chosen_trial.scorer_path in page
    markdown = client.get(url + "card.md").content.decode()
    assert "Deployment budgets (optimisation run" in markdown
