"""gunicorn's threaded worker, made safe behind nginx's upstream keepalive.

The stock gthread worker, when it stops (max_requests reached, HUP, TERM), abandons the
connections it holds: idle keep-alive ones, ones it accepted but has not read yet, and ones whose
response (sent just before it stopped) promised keep-alive. nginx still holds them in its pool,
sends the next request down one of them and gets a reset: a GET is retried elsewhere, but a POST
answers 502, and three such errors take the whole instance out of the upstream for fail_timeout.
Measured on deploy/cluster with GUNICORN_MAX_REQUESTS=200 under POST load: about 3 resets per
recycled worker, which cascaded into "no live upstreams" for both instances (thousands of 502s).

This worker, once it stops, closes its listening sockets but keeps serving the connections it
holds: a request arriving on one is answered with `Connection: close`, and an idle one is left
for nginx to close (nginx's upstream keepalive_timeout, 5 s, is below gunicorn's `keepalive`).
Only after `keepalive` seconds does it close what is left itself. The server thus never closes a
connection the proxy may be writing a request into: the one race that cannot be won from here.
"""

from __future__ import annotations

import contextlib
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker


class DrainingThreadWorker(ThreadWorker):
    _drained = False

    def murder_keepalived(self) -> None:
        # Called at the end of every loop iteration; the loop ends when `alive` is False.
        super().murder_keepalived()
        if not self.alive and not self._drained:
            self._drained = True
            self._drain()

    def finish_request(self, fs) -> None:
        if self.alive or fs.cancelled():
            super().finish_request(fs)
            return
        try:
            keepalive, conn = fs.result()
        except Exception:  # the stock method closes the socket and counts it
            super().finish_request(fs)
            return
        if not keepalive:
            super().finish_request(fs)
            return
        # The response went out before the worker stopped and promised keep-alive: nginx may
        # reuse this connection any moment, so it is watched like the other kept ones.
        conn.sock.setblocking(False)
        conn.set_timeout()
        with self._lock:
            self._keep.append(conn)
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn)
            )

    def _drain(self) -> None:
        for sock in self.sockets:  # no new connections; the other workers accept them
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(sock)
        deadline = time.monotonic() + self.cfg.keepalive
        while time.monotonic() < deadline:
            with self._lock:
                held = len(self.poller.get_map())
            if not held and all(future.done() for future in self.futures):
                return
            self.notify()  # still alive as far as the arbiter's timeout is concerned
            # A readable connection carries a request (served with Connection: close, as the
            # worker is no longer alive) or nginx's close (handle() then closes it too).
            for key, _ in self.poller.select(0.1):
                key.data(key.fileobj)
        with self._lock:
            leftovers = [key.fileobj for key in self.poller.get_map().values()]
            for sock in leftovers:
                self.poller.unregister(sock)
            kept, self._keep = list(self._keep), type(self._keep)()
        for sock in leftovers:
            sock.close()
        self.nr_conns -= len(kept)
