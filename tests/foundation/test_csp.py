"""Content-Security-Policy: sent on every response, and no template carries inline script."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
#: onclick=, onchange=, onsubmit=, ... (not data-on…, hx-on is covered by allowEval=false)
INLINE_HANDLER = re.compile(r"""\s(on[a-z]+)\s*=\s*["']""", re.IGNORECASE)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def _templates():
    for folder in ("platform", "tenants", "taxonomy", "workers"):
        yield from (ROOT / folder).rglob("templates/**/*.html")


def test_no_template_has_inline_script_or_handlers():
    found = []
    for path in _templates():
        text = path.read_text()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JS_URL):
            found += [
                f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for m in pattern.finditer(text)
            ]
    assert found == []


def test_every_response_has_a_policy_without_inline_script(client, db):
    for path in ("/login/", "/healthz", "/api/v1/needs/", "/admin/login/", "/api/docs/"):
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(
            (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
        )
        assert directives["script-src"] == ["'self'"], path
        assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == [
            "'none'"
        ]


def test_api_docs_start_up_script_is_a_separate_file(client, db):
    page = client.get("/api/docs/").content.decode()
    assert not INLINE_SCRIPT.search(page)
    script = re.search(r'<script src="([^"]*\?script[^"]*)"', page).group(1)
    assert client.get(script.replace("&amp;", "&"))["Content-Type"].startswith(
        "application/javascript"
    )
