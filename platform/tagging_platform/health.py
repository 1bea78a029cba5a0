"""Liveness (/healthz) and readiness (/readyz): database, broker round trip, artifact store."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


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


def _check_artifacts() -> dict:
    root = settings.ARTIFACT_ROOT
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".readyz-{uuid.uuid4().hex}"
    probe.write_bytes(b"ok")
    probe.unlink()
    return {"path": str(root)}


CHECKS = {"database": _check_database, "broker": _check_broker, "artifacts": _check_artifacts}


@require_GET
@never_cache
def readyz(request):
    report: dict[str, dict] = {}
    healthy = True
    for name, check in CHECKS.items():
        try:
            report[name] = {"ok": True, **check()}
        except Exception as exc:  # a readiness probe reports every failure, whatever its type
            healthy = False
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": report},
        status=200 if healthy else 503,
    )
