"""Writes for tenants, memberships, API keys and tagging needs.

Validation happens before any write, inside one transaction, and raises Django's
`ValidationError` with field errors (a 400 in the API, form errors in the portal).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify
from django.utils.translation import gettext as _

from core.localtime import validate_time_zone
from taxonomy.models import Label, LabelSet, LabelStatus
from taxonomy.selectors import Overlap, overlap, resolve_terms, revision_keys
from tenants import keys
from tenants.authentication import clear_key_cache
from tenants.models import (
    NEED_EDITABLE_FIELDS,
    ApiKey,
    ApiKeyScope,
    Delivery,
    Execution,
    Membership,
    Need,
    NeedLabel,
    NeedStatus,
    NeedStatusChange,
    Role,
    SupportAccess,
    Tenant,
    UserProfile,
)

# --- Tenants and memberships ----------------------------------------------------------------
_TENANT_FIELDS = (
    "name",
    "contact_email",
    "is_active",
    "quota_requests_per_minute",
    "quota_max_batch_items",
    "webhook_url",
    "webhook_secret",
    "alert_email",
    "alert_webhook_url",
    "time_zone",
    "language",
)


def tenant_create(*, slug: str, name: str, **fields: Any) -> Tenant:
    unknown = set(fields) - set(_TENANT_FIELDS)
    if unknown:
        raise ValidationError({f: [_("Unknown field.")] for f in unknown})
    tenant = Tenant(slug=slug, name=name, **fields)
    tenant.days_time_zone = tenant.time_zone  # a new tenant has no stored days to re-cut
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
    return tenant


def membership_set(*, tenant: Tenant, user, role: str) -> Membership:
    """Add `user` to `tenant` with `role`, or change the role of an existing membership."""
    if role not in Role.values:
        raise ValidationError(
            {"role": [_("Choose one of %(choices)s.") % {"choices": ", ".join(Role.values)}]}
        )
    with transaction.atomic():
        membership, _created = Membership.objects.owned_by(tenant).update_or_create(
            tenant=tenant, user=user, defaults={"role": role}
        )
    return membership


def _set_password_path(user) -> str:
    """The one-time set-password link of `user`: Django's password-reset token, which stops
    working once the password is set (the token hashes the password and last login)."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("tenants:set-password", kwargs={"uidb64": uidb64, "token": token})


def member_invite(
    *, tenant: Tenant, username: str, role: str, email: str = "", invited_by=None
) -> tuple[Membership, str]:
    """Invite a person into `tenant` with `role`. A new username creates the user with no usable
    password and returns its one-time set-password path; an existing user is added as they are
    (the path is then ""). Someone already a member is refused: change their role instead."""
    User = get_user_model()
    username = (username or "").strip()
    errors: dict[str, list[str]] = {}
    if role not in Role.values:
        errors["role"] = [_("Choose one of %(choices)s.") % {"choices": ", ".join(Role.values)}]
    user = User.objects.filter(username=username).first()
    if user is None:
        try:
            User.username_validator(username)
            if not username:
                raise ValidationError(_("A username is required."))
        except ValidationError as exc:
            errors["username"] = list(exc.messages)
        if email:
            try:
                validate_email(email)
            except ValidationError as exc:
                errors["email"] = list(exc.messages)
    elif Membership.objects.owned_by(tenant).filter(user=user).exists():
        errors["username"] = [
            _("%(username)s is already a member; change their role instead.")
            % {"username": username}
        ]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        path = ""
        if user is None:
            user = User(username=username, email=email)
            user.set_unusable_password()
            user.save()
            path = _set_password_path(user)
        membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    return membership, path


def member_set_password_link(*, membership: Membership) -> str:
    """A new one-time set-password path for an invited member who has not set a password yet
    (the invitation's link was lost). Someone with a password resets it themselves."""
    if membership.user.has_usable_password():
        raise ValidationError(
            {
                "username": [
                    _("%(username)s has set a password already.")
                    % {"username": membership.user.username}
                ]
            }
        )
    return _set_password_path(membership.user)


