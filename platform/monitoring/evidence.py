"""Alert evidence for people: one sentence, a few days of numbers and a sparkline.

Labels are shown by the tenant's own name (its `label_mapping`, else the taxonomy's English name),
with the global key kept for a tooltip. Nothing here returns a dict for a person to read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import format_html

from monitoring.models import Alert, AlertKind
from taxonomy.models import Label
from tenants.models import Need


def label_names(need: Need) -> dict[str, str]:
    """Global key -> the tenant's name for it."""
    names: dict[str, str] = {}
    keys: set[str] = set()
    if need.label_set_id and (revision := need.label_set.current_revision):
        keys = set(revision.label_keys())
    for name, key in (need.label_mapping or {}).items():
        names.setdefault(str(key), str(name))
    missing = keys - set(names)
    if missing:
        for key, name in Label.objects.filter(key__in=missing).values_list("key", "name_en"):
            names[key] = name or key
    return names


def name_of(key: str, names: dict[str, str]) -> str:
    return names.get(key, key)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _days(n: int) -> str:
    return f"{n} consecutive day{'s' if n != 1 else ''}"


def sentence(alert: Alert, fmt_label: Callable[[str], str]) -> str:
    """What happened, in words. `fmt_label` renders a label key (plain text or HTML)."""
    e = alert.evidence or {}
    window = e.get("evidence_days", 1)
    over = "on the last day" if window == 1 else f"over the last {window} days"
    persisted = f" — seen on {_days(alert.consecutive_days)}" if alert.consecutive_days > 1 else ""
    label = fmt_label(alert.label) if alert.label else ""
    if alert.kind == AlertKind.LABEL_SHARE:
        verb = "fell" if (e.get("value") or 0) < (e.get("reference") or 0) else "rose"
        return (
            f"{label} {verb} from {_pct(e.get('reference'))} of predictions (usual, previous "
            f"{e.get('reference_days', '?')} days) to {_pct(e.get('value'))} {over} "
            f"(expected ≈{_num(e.get('expected'))}, observed {_num(e.get('observed'))})"
            f"{persisted}."
        )
    if alert.kind == AlertKind.RARE_CLASS:
        return (
            f"{label}, a rare class ({_pct(e.get('reference'))} of predictions in training), "
            f"appeared {_num(e.get('observed'))} times {over} where ≈{_num(e.get('expected'))} "
            f"were expected{persisted}."
        )
    if alert.kind == AlertKind.DRIFT:
        movers = ", ".join(
            f"{fmt_label(m['label'])} {_pct(m['baseline_share'])}→{_pct(m['observed_share'])}"
            for m in e.get("top_movers", [])[:3]
        )
        js = e.get("js_distance")
        return (
            f"The label mix moved away from the baseline: PSI {e.get('value', 0):.2f} "
            f"(threshold {e.get('psi_threshold', 0):.2f}), JS distance "
            f"{(js or 0):.2f} (threshold {e.get('js_threshold', 0):.2f}); biggest moves: "
            f"{movers}{persisted}."
        )
    if alert.kind == AlertKind.CTR_DROP:
        return (
            f"CTR of {label} fell from {_pct(e.get('reference'))} to {_pct(e.get('value'))} "
            f"{over} ({_num(e.get('sample'))} impressions, {_num(e.get('observed'))} clicks where "
            f"≈{_num(e.get('expected'))} were usual){persisted}."
        )
    if alert.kind == AlertKind.NEGATIVE_RISE:
        return (
            f"Negative feedback on {label} rose from {_pct(e.get('reference'))} to "
            f"{_pct(e.get('value'))} of impressions {over} ({_num(e.get('observed'))} "
            f"complaints where ≈{_num(e.get('expected'))} were usual){persisted}."
        )
    if alert.kind == AlertKind.VOLUME_COLLAPSE:
        return (
            f"Prediction volume fell to {_num(e.get('value'))} a day, "
            f"{e.get('drop_pct', 0):.0f} % below the usual {_num(e.get('reference'))}"
            f"{persisted}."
        )
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
                '<span class="label-name" title="global key: {}">{}</span>',
                key,
                name_of(key, names),
            )
        )

    # Every variable part is escaped by format_html in fmt or is a number; the rest is ours.
    parts = sentence(alert, lambda key: "\x00" + key + "\x01")
    out, rest = [], parts
    while "\x00" in rest:
        before, _, tail = rest.partition("\x00")
        key, _, rest = tail.partition("\x01")
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
        AlertKind.VOLUME_COLLAPSE: "Volume",
        AlertKind.CTR_DROP: "CTR",
        AlertKind.NEGATIVE_RISE: "Negative rate",
    }.get(kind, "Share")


def table_rows(alert: Alert) -> list[EvidenceRow]:
    rows = []
    for d in (alert.evidence or {}).get("days", []):
        rows.append(
            EvidenceRow(
                day=d["day"],
                status={"ok": "clean", "flagged": "flagged", "insufficient": "too little data"}.get(
                    d["status"], d["status"]
                ),
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
