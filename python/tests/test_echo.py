"""Messages over a real connection on loopback, both portals in this process."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

import quic_portal
from quic_portal import ConnectionError, Portal, QuicTransportOptions

from conftest import CHILD_ENV, Pair, fast_options, free_port


def test_connect_sets_server_attributes(pair):
    assert pair.client.is_connected() and pair.server.is_connected()
    assert pair.client.server_ip == "127.0.0.1"
    assert pair.client.server_port == pair.port
    assert pair.server.server_ip is None and pair.server.server_port is None


def test_echo_bytes(pair):
    pair.client.send(b"Hello, QUIC!")
    assert pair.server.recv(timeout_ms=5000) == b"Hello, QUIC!"
    pair.server.send(b"Echo: Hello, QUIC!")
    assert pair.client.recv(timeout_ms=5000) == b"Echo: Hello, QUIC!"


def test_str_messages_are_utf8(pair):
    pair.client.send("héllo, wörld ✓")
    got = pair.server.recv(timeout_ms=5000)
    assert isinstance(got, bytes)
    assert got.decode("utf-8") == "héllo, wörld ✓"


def test_bytes_like_messages(pair):
    pair.client.send(bytearray(b"bytearray"))
    pair.client.send(memoryview(b"xxmemoryviewxx")[2:-2])
    pair.client.send(data=b"keyword")
    assert pair.server.recv(5000) == b"bytearray"
    assert pair.server.recv(5000) == b"memoryview"
    assert pair.server.recv(5000) == b"keyword"


def test_non_contiguous_buffer_refused(pair):
    with pytest.raises(TypeError, match="contiguous"):
        pair.client.send(memoryview(b"abcdef")[::2])


def test_empty_message(pair):
    pair.client.send(b"")
    assert pair.server.recv(5000) == b""


def test_order_and_boundaries(pair):
    msgs = [os.urandom(n) for n in (1, 1000, 1199, 1200, 1201, 65536, 300000, 7)]
    for m in msgs:
        pair.client.send(m)
    for m in msgs:
        assert pair.server.recv(5000) == m


def test_recv_timeout_returns_none(pair):
    t0 = time.monotonic()
    assert pair.server.recv(timeout_ms=200) is None
    took = time.monotonic() - t0
    assert 0.19 <= took < 0.6, took
    assert pair.server.recv(timeout_ms=0) is None
    assert pair.server.recv(0) is None


def test_recv_timeout_loses_no_data(pair):
    """Short recv timeouts while a large message is on its way: each call
    returns None or the whole message, never a part, and nothing is lost."""
    big = os.urandom(32 * 1024 * 1024)
    small = b"after"

    def sender():  # the second send waits for the send window: not here
        pair.client.send(big)
        pair.client.send(small)

    t = threading.Thread(target=sender)
    t.start()
    nones = 0
    got = []
    deadline = time.monotonic() + 60
    i = 0
    while len(got) < 2 and time.monotonic() < deadline:
        i += 1
        m = pair.server.recv(timeout_ms=i % 2)  # 0 (poll) and 1 ms
        if m is None:
            nones += 1
        else:
            got.append(m)
    t.join(30)
    assert len(got) == 2
    assert got[0] == big and got[1] == small
    assert nones > 0, "the test should have timed out at least once mid-message"
    assert pair.server.recv(timeout_ms=100) is None


@pytest.mark.parametrize("size_mib", [1, 10, 100])
def test_large_messages(pair, size_mib):
    n = size_mib * 1024 * 1024
    msg = os.urandom(1024) * (n // 1024)
    digest = hashlib.sha256(msg).digest()
    t0 = time.monotonic()
    pair.client.send(msg)
    got = pair.server.recv(timeout_ms=120000)
    assert got is not None and len(got) == n
    assert hashlib.sha256(got).digest() == digest
    pair.server.send(got)  # and back, server to client
    back = pair.client.recv(timeout_ms=120000)
    assert back == msg
    assert time.monotonic() - t0 < 120


def test_many_small_messages_both_ways(pair):
    n = 2000
    err = []

    def server():
        try:
            for _ in range(n):
                pair.server.send(pair.server.recv(10000))
        except BaseException as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=server)
    t.start()
    for i in range(n):
        pair.client.send(i.to_bytes(4, "big"))
    for i in range(n):
        assert pair.client.recv(10000) == i.to_bytes(4, "big")
    t.join(30)
    assert not err


def test_send_and_recv_from_different_threads(pair):
    """recv blocks in one thread while another sends: the GIL is released."""
    results = []

    def receiver():
        results.append(pair.client.recv(timeout_ms=10000))

    t = threading.Thread(target=receiver)
    t.start()
    time.sleep(0.1)
    pair.client.send(b"ping")  # same portal, other thread
    assert pair.server.recv(5000) == b"ping"
    pair.server.send(b"pong")
    t.join(10)
    assert results == [b"pong"]


def test_gil_released_while_blocked(pair):
    """A Python thread keeps running while another is blocked in recv."""
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        assert pair.server.recv(timeout_ms=300) is None
        before = counter[0]
        time.sleep(0.05)
        assert counter[0] > before
    finally:
        stop.set()
        t.join()


def test_peer_close_ends_recv(pair):
    pair.client.send(b"last words")
    pair.client.close()
    assert pair.server.recv(5000) == b"last words"  # delivered before the close
    with pytest.raises(ConnectionError):
        pair.server.recv(5000)
    deadline = time.monotonic() + 5
    while pair.server.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pair.server.is_connected()


def test_close_while_other_thread_blocks_in_recv(pair):
    errors = []

    def receiver():
        try:
            pair.server.recv()
        except ConnectionError as e:
            errors.append(e)

    t = threading.Thread(target=receiver)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    pair.server.close()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1
    assert time.monotonic() - t0 < 5


def test_send_after_close(pair):
    pair.client.close()
    with pytest.raises(ConnectionError, match="^Not connected"):
        pair.client.send(b"x")
    assert not pair.client.is_connected()
    pair.client.close()  # again


def test_portal_is_single_use(pair):
    with pytest.raises(ConnectionError, match="already"):
        pair.client.connect("127.0.0.1", pair.port, 0)
    with pytest.raises(ConnectionError, match="already"):
        pair.server.listen(free_port())


def test_connect_after_failed_connect():
    """A failed connect leaves the portal usable for another attempt."""
    p = Portal()
    with pytest.raises(ConnectionError):
        p.connect("127.0.0.1", free_port(), 0, fast_options())
    assert not p.is_connected()
    port = free_port()
    server = Portal()
    t = threading.Thread(target=server.listen, args=(port,), daemon=True)
    t.start()
    time.sleep(0.1)
    p.connect("127.0.0.1", port, 0)
    t.join(10)
    assert p.is_connected() and server.is_connected()
    assert p.server_port == port
    p.close()
    server.close()


def test_explicit_local_port():
    port, local = free_port(), free_port()
    server, client = Portal(), Portal()
    t = threading.Thread(target=server.listen, args=(port,), daemon=True)
    t.start()
    time.sleep(0.1)
    client.connect("127.0.0.1", port, local)
    t.join(10)
    assert client.local_port() == local
    assert server.local_port() == port
    client.close()
    server.close()


@pytest.mark.parametrize("cc", ["cubic", "bbr", "bbr2", "reno", "fixed"])
def test_transport_options_used(cc):
    o = QuicTransportOptions(max_idle_timeout_secs=5, congestion_controller_type=cc,
                             keep_alive_interval_secs=1)
    p = Pair(o)
    try:
        msg = os.urandom(2 * 1024 * 1024)
        p.client.send(msg)
        assert p.server.recv(30000) == msg
    finally:
        p.close()


def test_keep_alive_holds_idle_connection():
    """Idle for longer than the idle timeout: keep-alives keep it open."""
    p = Pair(QuicTransportOptions(max_idle_timeout_secs=1, keep_alive_interval_secs=0.2))
    try:
        time.sleep(2.0)
        assert p.client.is_connected() and p.server.is_connected()
        p.client.send(b"still here")
        assert p.server.recv(5000) == b"still here"
    finally:
        p.close()


def test_idle_timeout_without_keep_alive():
    p = Pair(QuicTransportOptions(max_idle_timeout_secs=0.5, keep_alive_interval_secs=0))
    try:
        with pytest.raises(ConnectionError):
            p.server.recv(5000)  # no keep-alives: the connection idles out
        assert not p.server.is_connected()
    finally:
        p.close()


def test_stats(pair):
    pair.client.send(b"x" * 10000)
    assert pair.server.recv(5000) is not None
    s = pair.client.stats()
    assert s["packets_sent"] > 0 and s["packets_received"] > 0
    assert s["handshake_us"] > 0
    with pytest.raises(ConnectionError):
        Portal().stats()


def test_context_manager_and_repr():
    with Portal() as p:
        assert "not connected" in repr(p)
    assert not p.is_connected()


def test_portal_garbage_collected_while_connected():
    import gc
    import weakref
    p = Pair()
    ref = weakref.ref(p.client)
    p.client = None
    gc.collect()
    assert ref() is None
    with pytest.raises(ConnectionError):
        p.server.recv(10000)  # the client's close reached the server
    p.server.close()


# ---- logging -----------------------------------------------------------------

LOG_CHILD = r"""
import logging, sys, threading, time
records = []
class H(logging.Handler):
    def emit(self, r):
        records.append((r.levelno, r.name, r.getMessage(), threading.current_thread().name))
