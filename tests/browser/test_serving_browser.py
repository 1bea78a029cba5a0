"""The serving portal in Chromium: "try it" with htmx, and a batch whose progress bar moves live."""

from __future__ import annotations

import pytest

from serving import services
from tests.conftest import login
from tests.serving.conftest import _fresh_runtime  # noqa: F401  (autouse: clean runtime caches)
from tests.serving.factories import make_served_need

pytestmark = pytest.mark.browser

SPORT = "football match goal striker league coach stadium penalty"


@pytest.fixture
def served(tenant_a):
    return make_served_need(tenant=tenant_a, slug="news", label_mapping={"Sport": "news.sport"})


def test_try_it_shows_tags_and_scores(live_server, page, alice, served, screenshot):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/serving/try/")
    page.select_option("#try-need", "news")
    page.fill("#try-text", SPORT)
    page.click("#try-submit")
    page.wait_for_selector("#try-output")
    assert page.locator(".tag-label").all_inner_texts() == ["Sport"]
    assert page.locator("#try-scores tbody tr").count() == 3
    screenshot(page, "serving-try")


def test_batch_upload_progress_bar_moves_live(
    live_server, page, alice, served, screenshot, settings, monkeypatch, tmp_path
):
    settings.BATCH_CHUNK_SIZE = 3
    queued: list[int] = []
    # Hold the chunks back so the test can run them one by one and watch the page follow.
    monkeypatch.setattr(services, "_enqueue_chunks", lambda ids: queued.extend(ids))
    source = tmp_path / "backlog.csv"
    source.write_text("id,text\n" + "".join(f"b{n},{SPORT} {n}\n" for n in range(9)))

    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/serving/batches/")
    page.select_option("select[name=need]", "news")
    page.set_input_files("input[name=file]", str(source))
    page.click("#batch-upload button[type=submit]")
    page.wait_for_selector(".batch-progress")
    assert "0/9" in page.locator(".batch-progress").inner_text()
    assert len(queued) == 3

    services.batch_chunk_run(chunk_id=queued[0])
    page.wait_for_function(
        "() => document.querySelector('.batch-progress').innerText.includes('3/9')"
    )
    assert page.locator("progress[aria-label^='progress of batch']").get_attribute("value") == "3"
    screenshot(page, "serving-batch-running")

    for chunk_id in queued[1:]:
        services.batch_chunk_run(chunk_id=chunk_id)
    page.wait_for_function(
        "() => document.querySelector('.batch-progress').innerText.includes('9/9')"
    )
    assert page.locator("#batch-jobs .badge").first.inner_text().lower() == "succeeded"
    link = page.locator("#batch-jobs a", has_text="CSV").first.get_attribute("href")
    content = page.request.get(f"{live_server.url}{link}").text()  # with the session cookie
    assert content.splitlines()[0].startswith("id,labels") and "b8,Sport" in content
    screenshot(page, "serving-batch-done")
