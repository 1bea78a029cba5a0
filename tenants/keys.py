"""API key format and hashing. A key is `tp_<prefix>_<secret>`; only sha256(key) is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_NAMESPACE = "tp"


def generate_key() -> tuple[str, str, str]:
    """Return (plain key, prefix, hash). The plain key is shown once and never stored."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    plain = f"{KEY_NAMESPACE}_{prefix}_{secret}"
    return plain, prefix, hash_key(plain)


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def parse_prefix(plain: str) -> str | None:
    parts = plain.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_NAMESPACE or not parts[1] or not parts[2]:
        return None
    return parts[1]


def matches(plain: str, hashed: str) -> bool:
    return hmac.compare_digest(hash_key(plain), hashed)


def new_webhook_secret() -> str:
    """A webhook signing secret (HMAC-SHA256 key): 256 random bits."""
    return "whsec_" + secrets.token_urlsafe(32)
