"""Admin for platform staff: tenants, memberships, API keys and need approval.

Keys: the hash is never shown and nothing about a key is editable but its name; a key is created
with the add form, which answers with a page showing the plain key once (it is not stored
anywhere, not even in the session). Needs change status only through the lifecycle actions.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from tenants import services
from tenants.models import (
    ApiKey,
    ApiKeyScope,
    Membership,
    Need,
    NeedLabel,
    NeedStatus,
    NeedStatusChange,
    SupportAccess,
    Tenant,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "is_active",
        "quota_requests_per_minute",
        "quota_max_batch_items",
        "contact_email",
        "time_zone",
        "language",
        "created_at",
    ]
    list_filter = ["is_active"]
    search_fields = ["slug", "name", "contact_email"]
    #: Monitoring re-cuts the stored days into a changed time zone (hourly) and records it here.
    readonly_fields = ["days_time_zone"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    raw_id_fields = ["user", "tenant"]


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple, label=_("scopes")
    )

    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "scopes", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        tenant, name = cleaned.get("tenant"), cleaned.get("name")
        if tenant and name and ApiKey.objects.owned_by(tenant).filter(name=name).exists():
            self.add_error("name", _("This tenant already has a key with this name."))
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "tenant",
        "scope_list",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["tenant", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "tenant__slug"]
    list_select_related = ["tenant", "created_by"]
    raw_id_fields = ["tenant", "created_by"]
    exclude = ["hashed_key"]
    readonly_fields = [
        "tenant",
        "prefix",
        "scopes",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    actions = ["revoke_keys"]

    @admin.display(description=_("scopes"))
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "scopes", "expires_at"]
        return ["name", *self.readonly_fields]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # keys are revoked, never deleted: the row is the audit trail

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        api_key, plain = services.api_key_create(
            tenant=form.cleaned_data["tenant"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data.get("expires_at"),
            created_by=request.user,
        )
        obj.pk, obj.prefix, obj.created_at = api_key.pk, api_key.prefix, api_key.created_at
        obj._state.adding = False
        request._new_plain_key = plain  # lives for this request only

    def response_add(self, request, obj, post_url_continue=None):
        plain = getattr(request, "_new_plain_key", None)
        if plain is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/tenants/apikey/created.html",
            {
                **self.admin_site.each_context(request),
                "title": _("API key created"),
                "api_key": ApiKey.objects.dangerously_unscoped()
                .select_related("tenant")
                .get(pk=obj.pk),
                "plain_key": plain,
                "opts": self.model._meta,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke selected keys"))
    def revoke_keys(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        self.message_user(
            request, _("Revoked %(count)s key(s).") % {"count": queryset.count()}, messages.SUCCESS
        )


class NeedStatusChangeInline(admin.TabularInline):
    """The need's lifecycle audit: read-only, never deleted."""

    model = NeedStatusChange
    extra = 0
    can_delete = False
    fields = ["at", "from_status", "to_status", "actor", "api_key_prefix", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class NeedLabelInline(admin.TabularInline):
    """The need's labels: one row per label (asked for, named by the tenant, own threshold). The
    database refuses a label twice, a name twice and thresholds outside [0, 1]."""

    model = NeedLabel
    extra = 0
    raw_id_fields = ["label"]
    fields = ["position", "label", "name", "threshold", "requested"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("label").order_by("position", "pk")

    @staticmethod
    def _editable(obj) -> bool:
        return obj is None or obj.status != NeedStatus.RETIRED  # a retired need is history

    def has_add_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(Need)
class NeedAdmin(admin.ModelAdmin):
    list_display = ["slug", "tenant", "name", "status", "label_set", "model", "created_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["slug", "name", "goal", "tenant__slug"]
    list_select_related = ["tenant", "label_set", "model"]
    raw_id_fields = ["tenant", "label_set", "model", "created_by", "approved_by"]
    readonly_fields = ["status", "approved_by", "approved_at", "created_at", "updated_at"]
    actions = ["approve_needs", "go_live_needs", "retire_needs", "reinstate_needs"]
    inlines = [NeedLabelInline, NeedStatusChangeInline]

    def save_formset(self, request, form, formset, change):
        if formset.model is not NeedLabel:
            return super().save_formset(request, form, formset, change)
        for row in formset.save(commit=False):
            row.tenant_id = form.instance.tenant_id  # a label row belongs to its need's tenant
            row.save()
        for row in formset.deleted_objects:
            row.delete()
        return None

    def _apply(self, request, queryset, verb: str, transition) -> None:
        done = 0
        for need in queryset.select_related("tenant"):
            try:
                transition(need)
                done += 1
            except (ValidationError, PermissionDenied) as error:
                text = (
                    " ".join(sum(error.message_dict.values(), []))
                    if isinstance(error, ValidationError) and hasattr(error, "error_dict")
                    else str(error)
                )
                self.message_user(
                    request,
                    _("%(need)s: %(error)s") % {"need": need, "error": text},
                    messages.ERROR,
                )
        if done:
            self.message_user(
                request,
                _("%(verb)s %(count)s need(s).") % {"verb": verb, "count": done},
                messages.SUCCESS,
            )

    @admin.action(description=_("Approve selected requested needs"))
    def approve_needs(self, request, queryset):
        self._apply(
            request,
            queryset,
            _("Approved"),
            lambda n: services.need_approve(need=n, actor=request.user),
        )

    @admin.action(description=_("Put selected approved needs live"))
    def go_live_needs(self, request, queryset):
        self._apply(
            request,
            queryset,
            _("Put live"),
            lambda n: services.need_go_live(need=n, actor=request.user),
        )

    @admin.action(description=_("Retire selected needs"))
    def retire_needs(self, request, queryset):
        self._apply(
            request,
            queryset,
            _("Retired"),
            lambda n: services.need_retire(
                need=n, actor=request.user, reason="Retired by staff in the admin."
            ),
        )

    @admin.action(description=_("Reinstate selected retired needs (asks for a reason)"))
    def reinstate_needs(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if "apply" in request.POST and reason:
            self._apply(
                request,
                queryset,
                _("Reinstated"),
                lambda n: services.need_reinstate(need=n, actor=request.user, reason=reason),
            )
            return None
        if "apply" in request.POST:
            self.message_user(request, _("Give a reason to reinstate."), messages.ERROR)
        return TemplateResponse(
            request,
            "admin/tenants/need/reinstate.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Reinstate retired needs"),
                "needs": queryset.select_related("tenant"),
                "opts": self.model._meta,
            },
        )

    def get_readonly_fields(self, request, obj=None):
        # A retired need is history: nothing on it changes any more.
        if obj is not None and obj.status == NeedStatus.RETIRED:
            return [f.name for f in Need._meta.fields]
        if obj is not None:  # its label rows (and its history) belong to this tenant
            return [*self.readonly_fields, "tenant"]
        return self.readonly_fields


@admin.register(SupportAccess)
class SupportAccessAdmin(admin.ModelAdmin):
    """Staff reads of tenants' portals (support mode): an audit, so nothing here changes."""

    list_display = ["at", "user", "tenant", "method", "path"]
    list_filter = ["tenant"]
    search_fields = ["user__username", "tenant__slug", "path"]
    list_select_related = ["user", "tenant"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
