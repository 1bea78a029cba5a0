"""Admin for platform staff: the label tree (move, merge, deprecate, history) and label sets.

Every change goes through taxonomy.services, so the admin keeps the same invariants (no cycles,
stable keys, history on every change, in-use labels never deleted) as the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from taxonomy import services
from taxonomy.models import (
    Label,
    LabelChange,
    LabelProposal,
    LabelSet,
    LabelSetRevision,
    LabelStatus,
)


class LabelChangeInline(admin.TabularInline):
    model = LabelChange
    extra = 0
    can_delete = False
    fields = ["at", "action", "actor", "before", "after", "note"]
    readonly_fields = fields
    ordering = ["-at", "-id"]
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LabelAdminForm(forms.ModelForm):
    class Meta:
        model = Label
        fields = ["key", "parent", "name_en", "name_zh", "description", "aliases"]

    def clean(self):
        cleaned = super().clean()
        label = self.instance if self.instance.pk else None
        try:
            services.check_parent(label=label, parent=cleaned.get("parent"))
        except ValidationError as error:
            self.add_error("parent", error.message_dict["parent"])
        if label is None and cleaned.get("key") and not services.key_is_free(cleaned["key"]):
            self.add_error("key", _("This key was used before; keys are never reused."))
        return cleaned


class TargetForm(forms.Form):
    """The second step of the move / merge / deprecate actions."""

    target = forms.ModelChoiceField(queryset=Label.objects.none(), required=False)
    note = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = Label.objects.filter(status=LabelStatus.ACTIVE).order_by(
            "key"
        )
        self.fields["target"].required = required


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    form = LabelAdminForm
    list_display = ["key", "name_en", "name_zh", "status", "parent", "replaced_by", "updated_at"]
    list_filter = ["status"]
    search_fields = ["key", "name_en", "name_zh", "description"]
    list_select_related = ["parent", "replaced_by"]
    raw_id_fields = ["parent"]
    readonly_fields = ["status", "replaced_by", "created_at", "updated_at"]
    inlines = [LabelChangeInline]
    actions = ["move_labels", "merge_labels", "deprecate_labels"]

    def get_readonly_fields(self, request, obj=None):
        # The key is stable; moves go through the form's parent field or the move action.
        return [*self.readonly_fields, "key"] if obj else self.readonly_fields

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion is one label at a time, via the service
        return actions

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in ["name_en", "name_zh", "description", "aliases"]}
        if not change:
            created = services.label_create(
                key=form.cleaned_data["key"],
                parent=form.cleaned_data["parent"],
                actor=request.user,
                **data,
            )
            obj.pk, obj.created_at = created.pk, created.created_at
            obj._state.adding = False
            return
        label = Label.objects.get(pk=obj.pk)
        if "parent" in form.changed_data:
            services.label_move(
                label=label, new_parent=form.cleaned_data["parent"], actor=request.user
            )
        services.label_update(label=label, actor=request.user, **data)

    def delete_view(self, request, object_id, extra_context=None):
        label = self.get_object(request, object_id)
        if label is not None:
            usage = {k: v for k, v in services.label_usage(label=label).items() if v}
            if usage:
                listed = services.usage_listed(usage)
                self.message_user(
                    request,
                    _("%(key)s is in use (%(uses)s); deprecate or merge it instead.")
                    % {"key": label.key, "uses": listed},
                    messages.ERROR,
                )
                return HttpResponseRedirect(reverse("admin:taxonomy_label_change", args=[label.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        services.label_delete(label=obj, actor=request.user)

    def _target_step(self, request, queryset, *, title: str, apply, required: bool, help_text: str):
        form = TargetForm(request.POST if "apply" in request.POST else None, required=required)
        if "apply" in request.POST and form.is_valid():
            done, failed = 0, []
            for label in queryset:
                try:
                    apply(label, form.cleaned_data["target"], form.cleaned_data["note"])
                    done += 1
                except ValidationError as error:
                    failed.append(f"{label.key}: {' '.join(sum(error.message_dict.values(), []))}")
            if done:
                self.message_user(
                    request,
                    _("%(title)s: %(count)s label(s) done.") % {"title": title, "count": done},
                    messages.SUCCESS,
                )
            for problem in failed:
                self.message_user(request, problem, messages.ERROR)
            return None
        return TemplateResponse(
            request,
            "admin/taxonomy/label/target_action.html",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "help_text": help_text,
                "labels": queryset,
                "form": form,
                "action": request.POST.get("action"),
                "opts": self.model._meta,
            },
        )

    @admin.action(description=_("Move selected labels under another label (or to the root)"))
    def move_labels(self, request, queryset):
        return self._target_step(
            request,
            queryset,
            title=_("Move labels"),
            required=False,
            help_text=_(
                "Choose the new parent; leave it empty to make the labels roots. Keys do not change."
            ),
            apply=lambda label, target, note: services.label_move(
                label=label, new_parent=target, actor=request.user, note=note
            ),
        )

    @admin.action(description=_("Merge selected labels into another label"))
    def merge_labels(self, request, queryset):
        return self._target_step(
            request,
            queryset,
            title=_("Merge labels"),
            required=True,
            help_text=_(
                "Every label set, training sample and need that uses a selected label is "
                "rewritten to the target, in one transaction; the selected labels are deprecated."
            ),
            apply=lambda label, target, note: services.label_merge(
                source=label, target=target, actor=request.user, note=note
            ),
        )

    @admin.action(description=_("Deprecate selected labels"))
    def deprecate_labels(self, request, queryset):
        return self._target_step(
            request,
            queryset,
            title=_("Deprecate labels"),
            required=False,
            help_text=_("Optionally name the label that replaces them."),
            apply=lambda label, target, note: services.label_deprecate(
                label=label, replaced_by=target, actor=request.user, note=note
            ),
        )


@admin.register(LabelChange)
class LabelChangeAdmin(admin.ModelAdmin):
    """The append-only history, readable on its own (including deleted labels' rows)."""

    list_display = ["at", "label_key", "action", "actor", "note"]
    list_filter = ["action"]
    search_fields = ["label_key", "note"]
    list_select_related = ["actor"]
    raw_id_fields = ["label", "actor"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LabelSetRevisionInline(admin.TabularInline):
    model = LabelSetRevision
    extra = 0
    can_delete = False
    fields = ["number", "keys", "note", "created_by", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]

    @admin.display(description=_("labels"))
    def keys(self, revision: LabelSetRevision) -> str:
        return ", ".join(revision.label_keys())

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LabelSetAdminForm(forms.ModelForm):
    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("Label keys, one per line. Any change makes a new revision."),
    )

    class Meta:
        model = LabelSet
        fields = ["tenant", "slug", "name", "description", "kind"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.current_revision:
            self.fields["labels"].initial = "\n".join(self.instance.current_revision.label_keys())

    def clean_labels(self) -> list[str]:
        keys = [line.strip() for line in self.cleaned_data["labels"].splitlines() if line.strip()]
        try:
            services.labels_for_keys(keys)
        except ValidationError as error:
            raise ValidationError(error.message_dict["labels"]) from None
        return keys

    def clean(self):
        cleaned = super().clean()
        keys = cleaned.get("labels") or []
        if cleaned.get("kind") == "multiclass" and "labels" in cleaned and len(keys) < 2:
            self.add_error("labels", _("A multi-class label set needs at least two labels."))
        slug = cleaned.get("slug")
        if not self.instance.pk and slug:
            tenant = cleaned.get("tenant")
            clash = LabelSet.objects.filter(slug=slug, tenant__isnull=True).exists() or (
                tenant is not None and LabelSet.objects.owned_by(tenant).filter(slug=slug).exists()
            )
            if clash:
                self.add_error("slug", _("A label set '%(slug)s' already exists.") % {"slug": slug})
        return cleaned


@admin.register(LabelSet)
class LabelSetAdmin(admin.ModelAdmin):
    form = LabelSetAdminForm
    list_display = ["slug", "name", "tenant", "kind", "revision_number", "created_at"]
    list_filter = ["kind", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["slug", "name", "tenant__slug"]
    list_select_related = ["tenant"]
    raw_id_fields = ["tenant"]
    inlines = [LabelSetRevisionInline]

    @admin.display(description=_("revision"))
    def revision_number(self, label_set: LabelSet) -> int | None:
        revision = label_set.current_revision
        return revision.number if revision else None

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "slug"] if obj else []

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            created = services.label_set_create(
                tenant=data.get("tenant"),
                slug=data["slug"],
                name=data["name"],
                description=data.get("description", ""),
                kind=data["kind"],
                label_keys=data["labels"],
                actor=request.user,
            )
            obj.pk, obj.created_at = created.pk, created.created_at
            obj._state.adding = False
            return
        revision = services.label_set_revise(
            label_set=LabelSet.objects.dangerously_unscoped().get(pk=obj.pk),
            label_keys=data["labels"],
            kind=data["kind"],
            name=data["name"],
            description=data.get("description", ""),
            actor=request.user,
        )
        if revision is not None:
            self.message_user(request, _("Saved as revision %(n)s.") % {"n": revision.number})


@admin.register(LabelProposal)
class LabelProposalAdmin(admin.ModelAdmin):
    """Tenants' requests for new labels: approving creates the label (with its history)."""

    list_display = ["key", "name_en", "tenant", "status", "proposed_by", "created_at", "label"]
    list_filter = ["status", "tenant"]
    list_select_related = ["tenant", "proposed_by", "label"]
    search_fields = ["key", "name_en", "name_zh", "reason"]
    raw_id_fields = ["parent", "label", "proposed_by", "decided_by"]
    readonly_fields = ["status", "label", "decided_by", "decided_at", "created_at"]
    actions = ["approve_proposals", "reject_proposals"]

    @admin.action(description=_("Approve: create the proposed labels"))
    def approve_proposals(self, request, queryset):
        for proposal in queryset:
            try:
                services.label_proposal_approve(proposal=proposal, actor=request.user)
            except ValidationError as error:
                self.message_user(
                    request,
                    _("%(key)s: %(error)s") % {"key": proposal.key, "error": error.messages[0]},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    _("%(key)s: label created.") % {"key": proposal.key},
                    messages.SUCCESS,
                )

    @admin.action(description=_("Reject (the note says: rejected by platform staff)"))
    def reject_proposals(self, request, queryset):
        for proposal in queryset:
            try:
                services.label_proposal_reject(
                    proposal=proposal, actor=request.user, note="Rejected by platform staff."
                )
            except ValidationError as error:
                self.message_user(
                    request,
                    _("%(key)s: %(error)s") % {"key": proposal.key, "error": error.messages[0]},
                    messages.ERROR,
                )