logging.getLogger("quic_portal").addHandler(H())
from quic_portal import Portal, QuicTransportOptions
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 0))
port = s.getsockname()[1]; s.close()
server, client = Portal(), Portal()
t = threading.Thread(target=server.listen, args=(port,), daemon=True); t.start()
time.sleep(0.1)
# A non-default initial_window cannot be honored: the library warns once.
client.connect("127.0.0.1", port, 0, QuicTransportOptions(initial_window=65536))
t.join(10)
client.close(); server.close()
for lvl, name, msg, th in records:
    print(lvl, name, msg.replace("\n", " "), sep="|")
"""


def test_library_log_goes_to_python_logging():
    env = dict(CHILD_ENV)
    env.pop("QUIC_PORTAL_LOG", None)
    out = subprocess.run([sys.executable, "-c", LOG_CHILD], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line.split("|", 2) for line in out.stdout.splitlines()]
    warnings = [m for lvl, name, m in lines if lvl == str(logging.WARNING)
                and name == "quic_portal"]
    assert any("initial_window" in m for m in warnings), out.stdout
    assert "initial_window" not in out.stderr  # not the library's own stderr handler


def test_debug_level_follows_logger():
    code = LOG_CHILD.replace(
        'logging.getLogger("quic_portal").addHandler(H())',
        'logging.getLogger("quic_portal").addHandler(H()); '
        'logging.getLogger("quic_portal").setLevel(logging.DEBUG)')
    env = dict(CHILD_ENV)
    env.pop("QUIC_PORTAL_LOG", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    levels = {line.split("|")[0] for line in out.stdout.splitlines()}
    assert str(logging.DEBUG) in levels or str(logging.INFO) in levels, out.stdout


ENV_LOG_CHILD = """
import threading
from quic_portal import Portal
d, got = {}, {}
kw = dict(local_port=0, punch_timeout=5, stun_servers=[("127.0.0.1", 9)])
t = threading.Thread(target=lambda: got.update(s=Portal.create_server(d, **kw)))
t.start()
client = Portal.create_client(d, **kw)
t.join(10)
client.close(); got["s"].close()
"""


@pytest.mark.parametrize("level, shown, hidden", [
    ("debug", ["DEBUG quic_portal: traversal: published",
               "INFO quic_portal: create_client: path found"], []),
    ("info", ["INFO quic_portal: traversal: waiting for the server's record",
              "INFO quic_portal: create_server: path found"], ["DEBUG"]),
    (None, [], ["DEBUG", "INFO"]),
])
def test_quic_portal_log_alone_shows_lines(level, shown, hidden):
    """QUIC_PORTAL_LOG alone (no logging configuration) shows the library's
    lines on stderr through the "quic_portal" logger; milestones are INFO."""
    env = dict(CHILD_ENV)
    env.pop("QUIC_PORTAL_LOG", None)
    if level:
        env["QUIC_PORTAL_LOG"] = level
    out = subprocess.run([sys.executable, "-c", ENV_LOG_CHILD], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for text in shown:
        assert text in out.stderr, out.stderr
    for text in hidden:
        assert text not in out.stderr, out.stderr


def test_closed_peer_caught_as_runtime_error(pair):
    """A 0.1.x program's `except RuntimeError` catches a peer that closed."""
    pair.client.send(b"last")
    pair.client.close()
    assert pair.server.recv(timeout_ms=5000) == b"last"
    caught = None
    try:
        pair.server.recv(timeout_ms=5000)
    except RuntimeError as e:
        caught = e
    assert isinstance(caught, quic_portal.ConnectionError), caught
    assert caught.code == quic_portal.ErrorCode.CLOSED
    try:
        pair.server.send(b"after")
    except RuntimeError as e:
        assert e.code == quic_portal.ErrorCode.CLOSED
    else:
        pytest.fail("send to a closed peer did not raise")
