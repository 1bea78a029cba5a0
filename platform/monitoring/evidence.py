"""Alert evidence for people: one sentence, a few days of numbers and a sparkline.

Labels are shown by the tenant's own name (its `label_mapping`, else the taxonomy's name in the
reader's language),
with the global key kept for a tooltip. Nothing here returns a dict for a person to read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _

from monitoring.models import Alert, AlertKind
from taxonomy.selectors import label_names as taxonomy_label_names
from taxonomy.selectors import localized_label_name
from tenants.models import Need


def label_names(need: Need) -> dict[str, str]:
    """Global key -> what the reader calls it: the tenant's name for it, else the taxonomy's
    name in the active language (name_zh for Chinese, name_en otherwise)."""
    names: dict[str, str] = {}
    keys: set[str] = set()
    if need.label_set_id and (revision := need.label_set.current_revision):
        keys = set(revision.label_keys())
    for name, key in (need.label_mapping or {}).items():
        names.setdefault(str(key), str(name))
    missing = keys - set(names)
    if missing:
        language = get_language()
        for key, pair in taxonomy_label_names(missing).items():
            names[key] = localized_label_name(pair, key, language)
    return names


def name_of(key: str, names: dict[str, str]) -> str:
    return names.get(key, key)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{number_format(value * 100, 1)} %"


def _num(value: float | None) -> str:
    return "—" if value is None else number_format(value, 0, force_grouping=True)


def _fixed(value: float | None, digits: int) -> str:
    return number_format(value or 0, digits)


def _days(n: int) -> str:
    return ngettext("%(n)d consecutive day", "%(n)d consecutive days", n) % {"n": n}


def sentence(alert: Alert, fmt_label: Callable[[str], str]) -> str:
    """What happened, in words (the active language). `fmt_label` renders a label key (plain
    text or HTML)."""
    e = alert.evidence or {}
    window = e.get("evidence_days", 1)
    over = (
        _("on the last day") if window == 1 else _("over the last %(days)s days") % {"days": window}
    )
    persisted = (
        _(" — seen on %(days)s") % {"days": _days(alert.consecutive_days)}
        if alert.consecutive_days > 1
        else ""
    )
    label = fmt_label(alert.label) if alert.label else ""
    common = {
        "label": label,
        "over": over,
        "persisted": persisted,
        "reference": _pct(e.get("reference")),
        "value": _pct(e.get("value")),
        "expected": _num(e.get("expected")),
        "observed": _num(e.get("observed")),
    }
    if alert.kind == AlertKind.LABEL_SHARE:
        fell = (e.get("value") or 0) < (e.get("reference") or 0)
        text = (
            _(
                "%(label)s fell from %(reference)s of predictions (usual, previous "
                "%(reference_days)s days) to %(value)s %(over)s (expected ≈%(expected)s, "
                "observed %(observed)s)%(persisted)s."
            )
            if fell
            else _(
                "%(label)s rose from %(reference)s of predictions (usual, previous "
                "%(reference_days)s days) to %(value)s %(over)s (expected ≈%(expected)s, "
                "observed %(observed)s)%(persisted)s."
            )
        )
        return text % {**common, "reference_days": e.get("reference_days", "?")}
    if alert.kind == AlertKind.RARE_CLASS:
        return (
            _(
                "%(label)s, a rare class (%(reference)s of predictions in training), appeared "
                "%(observed)s times %(over)s where ≈%(expected)s were expected%(persisted)s."
            )
            % common
        )
    if alert.kind == AlertKind.DRIFT:
        movers = ", ".join(
            f"{fmt_label(m['label'])} {_pct(m['baseline_share'])}→{_pct(m['observed_share'])}"
            for m in e.get("top_movers", [])[:3]
        )
        return _(
            "The label mix moved away from the baseline: PSI %(psi)s (threshold "
            "%(psi_threshold)s), JS distance %(js)s (threshold %(js_threshold)s); biggest "
            "moves: %(movers)s%(persisted)s."
        ) % {
            **common,
            "psi": _fixed(e.get("value"), 2),
            "psi_threshold": _fixed(e.get("psi_threshold"), 2),
            "js": _fixed(e.get("js_distance"), 2),
            "js_threshold": _fixed(e.get("js_threshold"), 2),
            "movers": movers,
        }
    if alert.kind == AlertKind.CTR_DROP:
        return _(
            "CTR of %(label)s fell from %(reference)s to %(value)s %(over)s (%(sample)s "
            "impressions, %(observed)s clicks where ≈%(expected)s were usual)%(persisted)s."
        ) % {**common, "sample": _num(e.get("sample"))}
    if alert.kind == AlertKind.NEGATIVE_RISE:
        return (
            _(
                "Negative feedback on %(label)s rose from %(reference)s to %(value)s of "
                "impressions %(over)s (%(observed)s complaints where ≈%(expected)s were "
                "usual)%(persisted)s."
            )
            % common
        )
    if alert.kind == AlertKind.VOLUME_COLLAPSE:
        return _(
            "Prediction volume fell to %(volume)s a day, %(drop)s %% below the usual "
            "%(usual)s%(persisted)s."
        ) % {
            **common,
            "volume": _num(e.get("value")),
            "drop": _fixed(e.get("drop_pct"), 0),
            "usual": _num(e.get("reference")),
        }
    return alert.message


def plain_sentence(alert: Alert, names: dict[str, str]) -> str:
    """For notifications: 'Name (global.key)'."""

    def fmt(key: str) -> str:
        name = name_of(key, names)
        return f"{name} ({key})" if name != key else key

    return sentence(alert, fmt)


def html_sentence(alert: Alert, names: dict[str, str]) -> str:
    def fmt(key: str) -> str:
        return str(
            format_html(
                '<span class="label-name" title="{}">{}</span>',
                key,
                name_of(key, names),
            )
        )

    # Every variable part is escaped by format_html in fmt or is a number; the rest is ours.
    parts = sentence(alert, lambda key: "\x00" + key + "\x01")
    out, rest = [], parts
    while "\x00" in rest:
        before, _sep, tail = rest.partition("\x00")
        key, _sep, rest = tail.partition("\x01")
        out.append(str(format_html("{}", before)))
        out.append(fmt(key))
    out.append(str(format_html("{}", rest)))
    return "".join(out)


@dataclass
class EvidenceRow:
    day: str
    status: str
    value: str
    reference: str
    observed: str
    expected: str


def _fmt_value(kind: str, value: float | None) -> str:
    if kind in (AlertKind.DRIFT,):
        return "—" if value is None else f"{value:.3f}"
    if kind == AlertKind.VOLUME_COLLAPSE:
        return _num(value)
    return _pct(value)


def value_title(kind: str) -> str:
    return {
        AlertKind.DRIFT: "PSI",
        AlertKind.VOLUME_COLLAPSE: _("Volume"),
        AlertKind.CTR_DROP: "CTR",
        AlertKind.NEGATIVE_RISE: _("Negative rate"),
    }.get(kind, _("Share"))


def table_rows(alert: Alert) -> list[EvidenceRow]:
    rows = []
    for d in (alert.evidence or {}).get("days", []):
        rows.append(
            EvidenceRow(
                day=d["day"],
                status={
                    "ok": _("clean"),
                    "flagged": _("flagged"),
                    "insufficient": _("too little data"),
                }.get(d["status"], d["status"]),
                value=_fmt_value(alert.kind, d.get("value")),
                reference=_fmt_value(alert.kind, d.get("reference")),
                observed=_num(d.get("observed")),
                expected=_num(d.get("expected")),
            )
        )
    return rows


def sparkline_points(alert: Alert, *, width: int = 120, height: int = 28) -> dict:
    """SVG polyline points for the value over the evidence days, and the usual level's y."""
    days = (alert.evidence or {}).get("days", [])
    values = [d.get("value") for d in days]
    refs = [d.get("reference") for d in days if d.get("reference") is not None]
    known = [v for v in values if v is not None] + refs
    if len(values) < 2 or not known:
        return {}
    top = max(known) or 1.0
    bottom = min(0.0, min(known))
    span = (top - bottom) or 1.0

    def y(v: float) -> float:
        return round(height - 2 - (v - bottom) / span * (height - 4), 1)

    step = width / (len(values) - 1)
    points = " ".join(f"{round(i * step, 1)},{y(v)}" for i, v in enumerate(values) if v is not None)
    return {
        "points": points,
        "reference_y": y(refs[-1]) if refs else None,
        "width": width,
        "height": height,
    }


@dataclass
class AlertCard:
    """What the portal shows for one alert."""

    alert: Alert
    sentence: str
    label_name: str
    rows: list[EvidenceRow]
    spark: dict
    value_title: str


def alert_cards(alerts) -> list[AlertCard]:
    names_by_need: dict[int, dict[str, str]] = {}
    cards = []
    for alert in alerts:
        names = names_by_need.setdefault(alert.need_id, label_names(alert.need))
        cards.append(
            AlertCard(
                alert=alert,
                sentence=html_sentence(alert, names),
                label_name=name_of(alert.label, names) if alert.label else "",
                rows=table_rows(alert)[-7:],
                spark=sparkline_points(alert),
                value_title=value_title(alert.kind),
            )
        )
    return cards
