"""legacy=True meets a quic-portal 0.1.x peer (legacy_peer.py, written from
the protocol description), both roles, over loopback with the library's
embedded STUN server: in threads sharing a dict, in processes sharing a
DirDict. Without legacy=True, such a peer makes the call fail at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

import quic_portal
from quic_portal import Portal
from quic_portal.rendezvous import DirDict

import legacy_peer
from conftest import CHILD_ENV

LEGACY_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "legacy_peer.py")


@pytest.fixture
def stun():
    server = quic_portal.StunServer("127.0.0.1:0")
    yield server
    server.stop()


def in_thread(fn):
    out = {}

    def body():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            out["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def talk(ours, theirs):
    ours.send(b"hello from 0.2")
    assert theirs.recv(timeout_ms=10000) == b"hello from 0.2"
    theirs.send(b"hello from 0.1.x")
    assert ours.recv(timeout_ms=10000) == b"hello from 0.1.x"


@pytest.mark.parametrize("our_role", ["server", "client"])
def test_legacy_meets_a_0_1_peer_in_threads(stun, our_role):
    d = {}
    their_role = "client" if our_role == "server" else "server"
    t, theirs = in_thread(lambda: legacy_peer.run(their_role, d, stun.port))
    create = Portal.create_server if our_role == "server" else Portal.create_client
    t0 = time.monotonic()
    ours = create(d, local_port=0, stun_servers=[("127.0.0.1", stun.port)], legacy=True,
                  punch_timeout=10)
    t.join(15)
    assert "error" not in theirs, theirs.get("error")
    peer = theirs["value"]
    try:
        assert time.monotonic() - t0 < 10
        talk(ours, peer)
        if our_role == "client":
            assert ours.server_ip == "127.0.0.1" and ours.server_port == peer.local_port()
    finally:
        ours.close()
        peer.close()
    assert our_role not in d  # our list is withdrawn once punched


@pytest.mark.parametrize("our_role", ["server", "client"])
def test_legacy_meets_a_0_1_peer_process_through_dirdict(stun, tmp_path, our_role):
    their_role = "client" if our_role == "server" else "server"
    proc = subprocess.Popen([sys.executable, "-u", LEGACY_PEER, their_role, str(tmp_path),
                             str(stun.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=CHILD_ENV)
    try:
        create = Portal.create_server if our_role == "server" else Portal.create_client
        ours = create(DirDict(tmp_path), local_port=0, legacy=True, punch_timeout=10,
                      stun_servers=[("127.0.0.1", stun.port)], wait_timeout=20)
        try:
            if our_role == "server":
                assert ours.recv(timeout_ms=10000) == b"hello from 0.1.x"
                ours.send(b"ok")
            else:
                ours.send(b"hi")
                assert ours.recv(timeout_ms=10000) == b"0.1.x got hi"
        finally:
            ours.close()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "connected", out
    if our_role == "server":
        assert lines[1] == "ok"


@pytest.mark.parametrize("our_role", ["server", "client"])
def test_without_legacy_a_0_1_peer_fails_fast(stun, our_role):
    d = {}
    their_role = "client" if our_role == "server" else "server"
    t, _ = in_thread(lambda: legacy_peer.run(their_role, d, stun.port))
    deadline = time.monotonic() + 10
    while their_role not in d and time.monotonic() < deadline:
        time.sleep(0.02)
    create = Portal.create_server if our_role == "server" else Portal.create_client
    t0 = time.monotonic()
    with pytest.raises(quic_portal.ConnectionError, match="legacy=True") as ei:
        create(d, local_port=0, stun_servers=[("127.0.0.1", stun.port)])
    assert time.monotonic() - t0 < 2
    assert isinstance(ei.value.__cause__, quic_portal.LegacyPeerError)
    assert "0.1.x" in str(ei.value)


def test_without_legacy_a_0_1_peer_in_a_dirdict_fails_fast(tmp_path):
    d = DirDict(tmp_path)
    d["server"] = [("127.0.0.1", 5555)]  # what a 0.1.x server stores
    t0 = time.monotonic()
    with pytest.raises(quic_portal.LegacyPeerError, match="legacy=True"):
        Portal.create_client(d, local_port=0)
    assert time.monotonic() - t0 < 1


def test_legacy_without_a_stun_answer_says_so():
    with pytest.raises(quic_portal.ConnectionError, match="no STUN server") as ei:
        Portal.create_server({}, local_port=0, stun_servers=[("127.0.0.1", 9)],
                             legacy=True)
    assert ei.value.code == quic_portal.ErrorCode.STUN


def test_legacy_lonely_client_waits_then_times_out(stun):
    d = {}
    t0 = time.monotonic()
    with pytest.raises(quic_portal.ConnectionError) as ei:
        Portal.create_client(d, local_port=0, stun_servers=[("127.0.0.1", stun.port)],
                             legacy=True, wait_timeout=1)
    assert 0.9 < time.monotonic() - t0 < 4
    assert ei.value.code == quic_portal.ErrorCode.TIMEOUT
    assert "client" not in d  # its list is withdrawn
