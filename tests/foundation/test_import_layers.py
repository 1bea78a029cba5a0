"""Layers point one way: `lint-imports` checks the contracts in pyproject.toml ([tool.importlinter]).

core < taxonomy < tenants < registry < serving < monitoring < retraining, optimisation < review
< records < portal, workers, tagging_platform.
Module-level and function-level imports both count.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(*args: str, first: Path | None = None) -> subprocess.CompletedProcess:
    paths = [str(ROOT), str(ROOT / "platform")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(first), *paths] if first else paths)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_contracts_are_kept():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.split("Contracts:")[-1].split("kept")[0]


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """A copy of `core` (found first on the path) with a function-level import of a task module,
    the way services used to enqueue: the layers contract reports it."""
    shutil.copytree(ROOT / "platform" / "core", tmp_path / "core")
    (tmp_path / "core" / "upward_probe.py").write_text(
        "def send():\n    from workers.tasks.online import tag_sync_items\n\n"
        "    return tag_sync_items\n"
    )
    result = _lint_imports(first=tmp_path)
    assert result.returncode != 0
    assert "core.upward_probe -> workers.tasks.online" in result.stdout


def test_the_declared_exceptions_are_reported_without_them(tmp_path):
    """The same layers without `ignore_imports`: each remaining exception is a real upward
    import (a stale entry would hide nothing and should go)."""
    config = (ROOT / "pyproject.toml").read_text()
    section = config[config.index("[tool.importlinter]") :]
    ignored = re.findall(r'^    "([\w.]+) -> ([\w.]+)",$', section, flags=re.M)
    if not ignored:
        return
    strict = re.sub(r"ignore_imports = \[.*?\n\]\n", "", section, flags=re.S)
    path = tmp_path / "strict.toml"
    path.write_text(strict)
    result = _lint_imports("--config", str(path))
    assert result.returncode != 0
    for importer, imported in ignored:
        assert f"{importer} -> {imported}" in result.stdout
