"""Training data in the tenant's own words (issue 15.4): uploads accept the need's own label
names and the taxonomy's names and aliases, and a rejected upload answers with a bounded report."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.models import TrainingSample
from tests.factories import NeedFactory


@pytest.fixture
def session_api(api, alice):
    api.force_authenticate(alice)
    return api


@pytest.fixture
def need(tenant_a, news_topics):
    return NeedFactory(
        tenant=tenant_a,
        slug="desk",
        label_set=news_topics,
        label_mapping={"Money desk": "news.business", "Gadgets": "news.tech"},
    )


def _csv(rows: list[tuple[str, str]]) -> SimpleUploadedFile:
    body = "text,labels\n" + "".join(f'"{text}",{labels}\n' for text, labels in rows)
    return SimpleUploadedFile("d.csv", body.encode(), content_type="text/csv")


def _stored_labels(tenant) -> dict[str, list[str]]:
    return {
        sample.text: sorted(link.label.key for link in sample.label_links.all())
        for sample in TrainingSample.objects.owned_by(tenant).prefetch_related("label_links__label")
    }


def test_upload_for_a_need_accepts_its_own_names_the_taxonomys_names_and_aliases(
    session_api, tenant_a, need
):
    rows = [
        ("Shares rallied after the bank's results", "Money desk"),  # the need's own name
        ("A new phone chip was unveiled", "gadgets"),  # own name, any case
        ("The striker scored twice", "Sports"),  # a taxonomy alias
        ("The minister resigned", "Politics"),  # the taxonomy's English name
        ("The film won three awards", "娱乐"),  # the Chinese name
        ("Markets slid on trade fears", "finance"),  # an alias of news.business
        ("Software updates roll out", "news.tech"),  # the key itself
    ]
    response = session_api.post(
        "/api/v1/datasets/upload/", {"need": "desk", "file": _csv(rows)}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 7
    stored = _stored_labels(tenant_a)
    assert stored["Shares rallied after the bank's results"] == ["news.business"]
    assert stored["A new phone chip was unveiled"] == ["news.tech"]
    assert stored["The striker scored twice"] == ["news.sport"]
    assert stored["The film won three awards"] == ["news.entertainment"]
    assert stored["Markets slid on trade fears"] == ["news.business"]


def test_upload_to_a_label_set_resolves_taxonomy_names_and_aliases(session_api, tenant_a, need):
    response = session_api.post(
        "/api/v1/datasets/upload/",
        {"label_set": "news-topics", "file": _csv([("Goal in extra time", "soccer-free sport")])},
        format="multipart",
    )
    assert response.status_code == 400  # not a name of any label: reported, not guessed
    ok = session_api.post(
        "/api/v1/datasets/upload/",
        {"label_set": "news-topics", "file": _csv([("Goal in extra time", "Sport")])},
        format="multipart",
    )
    assert ok.status_code == 201, ok.json()
    # The need's own names are the need's: without it they are unknown.
    own = session_api.post(
        "/api/v1/datasets/upload/",
        {"label_set": "news-topics", "file": _csv([("Bank profits rose", "Money desk")])},
        format="multipart",
    )
    assert own.status_code == 400


def test_a_rejected_upload_lists_the_first_100_row_errors_and_counts_every_kind(session_api, need):
    rows = [(f"text number {n}", "weather") for n in range(600)]
    rows += [(f"multi {n}", "Sport|Tech") for n in range(40)]
    response = session_api.post(
        "/api/v1/datasets/upload/", {"need": "desk", "file": _csv(rows)}, format="multipart"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "640 row(s) have errors; nothing was imported."
    fields = error["fields"]
    assert len(fields["rows"]) == 100 and fields["shown"] == 100 and fields["total"] == 640
    assert fields["counts"] == {"unknown_label": 600, "one_label_only": 40}
    assert fields["rows"][0] == {
        "row": 2,
        "field": "labels",
        "kind": "unknown_label",
        "message": fields["rows"][0]["message"],
    }
    assert len(response.content) < 40_000
    fewer = session_api.post(
        "/api/v1/datasets/upload/",
        {"need": "desk", "file": _csv(rows), "max_errors": 5},
        format="multipart",
    )
    assert len(fewer.json()["error"]["fields"]["rows"]) == 5


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({}, 400, None),
        ({"need": "nope"}, 404, None),
        ({"need": "desk", "label_set": "news-sentiment"}, 400, "label_set_mismatch"),
        ({"need": "bare"}, 400, "need_has_no_label_set"),
        ({"need": "desk", "max_errors": 0}, 400, None),
        ({"need": "desk", "max_errors": 5000}, 400, None),
    ],
)
def test_upload_bad_input_is_a_clear_4xx(
    session_api, tenant_a, need, label_sets, data, status, code
):
    NeedFactory(tenant=tenant_a, slug="bare", requested_labels=["news.sport"])
    response = session_api.post(
        "/api/v1/datasets/upload/",
        {**data, "file": _csv([("x y z", "Sport")])},
        format="multipart",
    )
    assert response.status_code == status, response.content
    if code:
        assert response.json()["error"]["code"] == code


def test_another_tenants_need_is_a_404(api, charlie, need):
    api.force_authenticate(charlie)
    response = api.post(
        "/api/v1/datasets/upload/",
        {"need": "desk", "file": _csv([("x y z", "Money desk")])},
        format="multipart",
    )
    assert response.status_code == 404
    assert not TrainingSample.objects.dangerously_unscoped().exists()


def test_the_portal_upload_shows_counts_and_the_first_rows_only(client, alice, need):
    client.force_login(alice)
    rows = [(f"text number {n}", "weather") for n in range(250)]
    response = client.post(
        "/models/datasets/upload/", {"label_set": "news-topics", "file": _csv(rows)}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "unknown_label</code> 250" in page
    assert "The first 100 of 250 row errors" in page
    assert page.count("<tr><td>") == 100


def test_the_portal_upload_takes_a_need_and_its_own_names(client, alice, tenant_a, need):
    client.force_login(alice)
    assert 'name="need"' in client.get("/models/datasets/upload/").content.decode()
    response = client.post(
        "/models/datasets/upload/",
        {"need": "desk", "file": _csv([("Bank profits rose", "Money desk")])},
    )
    assert response.status_code == 200, response.content.decode()[-2000:]
    assert _stored_labels(tenant_a) == {"Bank profits rose": ["news.business"]}
    neither = client.post("/models/datasets/upload/", {"file": _csv([("x", "Sport")])})
    assert "Choose a label set or one of your needs." in neither.content.decode()
