"""Staff views of serving: prediction log, stream items, webhook deliveries, batch jobs, schedules."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from serving import services, webhooks
from serving.models import (
    BatchChunk,
    BatchJob,
    DeliveryStatus,
    Item,
    PredictionLog,
    ScheduledBatch,
    WebhookDelivery,
)


@admin.register(PredictionLog)
class PredictionLogAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "tenant",
        "need",
        "channel",
        "item_ref",
        "top_label",
        "top_score",
        "above_threshold",
        "text_share",
    ]
    list_filter = ["channel", "above_threshold", "day", "tenant"]
    list_select_related = ["tenant", "need"]
    raw_id_fields = ["tenant", "need", "model_version"]
    search_fields = ["item_ref", "text_hash", "top_label"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # the log is large: avoid COUNT(*) on every page


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "need", "external_id", "status", "received_at", "tagged_at"]
    list_filter = ["status", "tenant"]
    list_select_related = ["tenant", "need"]
    raw_id_fields = ["tenant", "need", "model_version"]
    search_fields = ["external_id", "text_hash"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tenant",
        "need",
        "status",
        "attempts",
        "item_count",
        "last_error",
        "created_at",
        "dead_at",
    ]
    list_filter = ["status", "tenant"]
    list_select_related = ["tenant", "need"]
    raw_id_fields = ["tenant", "need"]
    actions = ["replay"]

    @admin.action(description=_("Replay selected dead letters"))
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        replayed = sum(
            webhooks.delivery_replay(delivery=d)
            for d in queryset.filter(status=DeliveryStatus.DEAD)
        )
        self.message_user(
            request,
            _("%(count)s dead letter(s) queued again.") % {"count": replayed},
            messages.SUCCESS,
        )


class BatchChunkInline(admin.TabularInline):
    model = BatchChunk
    extra = 0
    fields = [
        "index",
        "start",
        "end",
        "status",
        "attempts",
        "queued_at",
        "claimed_by",
        "claimed_at",
        "lease_until",
        "done_at",
        "seconds",
    ]
    readonly_fields = fields
    can_delete = False


@admin.register(BatchJob)
class BatchJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tenant",
        "need",
        "source",
        "status",
        "done_items",
        "total_items",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "source", "tenant"]
    list_select_related = ["tenant", "need"]
    raw_id_fields = ["tenant", "need", "created_by"]
    inlines = [BatchChunkInline]
    actions = ["cancel", "requeue_stuck_chunks"]
    readonly_fields = ["chunk_seconds"]

    @admin.action(description=_("Cancel selected jobs"))
    def cancel(self, request: HttpRequest, queryset: QuerySet[BatchJob]) -> None:
        cancelled = sum(services.batch_job_cancel(job=job) for job in queryset)
        self.message_user(
            request, _("%(count)s job(s) cancelled.") % {"count": cancelled}, messages.SUCCESS
        )

    @admin.action(description=_("Re-queue stuck chunks of selected jobs"))
    def requeue_stuck_chunks(self, request: HttpRequest, queryset: QuerySet[BatchJob]) -> None:
        sent = sum(services.batch_chunks_requeue(job=job) for job in queryset)
        self.message_user(
            request,
            _(
                "%(count)s unfinished chunk(s) sent again (a chunk still running may run twice; "
                "only one run commits)."
            )
            % {"count": sent},
            messages.SUCCESS,
        )


@admin.register(ScheduledBatch)
class ScheduledBatchAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tenant",
        "need",
        "name",
        "crontab",
        "enabled",
        "cursor_item_id",
        "last_run_at",
    ]
    list_filter = ["enabled", "tenant"]
    list_select_related = ["tenant", "need"]
    raw_id_fields = ["tenant", "need", "periodic_task", "last_job"]
