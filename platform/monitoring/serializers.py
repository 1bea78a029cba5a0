"""Validation of feedback events (shape here; need and label resolution in the view's context)."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.utils import timezone
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
            raise serializers.ValidationError("This time is in the future.")
        return value

    def validate(self, attrs):
        resolver: LabelResolver = self.context["resolver"]
        need = resolver.need(attrs["need"])
        if need is None:
            raise serializers.ValidationError({"need": ["No such need for this tenant."]})
        key = resolver.label_key(need, attrs["label"])
        if key is None:
            raise serializers.ValidationError(
                {"label": [f"'{attrs['label']}' is not a label of need '{need.slug}'."]}
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
            raise serializers.ValidationError(f"At most {limit} events per request.")
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
