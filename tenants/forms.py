"""Portal forms. They parse and type-check; the domain rules live in tenants.services."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.edge import db_int_bounds
from taxonomy.selectors import split_terms, visible_label_sets
from tenants.models import ApiKeyScope, Delivery, Need, Role


def parse_mapping(text: str) -> dict[str, str]:
    """`Your name = label.key`, one per line (`:` and `→` work too)."""
    mapping: dict[str, str] = {}
    problems = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        for sep in ("=", "→", ":"):
            if sep in line:
                name, _sep, key = line.partition(sep)
                break
        else:
            problems.append(
                _("Line %(number)d: write “your name = label.key”.") % {"number": number}
            )
            continue
        if not name.strip() or not key.strip():
            problems.append(_("Line %(number)d: both sides are needed.") % {"number": number})
            continue
        mapping[name.strip()] = key.strip()
    if problems:
        raise ValidationError(problems)
    return mapping


class LabelSetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        owner = obj.tenant.slug if obj.tenant_id else _("shared")
        return f"{obj.slug} ({owner})"


class NeedForm(forms.Form):
    name = forms.CharField(max_length=200, label=gettext_lazy("Name"))
    slug = forms.SlugField(
        max_length=80,
        required=False,
        label=gettext_lazy("Slug"),
        help_text=gettext_lazy("Used in URLs and the API; made from the name if empty."),
    )
    goal = forms.CharField(
        max_length=300,
        required=False,
        label=gettext_lazy("Goal"),
        help_text=gettext_lazy("The business goal, in a few words."),
    )
    requested_labels = forms.CharField(
        required=False,
        label=gettext_lazy("Labels you need"),
        help_text=gettext_lazy(
            "Keys, names in English or Chinese, or synonyms, separated by commas."
        ),
        widget=forms.TextInput(
            attrs={
                "placeholder": gettext_lazy("e.g. Business, 体育, Tech, Politics"),
                "autocomplete": "off",
            }
        ),
    )
    label_set = LabelSetChoiceField(
        queryset=None,
        required=False,
        to_field_name="slug",
        empty_label=gettext_lazy("— none: request a new label set with the labels above —"),
        label=gettext_lazy("Label set"),
        help_text=gettext_lazy("Reuse an existing label set (see the suggestions)."),
    )
    subscribe_model = forms.ModelChoiceField(
        queryset=None,
        required=False,
        to_field_name="name",
        empty_label=gettext_lazy("— none: a model will be trained for this need —"),
        label=gettext_lazy("Serve with an existing model"),
    )
    label_mapping = forms.CharField(
        required=False,
        label=gettext_lazy("Your label names"),
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "Sport = news.sport\nIT = news.tech"}
        ),
        help_text=gettext_lazy("Optional: your own label names → global label keys, one per line."),
    )
    threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=0.0, label=gettext_lazy("Threshold")
    )
    top_k = forms.IntegerField(
        min_value=1,
        max_value=db_int_bounds(Need, "top_k")["max_value"],
        initial=1,
        label=gettext_lazy("Top k"),
    )
    delivery = forms.MultipleChoiceField(
        choices=Delivery.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Delivery.SYNC],
        label=gettext_lazy("Delivery"),
    )
    latency_budget_ms = forms.FloatField(
        min_value=0.001, required=False, label=gettext_lazy("Latency budget (p99 ms)")
    )
    size_budget_kb = forms.IntegerField(
        min_value=1,
        max_value=db_int_bounds(Need, "size_budget_kb")["max_value"],
        required=False,
        label=gettext_lazy("Model size budget (KB)"),
    )
    target_requests_per_s = forms.FloatField(
        min_value=0.001,
        max_value=1_000_000,
        required=False,
        label=gettext_lazy("Target request rate (requests/s, for capacity planning)"),
    )

    def __init__(self, *args, tenant, subscribable=None, editing: bool = False, **kwargs):
        """`subscribable`: the models a new need may be served with (the registry's offers to
        this tenant; the page that shows the form asks the registry). Not used when editing."""
        super().__init__(*args, **kwargs)
        self.fields["label_set"].queryset = visible_label_sets(tenant=tenant)
        if editing:
            del self.fields["slug"]
            del self.fields["subscribe_model"]
        else:
            self.fields["subscribe_model"].queryset = subscribable

    def clean_label_mapping(self) -> dict[str, str]:
        return parse_mapping(self.cleaned_data.get("label_mapping", ""))

    def clean_requested_labels(self) -> list[str]:
        return split_terms(self.cleaned_data.get("requested_labels", ""))

    def service_fields(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("subscribe_model", None)
        data.pop("slug", None)
        if data.get("label_set") is not None:
            data["requested_labels"] = []
        return data


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label=gettext_lazy("Name"))
    scopes = forms.MultipleChoiceField(
        label=gettext_lazy("Scopes"),
        choices=ApiKeyScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKeyScope.TAG, ApiKeyScope.READ],
    )
    expires_at = forms.DateTimeField(
        required=False,
        label=gettext_lazy("Expires at (optional)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's field errors on the matching form fields (others on the form itself)."""
    for field, messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


class MemberInviteForm(forms.Form):
    username = forms.CharField(max_length=150, label=gettext_lazy("Username"))
    email = forms.EmailField(required=False, label=gettext_lazy("Email (optional)"))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER, label=gettext_lazy("Role"))


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, label=gettext_lazy("Role"))
