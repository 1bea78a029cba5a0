"""`platform/` must stay a plain source folder: a package there would shadow the stdlib module."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_platform_folder_has_no_init_py():
    assert not (ROOT / "platform" / "__init__.py").exists(), (
        "platform/__init__.py shadows the standard-library `platform` module; delete it."
    )


def test_stdlib_platform_imports_from_the_repo_root():
    result = subprocess.run(
        [sys.executable, "-c", "import platform, uuid; print(platform.system())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "platform.system() returned nothing"


def test_project_package_lives_under_platform():
    import tagging_platform

    assert (
        Path(tagging_platform.__file__).resolve().parent == ROOT / "platform" / "tagging_platform"
    )
