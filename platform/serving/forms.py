"""Portal forms of serving. They parse; the rules live in serving.services."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tenants.models import Need

_NAME_MAX = 100


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=_NAME_MAX, label=_("Name"))
    need = forms.ModelChoiceField(
        queryset=Need.objects.none(), to_field_name="slug", label=_("Need")
    )
    crontab = forms.CharField(
        max_length=100,
        initial="0 2 * * *",
        label=_("When (crontab, your time zone)"),
        help_text=_(
            "minute hour day month weekday, e.g. 0 2 * * * = every night at 02:00 your time."
        ),
    )
    enabled = forms.BooleanField(required=False, initial=True, label=_("Enabled"))

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["need"].queryset = (
            Need.objects.for_tenant(tenant).exclude(status="retired").order_by("slug")
        )
        self.fields["need"].label_from_instance = lambda need: f"{need.name} ({need.slug})"


class TenantLanguageForm(forms.Form):
    language = forms.ChoiceField(
        choices=settings.LANGUAGES,
        label=_("Language of alert summaries"),
        help_text=_(
            "The human summary in alert webhooks, and alert e-mails to addresses that are no "
            "portal user's, are written in it. Every other field stays the same."
        ),
    )


class WebhookForm(forms.Form):
    url = forms.URLField(
        max_length=200,
        assume_scheme="https",
        required=False,
        label=_("Webhook URL"),
        help_text=_("Where stream results are POSTed, signed. Empty turns delivery off."),
    )
