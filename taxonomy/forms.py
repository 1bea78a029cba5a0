"""Portal forms of the taxonomy. They parse; the rules live in taxonomy.services."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from taxonomy.models import Label, LabelSetKind
from taxonomy.selectors import resolve_terms, split_terms


class LabelsField(forms.CharField):
    """Labels typed as keys, names (en/zh) or aliases, separated by commas; cleans to keys."""

    def clean(self, value):
        value = super().clean(value)
        resolution = resolve_terms(split_terms(value or ""))
        if resolution.unknown:
            raise ValidationError(
                _("Unknown label(s): %(terms)s. Propose them as new labels first.")
                % {"terms": ", ".join(resolution.unknown)}
            )
        return list(dict.fromkeys(resolution.keys))


class LabelSetForm(forms.Form):
    slug = forms.SlugField(max_length=80, label=_("Slug"), help_text=_("Used in URLs and the API."))
    name = forms.CharField(max_length=200, label=_("Name"))
    description = forms.CharField(
        max_length=2000, required=False, label=_("Description"), widget=forms.Textarea({"rows": 2})
    )
    kind = forms.ChoiceField(choices=LabelSetKind.choices, label=_("Kind"))
    labels = LabelsField(
        label=_("Labels"),
        help_text=_("Taxonomy labels: keys, names in English or Chinese, or aliases, by commas."),
        widget=forms.TextInput({"placeholder": "news.business, 体育, Tech", "autocomplete": "off"}),
    )
    note = forms.CharField(max_length=300, required=False, label=_("What changed (optional)"))

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["slug"]
        else:
            del self.fields["note"]


class LabelProposalForm(forms.Form):
    key = forms.CharField(
        max_length=200, label=_("Key"), help_text=_("e.g. finance.earnings (dot-separated).")
    )
    parent = forms.ModelChoiceField(
        queryset=Label.objects.filter(status="active").order_by("key"),
        required=False,
        to_field_name="key",
        label=_("Parent"),
    )
    name_en = forms.CharField(max_length=200, label=_("English name"))
    name_zh = forms.CharField(max_length=200, required=False, label=_("Chinese name"))
    aliases = forms.CharField(
        max_length=1000, required=False, label=_("Aliases"), help_text=_("Separated by commas.")
    )
    description = forms.CharField(
        max_length=2000, required=False, label=_("Description"), widget=forms.Textarea({"rows": 2})
    )
    reason = forms.CharField(max_length=500, required=False, label=_("Why you need it"))

    def clean_aliases(self) -> list[str]:
        return split_terms(self.cleaned_data.get("aliases", ""))
