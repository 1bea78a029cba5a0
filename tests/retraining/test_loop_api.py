"""The improvement loop driven purely through the REST API, as a service or an external
labelling tool would: stream traffic, a review round (claim, verdicts, close), cases (triage,
accept), the business owner's sign-off, the retrain it starts, the comparison and the guarded
promotion. Only the sign-off is a person's decision; everything else uses one API key."""

from __future__ import annotations

from registry.datasets import text_hash
from registry.selectors import serving_version
from tests.retraining.conftest import shifted_rows


def test_the_loop_runs_end_to_end_through_the_api(
    need_with_champion, api_a, api, alice, django_capture_on_commit_callbacks, settings
):
    need = need_with_champion
    need.delivery = ["sync", "stream"]
    need.save(update_fields=["delivery"])
    champion = serving_version(need)
    rows = shifted_rows(per_label=60, seed=21, start=9000, tech_share=0.5)
    truth = {text_hash(row.text): row.labels for row in rows}

    # 1. Traffic after the shift arrives on the stream channel and is tagged by the champion.
    items = [{"id": f"s{i}", "text": row.text} for i, row in enumerate(rows)]
    with django_capture_on_commit_callbacks(execute=True):
        for start in range(0, len(items), 50):
            response = api_a.post(
                "/api/v1/needs/topics/items", {"items": items[start : start + 50]}, format="json"
            )
            assert response.status_code == 202, response.json()

    # 2. Review settings and retrain policy, then a round over that traffic.
    assert (
        api_a.patch(
            "/api/v1/needs/topics/review-config", {"held_out_share": 0.3}, format="json"
        ).status_code
        == 200
    )
    assert (
        api_a.put(
            "/api/v1/retraining/policies/topics/", {"min_fresh_samples": 5}, format="json"
        ).status_code
        == 200
    )
    round_ = api_a.post("/api/v1/needs/topics/review-rounds", {"sample_size": 120}, format="json")
    assert round_.status_code == 201, round_.json()
    round_id = round_.json()["id"]

    # 3. A labelling tool claims items and answers from the true labels.
    answered = corrected = 0
    while True:
        claim = api_a.post(f"/api/v1/review-rounds/{round_id}/claim")
        if claim.status_code == 204:
            break
        item = claim.json()
        labels = truth[text_hash(item["text"])]
        body = (
            {"decision": "confirm"}
            if sorted(labels) == sorted(item["predicted_labels"])
            else {"decision": "correct", "labels": labels}
        )
        corrected += body["decision"] == "correct"
        verdict = api_a.post(
            f"/api/v1/review-rounds/{round_id}/items/{item['id']}/verdict", body, format="json"
        )
        assert verdict.status_code == 200, verdict.json()
        answered += 1
    assert answered > 0 and corrected > 0
    closed = api_a.post(f"/api/v1/review-rounds/{round_id}/close")
    assert closed.status_code == 200
    before = closed.json()["result"]["accuracy"]

    # 4. Every correction is a case: triage it and accept it (a share is held out).
    cases = api_a.get("/api/v1/needs/topics/cases?status=new").json()["results"]
    assert len(cases) == corrected
    for case in cases:
        triaged = api_a.post(
            f"/api/v1/cases/{case['id']}/triage",
            {"cause": "data_change", "labels": truth[text_hash(case["text"])]},
            format="json",
        )
        assert triaged.status_code == 200, triaged.json()
        accepted = api_a.post(f"/api/v1/cases/{case['id']}/accept")
        assert accepted.status_code == 200, accepted.json()

    # 5. The business owner signs off "retrain": the retrain runs (eager) once it commits.
    api.force_authenticate(alice)
    with django_capture_on_commit_callbacks(execute=True):
        signed = api.post(
            f"/api/v1/review-rounds/{round_id}/sign-off", {"decision": "retrain"}, format="json"
        )
    assert signed.status_code == 200, signed.json()
    retrains = api_a.get("/api/v1/retraining/retrains/?need=topics").json()["results"]
    assert len(retrains) == 1 and retrains[0]["trigger"] == "signoff"
    retrain = api_a.get(f"/api/v1/retraining/retrains/{retrains[0]['id']}/").json()
    assert retrain["status"] == "ready", retrain["error"]
    assert retrain["accepted_added"] > 0
    fresh = retrain["comparison"]["fresh"]
    assert fresh["n"] >= 5
    assert fresh["overall"]["macro_f1"]["challenger"] > fresh["overall"]["macro_f1"]["champion"]
    assert retrain["guard"]["passed"], retrain["guard"]

    # 6. Guarded promotion by the same key; the need is now served by the challenger.
    promoted = api_a.post(
        f"/api/v1/retraining/retrains/{retrain['id']}/promote/", {}, format="json"
    )
    assert promoted.status_code == 200, promoted.json()
    assert serving_version(need).pk == retrain["challenger"]["id"] != champion.pk
    assert before["estimate"] < 1.0
