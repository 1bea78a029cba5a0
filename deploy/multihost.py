"""Several "hosts" on one machine: each in its own network namespace (and its own host name),
with its own gunicorn instance, Celery workers and local artifact cache, all reaching the shared
PostgreSQL, Redis and object store over a bridge, behind one nginx in the root namespace.

    root namespace                                  namespace tp-<tag>-h1 (host name tp-host-1)
    nginx 127.0.0.1:<port> ─┐                       eth0 10.213.N.11: gunicorn :8000,
    socat forwarders on      ├── bridge tpbr-<tag> ── workers online/batch/training/monitoring,
    10.213.N.1 -> 127.0.0.1  │   10.213.N.1/24         ARTIFACT_CACHE_DIR of its own
    (PostgreSQL, Redis, S3) ─┘                       namespace tp-<tag>-h2 (tp-host-2, .12): the
                                                     same, plus the one celery beat

Why forwarders: the machine's PostgreSQL and Redis listen on 127.0.0.1 only, and other people use
them; giving them a listen address on the bridge would mean reconfiguring shared servers. A
`socat` per service (Debian's) listens on the bridge address and connects to 127.0.0.1, so for
the hosts PostgreSQL, Redis and S3 are remote services at 10.213.N.1, as managed ones would be.

Killing a host (`kill_host`) SIGKILLs every process in its network namespace at once (what
`ip netns pids` lists), which is what a lost machine looks like to everyone else.

    deploy/multihost up [--hosts 2] [--port 8090]   # needs root (ip netns), nginx, socat
    deploy/multihost status | kill-host N | down

`up` takes DATABASE_URL and REDIS_URL (default the cluster's) and an S3 endpoint
(ARTIFACT_S3_ENDPOINT_URL + ARTIFACT_S3_BUCKET; without one it starts a moto server, the
S3 stand-in the tests use, on the bridge address).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from deploy.cluster import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    DEPLOY,
    QUEUES,
    ROOT,
    Cluster,
    ClusterError,
    _log,
    _process_start_time,
    http_get,
)

DEFAULT_MULTIHOST_DIR = ROOT / "var" / "multihost"
#: Each host's gunicorn port, inside its own namespace (every host has its own network stack).
HOST_WEB_PORT = 8000


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def netns_pids(netns: str) -> list[int]:
    """Every process whose network namespace is `netns` (empty if the namespace is gone)."""
    result = _ip("netns", "pids", netns, check=False)
    return [int(pid) for pid in result.stdout.split()] if result.returncode == 0 else []


def _reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _url_with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    credentials = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}{host}:{parts.port}"))


# --- the network --------------------------------------------------------------------------
@dataclass
class Network:
    """A bridge in the root namespace (the gateway address .1 of a /24) and a network namespace
    per host with a veth pair into the bridge (host i at .10+i). Names carry a short tag so
    several runs (or a leftover) never collide; interface names stay under 16 characters."""

    tag: str
    subnet: str  # the first three octets, e.g. "10.213.7"
    hosts: int = 2

    @property
    def bridge(self) -> str:
        return f"tpbr-{self.tag}"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def netns(self, index: int) -> str:
        return f"tp-{self.tag}-h{index}"

    def address(self, index: int) -> str:
        return f"{self.subnet}.{10 + index}"

    def _veth(self, index: int) -> str:
        return f"tpv-{self.tag}-{index}"

    @staticmethod
    def free_subnet(seed: int) -> str:
        """A 10.213.x.0/24 that no interface on this machine uses."""
        used = _ip("-4", "-o", "addr", "show").stdout
        for offset in range(250):
            subnet = f"10.213.{(seed + offset) % 250 + 1}"
            if f" {subnet}." not in used:
                return subnet
        raise ClusterError("no free 10.213.x.0/24 subnet")

    def create(self) -> None:
        if os.geteuid() != 0:
            raise ClusterError("network namespaces need root (ip netns)")
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index in range(1, self.hosts + 1):
            netns, veth = self.netns(index), self._veth(index)
            _ip("netns", "add", netns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            _ip("-n", netns, "link", "set", "lo", "up")
            _ip("-n", netns, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            _ip("-n", netns, "route", "add", "default", "via", self.gateway)

    def kill(self, index: int, *, timeout: float = 10.0) -> list[int]:
        """SIGKILL every process in host `index`'s namespace; returns their pids once gone."""
        netns = self.netns(index)
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        while pids := netns_pids(netns):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed += [pid for pid in pids if pid not in killed]
            if time.monotonic() > deadline:
                raise ClusterError(f"{netns}: processes {pids} survived SIGKILL")
            time.sleep(0.05)
        return killed

    def destroy(self) -> None:
        """Kill what still runs in the namespaces, delete them (their veth ends go with them)
        and the bridge. Safe to call on a half-created or already destroyed network."""
        for index in range(1, self.hosts + 1):
            with contextlib.suppress(ClusterError):
                self.kill(index)
            _ip("netns", "del", self.netns(index), check=False)
            _ip("link", "del", self._veth(index), check=False)
        _ip("link", "del", self.bridge, check=False)

    def exists(self) -> bool:
        return _ip("link", "show", self.bridge, check=False).returncode == 0


