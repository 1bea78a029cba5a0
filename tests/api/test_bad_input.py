"""The outside acceptance test's bad-input catalogue (issue 11, point 10): every item is a clear
4xx in the one JSON error shape, never a 5xx and never HTML under /api/."""

from __future__ import annotations

import json
import logging

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.conftest import api_client_for_key

DEEP = b"[" * 100_000 + b"]" * 100_000
TEXT = "The striker scored twice in the cup final."


@pytest.fixture
def api(seeded):
    return api_client_for_key(seeded["key"])


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()["error"]
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body


def post_raw(client, url: str, body: bytes, content_type: str = "application/json"):
    return client.generic("POST", url, body, content_type=content_type)


# --- JSON bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/needs/news/tag",  # serving's own hot-path reader
        "/api/v1/needs/news/items",
        "/api/v1/feedback",  # DRF's parser
        "/api/v1/needs/",
        "/api/v1/batch-jobs",
    ],
)
def test_json_nested_100k_deep_is_a_400(api, url):
    assert_error(post_raw(api, url, DEEP), 400, "too_deep")


def test_json_nested_just_over_the_limit_is_refused_and_at_the_limit_accepted(api):
    from core.edge import MAX_JSON_DEPTH

    def nested(depth: int) -> bytes:
        # The object is level 1; `x` holds depth - 1 nested lists.
        lists = depth - 1
        return b'{"labels": ["news"], "x": ' + b"[" * lists + b"]" * lists + b"}"

    too_deep = post_raw(api, "/api/v1/reuse-suggestions/", nested(MAX_JSON_DEPTH + 1))
    assert_error(too_deep, 400, "too_deep")
    response = post_raw(api, "/api/v1/reuse-suggestions/", nested(MAX_JSON_DEPTH))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "body, code",
    [
        (b'{"items": [{"id": "a", "text": NaN}]}', "invalid"),
        (b'{"items": [{"id": "a", "text": "x"}], "n": Infinity}', "invalid"),
        (b'{"items": [{"id": "a", "text": "x"}], "n": 1e400}', "invalid"),
        (b'{"items": [{"id": "a", "text": "x"}], "n": 99999999999999999999999}', "invalid"),
        (b'{"items": [{"id": "a\\u0000", "text": "x"}]}', "invalid"),
        (b'{"items": [{"id": "a", "text": "x\\ud800"}]}', "invalid_utf8"),
        (b'{"it\\u0000ems": []}', "invalid"),
        (b'{"items": [', "malformed_json"),
        (b"\xff\xfe", "invalid_utf8"),
    ],
)
def test_json_values_no_column_can_hold_are_refused_at_the_edge(api, body, code):
    assert_error(post_raw(api, "/api/v1/needs/news/tag", body), 400, code)
    assert_error(post_raw(api, "/api/v1/feedback", body), 400, code)


def test_body_of_an_unsupported_media_type_is_a_415(api):
    response = post_raw(api, "/api/v1/feedback", b'{"events": []}', content_type="text/csv")
    assert_error(response, 415, "unsupported_media_type")


# --- query parameters ----------------------------------------------------------------------
def _paginated_list_paths(seeded) -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    values = {
        "{need_slug}": seeded["need"].slug,
        "{slug}": "news-topics",
        "{key}": "news.sport",
        "{id}": str(seeded["version"].registered_model_id),
    }
    paths = []
    for path, item in schema["paths"].items():
        get = item.get("get")
        if get and any(p["name"] == "limit" for p in get.get("parameters", [])):
            if path.startswith("/api/v1/needs/"):  # a need's own lists: {slug} is the need's
                path = path.replace("{slug}", seeded["need"].slug)
            for placeholder, value in values.items():
                path = path.replace(placeholder, value)
            paths.append(path)
    return paths


@pytest.mark.parametrize(
    "query", ["limit=9223372036854775808", "offset=9223372036854775808", "limit=0", "limit=x"]
)
def test_out_of_range_limit_or_offset_on_every_paginated_list_is_a_400(seeded, query):
    from rest_framework.test import APIClient

    # A staff member who is also the tenant's admin reaches every list (keys and tenants too).
    person = APIClient()
    seeded["user"].is_staff = True
    seeded["user"].save()
    person.force_login(seeded["user"])
    paths = _paginated_list_paths(seeded)
    assert len(paths) >= 10  # every list view, not a sample
    for path in paths:
        body = assert_error(person.get(f"{path}?{query}"), 400, "invalid")
        assert set(body["fields"]) <= {"limit", "offset"}, (path, body)


def test_bounded_limit_and_offset_still_page(seeded, api):
    response = api.get("/api/v1/taxonomy/labels/?limit=2&offset=1")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/taxonomy/labels/?q=%00",
        "/api/v1/needs/news/items?ids=a%00b",
        "/api/v1/predictions/?need=%00",
        "/api/v1/versions/?model=1&x%00=1",
    ],
)
def test_nul_in_a_query_parameter_is_a_400(api, url):
    assert_error(api.get(url), 400, "invalid")


