"""A retrain may train another registered algorithm than the champion's: chosen by hand (portal,
API) or by the need's policy, checked against the registry's catalogue before anything is
queued, recorded on the retrain and in the comparison; the guarded promotion moves the need to
the challenger's model, and a rollback moves it back."""

from __future__ import annotations

import pytest

from registry.models import AliasEvent, ModelAlias
from registry.selectors import serving_version
from retraining import services
from retraining.errors import RetrainingError
from retraining.models import Retrain, RetrainPolicy, RetrainStatus, Trigger
from retraining.shadow import shadow_shares_all_tenants
from tests.factories import UserFactory

RETRAINS = "/api/v1/retraining/retrains/"


def _policy_url(slug):
    return f"/api/v1/retraining/policies/{slug}/"


def test_a_retrain_trains_another_algorithm_and_the_guarded_promotion_moves_the_need(
    shifted_need, run_retrain
):
    need = shifted_need
    champion = serving_version(need)
    assert champion.algorithm == "tfidf-logreg"
    retrain = run_retrain(need, algorithm="complement-nb", params={"classifier": {"alpha": 0.1}})
    assert retrain.status == RetrainStatus.READY, retrain.error
    assert retrain.algorithm == "complement-nb"
    challenger = retrain.challenger
    assert challenger.algorithm == "complement-nb"
    assert challenger.params["classifier"]["alpha"] == 0.1
    assert challenger.registered_model_id != champion.registered_model_id
    assert challenger.registered_model.name.endswith("/complement-nb")
    assert (
        ModelAlias.objects.get(
            registered_model=challenger.registered_model, name="candidate"
        ).version_id
        == challenger.pk
    )
    assert retrain.comparison["champion"]["algorithm"] == "tfidf-logreg"
    assert retrain.comparison["challenger"]["algorithm"] == "complement-nb"
    assert retrain.comparison["fresh"]["n"] == 45
    assert serving_version(need).pk == champion.pk  # nothing moves before the promotion

    # Shadow mode finds the candidate on the challenger's own model.
    services.retrain_policy_update(need=need, shadow_share=0.2)
    assert shadow_shares_all_tenants()[need.pk] == (0.2, challenger.pk)

    user = UserFactory()
    if not retrain.guard["passed"]:
        pytest.skip(f"the guard refused this challenger: {retrain.guard}")
    services.retrain_promote(retrain=retrain, actor=user)
    need.refresh_from_db()
    assert need.model_id == challenger.registered_model_id
    assert serving_version(need).pk == challenger.pk
    # The champion's model keeps its alias: other needs on it are unaffected.
    assert (
        ModelAlias.objects.get(
            registered_model=champion.registered_model, name="production"
        ).version_id
        == champion.pk
    )

    alias = services.retrain_rollback(retrain=retrain, actor=user)
    need.refresh_from_db()
    assert alias.version_id == champion.pk
    assert need.model_id == champion.registered_model_id
    assert serving_version(need).pk == champion.pk
    assert AliasEvent.objects.filter(
        registered_model=champion.registered_model, action="rollback"
    ).exists()


def test_the_same_algorithm_keeps_the_champions_params_under_the_changes(shifted_need, run_retrain):
    retrain = run_retrain(shifted_need, params={"classifier": {"C": 3.0}})
    assert retrain.status == RetrainStatus.READY, retrain.error
    assert retrain.algorithm == "tfidf-logreg"
    assert retrain.challenger.params["classifier"]["C"] == 3.0
    assert retrain.challenger.registered_model_id == retrain.champion.registered_model_id


def test_a_redelivered_cross_algorithm_retrain_makes_one_challenger(shifted_need, run_retrain):
    retrain = run_retrain(shifted_need, algorithm="complement-nb")
    assert services.retrain_execute(retrain_id=retrain.pk) is None  # already finished: skipped
    assert Retrain.objects.for_tenant(shifted_need.tenant).count() == 1
    from registry.models import ModelVersion

    assert (
        ModelVersion.objects.for_owner(shifted_need.tenant_id)
        .filter(registered_model=retrain.challenger.registered_model)
        .count()
        == 1
    )


@pytest.mark.parametrize(
    ("algorithm", "params", "code"),
    [
        ("random-forest", None, "unknown_algorithm"),
        ("complement-nb", {"classifier": {"C": 1.0}}, "bad_params"),  # logreg's, not NB's
        ("complement-nb", {"classifier": {"alpha": -1}}, "bad_params"),
        ("tfidf-svm", {"classifier": {"calibration_cv": 1}}, "bad_params"),
        ("hashing-sgd", {"vectorizer": {"n_features": 0}}, "bad_params"),
        (None, {"optimizer": "adam"}, "bad_params"),
        (None, {"classifier": {"solver": "magic"}}, "bad_params"),
        (None, [1, 2], "bad_params"),
    ],
)
def test_bad_choices_are_refused_before_anything_is_written(shifted_need, algorithm, params, code):
    with pytest.raises(RetrainingError) as exc:
        services.retrain_start_or_get(need=shifted_need, algorithm=algorithm, params=params)
    assert exc.value.code == code and exc.value.status_code == 400
    assert not Retrain.objects.for_tenant(shifted_need.tenant).exists()


