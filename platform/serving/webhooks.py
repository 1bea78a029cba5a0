"""Signed webhook delivery of stream results, retried with exponential backoff and jitter.

The receiver verifies `X-TP-Signature: sha256=<hex>` = HMAC-SHA256(Tenant.webhook_secret,
"<X-TP-Timestamp>." + raw body) and rejects stale timestamps. After WEBHOOK_MAX_ATTEMPTS failed
attempts a delivery becomes a dead letter, listed in the API, the portal and the admin, and can be
replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.querysets import acts_for_tenant
from core.queues import task_send
from serving.models import DeliveryStatus, WebhookDelivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-TP-Signature"
TIMESTAMP_HEADER = "X-TP-Timestamp"
DELIVERY_HEADER = "X-TP-Delivery"


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(
    *, secret: str, timestamp: str, body: bytes, signature: str, tolerance: int = 300
) -> bool:
    """What a receiver does; used by the tests and shown in the README."""
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret=secret, timestamp=timestamp, body=body), signature)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter around the nominal delay (attempt counts from 1)."""
    nominal = min(
        settings.WEBHOOK_BACKOFF_MAX_SECONDS, settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1)
    )
    return nominal * random.uniform(0.5, 1.5)


def _enqueue(delivery_id: int, countdown: float | None = None) -> None:
    task_send("workers.tasks.online.deliver_webhook", delivery_id, countdown=countdown)


def delivery_create(*, tenant, need, items: list[dict]) -> WebhookDelivery | None:
    """Record a delivery of `items` and send it after the surrounding transaction commits."""
    if not tenant.webhook_url:
        return None
    payload = {"need": need.slug, "tenant": tenant.slug, "items": items}
    delivery = WebhookDelivery.objects.create(
        tenant=tenant, need=need, payload=payload, item_count=len(items)
    )
    transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


@acts_for_tenant(WebhookDelivery, "delivery_id")
def delivery_attempt(*, delivery_id: int) -> str:
    """One attempt. Returns the resulting status; schedules the next attempt on failure."""
    delivery = WebhookDelivery.objects.select_related("tenant").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return delivery.status if delivery else "missing"
    tenant = delivery.tenant
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    if tenant.webhook_url:
        code, error = _post(
            tenant.webhook_url,
            body,
            {
                "Content-Type": "application/json",
                "User-Agent": "tagging-platform-webhooks/1",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(
                    secret=tenant.webhook_secret, timestamp=timestamp, body=body
                ),
                DELIVERY_HEADER: str(delivery.pk),
            },
        )
    else:
        code, error = None, "The tenant has no webhook URL."
    attempt = delivery.attempts + 1
    now = timezone.now()
    # Compare-and-set on `attempts`: a duplicate task for the same attempt changes nothing.
    claim = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    )
    if code is not None and 200 <= code < 300:
        claim.update(
            status=DeliveryStatus.DELIVERED,
            attempts=F("attempts") + 1,
            delivered_at=now,
            last_status_code=code,
            last_error="",
            next_attempt_at=None,
        )
        return DeliveryStatus.DELIVERED
    if attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        claim.update(
            status=DeliveryStatus.DEAD,
            attempts=F("attempts") + 1,
            dead_at=now,
            last_status_code=code,
            last_error=error[:500],
            next_attempt_at=None,
        )
        logger.warning(
            "webhook delivery %s is a dead letter after %s attempts", delivery.pk, attempt
        )
        return DeliveryStatus.DEAD
    delay = backoff_seconds(attempt)
    if claim.update(
        attempts=F("attempts") + 1,
        last_status_code=code,
        last_error=error[:500],
        next_attempt_at=now + timedelta(seconds=delay),
    ):
        _enqueue(delivery.pk, countdown=delay)
    return DeliveryStatus.PENDING


def delivery_replay(*, delivery: WebhookDelivery) -> bool:
    """Send a dead letter again with a fresh attempt budget. False if it was not dead."""
    updated = (
        WebhookDelivery.objects.owned_by(delivery.tenant_id)
        .filter(pk=delivery.pk, status=DeliveryStatus.DEAD)
        .update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            replays=F("replays") + 1,
            dead_at=None,
            next_attempt_at=timezone.now(),
        )
    )
    if updated:
        transaction.on_commit(lambda: _enqueue(delivery.pk))
    return bool(updated)


def webhook_test_send(*, tenant) -> dict:
    """POST a signed test payload to the tenant's webhook now, once, and say what came back:
    `{"delivered", "status_code", "error", "url"}`. Nothing is stored or retried."""
    if not tenant.webhook_url:
        return {
            "delivered": False,
            "status_code": None,
            "error": "No webhook URL is set.",
            "url": "",
        }
    payload = {"test": True, "tenant": tenant.slug, "need": None, "items": []}
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    code, error = _post(
        tenant.webhook_url,
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": "tagging-platform-webhooks/1",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret=tenant.webhook_secret, timestamp=timestamp, body=body),
            DELIVERY_HEADER: "test",
        },
    )
    delivered = code is not None and 200 <= code < 300
    return {
        "delivered": delivered,
        "status_code": code,
        "error": "" if delivered else (error or f"HTTP {code}"),
        "url": tenant.webhook_url,
    }
