"""Stored scores become ranked lists: {"label": score, ...} -> [["label", score], ...] best first.

Batch results and stream items kept scores as JSON objects, whose key order PostgreSQL's jsonb
does not keep; the CSV download took "the first key" as the top label and was wrong. Existing
rows are ranked by score (ties by label). PostgreSQL does it in one UPDATE per table; other
databases row by row.
"""

from django.db import migrations, models

BATCH_SQL = """
UPDATE serving_batchresult SET scores = (
    SELECT COALESCE(jsonb_agg(jsonb_build_array(e.key, e.value)
                              ORDER BY (e.value)::numeric DESC, e.key), '[]'::jsonb)
    FROM jsonb_each(scores) AS e)
WHERE jsonb_typeof(scores) = 'object'
"""
ITEM_SQL = """
UPDATE serving_item SET result = jsonb_set(result, '{scores}', (
    SELECT COALESCE(jsonb_agg(jsonb_build_array(e.key, e.value)
                              ORDER BY (e.value)::numeric DESC, e.key), '[]'::jsonb)
    FROM jsonb_each(result -> 'scores') AS e))
WHERE result IS NOT NULL AND jsonb_typeof(result -> 'scores') = 'object'
"""
BATCH_SQL_REVERSE = """
UPDATE serving_batchresult SET scores = (
    SELECT COALESCE(jsonb_object_agg(e ->> 0, e -> 1), '{}'::jsonb)
    FROM jsonb_array_elements(scores) AS e)
WHERE jsonb_typeof(scores) = 'array'
"""
ITEM_SQL_REVERSE = """
UPDATE serving_item SET result = jsonb_set(result, '{scores}', (
    SELECT COALESCE(jsonb_object_agg(e ->> 0, e -> 1), '{}'::jsonb)
    FROM jsonb_array_elements(result -> 'scores') AS e))
WHERE result IS NOT NULL AND jsonb_typeof(result -> 'scores') = 'array'
"""


def rank(scores: dict) -> list:
    return [[label, score] for label, score in sorted(scores.items(), key=lambda p: (-p[1], p[0]))]


def _rows(model, field, convert):
    """Rewrite `field` of every row whose value `convert` changes, in chunks."""
    pending = []
    for row in model.objects.only("pk", field).iterator(chunk_size=2000):
        value = convert(getattr(row, field))
        if value is not None:
            setattr(row, field, value)
            pending.append(row)
        if len(pending) >= 2000:
            model.objects.bulk_update(pending, [field])
            pending = []
    if pending:
        model.objects.bulk_update(pending, [field])


def _batch_forward(value):
    return rank(value) if isinstance(value, dict) else None


def _item_forward(value):
    if isinstance(value, dict) and isinstance(value.get("scores"), dict):
        return {**value, "scores": rank(value["scores"])}
    return None


def _batch_backward(value):
    return {label: score for label, score in value} if isinstance(value, list) else None


def _item_backward(value):
    if isinstance(value, dict) and isinstance(value.get("scores"), list):
        return {**value, "scores": {label: score for label, score in value["scores"]}}
    return None


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BATCH_SQL)
        schema_editor.execute(ITEM_SQL)
        return
    _rows(apps.get_model("serving", "BatchResult"), "scores", _batch_forward)
    _rows(apps.get_model("serving", "Item"), "result", _item_forward)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BATCH_SQL_REVERSE)
        schema_editor.execute(ITEM_SQL_REVERSE)
        return
    _rows(apps.get_model("serving", "BatchResult"), "scores", _batch_backward)
    _rows(apps.get_model("serving", "Item"), "result", _item_backward)


class Migration(migrations.Migration):
    dependencies = [("serving", "0003_items_deliveries_batches")]

    operations = [
        migrations.AlterField(
            model_name="batchresult",
            name="scores",
            field=models.JSONField(default=list),
        ),
        migrations.RunPython(forward, backward, elidable=False),
    ]
