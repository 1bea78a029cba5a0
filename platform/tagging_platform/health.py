"""Liveness (/healthz) and readiness (/readyz).

/readyz checks the database, a broker round trip (a `ping` task through the online worker), a
consumer on every queue (so a dead batch, training or monitoring worker shows), the artifact store,
and whether any production model is refused (an open artifact-integrity incident): that one makes
the status `degraded` (200), the others `unavailable` (503). Anonymous callers get only the
verdicts; the details (paths, transports, errors, refused models) are for signed-in staff and for
callers with the metrics bearer token.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring.metrics_view import bearer_token_given


@require_GET
@never_cache
def healthz(request):
    # The host name says which machine behind the balancer answered (several hosts, one URL).
    return JsonResponse({"status": "ok", "host": socket.gethostname()})


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_broker() -> dict:
    from tagging_platform.celery import app, ping

    started = time.monotonic()
    result = ping.apply_async(retry=False)
    try:
        answer = result.get(timeout=settings.READYZ_TASK_TIMEOUT, disable_sync_subtasks=False)
    finally:
        result.forget() if hasattr(result.backend, "forget") else None
    if answer != "pong":
        raise RuntimeError(f"unexpected answer {answer!r}")
    transport = app.connection_for_write().transport_cls
    return {
        "transport": str(transport),
        "round_trip_ms": round((time.monotonic() - started) * 1000, 1),
        "task_id": result.id,
    }


class QueueWithoutConsumer(RuntimeError):
    pass


#: (monotonic expiry, replies): the last broadcast's answers, shared by this process's probes.
_queues_cache: tuple[float, dict] = (0.0, {})
_queues_lock = threading.Lock()


def _active_queues() -> dict:
    """The workers' "which queues do you consume?" answers. A broadcast waits the whole
    READYZ_INSPECT_TIMEOUT for replies, so its answer is kept READYZ_QUEUES_CACHE_SECONDS: a
    load balancer probing every second costs one broadcast per few seconds, not one per probe,
    and a dead worker still shows within that time."""
    global _queues_cache
    from tagging_platform.celery import app

    with _queues_lock:
        expires, replies = _queues_cache
        if time.monotonic() < expires:
            return replies
        replies = app.control.inspect(timeout=settings.READYZ_INSPECT_TIMEOUT).active_queues()
        replies = replies or {}
        _queues_cache = (time.monotonic() + settings.READYZ_QUEUES_CACHE_SECONDS, replies)
        return replies


def _check_queues() -> dict:
    """Ask every worker which queues it consumes (a control broadcast, answered by the worker's
    main process even while its pool is busy, e.g. training) and report each queue's consumers."""
    from tagging_platform.celery import QUEUES

    replies = _active_queues()
    consumers = {queue: 0 for queue in QUEUES}
    for queues in replies.values():
        for queue in queues or []:
            if queue.get("name") in consumers:
                consumers[queue["name"]] += 1
    report = {queue: {"ok": n > 0, "consumers": n} for queue, n in consumers.items()}
    missing = [queue for queue, n in consumers.items() if n == 0]
    if missing:
        raise QueueWithoutConsumer(report, f"no worker consumes {', '.join(missing)}")
    return report


def _check_artifacts() -> dict:
    if "artifacts" in settings.STORAGES:  # object storage: the bucket answers, the cache writes
        from django.core.files.storage import storages

        storage = storages["artifacts"]
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
        cache = settings.ARTIFACT_CACHE_DIR
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".readyz-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
        return {"backend": "s3", "bucket": storage.bucket_name, "cache": str(cache)}
    root = settings.ARTIFACT_ROOT
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".readyz-{uuid.uuid4().hex}"
    probe.write_bytes(b"ok")
    probe.unlink()
    return {"path": str(root)}


class ServingDegraded(RuntimeError):
    pass


def _check_serving() -> dict:
    """Production model versions whose artifact is refused (an open integrity incident)."""
    from registry.models import ArtifactIntegrityIncident

    refused = [
        {
            "model": incident.model_version.registered_model.name,
            "version": incident.model_version.version,
            "incident": incident.pk,
            "kind": incident.kind,
            "since": incident.first_seen_at.isoformat(),
        }
        for incident in ArtifactIntegrityIncident.objects.filter(
            resolved_at__isnull=True, model_version__aliases__name="production"
        )
        .select_related("model_version__registered_model")
        .distinct()[:50]
    ]
    if refused:
        raise ServingDegraded({"refused_production_models": refused}, "production model refused")
    return {"refused_production_models": []}


#: Checks whose failure makes the instance unready (503).
CHECKS = {
    "database": _check_database,
    "broker": _check_broker,
    "queues": _check_queues,
    "artifacts": _check_artifacts,
}
#: Checks whose failure means degraded service, still ready (200).
SOFT_CHECKS = {"serving": _check_serving}


def details_allowed(request) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return bearer_token_given(request)


def _run(check) -> dict:
    try:
        return {"ok": True, **check()}
    except (QueueWithoutConsumer, ServingDegraded) as exc:
        detail, message = exc.args
        return {"ok": False, "error": message, **detail}
    except Exception as exc:  # a readiness probe reports every failure, whatever its type
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}


@require_GET
@never_cache
def readyz(request):
    report = {name: _run(check) for name, check in CHECKS.items()}
    soft = {name: _run(check) for name, check in SOFT_CHECKS.items()}
    healthy = all(entry["ok"] for entry in report.values())
    degraded = not all(entry["ok"] for entry in soft.values())
    report.update(soft)
    if not details_allowed(request):
        report = {name: {"ok": entry["ok"]} for name, entry in report.items()}
    status = "unavailable" if not healthy else "degraded" if degraded else "ok"
    return JsonResponse({"status": status, "checks": report}, status=200 if healthy else 503)
