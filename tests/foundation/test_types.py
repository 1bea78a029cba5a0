"""Type checking in the suite: mypy with django-stubs and djangorestframework-stubs over the core,
the services and the selectors (`[tool.mypy] files` in pyproject.toml).

Errors that were there when checking began are counted per file in mypy_baseline.json. The count
may only go down: a new error fails, and so does a file that got cleaner than its entry (lower the
entry, or drop it at 0), so the baseline never hides room for new errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).with_name("mypy_baseline.json")

pytest.importorskip("mypy", reason="mypy is in the test extras (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def mypy_errors() -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}{os.pathsep}{ROOT}"}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--no-color-output"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # 0: clean, 1: type errors; anything else is mypy itself failing (config, crash).
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    errors: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if ": error: " in line:
            errors.setdefault(line.split(":", 1)[0], []).append(line)
    return errors


def test_no_new_type_errors(mypy_errors):
    baseline = json.loads(BASELINE.read_text())
    new = {path: lines for path, lines in mypy_errors.items() if len(lines) > baseline.get(path, 0)}
    assert not new, "mypy found errors beyond tests/foundation/mypy_baseline.json:\n" + "\n".join(
        line for lines in new.values() for line in lines
    )


def test_the_baseline_only_shrinks(mypy_errors):
    baseline = json.loads(BASELINE.read_text())
    counts = Counter({path: len(lines) for path, lines in mypy_errors.items()})
    cleaner = {path: counts[path] for path, allowed in baseline.items() if counts[path] < allowed}
    assert not cleaner, (
        "Fewer type errors than tests/foundation/mypy_baseline.json allows; lower these entries "
        f"(drop those at 0): {cleaner}"
    )
