"""CI check: the tenancy escape hatch is used only where crossing tenants is the job.

`dangerously_unscoped()` (and `dangerously_unscoped_block()`) may appear in admin, bundle/backup,
demo loaders, migrations and tests; in functions named `*_all_tenants` (the separately named
staff/platform variants of selectors); and in the few functions listed below, each with its
reason. Anywhere else this test fails. Django's plain base manager is reserved for the tenancy
core the same way.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ["platform", "tenants", "taxonomy", "workers", "bench", "scripts", "deploy"]

#: File names and folders where crossing tenants is what the code is for.
ALLOWED_FILES = {"admin.py", "admin_site.py", "demo.py"}
ALLOWED_FOLDERS = {"migrations", "tests", "bundle"}  # bundle: registry export/restore (backup)

#: (path, function) -> why it must see every tenant's rows.
ALLOWED_FUNCTIONS: dict[tuple[str, str], str] = {
    ("tenants/models.py", "_labels_prefetch"): (
        "a prefetch from needs already scoped: it reads only the label rows of those needs"
    ),
    ("platform/core/querysets.py", "dangerously_unscoped"): "the escape hatch itself",
    ("platform/core/querysets.py", "get_queryset"): "the default manager honours the admin block",
    ("tenants/memberships.py", "memberships_for"): (
        "a user's own memberships in every tenant are how a session's tenant is resolved"
    ),
    ("tenants/memberships.py", "support_memberships_for"): (
        "staff support mode lists the tenants a staff user is not a member of"
    ),
    ("tenants/authentication.py", "_authenticate_uncached"): (
        "an API key is found by its prefix before any tenant is known"
    ),
    ("platform/registry/services/aliases.py", "_approved_needs_go_live"): (
        "an alias move brings live every approved need on that (possibly shared) model"
    ),
    ("platform/registry/incidents.py", "incident_record"): (
        "artifact integrity is platform-wide: a sha256 is matched to its version, any owner"
    ),
    ("platform/serving/runtime.py", "_version_meta"): (
        "the process-wide model runtime loads versions by id on background load threads"
    ),
    ("platform/serving/runtime.py", "_bind"): (
        "the process-wide model runtime binds need ids handed to it by scoped callers"
    ),
    ("platform/monitoring/aggregation.py", "aggregate_predictions_day"): (
        "the beat aggregation recomputes every tenant's day in one SQL statement"
    ),
    ("platform/monitoring/aggregation.py", "aggregate_feedback_day"): (
        "the beat aggregation recomputes every tenant's day in one SQL statement"
    ),
    ("platform/monitoring/aggregation.py", "aggregate_week"): (
        "the beat aggregation recomputes every tenant's week in one SQL statement"
    ),
    ("platform/monitoring/replay.py", "*"): (
        "the monitoring acceptance replay loads demo history for the demo needs"
    ),
    ("platform/registry/management/commands/import_dataset.py", "*"): (
        "a staff command-line tool, like the admin"
    ),
    ("platform/registry/management/commands/train_model.py", "*"): (
        "a staff command-line tool, like the admin"
    ),
    ("bench/aggregate_bench.py", "*"): "a benchmark seeds and reads its own rows",
    ("bench/resilience_bench.py", "*"): "a benchmark seeds and reads its own rows",
    ("bench/serving_bench.py", "*"): "a benchmark seeds and reads its own rows",
    ("bench/batch_ingest_bench.py", "*"): "a benchmark seeds and reads its own rows",
    ("bench/stream_latency_bench.py", "*"): "a benchmark seeds and reads its own rows",
}

HATCH = "dangerously_unscoped"
BASE_MANAGER_OWNERS = {"platform/core/querysets.py"}


def _python_files():
    for folder in SOURCE_DIRS:
        base = ROOT / folder
        if base.exists():
            yield from sorted(p for p in base.rglob("*.py") if ".venv" not in p.parts)
    yield from sorted(ROOT.glob("*.py"))


class _Uses(ast.NodeVisitor):
    def __init__(self):
        self.stack: list[str] = []
        self.hatch: list[tuple[int, list[str]]] = []
        self.base_manager: list[int] = []

    def _function(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Attribute(self, node):
        if node.attr.startswith(HATCH):
            self.hatch.append((node.lineno, list(self.stack)))
        if node.attr == "_base_manager":
            self.base_manager.append(node.lineno)
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id.startswith(HATCH):
            self.hatch.append((node.lineno, list(self.stack)))

    def visit_ImportFrom(self, node):
        for alias in node.names:
            if alias.name.startswith(HATCH):
                self.hatch.append((node.lineno, list(self.stack)))


def _scan():
    found = []
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        uses = _Uses()
        uses.visit(ast.parse(path.read_text(encoding="utf-8"), filename=rel))
        found.append((rel, path, uses))
    return found


def _allowed(rel: str, path: Path, functions: list[str], used: set) -> bool:
    if path.name in ALLOWED_FILES or ALLOWED_FOLDERS & set(path.parts):
        return True
    if any(name.endswith("_all_tenants") for name in functions):
        return True
    for key in [(rel, "*"), *((rel, name) for name in functions)]:
        if key in ALLOWED_FUNCTIONS:
            used.add(key)
            return True
    return False


def test_escape_hatch_is_used_only_in_allowed_places():
    used: set = set()
    offenders = [
        f"{rel}:{line} (in {'.'.join(functions) or 'module'})"
        for rel, path, uses in _scan()
        for line, functions in uses.hatch
        if not _allowed(rel, path, functions, used)
    ]
    assert not offenders, (
        "dangerously_unscoped() outside admin, bundle/backup, demo, migrations, tests and "
        "`*_all_tenants` functions: scope the query (for_tenant/owned_by/tenant_scope) "
        "instead:\n" + "\n".join(offenders)
    )
    stale = sorted(set(ALLOWED_FUNCTIONS) - used)
    assert not stale, f"allow-list entries no longer needed (remove them): {stale}"


def test_base_manager_is_reserved_for_the_tenancy_core():
    offenders = [
        f"{rel}:{line}"
        for rel, _, uses in _scan()
        for line in uses.base_manager
        if rel not in BASE_MANAGER_OWNERS
    ]
    assert not offenders, "`_base_manager` bypasses tenant scoping: " + ", ".join(offenders)


def test_the_guard_sees_a_forbidden_use(tmp_path):
    """The scanner itself: a use in an ordinary service module is not allowed."""
    source = "def need_get(*, pk):\n    return Need.objects.dangerously_unscoped().get(pk=pk)\n"
    uses = _Uses()
    uses.visit(ast.parse(source))
    assert uses.hatch == [(2, ["need_get"])]
    path = tmp_path / "services.py"
    assert not _allowed("platform/serving/services.py", path, ["need_get"], set())
    assert _allowed("platform/serving/services.py", path, ["needs_all_tenants"], set())
    assert _allowed("platform/serving/admin.py", tmp_path / "admin.py", ["x"], set())
