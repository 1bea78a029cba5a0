from django.contrib import admin

from review.models import Case, NeedReviewConfig, ReviewItem, ReviewRound, ReviewVerdict


@admin.register(NeedReviewConfig)
class NeedReviewConfigAdmin(admin.ModelAdmin):
    list_display = [
        "need",
        "tenant",
        "accuracy_target",
        "sample_size",
        "window_days",
        "schedule_crontab",
        "held_out_share",
        "sync_review_share",
        "sync_text_retention_days",
    ]
    list_select_related = ["need", "tenant"]
    raw_id_fields = ["need", "tenant", "business_owner", "periodic_task"]
    list_filter = ["tenant"]


class ReviewItemInline(admin.TabularInline):
    model = ReviewItem
    fields = ["position", "channel", "stratum", "weight", "predicted_labels", "reviews_needed"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(ReviewRound)
class ReviewRoundAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "need",
        "tenant",
        "trigger",
        "status",
        "sample_size",
        "population",
        "signoff",
        "created_at",
    ]
    list_filter = ["status", "trigger", "signoff", "tenant"]
    list_select_related = ["need", "tenant"]
    raw_id_fields = ["need", "tenant", "trigger_alert", "model_version", "created_by", "signoff_by"]
    readonly_fields = ["result", "strata"]
    inlines = [ReviewItemInline]


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["id", "round", "position", "stratum", "weight", "reviews_needed"]
    list_select_related = ["round"]
    raw_id_fields = ["round", "tenant", "prediction", "model_version"]
    search_fields = ["text_hash", "item_ref"]


@admin.register(ReviewVerdict)
class ReviewVerdictAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "slot", "reviewer", "decision", "answered_at"]
    list_filter = ["decision"]
    raw_id_fields = ["item", "tenant", "reviewer"]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["id", "need", "tenant", "source", "status", "cause", "held_out", "created_at"]
    list_filter = ["status", "source", "cause", "held_out", "tenant"]
    list_select_related = ["need", "tenant"]
    raw_id_fields = [
        "need",
        "tenant",
        "model_version",
        "review_item",
        "reported_by",
        "triaged_by",
        "decided_by",
        "sample",
    ]
    search_fields = ["text_hash", "text", "item_ref"]
