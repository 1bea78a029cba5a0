"""Batch results keep their stable keys and the tenant's names; `label_names=<language>` adds
each label's taxonomy name in that language, and only that."""

from __future__ import annotations

import csv
import io
import json

import pytest

from taxonomy.models import Label
from tests.serving.test_batch import SPORT, TECH, csv_file, upload

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def job_id(django_capture_on_commit_callbacks, api_a, need_a):
    Label.objects.filter(key="news.tech").update(name_en="Technology", name_zh="科技")
    Label.objects.filter(key="news.sport").update(name_en="Sport", name_zh="体育")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api_a, csv_file([("a", SPORT), ("b", TECH)]))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_label_names_add_a_column_in_the_asked_language(api_a, job_id):
    plain = _body(api_a.get(f"/api/v1/batch-jobs/{job_id}/results?format=csv"))
    named = _body(api_a.get(f"/api/v1/batch-jobs/{job_id}/results?format=csv&label_names=zh-hans"))
    plain_rows = list(csv.DictReader(io.StringIO(plain)))
    named_rows = list(csv.DictReader(io.StringIO(named)))
    assert "label_names" not in plain_rows[0]
    # The tenant's name ("Sport") and the unmapped global key stay as they are.
    assert [r["labels"] for r in named_rows] == [r["labels"] for r in plain_rows]
    assert [r["labels"] for r in named_rows] == ["Sport", "news.tech"]
    assert [r["label_names"] for r in named_rows] == ["体育", "科技"]
    assert list(named_rows[0])[-1] == "text"  # the text stays the last column


def test_jsonl_label_names_in_english(api_a, job_id):
    url = f"/api/v1/batch-jobs/{job_id}/results?format=jsonl&label_names=en"
    lines = [json.loads(line) for line in _body(api_a.get(url)).splitlines()]
    assert [line["labels"] for line in lines] == [["Sport"], ["news.tech"]]
    assert [line["label_names"] for line in lines] == [["Sport"], ["Technology"]]


def test_an_unknown_language_is_a_400_and_accept_language_changes_nothing_else(api_a, job_id):
    bad = api_a.get(f"/api/v1/batch-jobs/{job_id}/results?format=csv&label_names=fr")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    english = _body(api_a.get(f"/api/v1/batch-jobs/{job_id}/results?format=csv"))
    chinese = _body(
        api_a.get(f"/api/v1/batch-jobs/{job_id}/results?format=csv", HTTP_ACCEPT_LANGUAGE="zh")
    )
    assert english == chinese