# --- one host -----------------------------------------------------------------------------
@dataclass
class Host(Cluster):
    """A Cluster whose processes run in a network namespace with a host name of their own
    (`unshare --uts`, so `socket.gethostname()` and Celery's `%h` tell the hosts apart). It runs
    web instances and workers only: nginx runs in front of all hosts, and beat on one host."""

    netns: str = ""
    hostname: str = ""
    queues: tuple[str, ...] = QUEUES
    beat: bool = False
    public_url: str = ""

    def process_names(self) -> list[str]:
        names = [*self.web_names(), *(f"worker-{q}" for q in self.queues)]
        return [*names, "beat"] if self.beat else names

    def env(self) -> dict[str, str]:
        env = super().env()
        public = urlsplit(self.public_url)
        env.update(
            # The Host header is the public one (nginx passes it through); the host's own
            # address is for probes that bypass nginx.
            ALLOWED_HOSTS=f"{public.hostname},localhost,{self.host}",
            CSRF_TRUSTED_ORIGINS=self.public_url,
            ARTIFACT_CACHE_DIR=str(self.data_dir / "artifact-cache"),
        )
        env.update(self.extra_env)
        return env

    def _start(self, name: str, argv: list[str], *, extra_env: dict | None = None) -> int:
        # `ip netns exec` and `unshare` exec the command in place: the pid is the process's own.
        wrapped = [
            "ip",
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.hostname,
            *argv,
        ]
        return super()._start(name, wrapped, extra_env=extra_env)

    def up(self, *, timeout: float = 120.0) -> None:
        """Start this host's web instances and workers (the database is migrated already)."""
        for path in (self.run_dir, self.log_dir, self.data_dir):
            path.mkdir(parents=True, exist_ok=True)
        self._save_state()
        for index in range(1, self.web_instances + 1):
            self.start_web(index, wait=False)
        for queue in self.queues:
            self.start_worker(queue)
        if self.beat:
            self._start("beat", ["sh", str(DEPLOY / "celery" / "beat.sh")])
        deadline = time.monotonic() + timeout
        for index in range(1, self.web_instances + 1):
            self.wait_web_healthy(index, timeout=max(1.0, deadline - time.monotonic()))
        for queue in self.queues:
            self._wait_worker_ready(queue, timeout=max(1.0, deadline - time.monotonic()))

    def forget(self) -> None:
        """After the host was killed: nothing of it runs, so its pid files go."""
        for name in self.process_names():
            self._hold(name)
            self._pidfile(name).unlink(missing_ok=True)
            popen = self._popen.pop(name, None)
            if popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=5)