def test_a_bad_choice_is_refused_even_while_a_retrain_is_in_flight(shifted_need):
    first, created = services.retrain_start_or_get(need=shifted_need)
    assert created
    with pytest.raises(RetrainingError):
        services.retrain_start_or_get(need=shifted_need, algorithm="nope")
    again, created = services.retrain_start_or_get(need=shifted_need, algorithm="complement-nb")
    assert again.pk == first.pk and not created


def test_the_policys_algorithm_trains_policy_and_signoff_retrains(shifted_need):
    services.retrain_policy_update(
        need=shifted_need, algorithm="complement-nb", params={"classifier": {"alpha": 0.2}}
    )
    retrain = services.retrain_start(need=shifted_need, trigger=Trigger.SIGNOFF)
    assert retrain.algorithm == "complement-nb"
    assert retrain.params == {"classifier": {"alpha": 0.2}}


def test_a_start_that_names_an_algorithm_overrides_the_policy(shifted_need):
    services.retrain_policy_update(need=shifted_need, algorithm="complement-nb")
    retrain, _ = services.retrain_start_or_get(need=shifted_need, algorithm="tfidf-svm")
    assert retrain.algorithm == "tfidf-svm"


def test_a_policy_with_bad_params_is_refused_and_not_saved(shifted_need):
    with pytest.raises(RetrainingError) as exc:
        services.retrain_policy_update(
            need=shifted_need, algorithm="complement-nb", params={"classifier": {"C": 1}}
        )
    assert exc.value.code == "bad_params"
    assert not RetrainPolicy.objects.for_tenant(shifted_need.tenant).exists()


# --- API -------------------------------------------------------------------------------------
def test_the_api_starts_a_retrain_with_another_algorithm_once(
    shifted_need, api_a, django_capture_on_commit_callbacks
):
    body = {
        "need": "topics",
        "algorithm": "complement-nb",
        "params": {"classifier": {"alpha": 0.1}},
    }
    with django_capture_on_commit_callbacks(execute=True):
        created = api_a.post(RETRAINS, body, format="json")
    assert created.status_code == 201, created.content
    retrain_id = created.json()["id"]
    shown = api_a.get(f"{RETRAINS}{retrain_id}/").json()
    assert shown["status"] == "ready", shown["error"]
    assert shown["algorithm"] == "complement-nb"
    assert shown["champion"]["algorithm"] == "tfidf-logreg"
    assert shown["challenger"]["algorithm"] == "complement-nb"
    assert shown["comparison"]["challenger"]["algorithm"] == "complement-nb"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"algorithm": "random-forest"}, "invalid"),
        ({"algorithm": "complement-nb", "params": {"classifier": {"C": 1}}}, "bad_params"),
        ({"params": {"vectorizer": {"ngram_range": 3}}}, "bad_params"),
        ({"params": "C=1"}, "invalid"),
    ],
)
def test_the_api_refuses_bad_choices_with_a_stable_code(shifted_need, api_a, body, code):
    response = api_a.post(RETRAINS, {"need": "topics", **body}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not Retrain.objects.for_tenant(shifted_need.tenant).exists()


def test_another_tenant_cannot_retrain_this_need_with_any_algorithm(shifted_need, api_b):
    response = api_b.post(RETRAINS, {"need": "topics", "algorithm": "complement-nb"}, format="json")
    assert response.status_code == 404
    assert (
        api_b.patch(
            _policy_url("topics"), {"algorithm": "complement-nb"}, format="json"
        ).status_code
        == 404
    )


def test_the_policy_api_sets_and_validates_the_algorithm(shifted_need, api_a):
    url = _policy_url("topics")
    ok = api_a.patch(
        url, {"algorithm": "tfidf-svm", "params": {"classifier": {"C": 0.5}}}, format="json"
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["algorithm"] == "tfidf-svm"
    bad = api_a.patch(url, {"params": {"classifier": {"alpha": 1}}}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_params"
    policy = RetrainPolicy.objects.for_tenant(shifted_need.tenant).get(need=shifted_need)
    assert policy.params == {"classifier": {"C": 0.5}}


# --- Portal ----------------------------------------------------------------------------------
def test_the_portal_start_form_chooses_an_algorithm_and_shows_it(
    shifted_need, client, alice, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    page = client.get("/retraining/").content.decode()
    assert 'name="algorithm"' in page and 'value="complement-nb"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/retraining/start/",
            {
                "need": "topics",
                "algorithm": "complement-nb",
                "params": '{"classifier": {"alpha": 0.1}}',
            },
        )
    retrain = Retrain.objects.for_tenant(shifted_need.tenant).get()
    assert response.status_code == 302 and response.url == f"/retraining/{retrain.pk}/"
    assert retrain.algorithm == "complement-nb"
    detail = client.get(f"/retraining/{retrain.pk}/").content.decode()
    assert "retrain-algorithms" in detail and "complement-nb" in detail


@pytest.mark.parametrize(
    "form",
    [
        {"algorithm": "complement-nb", "params": "{not json"},
        {"algorithm": "complement-nb", "params": '{"classifier": {"C": 1}}'},
        {"algorithm": "nope"},
    ],
)
def test_the_portal_refuses_bad_choices_and_queues_nothing(shifted_need, client, alice, form):
    client.force_login(alice)
    response = client.post("/retraining/start/", {"need": "topics", **form}, follow=True)
    assert response.status_code == 200
    assert not Retrain.objects.for_tenant(shifted_need.tenant).exists()
    messages = [str(m) for m in response.context["messages"]]
    assert messages, "the refusal is explained"
