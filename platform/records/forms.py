"""Portal forms for record sections. They parse input; the rules live in records.services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from records.models import Milestone, ProblemStatus, SectionKind
from records.services import MAX_BODY, MAX_TITLE


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class SectionForm(forms.Form):
    body = forms.CharField(
        label=_("Text (Markdown)"),
        required=False,
        max_length=MAX_BODY,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 14}),
    )
    base_revision = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class ItemForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=MAX_TITLE)
    body = forms.CharField(
        label=_("Text (Markdown)"),
        required=False,
        max_length=MAX_BODY,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 14}),
    )
    status = forms.ChoiceField(label=_("Status"), choices=ProblemStatus.choices, required=False)
    model_version = forms.TypedChoiceField(
        label=_("Model version concerned"), coerce=int, required=False, empty_value=None
    )
    label = forms.CharField(label=_("Label concerned (key)"), max_length=200, required=False)
    case = forms.IntegerField(label=_("Case concerned (number)"), min_value=1, required=False)
    labels = forms.CharField(
        label=_("Taxonomy labels (keys, comma-separated)"), max_length=2000, required=False
    )
    tags = forms.CharField(label=_("Tags (comma-separated)"), max_length=1000, required=False)
    shareable = forms.BooleanField(
        label=_("Shareable: show this lesson to other units registering a similar need"),
        required=False,
    )
    milestone = forms.ChoiceField(label=_("Milestone"), choices=Milestone.choices, required=False)
    base_revision = forms.IntegerField(min_value=0, widget=forms.HiddenInput)

    #: Which fields each kind shows and sends to the service.
    FIELDS = {
        SectionKind.PROBLEM: ("status", "model_version", "label", "case", "labels", "tags"),
        SectionKind.LESSON: ("labels", "tags", "shareable"),
        SectionKind.RETROSPECTIVE: ("milestone",),
    }

    def __init__(self, *args, kind: str, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.fields["model_version"].choices = [("", "—")] + [
            (v.pk, f"{v.registered_model.name} v{v.version}") for v in versions
        ]
        for name in (
            "status",
            "model_version",
            "label",
            "labels",
            "tags",
            "shareable",
            "milestone",
        ):
            if name not in self.FIELDS[SectionKind(kind)]:
                del self.fields[name]

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        out: dict[str, Any] = {"title": data["title"], "body": data["body"]}
        for name in self.FIELDS[SectionKind(self.kind)]:
            value = data.get(name)
            if name in ("labels", "tags"):
                value = _split(value or "")
            if name in ("status", "milestone") and not value:
                continue
            out[name] = value
        return out
