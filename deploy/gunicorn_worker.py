"""gunicorn workers made safe behind nginx.

`WholeResponseSyncWorker` (the default, deploy/gunicorn.conf.py) is gunicorn's sync worker
writing each response with one system call. The stock one writes the status line and headers,
then the body: a worker killed between the two (SIGKILL of an instance, the OOM killer) leaves
nginx holding headers it has already passed to the client, so it can neither finish the answer
nor resend the request to another instance, and the client sees a truncated response (seen once
in the cluster's kill-under-keep-alive-load test). Written at once, a response is either wholly
in the kernel (delivered even if the process dies next) or not sent at all (nginx resends a sync
tag request elsewhere). Responses above HOLD_LIMIT bytes (downloads) stream as usual.

`DrainingThreadWorker` is gunicorn's threaded worker, made safe behind nginx's upstream
keepalive, for deployments that choose threads (many `execution=queue` needs):

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
from gunicorn.workers.sync import SyncWorker

#: Responses up to this size are written with one call; larger ones stream.
HOLD_LIMIT = 256 * 1024


class _HeldWrites:
    """The client socket, holding what is written to it until `release()` (or HOLD_LIMIT)."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self._held: list[bytes] | None = []
        self._size = 0

    def sendall(self, data) -> None:
        if self._held is None:
            self._sock.sendall(data)
            return
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size > HOLD_LIMIT:
            self.release()
            self._held = None  # a large response: the rest streams

    def release(self) -> None:
        if self._held:
            held, self._held, self._size = self._held, [], 0
            self._sock.sendall(b"".join(held))

    def send(self, data) -> int:  # 100 Continue goes out at once
        self.release()
        return self._sock.send(data)

    def sendfile(self, *args, **kwargs):
        self.release()
        return self._sock.sendfile(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class WholeResponseSyncWorker(SyncWorker):
    def handle_request(self, listener, req, client, addr):
        held = _HeldWrites(client)
        super().handle_request(listener, req, held, addr)
        held.release()  # not reached when the app failed mid-response: nothing half-sent


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
