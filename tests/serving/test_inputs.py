"""Input handling found wrong from outside: duplicate ids, media types, signed-in POSTs, CSV
quoting and line numbers, and how the portal reports a refused upload."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core import csv_io
from serving.models import BatchJob, Item

SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"


def error(response):
    return response.json()["error"]


def upload(client, name: str, body: bytes, need="news"):
    file = SimpleUploadedFile(name, body)
    return client.post("/api/v1/batch-jobs", {"need": need, "file": file}, format="multipart")


# --- duplicate ids ----------------------------------------------------------------------------
def test_duplicate_ids_in_one_sync_request_are_400_naming_them(api_a, need_a):
    items = [
        {"id": "a", "text": SPORT},
        {"id": "b", "text": TECH},
        {"id": "a", "text": TECH},
        {"id": "c", "text": SPORT},
        {"id": "b", "text": SPORT},
    ]
    response = api_a.post("/api/v1/needs/news/tag", {"items": items}, format="json")
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == "duplicate_ids"
    assert "'a'" in body["message"] and "'b'" in body["message"] and "'c'" not in body["message"]
    assert set(body["fields"]) == {"items[2].id", "items[4].id"}
    assert "items[0]" in body["fields"]["items[2].id"][0]


def test_a_numeric_and_a_string_id_that_read_the_same_are_duplicates(api_a, need_a):
    items = [{"id": 7, "text": SPORT}, {"id": "7", "text": TECH}]
    response = api_a.post("/api/v1/needs/news/tag", {"items": items}, format="json")
    assert response.status_code == 400 and error(response)["code"] == "duplicate_ids"


def test_stream_still_reports_a_repeated_id_as_a_duplicate(
    django_capture_on_commit_callbacks, api_a, need_a
):
    """The stream is idempotent per id: a repeat is not re-ingested, and it is named."""
    items = [{"id": "s1", "text": SPORT}, {"id": "s1", "text": TECH}]
    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post("/api/v1/needs/news/items", {"items": items}, format="json")
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": ["s1"]}
    assert Item.objects.dangerously_unscoped().get().text == SPORT


@pytest.mark.parametrize(
    "name, body, lines",
    [
        ("d.csv", f"id,text\nx,{SPORT}\ny,{TECH}\nx,{TECH}\n".encode(), ["line 4"]),
        (
            "d.jsonl",
            "\n".join(
                json.dumps(row)
                for row in [
                    {"id": 1, "text": SPORT},
                    {"id": "2", "text": TECH},
                    {"id": "1", "text": TECH},
                    {"id": 2, "text": SPORT},
                ]
            ).encode(),
            ["line 3", "line 4"],
        ),
    ],
)
def test_duplicate_ids_in_one_batch_file_are_400_naming_them(api_a, need_a, name, body, lines):
    response = upload(api_a, name, body)
    assert response.status_code == 400, response.content
    body = error(response)
    assert body["code"] == "duplicate_ids"
    assert sorted(body["fields"]) == lines
    assert "Repeated:" in body["message"]
    assert not BatchJob.objects.dangerously_unscoped().exists()


# --- media types and signed-in callers --------------------------------------------------------
@pytest.fixture(params=["tag", "items"])
def endpoint(request):
    return f"/api/v1/needs/news/{request.param}"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_that_is_not_declared_json_is_415(api_a, need_a, endpoint, content_type):
    body = json.dumps({"items": [{"id": "1", "text": SPORT}]}).encode()
    response = api_a.generic("POST", endpoint, body, content_type=content_type)
    assert response.status_code == 415, response.content
    assert error(response)["code"] == "unsupported_media_type"
    assert not Item.objects.dangerously_unscoped().exists()


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.example+json"]
)
def test_json_media_types_are_accepted(api_a, need_a, content_type):
    body = json.dumps({"items": [{"id": "1", "text": SPORT}]}).encode()
    response = api_a.generic("POST", "/api/v1/needs/news/tag", body, content_type=content_type)
    assert response.status_code == 200, response.content


CSRF = "k" * 32


@pytest.fixture
def signed_in(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies["csrftoken"] = CSRF
    return client


def test_signed_in_members_can_post_to_tag_and_items(
    django_capture_on_commit_callbacks, signed_in, need_a
):
    body = {"items": [{"id": "1", "text": SPORT}]}
    tagged = signed_in.post("/api/v1/needs/news/tag", body, format="json", HTTP_X_CSRFTOKEN=CSRF)
    assert tagged.status_code == 200, tagged.content
    assert tagged.json()["items"][0]["labels"] == ["Sport"]
    with django_capture_on_commit_callbacks(execute=True):
        ingested = signed_in.post(
            "/api/v1/needs/news/items", body, format="json", HTTP_X_CSRFTOKEN=CSRF
        )
    assert ingested.status_code == 202, ingested.content


def test_signed_in_posts_without_the_csrf_token_are_403(signed_in, need_a, endpoint):
    response = signed_in.post(endpoint, {"items": [{"id": "1", "text": SPORT}]}, format="json")
    assert response.status_code == 403
    assert "CSRF" in error(response)["message"]
    assert not Item.objects.dangerously_unscoped().exists()


# --- CSV quoting and line numbers -------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        # The quote on line 3 never closes: a lenient reader swallowed lines 3-5 as one text.
        f'id,text\n1,{SPORT}\n2,"{TECH}\n3,{SPORT}\n4,{TECH}\n',
        # A later quoted field "closes" it, followed by text that cannot follow a closing quote.
        f'id,text\n1,{SPORT}\n2,"{TECH}\n3,{SPORT}\n4,"quoted" text\n',
    ],
)
def test_a_csv_with_an_unterminated_quote_is_refused_naming_its_line(api_a, need_a, body):
    response = upload(api_a, "d.csv", body.encode())
    assert response.status_code == 400, response.content
    assert error(response)["code"] == "malformed_csv"
    assert error(response)["message"] == "Unterminated quote starting on line 3."
    assert list(error(response)["fields"]) == ["line 3"]
    assert not BatchJob.objects.dangerously_unscoped().exists()


def test_errors_name_the_line_a_multi_line_record_starts_on(api_a, need_a):
    body = f'id,text\n1,"{SPORT}\nsecond line"\n2,"  \n  "\n'.encode()
    response = upload(api_a, "d.csv", body)
    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["line 4"]  # the record on lines 4-5


def test_a_well_formed_multi_line_csv_is_accepted(
    django_capture_on_commit_callbacks, api_a, need_a
):
    body = f'id,text\n1,"{SPORT}\nwith ""quotes"", and commas"\n\n2,{TECH}\n'.encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api_a, "d.csv", body)
    assert response.status_code == 201, response.content
    texts = list(
        BatchJob.objects.dangerously_unscoped()
        .get()
        .items.order_by("position")
        .values_list("text", flat=True)
    )
    assert texts == [f'{SPORT}\nwith "quotes", and commas', TECH]


@pytest.mark.parametrize(
    "text, line",
    [
        ('a,b\n1,"x\n2,y\n', 2),
        ('a,b\n1,"x""\n2,y\n', 2),  # an escaped quote does not close the field
        ('a,b\r\n1,x\r\n2,"open\r\n3,y\r\n', 3),
        ('a,b\n"1\n2",ok\n3,"z"w\n', 4),
        ('a,b\n1,say "hi"\n2,"x\n', 3),  # a quote inside an unquoted field is literal
    ],
)
def test_unterminated_quote_line(text, line):
    with pytest.raises(csv_io.CsvFormatError) as exc:
        list(csv_io.records(text))
    assert exc.value.line == line
    assert exc.value.message == f"Unterminated quote starting on line {line}."


def test_records_carry_their_first_line_and_skip_blank_ones():
    text = 'id,text\n\n1,"two\nlines"\n , \n2,x\n'
    assert list(csv_io.records(text)) == [
        (1, ["id", "text"]),
        (3, ["1", "two\nlines"]),
        (6, ["2", "x"]),
    ]


def test_neutralise_prefixes_only_formula_starts():
    assert [csv_io.neutralise(v) for v in ["=1", "+1", "-1", "@a", "\tx", "\rx", "a=1", 1.5]] == [
        "'=1",
        "'+1",
        "'-1",
        "'@a",
        "'\tx",
        "'\rx",
        "a=1",
        1.5,
    ]


# --- the portal -------------------------------------------------------------------------------
@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def portal_upload(client, name: str, body: bytes) -> str:
    response = client.post(
        "/serving/batches/", {"need": "news", "file": SimpleUploadedFile(name, body)}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


def test_portal_upload_errors_keep_line_numbers_and_show_no_backticks(alice_client, need_a):
    page = portal_upload(alice_client, "d.csv", f"id,text\n1,{SPORT}\n2,  \n3,{TECH}\n".encode())
    assert "Upload refused" in page and "Line 3: The text is empty" in page
    assert "`" not in page

    page = portal_upload(alice_client, "d.csv", b"id,body\n1,x\n")
    assert "&#x27;text&#x27; column" in page and "`" not in page

    page = portal_upload(alice_client, "d.csv", f'id,text\n1,"{SPORT}\n2,x\n'.encode())
    assert "Unterminated quote starting on line 2." in page

    page = portal_upload(alice_client, "d.csv", f"id,text\na,{SPORT}\na,{TECH}\n".encode())
    assert "Line 3: Duplicate id &#x27;a&#x27; (first on line 2)." in page
    assert not BatchJob.objects.dangerously_unscoped().exists()


def test_portal_try_it_ranks_scores_best_first(alice_client, need_a):
    html = alice_client.post("/serving/try/", {"need": "news", "text": TECH}).content.decode()
    rows = html.split('id="try-scores"')[1].split("<tbody>")[1].split("</tbody>")[0]
    values = [float(cell.split("</td>")[0]) for cell in rows.split("<td>")[2::2]]
    assert len(values) == 3 and values == sorted(values, reverse=True)


def test_portal_download_of_an_unknown_format_is_404(
    django_capture_on_commit_callbacks, alice_client, api_a, need_a
):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = upload(api_a, "d.csv", f"id,text\n1,{SPORT}\n".encode()).json()["id"]
    assert alice_client.get(f"/serving/batches/{job_id}/results.xml").status_code == 404
    bad = alice_client.get(f"/serving/batches/{job_id}/results.csv?include_text=maybe")
    assert bad.status_code == 400 and b"include_text" in bad.content


def test_signed_in_posts_of_plain_text_are_415(signed_in, need_a, endpoint):
    body = json.dumps({"items": [{"id": "1", "text": SPORT}]})
    response = signed_in.generic(
        "POST", endpoint, body, content_type="text/plain", HTTP_X_CSRFTOKEN=CSRF
    )
    assert response.status_code == 415
    assert error(response)["code"] == "unsupported_media_type"