def member_role_set(*, membership: Membership, role: str) -> Membership:
    """Change a member's role; the tenant's last admin keeps theirs."""
    if role not in Role.values:
        raise ValidationError(
            {"role": [_("Choose one of %(choices)s.") % {"choices": ", ".join(Role.values)}]}
        )
    with transaction.atomic():
        _keep_an_admin(membership, leaving=role != Role.ADMIN)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def member_remove(*, membership: Membership) -> None:
    """Take a person out of the tenant (the user stays: they may belong to other tenants)."""
    with transaction.atomic():
        _keep_an_admin(membership, leaving=True)
        membership.delete()


def _keep_an_admin(membership: Membership, *, leaving: bool) -> None:
    admins = (
        Membership.objects.owned_by(membership.tenant_id)
        .select_for_update()
        .filter(role=Role.ADMIN)
        .values_list("pk", flat=True)
    )
    if leaving and membership.role == Role.ADMIN and list(admins) == [membership.pk]:
        raise ValidationError({"role": [_("A tenant keeps at least one admin.")]})


def support_access_record(*, user, tenant: Tenant, method: str, path: str) -> SupportAccess:
    """Audit a platform staff user's read of a tenant's portal page (support mode)."""
    return SupportAccess.objects.create(user=user, tenant=tenant, method=method, path=path[:500])


def user_language_set(*, user, language: str) -> UserProfile:
    """Remember the user's portal language ("" = follow the browser's Accept-Language)."""
    codes = {code for code, _name in settings.LANGUAGES}
    if language and language not in codes:
        raise ValidationError({"language": [_("Choose one of the portal's languages.")]})
    with transaction.atomic():
        profile, _created = UserProfile.objects.update_or_create(
            user=user, defaults={"language": language}
        )
    return profile


def recipient_language(*, tenant: Tenant, email: str) -> str:
    """The language to write to `email` in, outside any request: the portal language its user
    chose (a member of `tenant` before anyone else with that address), else the tenant's."""
    users = get_user_model().objects.filter(email__iexact=email.strip(), is_active=True)
    members = users.filter(memberships__tenant=tenant)
    chosen = (
        UserProfile.objects.filter(user__in=members if members.exists() else users)
        .exclude(language="")
        .order_by("user_id")
        .values_list("language", flat=True)
        .first()
    )
    return chosen or tenant.language


def user_language(user) -> str:
    """The user's chosen portal language, or "" when they follow their browser."""
    profile = UserProfile.objects.filter(user=user).only("language").first()
    return profile.language if profile else ""


def tenant_time_zone_set(*, tenant: Tenant, time_zone: str) -> Tenant:
    """Change the tenant's time zone. Its stored days are re-cut by monitoring afterwards
    (monitoring.services.tenant_days_resync, run at once by the portal, hourly by beat)."""
    validate_time_zone(time_zone)
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(time_zone=time_zone)
    tenant.time_zone = time_zone
    return tenant


def user_by_username(username: str):
    User = get_user_model()
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise ValidationError(
            {"username": [_("No user '%(username)s'.") % {"username": username}]}
        ) from None


# --- Webhook settings -----------------------------------------------------------------------
def tenant_webhook_set(*, tenant: Tenant, url: str) -> Tenant:
    """Where stream results go ("" turns delivery off). A first URL gets a signing secret."""
    url = (url or "").strip()
    tenant.webhook_url = url
    try:
        tenant.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise ValidationError({"url": exc.message_dict.get("webhook_url", exc.messages)}) from None
    fields = ["webhook_url"]
    if url and not tenant.webhook_secret:
        tenant.webhook_secret = keys.new_webhook_secret()
        fields.append("webhook_secret")
    with transaction.atomic():
        tenant.save(update_fields=fields)
    return tenant


