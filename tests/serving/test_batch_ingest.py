"""Batch uploads streamed end to end: parsed as a stream, staged, stored with COPY in slices whose
chunks are queued as each commits; a file refused anywhere leaves nothing behind."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.utils import timezone

from serving import batch_io, services
from serving.models import BatchChunk, BatchItem, BatchJob, BatchResult, BatchStatus
from tests.serving.factories import make_model, make_served_need

SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"


def upload(client, file, need="news"):
    return client.post("/api/v1/batch-jobs", {"need": need, "file": file}, format="multipart")


def csv_bytes(rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text"])
    writer.writerows(rows)
    return buffer.getvalue().encode()


class GeneratedCsv(io.RawIOBase):
    """A CSV of `rows` rows made up as it is read (never a bytes object of the whole file)."""

    def __init__(self, rows: int, *, bad_last: bool = False) -> None:
        self.rows, self.bad_last = rows, bad_last
        self.seek(0)

    def _lines(self):
        yield b"id,text\n"
        for n in range(self.rows):
            text = "   " if self.bad_last and n == self.rows - 1 else f"{SPORT} {TECH} n{n} " * 6
            yield f"r{n},{text}\n".encode()

    def size(self) -> int:
        self.seek(0)
        total = sum(len(line) for line in self._lines())
        self.seek(0)
        return total

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        assert offset == 0 and whence == 0, "the parser only ever rewinds"
        self._source, self._held, self._pos = self._lines(), b"", 0
        return 0

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        while len(self._held) < len(buffer):
            line = next(self._source, None)
            if line is None:
                break
            self._held += line
        data, self._held = self._held[: len(buffer)], self._held[len(buffer) :]
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def generated_upload(rows: int, **kwargs) -> UploadedFile:
    source = GeneratedCsv(rows, **kwargs)
    return UploadedFile(source, "big.csv", "text/csv", source.size())


# --- streaming parse --------------------------------------------------------------------------
def test_a_large_upload_is_parsed_without_holding_it_in_memory(settings):
    settings.UPLOAD_MAX_BYTES = 1 << 30
    rows = 60_000
    file = generated_upload(rows)
    assert file.size > 40 * 1024 * 1024
    tracemalloc.start()
    try:
        staged = batch_io.parse_upload(file)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert len(staged) == rows
        # The file is 40+ MB; what the parse holds is a few read buffers, one row and 16 bytes
        # per row for the duplicate check (about 1 MB here).
        assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while parsing"
        last = list(staged.rows(rows - 2, rows))
        assert [(p, i) for p, i, _ in last] == [
            (rows - 2, f"r{rows - 2}"),
            (rows - 1, f"r{rows - 1}"),
        ]
    finally:
        staged.close()


def test_a_bad_row_at_the_end_of_a_large_upload_is_reported_by_its_line(settings):
    settings.UPLOAD_MAX_BYTES = 1 << 30
    rows = 20_000
    with pytest.raises(Exception) as refused:
        batch_io.parse_upload(generated_upload(rows, bad_last=True))
    assert refused.value.code == "empty_text"
    assert list(refused.value.fields) == [f"line {rows + 1}"]


def test_staged_rows_keep_every_character_through_the_copy_format():
    texts = ["a\\b", "tab\there", "cr\rlf\n", "\\.", "\\N", "end\\", "x\\\\ty", "NULL"]
    staged = batch_io.stage_rows([(f"i\t{n}\\", text) for n, text in enumerate(texts)])
    try:
        assert [(i, t) for _, i, t in staged.rows()] == [
            (f"i\t{n}\\", text) for n, text in enumerate(texts)
        ]
    finally:
        staged.close()


# --- storing: COPY, slices, early dispatch -----------------------------------------------------
def test_items_are_stored_with_copy_on_postgresql(
    requires_postgres, monkeypatch, django_capture_on_commit_callbacks, api_a, need_a
):
    copies = []
    original = services._BlockReader.__init__

    def spy(self, blocks):
        copies.append(1)
        original(self, blocks)

    monkeypatch.setattr(services._BlockReader, "__init__", spy)
    rows = [(f"c{n}", f"{SPORT} \\. \t {n}\r\nline") for n in range(700)]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api_a, SimpleUploadedFile("x.csv", csv_bytes(rows)))
    assert response.status_code == 201, response.content
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    # 700 items in chunks of 250: slices of 1 and 2 chunks, one COPY each.
    assert len(copies) == 2
    stored = list(job.items.order_by("position").values_list("position", "external_id", "text"))
    assert stored == [(n, item_id, text) for n, (item_id, text) in enumerate(rows)]
    assert job.status == BatchStatus.SUCCEEDED and job.done_items == 700


@pytest.mark.django_db(transaction=True)
def test_the_first_chunks_are_queued_before_the_last_items_are_stored(
    settings, monkeypatch, tenant_a, api_a
):
    settings.BATCH_CHUNK_SIZE = 3
    settings.BATCH_INGEST_SLICE_CHUNKS = 2
    need_a = make_served_need(tenant=tenant_a, slug="news", version=make_model())
    sent: list[tuple[list[int], int]] = []

    def record(chunk_ids):
        job_id = BatchChunk.objects.get(pk=chunk_ids[0]).job_id
        sent.append((chunk_ids, BatchItem.objects.filter(job_id=job_id).count()))

    monkeypatch.setattr(services, "_enqueue_chunks", record)
    rows = [(f"e{n}", SPORT if n % 2 else TECH) for n in range(20)]
    response = upload(api_a, SimpleUploadedFile("x.csv", csv_bytes(rows)))
    assert response.status_code == 201, response.content
    # Slices of 1, 2, 2, 2 chunks (3 items each, the last one 2): each queued when it committed,
    # while the items after it were not stored yet.
    assert [(len(ids), stored) for ids, stored in sent] == [(1, 3), (2, 9), (2, 15), (2, 20)]
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert [c for ids, _ in sent for c in ids] == list(
        job.chunks.order_by("index").values_list("pk", flat=True)
    )
    for ids, _ in sent:
        for chunk_id in ids:
            assert services.batch_chunk_run(chunk_id=chunk_id) == "done"
    job.refresh_from_db()
    assert job.status == BatchStatus.SUCCEEDED
    assert BatchResult.objects.filter(job=job).count() == 20
    assert need_a.pk == job.need_id


@pytest.mark.django_db(transaction=True)
def test_a_job_cancelled_while_its_items_are_stored_stores_no_further_slice(
    settings, monkeypatch, tenant_a, api_a
):
    settings.BATCH_CHUNK_SIZE = 2
    settings.BATCH_INGEST_SLICE_CHUNKS = 1
    make_served_need(tenant=tenant_a, slug="news", version=make_model())

    def cancel_on_first(chunk_ids):
        job = BatchChunk.objects.get(pk=chunk_ids[0]).job
        services.batch_job_cancel(job=job)

    monkeypatch.setattr(services, "_enqueue_chunks", cancel_on_first)
    response = upload(
        api_a, SimpleUploadedFile("x.csv", csv_bytes([(f"k{n}", SPORT) for n in range(9)]))
    )
    assert response.status_code == 201
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert job.status == BatchStatus.CANCELLED
    assert job.items.count() == 2 and job.chunks.count() == 1


def test_a_broker_outage_during_the_upload_leaves_the_chunks_to_the_sweeper(
    settings, monkeypatch, django_capture_on_commit_callbacks, api_a, need_a
):
    settings.BATCH_CHUNK_SIZE = 2

    def broker_down(chunk_ids):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(services, "_enqueue_chunks", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            api_a, SimpleUploadedFile("x.csv", csv_bytes([(f"o{n}", SPORT) for n in range(7)]))
        )
    assert response.status_code == 201, response.content
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert job.status == BatchStatus.QUEUED and job.items.count() == 7
    assert list(job.chunks.values_list("status", "queued_at")) == [("pending", None)] * 4
    monkeypatch.undo()
    settings.BATCH_SWEEP_SECONDS = 0.1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.batch_chunks_sweep() == 4  # the sweeper sends them (eager: runs them)
    job.refresh_from_db()
    assert job.status == BatchStatus.SUCCEEDED and job.done_items == 7


# --- refused files leave nothing --------------------------------------------------------------
@pytest.mark.parametrize(
    "last, code, status",
    [
        ("r5,  ", "empty_text", 400),
        ("r7,again", "duplicate_ids", 400),  # r7 is an id from the start of the file
        ('r9,"never closed', "malformed_csv", 400),
    ],
)
def test_an_invalid_row_late_in_the_file_leaves_no_job_items_or_chunks(
    monkeypatch, api_a, need_a, last, code, status
):
    queued = []
    monkeypatch.setattr(services, "_enqueue_chunks", queued.append)
    body = csv_bytes([("r7", TECH)] + [(f"r{n}", f"{SPORT} {n}") for n in range(10, 3000)])
    body += last.encode() + b"\n"
    response = upload(api_a, SimpleUploadedFile("late.csv", body))
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert list(response.json()["error"]["fields"]) == ["line 2993"]
    assert not BatchJob.objects.dangerously_unscoped().exists()
    assert not BatchItem.objects.exists() and not BatchChunk.objects.exists()
    assert queued == []


def test_the_portal_refuses_a_late_invalid_row_and_creates_nothing(client, alice, need_a):
    client.force_login(alice)
    body = csv_bytes([(f"p{n}", SPORT) for n in range(2000)] + [("p1", TECH)])
    response = client.post(
        "/serving/batches/",
        {"need": "news", "file": SimpleUploadedFile("d.csv", body)},
        follow=True,
    )
    page = response.content.decode()
    assert "Line 2002: Duplicate id &#x27;p1&#x27; (first on line 3)." in page
    assert not BatchJob.objects.dangerously_unscoped().exists()
    assert not BatchItem.objects.exists()


def test_a_file_over_the_upload_limit_is_measured_not_kept(settings, api_a, need_a):
    settings.UPLOAD_MAX_BYTES = 4000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # spooled to disk above this
    body = csv_bytes([(f"b{n}", SPORT) for n in range(200)])
    response = upload(api_a, SimpleUploadedFile("big.csv", body))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
    assert f"The file is {len(body)} bytes; at most 4000" in response.json()["error"]["message"]
    assert not BatchJob.objects.dangerously_unscoped().exists()


# --- the download -----------------------------------------------------------------------------
def reference_csv(job, rows) -> bytes:
    """The download as the pre-streaming code built it: every result in memory, texts from the
    uploaded rows (not from storage), the same columns and writer."""
    results = list(
        BatchResult.objects.filter(job=job)
        .order_by("position")
        .values_list(
            "position",
            "external_id",
            "labels",
            "scores",
            "model_version__registered_model__name",
            "model_version__version",
        )
    )
    dicts = [
        {
            "id": external_id,
            "labels": labels,
            "scores": scores,
            "model": model,
            "model_version": version,
            "text": rows[position][1],
        }
        for position, external_id, labels, scores, model, version in results
    ]
    return "".join(batch_io.render_csv(dicts)).encode()


def test_the_streamed_download_equals_the_in_memory_rendering(
    settings, django_capture_on_commit_callbacks, api_a, need_a
):
    settings.BATCH_CHUNK_SIZE = 7
    rows = [(f"d{n}", (SPORT, TECH, f'=1+1 "q" {n}\nx')[n % 3]) for n in range(60)]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api_a, SimpleUploadedFile("x.csv", csv_bytes(rows)))
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    download = api_a.get(f"/api/v1/batch-jobs/{job.pk}/results?format=csv")
    assert download.streaming
    assert b"".join(download.streaming_content) == reference_csv(job, rows)
    header = next(csv.reader(io.StringIO(reference_csv(job, rows).decode())))
    assert header == [*batch_io.CSV_COLUMNS, "text"]
    jsonl = b"".join(
        api_a.get(f"/api/v1/batch-jobs/{job.pk}/results?format=jsonl").streaming_content
    )
    assert [json.loads(line)["text"] for line in jsonl.decode().splitlines()] == [
        t for _, t in rows
    ]


# --- a web process that dies while storing ----------------------------------------------------
def test_a_job_whose_items_stopped_being_stored_is_failed_by_the_sweeper(
    settings, tenant_a, need_a
):
    settings.BATCH_INGEST_STALL_SECONDS = 60
    old = timezone.now() - timedelta(seconds=120)
    job = BatchJob.objects.create(
        tenant=tenant_a, need=need_a, source="upload", total_items=10, chunk_size=3, created_at=old
    )
    BatchChunk.objects.create(job=job, index=0, start=0, end=3, queued_at=old)
    fresh = BatchJob.objects.create(
        tenant=tenant_a, need=need_a, source="upload", total_items=10, chunk_size=3
    )
    done = BatchJob.objects.create(
        tenant=tenant_a, need=need_a, source="upload", total_items=3, chunk_size=3, created_at=old
    )
    BatchChunk.objects.create(job=done, index=0, start=0, end=3, queued_at=old)
    assert services.batch_ingest_stalled() == 1
    job.refresh_from_db()
    fresh.refresh_from_db()
    done.refresh_from_db()
    assert job.status == BatchStatus.FAILED and "after 3 of 10 items" in job.error
    assert fresh.status == done.status == BatchStatus.QUEUED