def test_invalid_utf8_in_a_query_parameter_is_a_400(api):
    # %ED%A0%80 is a UTF-8-encoded lone surrogate.
    assert_error(api.get("/api/v1/taxonomy/labels/?q=%ED%A0%80"), 400, "invalid_utf8")


@pytest.mark.parametrize(
    "since", ["2020-02-30T00:00:00Z", "2020-01-01T00:00:00+17:13", "2020-13-01", "yesterday"]
)
def test_impossible_dates_and_offsets_are_a_400(api, since):
    from urllib.parse import quote

    for url in ("/api/v1/needs/news/items", "/api/v1/predictions/"):
        body = assert_error(api.get(f"{url}?since={quote(since)}"), 400, "invalid")
        assert "since" in body["fields"]


def test_a_real_offset_is_accepted(api):
    assert api.get("/api/v1/predictions/?since=2020-01-01T00:00:00%2B05:45").status_code == 200


@pytest.mark.parametrize("model", ["9223372036854775808", "-1", "1x"])
def test_integer_query_parameters_are_bounded(api, model):
    assert_error(api.get(f"/api/v1/versions/?model={model}"), 400, "invalid")
    assert_error(api.get(f"/api/v1/versions/compare/?a={model}&b=1"), 400, "invalid")


# --- bodies with out-of-range or NUL values ------------------------------------------------
def test_nul_in_batch_item_ids_is_a_400(api):
    response = api.post(
        "/api/v1/batch-jobs", {"need": "news", "item_ids": ["item-1\x00"]}, format="json"
    )
    assert_error(response, 400, "invalid")


