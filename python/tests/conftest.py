"""Shared fixtures. The suite runs against the in-place build in python/:
it runs `make build` for this interpreter first (a no-op when up to date;
set QP_PY_NO_BUILD=1 to skip, e.g. to test an installed copy)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

PYDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(PYDIR)

if not os.environ.get("QP_PY_NO_BUILD"):
    subprocess.run(
        ["make", "-s", "-C", PYDIR, "build", f"PYTHON={sys.executable}"],
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    sys.path.insert(0, PYDIR)

import quic_portal  # noqa: E402
from quic_portal import Portal, QuicTransportOptions  # noqa: E402

# Environment for child interpreters: they import the same quic_portal.
CHILD_ENV = dict(os.environ)
CHILD_ENV["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.dirname(os.path.dirname(os.path.abspath(quic_portal.__file__))),
                os.environ.get("PYTHONPATH")) if p)
CHILD_ENV["QP_PY_NO_BUILD"] = "1"
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py")


def free_port() -> int:
    """A UDP port that is free on all addresses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """redis://127.0.0.1:PORT/0 of a redis-server started for the test run
    (no persistence), killed at the end; skips when there is none."""
    from quic_portal.rendezvous import RedisDict, RedisError

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_tcp_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if RedisDict(url, timeout=0.5).ping():
                    break
            except RedisError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait(10)


def fast_options() -> QuicTransportOptions:
    """Short idle timeout so that failures show within about a second."""
    return QuicTransportOptions(max_idle_timeout_secs=1, keep_alive_interval_secs=0.25)


class Pair:
    """A server portal (listening in a thread) and a client connected to it."""

    def __init__(self, options=None):
        self.port = free_port()
        self.server = Portal()
        self.client = Portal()
        self.error = None
        ready = threading.Event()

        def listen():
            try:
                ready.set()
                self.server.listen(self.port, options)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.error = e

        self.thread = threading.Thread(target=listen, daemon=True)
        self.thread.start()
        ready.wait(5)
        deadline = time.monotonic() + 10
        while True:
            try:
                time.sleep(0.02)  # let listen() bind
                self.client.connect("127.0.0.1", self.port, 0, options)
                break
            except quic_portal.ConnectionError:
                if time.monotonic() > deadline:
                    raise
        self.thread.join(10)
        assert not self.thread.is_alive(), "listen() did not return after connect()"
        if self.error:
            raise self.error

    def close(self):
        self.client.close()
        self.server.close()


@pytest.fixture
def pair():
    p = Pair()
    yield p
    p.close()


def run_peer(*args, **kw) -> subprocess.Popen:
    """Start tests/peer.py in a child interpreter, line-buffered text pipes."""
    return subprocess.Popen(
        [sys.executable, "-u", PEER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=CHILD_ENV,
        **kw,
    )


def read_line(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    """The child's next stdout line, within timeout seconds."""
    result = []

    def reader():
        result.append(proc.stdout.readline())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive() or not result or not result[0]:
        proc.kill()
        out, err = proc.communicate(timeout=5)
        raise AssertionError(
            f"peer said nothing within {timeout} s (exit {proc.returncode}); stderr:\n{err}"
        )
    return result[0].rstrip("\n")


def finish(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    """Wait for the child (killed after timeout); return its stderr."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise AssertionError(f"peer did not exit within {timeout} s; stderr:\n{err}")
    return err
