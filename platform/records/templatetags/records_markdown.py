from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from records.markdown import render

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str):
    """`{{ section.body|markdown }}`: rendered and sanitised (records.markdown)."""
    return render(text)


@register.filter(name="diff_lines")
def diff_lines(diff: str):
    """A unified diff as escaped lines, added and removed ones marked for the stylesheet."""
    rows = []
    for line in (diff or "").splitlines():
        css = ""
        if line.startswith("+") and not line.startswith("+++"):
            css = "add"
        elif line.startswith("-") and not line.startswith("---"):
            css = "del"
        rows.append(format_html('<span class="{}">{}</span>', css, line) if css else escape(line))
    return mark_safe("\n".join(str(row) for row in rows))  # noqa: S308 - every line escaped


@register.filter(name="table_cell")
def table_cell(text: str) -> str:
    """One line of text that cannot break a Markdown table row."""
    return " ".join((text or "").split()).replace("|", "\\|")
