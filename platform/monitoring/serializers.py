"""Validation of feedback events (shape here; need and label resolution in the view's context)."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from monitoring.models import FeedbackType
from tenants.models import Need

# Clients' clocks drift; an event "from the future" beyond this is a bug on their side.
_FUTURE_TOLERANCE = timedelta(hours=1)


class FeedbackEventSerializer(serializers.Serializer):
    event_id = serializers.CharField(max_length=100)
    item_id = serializers.CharField(max_length=200)
    label = serializers.CharField(
        max_length=200, help_text="A global label key, or the tenant's own name for it."
    )
    need = serializers.SlugField(max_length=80, help_text="The need's slug.")
    type = serializers.ChoiceField(choices=FeedbackType.choices)
    at = serializers.DateTimeField(required=False, help_text="When it happened (default: now).")

    def validate_at(self, value):
        if timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)
        if value > timezone.now() + _FUTURE_TOLERANCE:
            raise serializers.ValidationError(_("This time is in the future."))
        return value

    def validate(self, attrs):
        resolver: LabelResolver = self.context["resolver"]
        need = resolver.need(attrs["need"])
        if need is None:
            raise serializers.ValidationError({"need": [_("No such need for this tenant.")]})
        key = resolver.label_key(need, attrs["label"])
        if key is None:
            raise serializers.ValidationError(
                {
                    "label": [
                        _("'%(value)s' is not a label of need '%(slug)s'.")
                        % {"value": attrs["label"], "slug": need.slug}
                    ]
                }
            )
        attrs["need"] = need
        attrs["label"] = key
        attrs.setdefault("at", timezone.now())
        return attrs


class FeedbackBatchSerializer(serializers.Serializer):
    events = FeedbackEventSerializer(many=True, allow_empty=False)

    def validate_events(self, value):
        limit = settings.FEEDBACK_MAX_EVENTS
        if len(value) > limit:
            raise serializers.ValidationError(
                _("At most %(limit)s events per request.") % {"limit": limit}
            )
        return value


class FeedbackResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    accepted = serializers.IntegerField(help_text="New events stored.")
    duplicates = serializers.IntegerField(help_text="Event ids already seen (counted once).")


class LabelResolver:
    """Resolves need slugs and label names for one tenant, caching per request."""

    def __init__(self, tenant):
        self.tenant = tenant
        self._needs: dict[str, Need | None] = {}
        self._labels: dict[int, tuple[set[str], dict[str, str]]] = {}

    def need(self, slug: str) -> Need | None:
        if slug not in self._needs:
            self._needs[slug] = (
                Need.objects.for_tenant(self.tenant)
                .select_related("label_set")
                .with_labels()
                .filter(slug=slug)
                .first()
            )
        return self._needs[slug]

    def label_key(self, need: Need, name: str) -> str | None:
        if need.pk not in self._labels:
            keys: set[str] = set()
            if need.label_set_id and (revision := need.label_set.current_revision):
                keys = set(revision.label_keys())
            keys |= set(need.requested_labels or [])
            mapping = {str(k): str(v) for k, v in (need.label_mapping or {}).items()}
            keys |= set(mapping.values())
            self._labels[need.pk] = (keys, mapping)
        keys, mapping = self._labels[need.pk]
        if name in mapping:
            return mapping[name]
        return name if name in keys else None


# --- The monitoring read API and alert actions ------------------------------------------------
class PeriodQuerySerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=["day", "week"], default="day")
    count = serializers.IntegerField(
        min_value=1, max_value=366, default=28, help_text="How many periods, newest last."
    )


class LabelCountSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="Global label key.")
    name = serializers.CharField(help_text="The tenant's name for the label.")
    count = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class AggregateSerializer(serializers.Serializer):
    period = serializers.CharField()
    period_start = serializers.DateField()
    volume = serializers.IntegerField()
    mean_confidence = serializers.FloatField(allow_null=True)
    low_confidence_rate = serializers.FloatField(allow_null=True)
    no_label_rate = serializers.FloatField(allow_null=True)
    labels = LabelCountSerializer(many=True)


class DriftSerializer(serializers.Serializer):
    period = serializers.CharField()
    period_start = serializers.DateField()
    volume = serializers.IntegerField()
    state = serializers.ChoiceField(
        choices=["stable", "drift", "insufficient_data"],
        help_text="insufficient_data below min_volume predictions: neither stable nor drift.",
    )
    psi = serializers.FloatField(allow_null=True)
    js_distance = serializers.FloatField(allow_null=True)
    chi2_p_value = serializers.FloatField(allow_null=True)
    psi_threshold = serializers.FloatField()
    js_threshold = serializers.FloatField()
    min_volume = serializers.IntegerField()
    baseline = serializers.CharField()
    top_movers = serializers.ListField(child=serializers.DictField())


class FeedbackRateSerializer(serializers.Serializer):
    period = serializers.CharField()
    period_start = serializers.DateField()
    label = serializers.CharField(help_text="Global label key.")
    name = serializers.CharField(help_text="The tenant's name for the label.")
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    negative = serializers.IntegerField(help_text="'Not interested' plus 'wrong tag' events.")
    ctr = serializers.FloatField(allow_null=True)
    negative_rate = serializers.FloatField(allow_null=True)


class EvidenceDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    status = serializers.CharField(help_text="ok, flagged or insufficient.")
    value = serializers.FloatField(allow_null=True)
    reference = serializers.FloatField(allow_null=True)
    observed = serializers.FloatField(allow_null=True)
    expected = serializers.FloatField(allow_null=True)


class AlertEvidenceSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="The rule's measure, last day.")
    reference = serializers.FloatField(allow_null=True, help_text="What it is compared with.")
    observed = serializers.FloatField(allow_null=True)
    expected = serializers.FloatField(allow_null=True)
    sample = serializers.IntegerField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    adjusted_p = serializers.FloatField(
        allow_null=True, help_text="Benjamini-Hochberg over labels and days."
    )
    days = EvidenceDaySerializer(many=True)


class AlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    need = serializers.CharField(source="need.slug")
    kind = serializers.CharField()
    kind_display = serializers.CharField(source="get_kind_display")
    label = serializers.CharField(help_text="Global label key ('' for need-wide rules).")
    label_name = serializers.CharField()
    status = serializers.CharField(help_text="open or resolved.")
    severity = serializers.CharField(help_text="warning, or critical once it persists.")
    summary = serializers.CharField(help_text="What happened, in one sentence.")
    first_seen = serializers.DateField()
    last_seen = serializers.DateField()
    days_active = serializers.IntegerField()
    consecutive_days = serializers.IntegerField()
    clean_days = serializers.IntegerField()
    worst_value = serializers.FloatField(allow_null=True)
    worst_day = serializers.DateField(allow_null=True)
    evidence = AlertEvidenceSerializer()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.get_username", allow_null=True, default=None
    )
    ack_note = serializers.CharField()
    snoozed_until = serializers.DateField(allow_null=True)
    snooze_note = serializers.CharField()
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)


class AlertQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["open", "recent"],
        default="open",
        help_text="open: every open alert; recent: every alert seen in the last 30 days.",
    )
    need = serializers.SlugField(required=False, help_text="Only this need's alerts.")


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class SnoozeSerializer(serializers.Serializer):
    until = serializers.DateField(help_text="No notifications up to and including this day.")
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
