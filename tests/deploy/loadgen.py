"""A small, bounded load generator for the cluster tests: a few threads on 127.0.0.1, each
sending one request at a time and recording when every request started and ended and how it was
answered. By default every request gets a fresh connection (many independent clients); with
`keepalive=True` each thread is one `requests.Session` that reuses its connection, like the
README's client example, and like it retries nothing: a connection closed under it while it
sends is an error (BrokenPipe / RemoteDisconnected), which fresh connections never see."""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    call: Call
    started: float
    finished: float
    status: int | None
    body: bytes
    headers: dict[str, str]
    error: str | None = None

    @property
    def failed(self) -> bool:
        """No answer at all, or an answer in the 5xx range."""
        return self.status is None or self.status >= 500


class Load:
    """Run `make_call(n)` requests against host:port from `concurrency` threads until stopped."""

    def __init__(
        self,
        host: str,
        port: int,
        make_call: Callable[[int], Call],
        *,
        concurrency: int = 4,
        pause: float = 0.0,
        timeout: float = 30.0,
        keepalive: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.make_call = make_call
        self.concurrency = concurrency
        self.pause = pause
        self.timeout = timeout
        self.keepalive = keepalive
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []

    def _one(self, call: Call) -> Outcome:
        started = time.monotonic()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(call.method, call.path, body=call.body, headers=call.headers)
            response = conn.getresponse()
            body = response.read()
            return Outcome(
                call, started, time.monotonic(), response.status, body, dict(response.getheaders())
            )
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(call, started, time.monotonic(), None, b"", {}, repr(exc))
        finally:
            conn.close()

    def _one_kept_alive(self, session, call: Call) -> Outcome:
        import requests

        started = time.monotonic()
        try:
            response = session.request(
                call.method,
                f"http://{self.host}:{self.port}{call.path}",
                data=call.body,
                headers=call.headers,
                timeout=self.timeout,
            )
            return Outcome(
                call,
                started,
                time.monotonic(),
                response.status_code,
                response.content,
                dict(response.headers),
            )
        except requests.RequestException as exc:
            return Outcome(call, started, time.monotonic(), None, b"", {}, repr(exc))

    def _run(self) -> None:
        import requests

        session = requests.Session() if self.keepalive else None
        while not self._stop.is_set():
            call = self.make_call(next(self._counter))
            outcome = self._one_kept_alive(session, call) if session else self._one(call)
            with self._lock:
                self.outcomes.append(outcome)
            if self.pause:
                self._stop.wait(self.pause)
        if session is not None:
            session.close()

    def __enter__(self) -> Load:
        for _ in range(self.concurrency):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self.outcomes

    def wait_for(self, count: int, *, timeout: float = 30.0) -> None:
        """Block until at least `count` more requests have completed."""
        target = len(self.outcomes) + count
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.outcomes)} of {target} requests completed")
            time.sleep(0.02)


def describe(outcomes: list[Outcome], limit: int = 10) -> str:
    """A readable summary of failed outcomes for assertion messages."""
    failed = [o for o in outcomes if o.failed]
    lines = [f"{len(failed)} failed of {len(outcomes)}"]
    for o in failed[:limit]:
        lines.append(
            f"  {o.call.method} {o.call.path} -> {o.status} {o.error or o.body[:200]!r} "
            f"rid={o.headers.get('X-Request-ID')}"
        )
    return "\n".join(lines)
