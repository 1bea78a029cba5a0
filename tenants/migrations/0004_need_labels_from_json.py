"""Carry each need's JSON labels (requested_labels, label_mapping, per_label_thresholds) over to
NeedLabel rows, and back on reverse.

What the JSON allowed and the rows do not is settled the way serving already behaved, and logged:
- two names for one label: the runtime showed the last one, so the last one is kept;
- a threshold keyed by the tenant's name: it moves to that label's row, unless the label's key has
  its own threshold (the key won in the runtime too);
- an unknown label key, or a threshold outside [0, 1]: nothing served it, so it is dropped.
"""

import logging
import math

from django.db import migrations

logger = logging.getLogger(__name__)

_NAME_MAX = 200


def label_rows_from_json(requested, mapping, thresholds, known) -> tuple[list[dict], list[str]]:
    """The rows (`key`, `name`, `threshold`, `requested`, `position`) for one need's JSON, and
    what could not be carried over. `known` is the set of label keys that exist."""
    rows: dict[str, dict] = {}
    problems: list[str] = []

    def row(key: str) -> dict:
        if key not in rows:
            rows[key] = {
                "key": key,
                "name": "",
                "threshold": None,
                "requested": False,
                "position": len(rows),
            }
        return rows[key]

    for key in requested if isinstance(requested, list) else []:
        if isinstance(key, str) and key in known:
            row(key)["requested"] = True
        else:
            problems.append(f"requested label {key!r} is unknown: dropped")
    names: dict[str, str] = {}  # name -> key
    for raw_name, key in (mapping if isinstance(mapping, dict) else {}).items():
        name = str(raw_name).strip()[:_NAME_MAX]
        if not (isinstance(key, str) and key in known):
            problems.append(f"name {raw_name!r} maps to unknown label {key!r}: dropped")
            continue
        if not name:
            continue
        if name in names and names[name] != key:  # only after stripping/truncating
            problems.append(f"name {name!r} given twice: kept for {key!r}")
            rows[names[name]]["name"] = ""
        target = row(key)
        if target["name"] and target["name"] != name:
            problems.append(f"{key!r} named {target['name']!r} and {name!r}: kept {name!r}")
            names.pop(target["name"], None)
        target["name"] = name
        names[name] = key
    by_key = dict(thresholds) if isinstance(thresholds, dict) else {}
    for ref, value in by_key.items():
        key = ref if ref in known else names.get(str(ref).strip())
        if key is None:
            problems.append(f"threshold for unknown label {ref!r}: dropped")
            continue
        if key != ref and key in by_key:
            continue  # the key's own threshold wins over the name's
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0.0 <= value <= 1.0
        ):
            problems.append(f"threshold {value!r} for {ref!r} is not in [0, 1]: dropped")
            continue
        row(key)["threshold"] = float(value)
    kept = [r for r in rows.values() if r["requested"] or r["name"] or r["threshold"] is not None]
    for position, r in enumerate(kept):
        r["position"] = position
    return kept, problems


def json_to_rows(apps, schema_editor):
    Need = apps.get_model("tenants", "Need")
    NeedLabel = apps.get_model("tenants", "NeedLabel")
    Label = apps.get_model("taxonomy", "Label")
    label_ids = dict(Label.objects.values_list("key", "id"))
    batch = []
    for need in Need.objects.order_by("pk").iterator(chunk_size=500):
        rows, problems = label_rows_from_json(
            need.requested_labels, need.label_mapping, need.per_label_thresholds, label_ids
        )
        for problem in problems:
            logger.warning("need %s (tenant %s): %s", need.slug, need.tenant_id, problem)
        batch += [
            NeedLabel(
                tenant_id=need.tenant_id,
                need_id=need.pk,
                label_id=label_ids[r["key"]],
                name=r["name"],
                threshold=r["threshold"],
                requested=r["requested"],
                position=r["position"],
            )
            for r in rows
        ]
        if len(batch) >= 1000:
            NeedLabel.objects.bulk_create(batch)
            batch = []
    NeedLabel.objects.bulk_create(batch)


def rows_to_json(apps, schema_editor):
    Need = apps.get_model("tenants", "Need")
    NeedLabel = apps.get_model("tenants", "NeedLabel")
    rows: dict[int, list] = {}
    for row in NeedLabel.objects.select_related("label").order_by("need_id", "position", "pk"):
        rows.setdefault(row.need_id, []).append(row)
    changed = []
    for need in Need.objects.filter(pk__in=list(rows)).order_by("pk"):
        mine = rows[need.pk]
        need.requested_labels = [r.label.key for r in mine if r.requested]
        need.label_mapping = {r.name: r.label.key for r in mine if r.name}
        need.per_label_thresholds = {
            r.label.key: r.threshold for r in mine if r.threshold is not None
        }
        changed.append(need)
    Need.objects.bulk_update(
        changed, ["requested_labels", "label_mapping", "per_label_thresholds"], batch_size=500
    )
    NeedLabel.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_needlabel")]

    operations = [migrations.RunPython(json_to_rows, rows_to_json, elidable=False)]
