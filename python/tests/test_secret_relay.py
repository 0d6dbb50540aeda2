"""Beyond 0.1.x, on loopback: a sealed rendezvous (secret=), the receive
limit (QuicTransportOptions.max_message_size), TURN relays through a real
coturn (turn_servers=, relay=), Portal.path, reconnect_timeout= and
stats()["recoveries"]. Every wait is bounded."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import quic_portal
from conftest import Pair, free_port
from quic_portal import Portal, QuicTransportOptions

SESSION = "a session name to hide"


class RecordingDict(dict):
    """A plain dict that remembers every key and value written to it."""

    def __init__(self):
        super().__init__()
        self.writes = []

    def __setitem__(self, key, value):
        self.writes.append((key, value))
        super().__setitem__(key, value)


def meet(store, server_kw, client_kw, timeout=30.0):
    """create_server in a thread, create_client here: (server, client), or
    the exceptions of both sides: (exc, exc)."""
    out = {}

    def serve():
        try:
            out["server"] = Portal.create_server(store, local_port=0, **{"local_ip": "127.0.0.1", **server_kw})
        except BaseException as e:  # noqa: BLE001 - returned to the test
            out["server"] = e

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        client = Portal.create_client(store, local_port=0, **{"local_ip": "127.0.0.1", **client_kw})
    except BaseException as e:  # noqa: BLE001 - returned to the test
        client = e
    t.join(timeout)
    assert not t.is_alive(), "create_server did not return"
    return out["server"], client


def close_all(*portals):
    for p in portals:
        if isinstance(p, Portal):
            p.close()


# ---- sealed rendezvous ----------------------------------------------------------


def test_secret_round_trip_hides_session_and_addresses():
    d = RecordingDict()
    secret = "correct horse battery staple"
    server, client = meet(d, {"session": SESSION, "secret": secret},
                          {"session": SESSION, "secret": secret})
    try:
        assert isinstance(server, Portal) and isinstance(client, Portal), (server, client)
        client.send(b"sealed hello")
        assert server.recv(timeout_ms=10000) == b"sealed hello"
        assert client.path is not None and client.path.startswith("direct (host, IPv4) to "), client.path
        peer_ip = client.path.rsplit(" ", 1)[1].rsplit(":", 1)[0]
        assert d.writes, "nothing was written to the store"
        for key, value in d.writes:
            text = value if isinstance(value, str) else value.decode("latin-1")
            assert SESSION not in key and SESSION not in text, (key, text)
            assert peer_ip not in text and "candidate" not in text, text
    finally:
        close_all(server, client)


def test_different_secrets_fail_on_both_sides():
    server, client = meet({}, {"secret": "secret number one", "wait_timeout": 1.5},
                          {"secret": "secret number two", "wait_timeout": 1.5})
    try:
        for side, e in (("server", server), ("client", client)):
            assert isinstance(e, quic_portal.ConnectionError), (side, e)
            assert e.code == quic_portal.ErrorCode.TIMEOUT, (side, e)
            assert "did not publish its record within the wait timeout" in str(e)
    finally:
        close_all(server, client)


def test_secret_on_one_side_only_does_not_connect():
    server, client = meet({}, {"secret": "only the server has it", "wait_timeout": 1.5},
                          {"wait_timeout": 1.5})
    try:
        assert isinstance(server, quic_portal.ConnectionError), server
        assert isinstance(client, quic_portal.ConnectionError), client
    finally:
        close_all(server, client)


@pytest.mark.parametrize("kw, exc, text", [
    ({"secret": "short"}, ValueError, "8 to 256 bytes"),
    ({"secret": b"bytes secret"}, TypeError, "secret must be a str"),
    ({"secret": "x" * 257}, ValueError, "8 to 256 bytes"),
    ({"relay": "sometimes"}, ValueError, "'auto', 'never' or 'only'"),
    ({"relay": "only"}, ValueError, "needs a TURN server"),
    ({"turn_servers": "u:p@h:3478"}, TypeError, "list of str"),
    ({"turn_servers": ["no-at-sign"]}, ValueError, "USER:PASS@HOST"),
    ({"turn_secret_servers": [3]}, TypeError, "turn_secret_servers[0]"),
    ({"turn_servers": ["u:p@h"] * 9}, ValueError, "at most 8 TURN servers"),
    ({"reconnect_timeout": -1}, ValueError, "reconnect_timeout"),
    ({"reconnect_timeout": "5"}, TypeError, "reconnect_timeout"),
    ({"legacy": True, "secret": "legacy has none"}, ValueError, "legacy=True"),
])
def test_bad_new_arguments_raise_before_anything_runs(kw, exc, text):
    t0 = time.monotonic()
    with pytest.raises(exc) as ei:
        Portal.create_client({}, local_port=0, wait_timeout=5, **kw)
    assert text in str(ei.value)
    assert time.monotonic() - t0 < 1


def test_reconnect_timeout_zero_and_a_value_are_accepted():
    server, client = meet({}, {"reconnect_timeout": 0}, {"reconnect_timeout": 2.5})
    try:
        assert isinstance(server, Portal) and isinstance(client, Portal), (server, client)
        client.send(b"x")
        assert server.recv(timeout_ms=10000) == b"x"
        assert server.stats()["recoveries"] == 0 and client.stats()["recoveries"] == 0
    finally:
        close_all(server, client)


# ---- max_message_size ---------------------------------------------------------


def test_max_message_size_option():
    o = QuicTransportOptions()
    assert o.max_message_size == 1 << 30
    o = QuicTransportOptions(max_message_size=4096)
    assert o.max_message_size == 4096
    assert pickle.loads(pickle.dumps(o)) == o
    assert o != QuicTransportOptions()
    assert "max_message_size=4096" in repr(o)
    for bad in (0, -1, 1 << 62):
        with pytest.raises(ValueError):
            QuicTransportOptions(max_message_size=bad)
    with pytest.raises(TypeError):
        QuicTransportOptions(max_message_size="4096")


def test_a_message_over_max_message_size_closes_with_protocol_error():
    pair = Pair(QuicTransportOptions(max_message_size=1000))
    try:
        pair.client.send(b"a" * 1000)  # exactly the limit: delivered
        assert pair.server.recv(timeout_ms=10000) == b"a" * 1000
        pair.client.send(b"b" * 1001)
        with pytest.raises(quic_portal.ConnectionError) as ei:
            pair.server.recv(timeout_ms=10000)
        assert ei.value.code == quic_portal.ErrorCode.PROTOCOL
        assert "1001 bytes" in str(ei.value) and "max_message_size of 1000 bytes" in str(ei.value)
        assert pair.server.path is None  # listen/connect: no traversal path
    finally:
        pair.close()


# ---- TURN through coturn ------------------------------------------------------


@pytest.fixture
def coturn():
    """A coturn on 127.0.0.1 with user u:p (loopback peers allowed)."""
    if shutil.which("turnserver") is None:
        pytest.skip("coturn (turnserver) is not installed")
    port = free_port()
    first = 40000 + (os.getpid() % 200) * 20
    tmp = tempfile.mkdtemp(prefix="qp-py-turn.")
    proc = subprocess.Popen(
        ["turnserver", "-n", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
         "--listening-port", str(port), "--min-port", str(first), "--max-port",
         str(first + 19), "--no-tls", "--no-dtls", "--no-cli", "--no-tcp",
         "--no-tcp-relay", "--userdb", os.path.join(tmp, "db"), "--pidfile",
         os.path.join(tmp, "pid"), "--log-file", "stdout", "--simple-log",
         "--allow-loopback-peers", "--lt-cred-mech", "--user", "u:p", "--realm", "r"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Up when it answers a STUN Binding request (at most 10 s).
        req = bytes.fromhex("000100002112a442") + os.urandom(12)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        deadline = time.monotonic() + 10
        while True:
            s.sendto(req, ("127.0.0.1", port))
            try:
                if s.recv(2048)[8:20] == req[8:20]:
                    break
            except socket.timeout:
                pass
            assert time.monotonic() < deadline, "turnserver did not come up"
        s.close()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def test_relay_only_through_coturn(coturn):
    turn = [f"u:p@127.0.0.1:{coturn}"]
    server, client = meet({}, {"turn_servers": turn, "relay": "only", "secret": "relayed secret"},
                          {"turn_servers": turn, "relay": "only", "secret": "relayed secret"})
    try:
        assert isinstance(server, Portal) and isinstance(client, Portal), (server, client)
        for p in (server, client):
            assert p.path.startswith(f"relayed via our TURN server 127.0.0.1:{coturn}"), p.path
        big = os.urandom(1 << 20)
        client.send(big)
        got = server.recv(timeout_ms=20000)
        assert got == big
        server.send(b"back")
        assert client.recv(timeout_ms=10000) == b"back"
    finally:
        close_all(server, client)


def test_relay_auto_stays_direct_and_wrong_password_is_relay_error(coturn):
    server, client = meet({}, {"turn_servers": [f"u:p@127.0.0.1:{coturn}"]},
                          {"turn_servers": [f"u:p@127.0.0.1:{coturn}"], "relay": "auto"})
    try:
        assert isinstance(client, Portal), client
        assert client.path.startswith("direct (host, IPv4) to "), client.path
    finally:
        close_all(server, client)
    with pytest.raises(quic_portal.ConnectionError) as ei:
        Portal.create_client({}, local_port=0, wait_timeout=5, relay="only",
                             turn_servers=[f"u:Zq9wrongpw@127.0.0.1:{coturn}"])
    assert ei.value.code == quic_portal.ErrorCode.RELAY, ei.value
    assert "401" in str(ei.value) and "Zq9wrongpw" not in str(ei.value)


# ---- pin= on listen/connect ---------------------------------------------------


def _listen_in_thread(server, port, **kw):
    out = {}

    def run():
        try:
            server.listen(port, **kw)
            out["ok"] = True
        except BaseException as e:  # noqa: BLE001 - returned to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _connect_retrying(client, port, **kw):
    """connect() until the listening thread has bound (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            client.connect("127.0.0.1", port, 0, **kw)
            return
        except quic_portal.ConnectionError as e:
            if e.code == quic_portal.ErrorCode.PEER_VERIFY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_listen_and_connect_pin_each_other():
    server, client = Portal(), Portal()
    port = free_port()
    t, out = _listen_in_thread(server, port, pin=client.fingerprint())
    try:
        _connect_retrying(client, port, pin=server.fingerprint())
        t.join(10)
        assert out.get("ok"), out
        client.send(b"pinned both ways")
        assert server.recv(timeout_ms=10000) == b"pinned both ways"
    finally:
        client.close()
        server.close()


def test_connect_with_a_wrong_pin_fails_with_peer_verify():
    server, client = Portal(), Portal()
    port = free_port()
    t, out = _listen_in_thread(server, port)
    try:
        with pytest.raises(quic_portal.ConnectionError) as ei:
            _connect_retrying(client, port, pin="ab" * 32)
        assert ei.value.code == quic_portal.ErrorCode.PEER_VERIFY, ei.value
        # The server keeps listening for the right client: a second one connects.
        other = Portal()
        _connect_retrying(other, port, pin=server.fingerprint())
        t.join(10)
        assert out.get("ok"), out
        other.close()
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("pin, exc", [("not hex", ValueError), (b"ab" * 32, TypeError)])
def test_bad_pin_argument(pin, exc):
    with pytest.raises(exc):
        Portal().connect("127.0.0.1", 9, 0, pin=pin)
