"""Issue 15.7: scheduled batches in the portal: create, edit, pause, resume, delete, and the runs.

alice = admin of A, bob = viewer of A, charlie = admin of B. The beat entry (django-celery-beat's
PeriodicTask) must always follow the schedule: its crontab, and enabled only while not paused.
"""

import pytest
from django.test import Client
from django_celery_beat.models import PeriodicTask

from serving import services
from serving.models import BatchJob, ScheduledBatch

SPORT = "The striker scored twice as the team won the league match."


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _task(scheduled: ScheduledBatch) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(pk=scheduled.periodic_task_id)


def test_create_edit_pause_resume_and_delete_a_schedule(alice, tenant_a, need_a):
    client = session(alice)
    response = client.post(
        "/serving/schedules/",
        {"name": "nightly", "need": "news", "crontab": "30 3 * * 1-5", "enabled": "on"},
    )
    assert response.status_code == 302
    scheduled = ScheduledBatch.objects.for_tenant(tenant_a).get(name="nightly")
    assert response["Location"] == f"/serving/schedules/{scheduled.pk}/"
    task = _task(scheduled)
    assert task.enabled and str(task.crontab.minute) == "30" and task.crontab.day_of_week == "1-5"
    assert b"nightly" in client.get("/serving/schedules/").content

    edited = client.post(
        f"/serving/schedules/{scheduled.pk}/",
        {
            "action": "save",
            "name": "weekly",
            "need": "news",
            "crontab": "0 6 * * 0",
            "enabled": "on",
        },
    )
    assert edited.status_code == 302
    scheduled.refresh_from_db()
    assert (scheduled.name, scheduled.crontab) == ("weekly", "0 6 * * 0")
    assert str(_task(scheduled).crontab.hour) == "6"

    client.post(f"/serving/schedules/{scheduled.pk}/", {"action": "pause"})
    scheduled.refresh_from_db()
    assert not scheduled.enabled and not _task(scheduled).enabled
    assert b"paused" in client.get(f"/serving/schedules/{scheduled.pk}/").content
    assert services.scheduled_batch_run(scheduled_id=scheduled.pk) is None  # paused: no job

    client.post(f"/serving/schedules/{scheduled.pk}/", {"action": "resume"})
    scheduled.refresh_from_db()
    assert scheduled.enabled and _task(scheduled).enabled

    task_id = scheduled.periodic_task_id
    assert (
        client.post(f"/serving/schedules/{scheduled.pk}/", {"action": "delete"}).status_code == 302
    )
    assert not ScheduledBatch.objects.for_tenant(tenant_a).exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()


def test_the_schedule_page_lists_its_runs(
    alice, tenant_a, need_a, api_a, django_capture_on_commit_callbacks
):
    scheduled = services.scheduled_batch_create(tenant=tenant_a, need=need_a, name="nightly")
    with django_capture_on_commit_callbacks(execute=True):
        api_a.post(
            "/api/v1/needs/news/items",
            {"items": [{"id": i, "text": SPORT} for i in ("a", "b", "c")]},
            format="json",
        )
        job = services.scheduled_batch_run(scheduled_id=scheduled.pk)
    assert BatchJob.objects.for_tenant(tenant_a).get(pk=job.pk).scheduled == scheduled
    page = session(alice).get(f"/serving/schedules/{scheduled.pk}/").content.decode()
    assert f'id="batch-{job.pk}"' in page and "3/3" in page


@pytest.mark.parametrize(
    "body, message",
    [
        ({"name": "x", "need": "news", "crontab": "0 2 * *"}, "five space-separated"),
        ({"name": "x", "need": "news", "crontab": "99 2 * * *"}, "Invalid"),
        ({"name": "", "need": "news", "crontab": "0 2 * * *"}, "required"),
        ({"name": "x", "need": "bravo-news", "crontab": "0 2 * * *"}, "valid choice"),
        ({"name": "taken", "need": "news", "crontab": "0 2 * * *"}, "already have"),
    ],
)
def test_bad_schedules_are_400_with_the_reason(alice, tenant_a, need_a, need_b, body, message):
    services.scheduled_batch_create(tenant=tenant_a, need=need_a, name="taken")
    response = session(alice).post("/serving/schedules/", body)
    assert response.status_code == 400
    assert message.lower() in response.content.decode().lower()
    assert ScheduledBatch.objects.for_tenant(tenant_a).count() == 1


def test_schedules_are_scoped_and_viewers_only_read(alice, bob, charlie, tenant_a, need_a):
    scheduled = services.scheduled_batch_create(tenant=tenant_a, need=need_a, name="nightly")
    url = f"/serving/schedules/{scheduled.pk}/"
    assert session(charlie).get(url).status_code == 404
    assert session(charlie).post(url, {"action": "delete"}).status_code == 404
    assert b"nightly" not in session(charlie).get("/serving/schedules/").content
    viewer = session(bob)
    assert viewer.get(url).status_code == 200
    assert b"pause" not in viewer.get(url).content.lower().split(b"<main")[1].split(b"runs")[0]
    assert viewer.post(url, {"action": "pause"}).status_code == 403
    assert viewer.post("/serving/schedules/", {"name": "x", "need": "news"}).status_code == 403
    scheduled.refresh_from_db()
    assert scheduled.enabled and ScheduledBatch.objects.for_tenant(tenant_a).count() == 1