@dataclass
class Front(Cluster):
    """nginx in the root namespace, balancing over every host's web instances."""

    upstreams: list[str] = field(default_factory=list)

    def process_names(self) -> list[str]:
        return ["nginx"]

    def upstream_addresses(self) -> list[str]:
        return list(self.upstreams)


# --- the whole thing ----------------------------------------------------------------------
@dataclass
class MultiHost:
    """`hosts` hosts behind one nginx. `database_url`, `redis_url` and `s3_endpoint` are the
    services as the root namespace reaches them (127.0.0.1); the hosts reach them on the bridge's
    gateway address through forwarders. Beat runs on host `beat_host` (exactly one beat)."""

    directory: Path
    database_url: str
    redis_url: str
    s3_endpoint: str
    s3_bucket: str
    hosts: int = 2
    nginx_port: int = 0
    web_concurrency: int = 1
    beat_host: int = 2
    tag: str = ""
    subnet: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()
        self.tag = self.tag or secrets.token_hex(2)
        self.subnet = self.subnet or Network.free_subnet(int(self.tag, 16))
        self.network = Network(tag=self.tag, subnet=self.subnet, hosts=self.hosts)
        self._forwarders: dict[str, subprocess.Popen] = {}
        self.front = Front(
            self.directory / "front",
            database_url=self.gateway_url(self.database_url),
            redis_url=self.gateway_url(self.redis_url),
            web_instances=0,
            nginx_port=self.nginx_port,
            upstreams=[f"{self.network.address(i)}:{HOST_WEB_PORT}" for i in self.host_indexes],
            extra_env=self._shared_env(),
            python=self.python,
        )
        self.host = {
            index: Host(
                self.directory / f"host-{index}",
                database_url=self.gateway_url(self.database_url),
                redis_url=self.gateway_url(self.redis_url),
                web_instances=1,
                web_ports=[HOST_WEB_PORT],
                web_concurrency=self.web_concurrency,
                host=self.network.address(index),
                nginx_port=self.nginx_port,
                extra_env=self._shared_env(),
                python=self.python,
                netns=self.network.netns(index),
                hostname=self.hostname(index),
                beat=index == self.beat_host,
            )
            for index in self.host_indexes
        }

    @property
    def host_indexes(self) -> range:
        return range(1, self.hosts + 1)

    @staticmethod
    def hostname(index: int) -> str:
        return f"tp-host-{index}"

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def _state_file(self) -> Path:
        return self.directory / "multihost.json"

    def gateway_url(self, url: str) -> str:
        """`url` (on 127.0.0.1) as the hosts reach it: the same port on the gateway address."""
        return _url_with_host(url, self.network.gateway)

    def _secret(self, name: str) -> str:
        path = self.directory / name
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()

    def _shared_env(self) -> dict[str, str]:
        """What every host must agree on: one secret key (sessions and signed values are valid
        on every host), one object store, nginx as the trusted proxy."""
        return {
            "SECRET_KEY": self._secret("secret_key"),
            "METRICS_BEARER_TOKEN": self._secret("metrics_token"),
            "ARTIFACT_STORAGE": "s3",
            "ARTIFACT_S3_BUCKET": self.s3_bucket,
            "ARTIFACT_S3_ENDPOINT_URL": self.gateway_url(self.s3_endpoint),
            "ARTIFACT_S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "FORWARDED_ALLOW_IPS": self.network.gateway,
            # Every host serves the same collected static files (a build product, like an image).
            "STATIC_ROOT": str(self.directory / "front" / "data" / "static"),
            **self.extra_env,
        }

    # --- services over the bridge ---------------------------------------------------------
    def _forward(self, name: str, url: str) -> None:
        """Listen on the gateway address, connect to 127.0.0.1: same port (Debian's socat)."""
        port = urlsplit(url).port
        target = urlsplit(url).hostname
        if _reachable(self.network.gateway, port):
            return  # the service listens on every address already
        if shutil.which("socat") is None:
            raise ClusterError("socat is not installed: apt-get install -y socat")
        log = (self.directory / f"forward-{name}.log").open("ab")
        self._forwarders[name] = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind={self.network.gateway},reuseaddr,fork",
                f"TCP:{target}:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 10
        while not _reachable(self.network.gateway, port):
            if self._forwarders[name].poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"the {name} forwarder did not start on port {port}")
            time.sleep(0.05)

    def _stop_forwarders(self) -> None:
        for popen in self._forwarders.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGTERM)  # socat and its per-connection children
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        self._forwarders.clear()

    # --- lifecycle ------------------------------------------------------------------------
    def _save_state(self) -> None:
        state = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "s3_endpoint": self.s3_endpoint,
            "s3_bucket": self.s3_bucket,
            "hosts": self.hosts,
            "nginx_port": self.front.nginx_port,
            "web_concurrency": self.web_concurrency,
            "beat_host": self.beat_host,
            "tag": self.tag,
            "subnet": self.subnet,
            "extra_env": self.extra_env,
            "forwarders": {name: p.pid for name, p in self._forwarders.items()},
        }
        self._state_file.write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path | str = DEFAULT_MULTIHOST_DIR) -> MultiHost:
        path = Path(directory) / "multihost.json"
        if not path.exists():
            raise ClusterError(f"no multi-host run in {directory}")
        state = json.loads(path.read_text())
        forwarders = state.pop("forwarders", {})
        multihost = cls(Path(directory), **state)
        multihost.front._load_state()
        for host in multihost.host.values():
            with contextlib.suppress(FileNotFoundError):
                host._load_state()
        multihost._stale_forwarders = forwarders
        return multihost

    def up(self, *, timeout: float = 180.0) -> None:
        """Network, forwarders, database (migrate) and static files, every host's processes,
        then nginx; returns once /readyz answers 200 through nginx. On failure, everything
        started so far is stopped and the network removed."""
        if shutil.which("nginx") is None:
            raise ClusterError("nginx is not installed: apt-get install -y nginx")
        self.directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            self.network.create()
            for name, url in (
                ("postgresql", self.database_url),
                ("redis", self.redis_url),
                ("s3", self.s3_endpoint),
            ):
                self._forward(name, url)
            front = self.front
            for path in (front.run_dir, front.log_dir, front.data_dir, front.directory / "nginx"):
                path.mkdir(parents=True, exist_ok=True)
            if not front.nginx_port:
                from deploy.cluster import free_port

                front.nginx_port = free_port(front.host)
            for host in self.host.values():
                host.nginx_port = front.nginx_port
                host.public_url = front.url
            self._save_state()
            front._save_state()
            front.ensure_database()
            front.manage_parallel(
                ("migrate", "--noinput", "-v", "0"), ("collectstatic", "--noinput", "-v", "0")
            )
            for host in self.host.values():
                _log(f"starting {host.hostname} in {host.netns} ({host.host})")
                host.up(timeout=max(1.0, deadline - time.monotonic()))
            front._render_nginx()
            front._start("nginx", front._nginx_argv())
            front.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.down()
            raise

    def down(self, *, timeout: float = 20.0) -> None:
        """Stop everything, in order, each step even if an earlier one failed: nginx, each
        host's processes (graceful, then SIGKILL), whatever else runs in the namespaces, the
        forwarders, the network."""
        with contextlib.suppress(Exception):
            self.front.down(timeout=timeout)
        for host in self.host.values():
            with contextlib.suppress(Exception):
                host.down(timeout=timeout)
        self.network.destroy()
        self._stop_forwarders()
        for pid in getattr(self, "_stale_forwarders", {}).values():
            # From `load`: forwarders another process started (pid of socat's group).
            if _process_start_time(pid) is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)

    def drop_database(self) -> None:
        """Drop the hosts' database (from the root namespace: works before `up` and after
        `down`, when the forwarders are gone)."""
        Cluster(self.directory / "front", database_url=self.database_url).drop_database()

    def kill_host(self, index: int) -> list[int]:
        """A lost machine: SIGKILL every process in host `index`'s namespace at once."""
        pids = self.network.kill(index)
        self.host[index].forget()
        return pids

    def status(self) -> dict[str, dict]:
        report: dict[str, dict] = {"front": self.front.status()}
        for index, host in self.host.items():
            entry: dict = {
                "hostname": host.hostname,
                "address": host.host,
                "netns": host.netns,
                "processes": len(netns_pids(host.netns)),
            }
            try:
                status, body = http_get(f"{host.web_url(1)}/healthz", timeout=3)
                entry["healthz"] = f"{status} {body.decode()[:80]}"
            except OSError as exc:
                entry["healthz"] = str(exc)
            report[f"host-{index}"] = entry
        return report