def test_nul_in_a_multipart_field_is_a_400(api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("a.csv", f"id,text\n1,{TEXT}\n".encode())
    assert_error(api.post("/api/v1/batch-jobs", {"need": "news\x00", "file": upload}), 400)
    upload = SimpleUploadedFile("a.csv", b"text,labels\nok,news.sport\n")
    response = api.post("/api/v1/datasets/upload/", {"label_set": "\x00", "file": upload})
    assert_error(response, 400)


@pytest.mark.parametrize(
    "field, value",
    [("size_budget_kb", 1099511627776), ("size_budget_kb", 2**31), ("top_k", 40000)],
)
def test_out_of_range_integers_are_a_400_naming_the_field(api, field, value):
    body = {"name": "Budget", "requested_labels": ["news.sport"], field: value}
    response = api.post("/api/v1/needs/", body, format="json")
    assert field in assert_error(response, 400, "invalid")["fields"]
    response = api.patch("/api/v1/needs/news/", {field: value}, format="json")
    assert field in assert_error(response, 400, "invalid")["fields"]


def test_an_infinite_budget_is_refused_at_the_edge(api):
    raw = b'{"name": "Budget", "latency_budget_ms": 1e999}'
    assert_error(post_raw(api, "/api/v1/needs/", raw), 400, "invalid")


def test_in_range_budget_is_accepted(api):
    response = api.post(
        "/api/v1/needs/",
        {"name": "Budget", "requested_labels": ["news.sport"], "size_budget_kb": 2**31 - 1},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["size_budget_kb"] == 2**31 - 1


def test_out_of_range_training_seed_is_a_400(api):
    response = api.post(
        "/api/v1/training-runs/", {"need": "news", "seed": 1099511627776}, format="json"
    )
    assert "seed" in assert_error(response, 400, "invalid")["fields"]


@pytest.mark.parametrize(
    "filename, content, field",
    [
        ("rows.jsonl", b'{"text": "a\\u0000b", "labels": ["news.sport"]}\n', "text"),
        ("rows.jsonl", b'{"text": "a\\ud800b", "labels": ["news.sport"]}\n', "text"),
        ("rows.jsonl", b'{"text": "ok", "labels": ["news.sport\\u0000"]}\n', "labels"),
        ("rows.csv", b"text,labels\nfine text,news.sport\nbad\x00text,news.sport\n", "text"),
    ],
)
def test_nul_or_lone_surrogate_in_a_dataset_upload_is_a_row_error(api, filename, content, field):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from registry.models import TrainingSample

    response = api.post(
        "/api/v1/datasets/upload/",
        {"label_set": "news-topics", "file": SimpleUploadedFile(filename, content)},
    )
    error = assert_error(response, 400)
    rows = error["fields"]["rows"]
    assert any(
        r["field"] == field and "NUL" in r["message"] or "surrogate" in r["message"] for r in rows
    ), rows
    assert not TrainingSample.objects.dangerously_unscoped().filter(text__contains="bad").exists()


# --- errors raised where no DRF handler runs -----------------------------------------------
def test_api_error_in_a_plain_portal_view_is_its_4xx(client, seeded):
    client.force_login(seeded["user"])
    # An unknown download format is a plain 404 page now, never a 500.
    response = client.get(f"/serving/batches/{seeded['job'].pk}/results.xml")
    assert response.status_code == 404

    # Any DomainError a portal view raises still leaves as its own 4xx, in the JSON shape.
    from django.test import RequestFactory

    from core.errors import DomainError
    from tagging_platform.middleware import EdgeValidationMiddleware

    request = RequestFactory().get("/serving/batches/1/results.xml")
    middleware = EdgeValidationMiddleware(lambda r: None)
    converted = middleware.process_exception(
        request, DomainError("invalid", "Unknown format.", status_code=400)
    )
    assert converted.status_code == 400
    assert json.loads(converted.content)["error"]["code"] == "invalid"


def test_subscribe_to_a_model_not_covering_the_mapping_is_a_400(api, seeded):
    from registry.models import RegisteredModel
    from taxonomy.models import LabelSet
    from tests.serving.factories import add_version, set_alias, train_classifier

    sentiment = RegisteredModel.objects.create(
        name="news-sentiment/tfidf-logreg",
        label_set=LabelSet.objects.dangerously_unscoped().get(
            slug="news-sentiment", tenant__isnull=True
        ),
        algorithm="tfidf-logreg",
    )
    set_alias(add_version(sentiment, train_classifier()))
    response = api.post("/api/v1/needs/news/subscribe/", {"model": sentiment.name}, format="json")
    error = assert_error(response, 400, "invalid")
    assert "Sport: 'news.sport' is not served" in error["fields"]["label_mapping"][0]


@pytest.mark.parametrize(
    "url", ["/api/v1/nope", "/api/v1/needs/news/nope/", "/api/v1/", "/api/nope"]
)
def test_unrouted_api_paths_answer_json_404(api, url):
    assert_error(api.get(url), 404, "not_found")
    assert_error(api.post(url, {}, format="json"), 404, "not_found")


def test_unrouted_api_path_is_json_even_without_credentials(client):
    assert_error(client.get("/api/v1/does-not-exist/"), 404, "not_found")


def test_wrong_method_is_a_json_405(api):
    assert_error(api.delete("/api/v1/predictions/"), 405, "method_not_allowed")


def test_an_unexpected_exception_is_a_logged_json_500(api, monkeypatch, caplog):
    from taxonomy import selectors

    def broken():
        raise RuntimeError("boom in a selector")

    monkeypatch.setattr(selectors, "label_tree", broken)
    with caplog.at_level(logging.ERROR, logger="tagging_platform.errors"):
        response = api.get("/api/v1/taxonomy/tree/")
    assert_error(response, 500, "server_error")
    assert "boom" not in response.content.decode()  # no internals to the caller
    record = next(r for r in caplog.records if r.name == "tagging_platform.errors")
    assert record.exc_info and "boom in a selector" in str(record.exc_info[1])


def test_an_exception_outside_drf_under_api_is_a_json_500(client, monkeypatch, caplog, db):
    from drf_spectacular.views import SpectacularAPIView

    def broken(self, request, *args, **kwargs):
        raise RuntimeError("schema broke")

    # SpectacularAPIView is DRF; break Django's side instead: the URL resolver's view call.
    monkeypatch.setattr(SpectacularAPIView, "dispatch", broken)
    with caplog.at_level(logging.ERROR, logger="tagging_platform.errors"):
        response = client.get("/api/schema/")
    assert_error(response, 500, "server_error")
    assert any("schema broke" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/batch-jobs/99999999999999999999999/",
        "/api/v1/batch-jobs/9223372036854775808/results",
        "/api/v1/models/9223372036854775808/versions/",
        "/api/v1/versions/9223372036854775808/card/",
        "/api/v1/training-runs/99999999999999999999999/",
    ],
)
def test_out_of_range_ids_in_paths_are_404(api, url):
    assert_error(api.get(url), 404, "not_found")


@pytest.mark.parametrize(
    "url", ["/taxonomy/?q=%00", "/admin/taxonomy/label/?q=%00", "/models/?x=%ED%A0%80"]
)
def test_nul_or_bad_utf8_in_a_portal_or_admin_query_is_a_400(client, seeded, url):
    seeded["user"].is_staff = seeded["user"].is_superuser = True
    seeded["user"].save()
    client.force_login(seeded["user"])
    response = client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content or b"UTF-8" in response.content


def test_edge_and_drf_errors_are_serialised_byte_for_byte_alike(api):
    """The edge middleware (too deep) and DRF (a 404 and a validation error) answer the same
    compact UTF-8 JSON, so a client parsing or logging raw bodies sees one format."""
    answers = [
        post_raw(api, "/api/v1/needs/news/tag", DEEP),  # edge middleware
        api.get("/api/v1/needs/no-such-need/"),  # DRF
        api.post("/api/v1/needs/", {"slug": "x" * 500}, format="json"),  # DRF validation
    ]
    for response in answers:
        assert response.status_code in (400, 404), response.content[:200]
        raw = response.content.decode()
        canonical = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":"))
        assert raw == canonical
