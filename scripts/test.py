#!/usr/bin/env python
"""Run the test suite on the best backends available, and say which.

PostgreSQL and Redis on 127.0.0.1 are used when reachable (or when DATABASE_URL / REDIS_URL are
set). With REQUIRE_SERVICES=1 an unreachable service is a failure, never a silent fallback.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/tagging_platform"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _postgres_ok(url: str) -> tuple[bool, str]:
    try:
        import psycopg2

        conn = psycopg2.connect(url.replace("/tagging_platform", "/postgres"), connect_timeout=3)
        version = conn.server_version
        conn.close()
        return True, f"PostgreSQL {version // 10000}.{version % 10000}"
    except Exception as exc:  # any failure means "not usable"
        return False, str(exc).strip()


def _redis_ok(url: str) -> tuple[bool, str]:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        info = client.info("server")
        return True, f"Redis {info['redis_version']}"
    except Exception as exc:
        return False, str(exc).strip()


def main(argv: list[str]) -> int:
    if (ROOT / "platform" / "__init__.py").exists():
        # The guard test cannot even be collected then: the stdlib `platform` is shadowed.
        print(
            "FAIL: platform/__init__.py exists and shadows the stdlib `platform` module; delete it.",
            file=sys.stderr,
        )
        return 1
    require = os.environ.get("REQUIRE_SERVICES", "0") == "1"
    env = os.environ
    env.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="tagging-test-"))

    db_url = env.get("DATABASE_URL") or (DEFAULT_PG if _reachable("127.0.0.1", 5432) else "")
    redis_url = env.get("REDIS_URL") or (DEFAULT_REDIS if _reachable("127.0.0.1", 6379) else "")
    problems = []
    if db_url and db_url.startswith("postgres"):
        ok, detail = _postgres_ok(db_url)
        if ok:
            env["DATABASE_URL"] = db_url
            db_label = f"{detail} ({db_url.rsplit('@', 1)[-1]})"
        else:
            problems.append(f"PostgreSQL at {db_url}: {detail}")
            env.pop("DATABASE_URL", None)
            db_label = "SQLite (PostgreSQL unreachable)"
    else:
        db_label = db_url if db_url else "SQLite (embedded)"
        if not db_url:
            problems.append("PostgreSQL is not reachable on 127.0.0.1:5432")
    if redis_url:
        ok, detail = _redis_ok(redis_url)
        if ok:
            env["REDIS_URL"] = redis_url
            redis_label = f"{detail} ({redis_url.rsplit('@', 1)[-1]})"
        else:
            problems.append(f"Redis at {redis_url}: {detail}")
            env.pop("REDIS_URL", None)
            redis_label = "none: file cache and filesystem broker (Redis unreachable)"
    else:
        problems.append("Redis is not reachable on 127.0.0.1:6379")
        redis_label = "none: file cache and filesystem broker"

    print(f"Test backends: database = {db_label}; redis = {redis_label}", flush=True)
    if problems and require:
        for problem in problems:
            print(f"REQUIRE_SERVICES=1 but {problem}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"note: {problem}; tests needing it are skipped", flush=True)
    env["TESTING"] = "1"
    os.chdir(ROOT)
    import pytest

    return pytest.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
