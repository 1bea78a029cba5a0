"""The zh-Hans catalogue is complete: every string marked in the code and templates has a
translation that is neither missing nor fuzzy, and the committed .mo matches the .po."""

from __future__ import annotations

import gettext
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
#: What makemessages must not read: the environment, data, tests and tooling (no UI strings).
IGNORED = [".venv", "var", "tests", "bench", "deploy", "docs", "scripts", "*.egg-info"]


def _gettext_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"GNU gettext's {name} is needed: apt-get install -y gettext")
    return path


def _entries(po: Path, *flags: str) -> list[str]:
    out = subprocess.run(
        [_gettext_tool("msgattrib"), *flags, "--no-wrap", str(po)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.startswith("msgid ") and line != 'msgid ""']


def test_makemessages_leaves_no_untranslated_or_fuzzy_zh_hans_entry(tmp_path):
    # A copy of the sources, so extracting never rewrites the repository's catalogue.
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv", "var", ".git", "node_modules", "__pycache__", "*.egg-info", ".*_cache"
        ),
    )
    args = [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-location"]
    args += [f"--ignore={pattern}" for pattern in IGNORED]
    subprocess.run(args, cwd=copy, check=True, capture_output=True, text=True)
    extracted = copy / PO.relative_to(ROOT)
    untranslated = _entries(extracted, "--untranslated")
    fuzzy = _entries(extracted, "--only-fuzzy")
    assert not untranslated, f"untranslated zh-Hans strings: {untranslated}"
    assert not fuzzy, f"fuzzy zh-Hans strings: {fuzzy}"
    subprocess.run(
        [_gettext_tool("msgfmt"), "--check-format", "-o", str(tmp_path / "x.mo"), str(extracted)],
        check=True,
    )


def test_the_committed_mo_file_matches_the_po_file(tmp_path):
    fresh = tmp_path / "django.mo"
    subprocess.run([_gettext_tool("msgfmt"), "-o", str(fresh), str(PO)], check=True)
    with MO.open("rb") as committed, fresh.open("rb") as compiled:
        assert gettext.GNUTranslations(committed)._catalog == (
            gettext.GNUTranslations(compiled)._catalog
        ), "run `make messages` (compilemessages) and commit the .mo"
