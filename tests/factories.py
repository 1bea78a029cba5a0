"""factory-boy factories for the core models. Area-specific factories live next to their tests."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from taxonomy.models import Label, LabelSet, LabelSetMember, LabelSetRevision
from tenants import keys
from tenants.models import ApiKey, ApiKeyScope, Membership, Need, NeedLabel, Role, Tenant


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("password")


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: f"Business unit {o.slug}")
    contact_email = factory.LazyAttribute(lambda o: f"team@{o.slug}.example.com")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.VIEWER


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """`ApiKeyFactory().plain_key` is the secret, known only to the instance just created."""

    class Meta:
        model = ApiKey

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    scopes = factory.LazyFunction(lambda: [s.value for s in ApiKeyScope])

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        plain, prefix, hashed = keys.generate_key()
        kwargs.setdefault("prefix", prefix)
        kwargs.setdefault("hashed_key", hashed)
        obj = super()._create(model_class, *args, **kwargs)
        obj.plain_key = plain
        return obj


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"test.label{n}")
    name_en = factory.LazyAttribute(lambda o: o.key.rsplit(".", 1)[-1].title())
    name_zh = ""


class LabelSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabelSet

    tenant = None
    slug = factory.Sequence(lambda n: f"label-set-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


def make_label_set(*, slug: str, keys_: list[str], tenant=None, kind="multiclass") -> LabelSet:
    """A label set with one revision holding the given label keys (labels created as needed)."""
    label_set = LabelSetFactory(slug=slug, tenant=tenant, kind=kind)
    revision = LabelSetRevision.objects.create(label_set=label_set, number=1)
    for position, key in enumerate(keys_):
        LabelSetMember.objects.create(
            revision=revision, label=LabelFactory(key=key), position=position
        )
    return label_set


def set_need_labels(
    need: Need,
    *,
    requested_labels=(),
    label_mapping: dict[str, str] | None = None,
    per_label_thresholds: dict[str, float] | None = None,
) -> Need:
    """Give `need` these label rows, written in the API's shapes (labels are created as needed;
    a threshold may name its label by the tenant's name). No service rules: test data only."""
    rows: dict[str, NeedLabel] = {}

    def row(key: str) -> NeedLabel:
        if key not in rows:
            rows[key] = NeedLabel(
                tenant_id=need.tenant_id, need=need, label=LabelFactory(key=key), position=len(rows)
            )
        return rows[key]

    for key in requested_labels:
        row(key).requested = True
    for name, key in (label_mapping or {}).items():
        row(key).name = name
    for ref, value in (per_label_thresholds or {}).items():
        row((label_mapping or {}).get(ref, ref)).threshold = value
    NeedLabel.objects.dangerously_unscoped().filter(need=need).delete()
    NeedLabel.objects.bulk_create(rows.values())
    need.forget_label_rows()
    return need


class NeedFactory(factory.django.DjangoModelFactory):
    """Also takes `requested_labels`, `label_mapping` and `per_label_thresholds` (see
    `set_need_labels`)."""

    class Meta:
        model = Need

    tenant = factory.SubFactory(TenantFactory)
    slug = factory.Sequence(lambda n: f"need-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    goal = "Tag incoming articles"
    delivery = factory.LazyFunction(lambda: ["sync"])

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        labels = {
            field: kwargs.pop(field)
            for field in ("requested_labels", "label_mapping", "per_label_thresholds")
            if field in kwargs
        }
        need = super()._create(model_class, *args, **kwargs)
        return set_need_labels(need, **labels) if labels else need
