"""Layers point one way: `lint-imports` checks the contracts in pyproject.toml ([tool.importlinter]).

core < taxonomy < tenants < registry < serving < monitoring < portal, workers, tagging_platform.
Module-level and function-level imports both count.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")])}
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
    """The same layers without the declared exceptions: the enqueue imports (function-level,
    serving -> workers) and the view imports are reported, so a new one would be too."""
    config = (ROOT / "pyproject.toml").read_text()
    section = config[config.index("[tool.importlinter]") :]
    strict = re.sub(r"ignore_imports = \[.*?\n\]\n", "", section, flags=re.S)
    assert strict != section
    path = tmp_path / "strict.toml"
    path.write_text(strict)
    result = _lint_imports("--config", str(path))
    assert result.returncode != 0
    assert "serving.sync -> workers.tasks.online" in result.stdout
    assert "tenants.api -> registry.selectors" in result.stdout
