"""Collect Content-Security-Policy violations in a Playwright page."""

from __future__ import annotations

# Init scripts are injected by the browser's DevTools protocol, not by the page, so the page's
# CSP does not apply to this listener itself.
_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def watch_csp(page) -> list[str]:
    """Start watching `page`; returns a list that console CSP reports are appended to."""
    console: list[str] = []
    page.add_init_script(_LISTENER)
    page.on(
        "console",
        lambda message: (
            console.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return console


def violations(page, console: list[str]) -> list[str]:
    return [*page.evaluate("window.__cspViolations || []"), *console]