def tenant_language_set(*, tenant: Tenant, language: str) -> Tenant:
    """The language of the unit's alert webhook summaries and of alert e-mails to non-users."""
    tenant.language = language
    try:
        tenant.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise ValidationError(
            {"language": exc.message_dict.get("language", exc.messages)}
        ) from None
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(language=language)
    return tenant


def tenant_webhook_secret_rotate(*, tenant: Tenant) -> str:
    """A new HMAC signing secret, returned once; deliveries from now on are signed with it."""
    secret = keys.new_webhook_secret()
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(webhook_secret=secret)
    tenant.webhook_secret = secret
    return secret


# --- API keys -------------------------------------------------------------------------------
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    created_by=None,
) -> tuple[ApiKey, str]:
    """Create a key and return `(api_key, plain_key)`. The plain key exists only in this return
    value: the row holds its prefix and SHA-256, so the caller must show it once and forget it."""
    scopes = list(dict.fromkeys(scopes or []))
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = [_("A name is required.")]
    elif ApiKey.objects.owned_by(tenant).filter(name=name).exists():
        errors["name"] = [_("This tenant already has a key named '%(name)s'.") % {"name": name}]
    bad = [s for s in scopes if s not in ApiKeyScope.values]
    if bad or not scopes:
        errors["scopes"] = [
            f"Choose one or more of {', '.join(ApiKeyScope.values)}"
            + (f" (unknown: {', '.join(map(str, bad))})." if bad else ".")
        ]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = [_("The expiry must be in the future.")]
    if errors:
        raise ValidationError(errors)
    plain, prefix, hashed = keys.generate_key()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            tenant=tenant,
            name=name,
            prefix=prefix,
            hashed_key=hashed,
            scopes=scopes,
            expires_at=expires_at,
            created_by=created_by if getattr(created_by, "pk", None) else None,
        )
    return api_key, plain


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key (idempotent: the first revocation time is kept)."""
    with transaction.atomic():
        ApiKey.objects.owned_by(api_key.tenant_id).filter(
            pk=api_key.pk, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        api_key.refresh_from_db(fields=["revoked_at"])
    # This process forgets the key now; others within API_KEY_CACHE_SECONDS.
    clear_key_cache()
    return api_key


# --- Needs ----------------------------------------------------------------------------------
#: Allowed lifecycle moves; approval (requested -> approved) is for platform staff only.
NEED_TRANSITIONS: dict[str, set[str]] = {
    NeedStatus.REQUESTED: {NeedStatus.APPROVED, NeedStatus.RETIRED},
    NeedStatus.APPROVED: {NeedStatus.LIVE, NeedStatus.RETIRED},
    NeedStatus.LIVE: {NeedStatus.RETIRED},
    NeedStatus.RETIRED: set(),
}

#: Portal paths under /tenant/needs/ that a need's slug would shadow.
RESERVED_NEED_SLUGS = frozenset({"new", "suggestions"})


# --- Label merges (a taxonomy act that rewrites needs) ------------------------------------
def need_labels_merge_all_tenants(*, source: Label, target: Label) -> tuple[int, list[str]]:
    """A taxonomy label merge's step (settings.TAXONOMY_LABEL_MERGE_STEPS): point every need's
    row for `source` (of every tenant: a merge is a platform-wide act) at `target`; returns
    (needs changed, own names dropped).

    A need may hold rows for both labels, and it keeps one row per label: the target's row
    absorbs the source's. It keeps its own name and threshold where it has them, else takes the
    source's; it is requested if either was. When both rows were named, the source's name is
    dropped (and reported in the merge's history). Only the rows of these two labels are touched."""
    rows = NeedLabel.objects.dangerously_unscoped()
    # The needs changed say so (their API shows `updated_at`); no other need row is touched.
    Need.objects.dangerously_unscoped().filter(
        pk__in=rows.filter(label=source).values("need")
    ).update(updated_at=timezone.now())
    both = rows.filter(label=source, need__in=rows.filter(label=target).values("need"))
    dropped: list[str] = []
    folded = 0
    for old in both.select_related("need__tenant").select_for_update(of=("self",)):
        kept = rows.select_for_update().get(need_id=old.need_id, label=target)
        old.delete()  # first: its name may move to the kept row (one label per name)
        if old.name and kept.name:
            dropped.append(f"{old.need.tenant.slug}/{old.need.slug}: {old.name}")
        kept.name = kept.name or old.name
        kept.threshold = kept.threshold if kept.threshold is not None else old.threshold
        kept.requested = kept.requested or old.requested
        kept.position = min(kept.position, old.position)
        kept.save(update_fields=["name", "threshold", "requested", "position"])
        folded += 1
    return folded + rows.filter(label=source).update(label=target), dropped


def _need_label_keys(*, label_set: LabelSet | None, requested: list[str]) -> list[str]:
    if label_set is not None:
        revision = label_set.current_revision
        return revision.label_keys() if revision else []
    return requested


def _validate_need(
    *, tenant: Tenant, values: dict[str, Any]
) -> tuple[dict[str, Any], list[NeedLabel]]:
    """Check and normalise a need's fields: the need's own fields, and its label rows (unsaved).
    Raises ValidationError with every problem found."""
    errors: dict[str, Any] = {}
    label_set = values.get("label_set")
    if (
        label_set is not None
        and not LabelSet.objects.for_tenant(tenant).filter(pk=label_set.pk).exists()
        and not _registered_model_class()
        .objects.reusable_by(tenant)
        .filter(label_set=label_set)
        .exists()
    ):
        errors["label_set"] = [_("Unknown label set.")]  # another tenant's set: as if missing
        label_set = None

    requested_in = values.get("requested_labels") or []
    requested: list[Label] = []
    if isinstance(requested_in, str) or not all(isinstance(t, str) for t in requested_in):
        errors["requested_labels"] = [_("Give a list of label keys, names or aliases.")]
    else:
        resolution = resolve_terms(requested_in)
        if resolution.unknown:
            errors["requested_labels"] = [
                _("Unknown label '%(term)s'.") % {"term": term} for term in resolution.unknown
            ]
        if label_set is None:  # a label set replaces a request
            requested = resolution.labels
    if (
        label_set is None
        and not requested
        and "label_set" not in errors
        and "requested_labels" not in errors
    ):
        errors["label_set"] = [_("Choose an existing label set, or request labels for a new one.")]

    allowed = _need_label_keys(label_set=label_set, requested=[label.key for label in requested])
    rows = _need_label_rows(
        allowed=allowed,
        requested=requested,
        mapping=values.get("label_mapping") or {},
        per_label=values.get("per_label_thresholds") or {},
        errors=errors,
    )

    threshold = values.get("threshold", 0.0)
    if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        errors["threshold"] = [_("Give a number between 0 and 1.")]
    top_k = values.get("top_k", 1)
    if not isinstance(top_k, int) or top_k < 1:
        errors["top_k"] = [_("Give a whole number of at least 1.")]
    elif allowed and top_k > len(allowed):
        errors["top_k"] = [_("This need has only %(count)d labels.") % {"count": len(allowed)}]
    delivery = values.get("delivery") or []
    if isinstance(delivery, str):
        delivery = [delivery]
    if not delivery or any(d not in Delivery.values for d in delivery):
        errors["delivery"] = [
            _("Choose one or more of %(choices)s.") % {"choices": ", ".join(Delivery.values)}
        ]
    for field in ("latency_budget_ms", "size_budget_kb", "target_requests_per_s"):
        value = values.get(field)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            errors[field] = [_("Give a positive number, or leave it empty.")]
    execution = values.get("execution", Execution.INLINE)
    if execution not in Execution.values:
        errors["execution"] = [
            _("Choose one of %(choices)s.") % {"choices": ", ".join(Execution.values)}
        ]
    if not (values.get("name") or "").strip():
        errors["name"] = [_("A name is required.")]
    if errors:
        raise ValidationError(errors)
    fields = {
        field: values[field]
        for field in NEED_EDITABLE_FIELDS
        if field in values and field not in _NEED_LABEL_FIELDS
    }
    fields.update(
        label_set=label_set, delivery=list(dict.fromkeys(delivery)), name=values["name"].strip()
    )
    return fields, rows


#: The fields given as the API's shapes and kept as NeedLabel rows.
_NEED_LABEL_FIELDS = ("requested_labels", "label_mapping", "per_label_thresholds")
_NAME_MAX = NeedLabel._meta.get_field("name").max_length


def _need_label_rows(
    *,
    allowed: list[str],
    requested: list[Label],
    mapping: Any,
    per_label: Any,
    errors: dict[str, Any],
) -> list[NeedLabel]:
    """One unsaved NeedLabel per label the need refers to, from the requested labels, the
    mapping (own name -> key) and the per-label thresholds (key -> value). The database enforces
    the rows' rules (one row per label, one label per name, thresholds in [0, 1], labels that
    exist); they are checked here too only to answer with field errors, not an IntegrityError."""
    rows: dict[str, NeedLabel] = {}

    def row(label: Label) -> NeedLabel:
        return rows.setdefault(label.key, NeedLabel(label=label))

    for label in requested:
        row(label).requested = True
    if not isinstance(mapping, dict):
        errors["label_mapping"] = [_("Give an object of your label name -> global label key.")]
        mapping = {}
    if not isinstance(per_label, dict):
        errors["per_label_thresholds"] = [_("Give an object of label key -> threshold.")]
        per_label = {}
    wanted = {v for v in mapping.values() if isinstance(v, str)} | set(per_label)
    known = {label.key: label for label in Label.objects.filter(key__in=wanted - set(rows))}
    known.update((key, r.label) for key, r in rows.items())

    problems: list[str] = []  # Django's ValidationError holds flat lists: name each entry
    named: dict[str, str] = {}  # key -> name
    for raw, key in mapping.items():
        name = str(raw).strip()
        if not isinstance(key, str) or not name:
            problem = "Map a non-empty name to a label key."
        elif len(name) > _NAME_MAX:
            problem = _("Keep names to %(max)d characters.") % {"max": _NAME_MAX}
        elif key not in known:
            problem = _("Unknown label '%(term)s'.") % {"term": key}
        elif known[key].status == LabelStatus.DEPRECATED:
            replacement = known[key].replaced_by
            problem = f"'{key}' is deprecated" + (
                f"; use '{replacement.key}'." if replacement else "."
            )
        elif allowed and key not in allowed:
            problem = _("'%(key)s' is not one of this need's labels.") % {"key": key}
        elif key in named:
            problem = f"'{key}' is named {named[key]!r} already; give a label one name."
        elif name in named.values():
            problem = "This name is given twice."
        else:
            named[key] = row(known[key]).name = name
            continue
        problems.append(f"{str(raw)!r}: {problem}")
    if problems:
        errors["label_mapping"] = problems

    bad = []
    for key, value in per_label.items():
        if key not in allowed:
            bad.append(f"{key!r}: not one of this need's labels.")
        elif not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            bad.append(f"{key!r}: give a number between 0 and 1.")
        else:
            row(known[key]).threshold = float(value)
    if bad:
        errors["per_label_thresholds"] = bad
    return list(rows.values())


def _write_labels(*, need: Need, rows: list[NeedLabel]) -> None:
    """Replace the need's label rows (in the caller's transaction, with the need locked)."""
    NeedLabel.objects.owned_by(need.tenant_id).filter(need=need).delete()
    for position, row in enumerate(rows):
        row.pk, row.need, row.tenant_id, row.position = None, need, need.tenant_id, position
    NeedLabel.objects.bulk_create(rows)
    need.forget_label_rows()


def need_create(
    *, tenant: Tenant, name: str, slug: str = "", created_by=None, **fields: Any
) -> Need:
    unknown = set(fields) - set(NEED_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({f: [_("Unknown field.")] for f in unknown})
    slug = (slug or slugify(name or ""))[:80]
    if not slug:
        raise ValidationError({"slug": [_("Give a slug (letters, digits, hyphens).")]})
    if slug != slugify(slug):
        raise ValidationError({"slug": [_("Use lowercase letters, digits and hyphens.")]})
    if slug in RESERVED_NEED_SLUGS:
        raise ValidationError(
            {"slug": [_("'%(slug)s' is reserved; choose another slug.") % {"slug": slug}]}
        )
    values, rows = _validate_need(
        tenant=tenant,
        values={"name": name, "delivery": [Delivery.SYNC], **fields},
    )
    if Need.objects.owned_by(tenant).filter(slug=slug).exists():
        raise ValidationError({"slug": [_("You already have a need '%(slug)s'.") % {"slug": slug}]})
    with transaction.atomic():
        try:
            with transaction.atomic():
                need = Need.objects.create(
                    tenant=tenant,
                    slug=slug,
                    created_by=created_by if getattr(created_by, "pk", None) else None,
                    **values,
                )
        except IntegrityError:  # a concurrent create with the same slug
            raise ValidationError(
                {"slug": [_("You already have a need '%(slug)s'.") % {"slug": slug}]}
            ) from None
        _write_labels(need=need, rows=rows)
    return need


def need_update(*, need: Need, **changes: Any) -> Need:
    unknown = set(changes) - set(NEED_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({f: [_("This field cannot be changed here.")] for f in unknown})
    if need.status == NeedStatus.RETIRED:
        raise ValidationError({"status": [_("A retired need cannot be changed.")]})
    if (
        need.status == NeedStatus.LIVE
        and "label_set" in changes
        and changes["label_set"] != need.label_set
    ):
        raise ValidationError({"label_set": [_("Retire a live need to change its label set.")]})
    current = {field: getattr(need, field) for field in NEED_EDITABLE_FIELDS}
    if (
        "label_set" in changes
        and changes["label_set"] is not None
        and "requested_labels" not in changes
    ):
        current["requested_labels"] = []
    if changes.get("requested_labels") and "label_set" not in changes:
        current["label_set"] = None
    values, rows = _validate_need(tenant=need.tenant, values={**current, **changes})
    if (
        need.model_id
        and values["label_set"] is not None
        and values["label_set"].pk != need.model.label_set_id
    ):
        raise ValidationError({"label_set": [_("The subscribed model serves another label set.")]})
    with transaction.atomic():
        _lock(need)
        for field, value in values.items():
            setattr(need, field, value)
        need.save()
        _write_labels(need=need, rows=rows)
    return need


def _lock(need: Need) -> None:
    """Serialise writes to one need (its label rows are replaced as a whole)."""
    list(
        Need.objects.owned_by(need.tenant_id)
        .select_for_update()
        .filter(pk=need.pk)
        .order_by()
        .values("pk")
    )


def _actor_fields(actor) -> dict[str, Any]:
    """Audit columns for `actor`: a Django user, or an API key (as its prefix), or nobody."""
    if isinstance(actor, ApiKey):
        return {"actor": None, "api_key_prefix": actor.prefix}
    return {"actor": actor if getattr(actor, "pk", None) else None, "api_key_prefix": ""}


def _transition(*, need: Need, to: str, actor=None, reason: str = "", **extra: Any) -> Need:
    with transaction.atomic():
        need = Need.objects.owned_by(need.tenant_id).select_for_update().get(pk=need.pk)
        if to not in NEED_TRANSITIONS[NeedStatus(need.status)]:
            raise ValidationError(
                {
                    "status": [
                        _("A %(need_status)s need cannot become %(to)s.")
                        % {"need_status": need.status, "to": to}
                    ]
                }
            )
        _record_status(need=need, to=to, actor=actor, reason=reason)
        need.status = to
        for field, value in extra.items():
            setattr(need, field, value)
        need.save()
    return need


def _record_status(*, need: Need, to: str, actor, reason: str) -> None:
    NeedStatusChange.objects.create(
        need=need,
        from_status=need.status,
        to_status=to,
        reason=(reason or "").strip()[:500],
        **_actor_fields(actor),
    )


def need_approve(*, need: Need, actor, reason: str = "") -> Need:
    """Platform staff approve a requested need (then it can be trained for, or go live)."""
    if not getattr(actor, "is_staff", False):
        raise PermissionDenied(_("Only platform staff approve needs."))
    return _transition(
        need=need,
        to=NeedStatus.APPROVED,
        actor=actor,
        reason=reason,
        approved_by=actor,
        approved_at=timezone.now(),
    )


def need_go_live(*, need: Need, actor=None, reason: str = "") -> Need:
    """An approved need goes live once a model with a `production` alias serves it."""
    if not _has_serving_alias(need):
        raise ValidationError(
            {
                "model": [
                    _("Attach a model with a '%(model_alias)s' alias before going live.")
                    % {"model_alias": need.model_alias}
                ]
            }
        )
    return _transition(need=need, to=NeedStatus.LIVE, actor=actor, reason=reason)


def _has_serving_alias(need: Need) -> bool:
    # Asked through the Need.model relation: tenants sit below the registry and never import it
    # (registry.selectors.serving_versions is the full need -> version answer for the apps above).
    return need.model_id is not None and need.model.aliases.filter(name=need.model_alias).exists()


def _registered_model_class():
    # Through the Need.model relation: tenants sit below the registry and never import it.
    return Need._meta.get_field("model").related_model


def _offered_to(*, need: Need, model) -> bool:
    """`registry.selectors.offered_models` for one model, through the Need.model relation."""
    return (
        _registered_model_class()
        .objects.reusable_by(need.tenant)
        .filter(pk=model.pk, aliases__name="production")
        .exists()
    )


def _asked_labels(need: Need) -> list[Label]:
    """The labels the need asks for: its request, else the labels it names in its mapping, else
    its label set's labels (ancestors loaded, for `taxonomy.selectors.overlap`)."""
    keys = need.requested_labels or list(need.label_mapping.values())
    if not keys:
        keys = _need_label_keys(label_set=need.label_set, requested=[])
    labels = {
        label.key: label
        for label in Label.objects.filter(key__in=keys).select_related("parent__parent__parent")
    }
    return [labels[key] for key in dict.fromkeys(keys) if key in labels]


def model_fit(*, need: Need, model) -> Overlap | None:
    """How `model`'s live version answers the labels `need` asks for (None: no production
    version). `fits` is false when some asked labels have no class or share one."""
    alias = model.aliases.filter(name="production").select_related("version").first()
    if alias is None:
        return None
    keys = revision_keys([alias.version.revision_id]).get(alias.version.revision_id, [])
    return overlap(_asked_labels(need), keys)


def need_retire(*, need: Need, actor=None, reason: str = "") -> Need:
    """Stop serving a need. Staff can undo it with `need_reinstate`; the audit keeps both."""
    return _transition(need=need, to=NeedStatus.RETIRED, actor=actor, reason=reason)


def need_reinstate(*, need: Need, actor, reason: str) -> Need:
    """Platform staff undo a retirement: the need returns to the status it had before it (a live
    need whose model lost its alias meanwhile returns as approved). A reason is required."""
    if not getattr(actor, "is_staff", False):
        raise PermissionDenied(_("Only platform staff reinstate retired needs."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("Say why the need is reinstated.")]})
    with transaction.atomic():
        need = Need.objects.owned_by(need.tenant_id).select_for_update().get(pk=need.pk)
        if need.status != NeedStatus.RETIRED:
            raise ValidationError(
                {
                    "status": [
                        _("Only a retired need can be reinstated (%(need)s is %(need_status)s).")
                        % {"need": need, "need_status": need.status}
                    ]
                }
            )
        before = (
            NeedStatusChange.objects.owned_by(need.tenant_id)
            .filter(need=need, to_status=NeedStatus.RETIRED)
            .values_list("from_status", flat=True)
            .first()
        )
        if before is None:  # retired before the audit existed: judge from the approval
            before = NeedStatus.APPROVED if need.approved_at else NeedStatus.REQUESTED
        if before == NeedStatus.LIVE and not _has_serving_alias(need):
            before = NeedStatus.APPROVED
        _record_status(need=need, to=before, actor=actor, reason=reason)
        need.status = before
        need.save()
    return need


def need_subscribe_model(*, need: Need, model, actor=None, accept_shortfall: bool = False) -> Need:
    """Serve `need` with an existing model instead of requesting a new one.

    Only models the need's tenant can see are allowed: shared (platform-owned) ones and its own,
    with a `production` alias, and offered by other units. A model that cannot tell the asked
    labels apart (or lacks some) is refused with the reasons, unless `accept_shortfall` says the
    tenant knows and accepts. The need adopts the model's label set; a mapping pointing outside
    it is refused.
    """
    if need.status == NeedStatus.RETIRED:
        raise ValidationError({"status": [_("A retired need cannot be changed.")]})
    if not _offered_to(need=need, model=model):
        raise ValidationError({"model": [_("Unknown model, or it has no production version.")]})
    allowed = set(_need_label_keys(label_set=model.label_set, requested=[]))
    # Django's ValidationError holds flat lists: name the offending entry in each message.
    outside = [
        f"{name}: '{key}' is not served by {model.name}."
        for name, key in need.label_mapping.items()
        if key not in allowed
    ]
    if outside:
        raise ValidationError({"label_mapping": outside})
    fit = model_fit(need=need, model=model)
    if fit is not None and not fit.fits and not accept_shortfall:
        # Subscribing must mean the model answers the need: say why it does not.
        raise ValidationError(
            {
                "model": [
                    _("%(model)s does not answer this need. %(reasons)s")
                    % {"model": model.name, "reasons": " ".join(fit.reasons)}
                ]
            }
        )
    if need.status == NeedStatus.LIVE and model.label_set_id != need.label_set_id:
        raise ValidationError(
            {"model": [_("A live need can only move to a model of its own label set.")]}
        )
    # The model's label set replaces a request; thresholds for labels it lacks go.
    rows = [
        NeedLabel(
            label=row.label,
            name=row.name,
            threshold=row.threshold if row.label.key in allowed else None,
        )
        for row in need.label_rows()
    ]
    try:
        with transaction.atomic():
            _lock(need)
            need.model = model
            need.model_alias = "production"
            need.model_chosen_at = timezone.now()
            need.label_set = model.label_set
            need.top_k = min(need.top_k, max(len(allowed), 1))
            need.save()
            _write_labels(need=need, rows=[r for r in rows if r.name or r.threshold is not None])
    except IntegrityError as exc:  # a concurrent change to the same need: refuse, never a 500
        need.refresh_from_db()
        raise ValidationError(
            {"model": [_("The need changed while subscribing; reload it and try again.")]}
        ) from exc
    return need


def need_keep_model(*, need: Need, actor=None) -> Need:
    """The tenant saw that another model was promoted for the need's label set and keeps the
    one it has: the question is not asked again until a later promotion."""
    if need.status == NeedStatus.RETIRED:
        raise ValidationError({"status": [_("A retired need cannot be changed.")]})
    if need.model_id is None:
        raise ValidationError({"model": [_("This need has no model to keep.")]})
    with transaction.atomic():
        _lock(need)
        need.model_chosen_at = timezone.now()
        need.save(update_fields=["model_chosen_at", "updated_at"])
    return need