def _ensure_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)


def _start_moto(directory: Path, port: int) -> subprocess.Popen:
    """The S3 stand-in of the tests (moto in server mode), for a demo without an object store."""
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "moto.log").open("ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    (directory / "moto.pid").write_text(f"{popen.pid}\n")
    deadline = time.monotonic() + 30
    while not _reachable("127.0.0.1", port):
        if popen.poll() is not None or time.monotonic() > deadline:
            raise ClusterError(f"moto server did not start; see {directory / 'moto.log'}")
        time.sleep(0.2)
    return popen


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="deploy/multihost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=os.environ.get("MULTIHOST_DIR", DEFAULT_MULTIHOST_DIR))
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="network namespaces, forwarders, hosts, nginx")
    up.add_argument("--hosts", type=int, default=2)
    up.add_argument("--port", type=int, default=int(os.environ.get("MULTIHOST_PORT", "8090")))
    up.add_argument("--web-concurrency", type=int, default=1)
    sub.add_parser("down", help="stop everything and remove the namespaces and the bridge")
    sub.add_parser("status", help="each host's processes and /healthz")
    kill = sub.add_parser("kill-host", help="SIGKILL every process of one host (1-based)")
    kill.add_argument("index", type=int)
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    try:
        if args.command == "up":
            with contextlib.suppress(ClusterError):
                if MultiHost.load(directory).network.exists():
                    raise ClusterError(f"already running in {directory}: `down` first")
            endpoint = os.environ.get("ARTIFACT_S3_ENDPOINT_URL", "")
            bucket = os.environ.get("ARTIFACT_S3_BUCKET", "tagging-artifacts")
            if not endpoint:
                from deploy.cluster import free_port

                port = free_port()
                _start_moto(directory / "moto", port)
                endpoint = f"http://127.0.0.1:{port}"
            _ensure_bucket(endpoint, bucket)
            multihost = MultiHost(
                directory,
                database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
                redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
                s3_endpoint=endpoint,
                s3_bucket=bucket,
                hosts=args.hosts,
                nginx_port=args.port,
                web_concurrency=args.web_concurrency,
            )
            multihost.up()
            print(f"\n  {args.hosts} hosts behind nginx at {multihost.url}/")
            for host in multihost.host.values():
                print(f"  {host.hostname}: {host.web_url(1)}/ (netns {host.netns})")
            return 0
        multihost = MultiHost.load(directory)
        if args.command == "down":
            multihost.down()
            moto_pid = directory / "moto" / "moto.pid"
            if moto_pid.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.killpg(int(moto_pid.read_text()), signal.SIGTERM)
                moto_pid.unlink()
            print("  stopped; namespaces and bridge removed")
        elif args.command == "status":
            print(json.dumps(multihost.status(), indent=2, default=str))
        elif args.command == "kill-host":
            pids = multihost.kill_host(args.index)
            print(f"  host-{args.index}: killed {len(pids)} processes")
    except ClusterError as exc:
        print(f"multihost: {exc}", file=sys.stderr)
        return 1
    return 0
