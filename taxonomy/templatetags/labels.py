"""Taxonomy labels in the reader's language.

`{% label key %}` shows the tenant's own name for the label when the page has one (a `label_names`
dict in the context, or `own=` given), else the label's name in the active language (name_zh
or name_en), with the stable global key in the tooltip. One query per request for all names.
"""

from __future__ import annotations

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

from taxonomy.selectors import label_names, localized_label_name

register = template.Library()


def _names(context) -> dict[str, tuple[str, str]]:
    request = context.get("request")
    cached = getattr(request, "_taxonomy_label_names", None) if request is not None else None
    if cached is None:
        cached = label_names()
        if request is not None:
            request._taxonomy_label_names = cached
    return cached


def display_name(context, key: str, own: str = "") -> str:
    if own:
        return own
    tenant_names = context.get("label_names") or {}
    if tenant_names.get(key):
        return tenant_names[key]
    return localized_label_name(_names(context).get(key), key, get_language())


@register.simple_tag(takes_context=True)
def label(context, key, own=""):
    """<span class="label-name" title="key">name</span> for one label key."""
    key = str(key or "")
    if not key:
        return "—"
    return format_html(
        '<span class="label-name" title="{}">{}</span>', key, display_name(context, key, own)
    )


@register.simple_tag(takes_context=True)
def label_list(context, keys, separator=", "):
    """Several labels, each as `{% label %}` renders it."""
    parts = [label(context, key) for key in keys or []]
    return mark_safe(conditional_escape(separator).join(parts)) if parts else "—"


@register.simple_tag(takes_context=True)
def label_text(context, key, own=""):
    """Just the display name (for attributes and chart data)."""
    return display_name(context, str(key or ""), own)
