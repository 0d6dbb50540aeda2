"""Portal.create_server / create_client (rendezvous + NAT traversal) and the
shipped rendezvous stores, on loopback: the default STUN servers are public
names that do not resolve offline, which costs nothing (the peers meet
through their host candidates). Every wait is bounded."""

from __future__ import annotations

import _thread
import hashlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import quic_portal
from conftest import CHILD_ENV, free_tcp_port
from quic_portal import ConnectionError, ErrorCode, Portal, QuicTransportOptions
from quic_portal.rendezvous import DirDict, RedisDict, RedisError

TRAV_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trav_peer.py")


# ---- helpers -----------------------------------------------------------------


def meet(store, server_kw=None, client_kw=None, timeout=30.0):
    """create_server in a thread, create_client here; both portals."""
    # local_ip keeps every check on loopback (nothing to this machine's
    # other addresses).
    server_kw = {"local_port": 0, "local_ip": "127.0.0.1", **(server_kw or {})}
    client_kw = {"local_port": 0, "local_ip": "127.0.0.1", **(client_kw or {})}
    out = {}

    def serve():
        try:
            out["server"] = Portal.create_server(store, **server_kw)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            out["error"] = e

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        client = Portal.create_client(store, **client_kw)
    finally:
        t.join(timeout)
    assert not t.is_alive(), "create_server did not return"
    if "error" in out:
        client.close()
        raise out["error"]
    return out["server"], client


def talk(a, b, payload=b"hello"):
    a.send(payload)
    got = b.recv(timeout_ms=10000)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    assert got == payload
    b.send(b"Echo: " + payload[:100])
    assert a.recv(timeout_ms=10000) == b"Echo: " + payload[:100]


def run_trav_peer(*args):
    return subprocess.Popen(
        [sys.executable, "-u", TRAV_PEER, *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=CHILD_ENV)


def read_line(proc, timeout=20.0):
    result = []
    t = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive() or not result or not result[0]:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise AssertionError(f"peer said nothing within {timeout} s "
                             f"(exit {proc.returncode}); stderr:\n{err}")
    return result[0].rstrip("\n")


def finish(proc, timeout=30.0):
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise AssertionError(f"peer did not exit within {timeout} s; stderr:\n{err}")
    return err


# ---- stores used as `dict` ---------------------------------------------------


class OnlyItems:
    """The least a store must offer: __setitem__, __getitem__, __contains__."""

    def __init__(self):
        self._d = {}
        self._lock = threading.Lock()

    def __setitem__(self, k, v):
        with self._lock:
            self._d[k] = v

    def __getitem__(self, k):
        with self._lock:
            return self._d[k]

    def __contains__(self, k):
        with self._lock:
            return k in self._d


class ModalLike:
    """Like modal.Dict: values pickled, a network round trip per access,
    get()/put() as well as the item protocol."""

    def __init__(self, delay=0.02):
        self._d, self.delay, self.calls = {}, delay, 0

    def _rt(self):
        self.calls += 1
        time.sleep(self.delay)

    def __setitem__(self, k, v):
        self._rt()
        self._d[k] = pickle.dumps(v)

    def put(self, k, v):
        self[k] = v

    def __getitem__(self, k):
        self._rt()
        return pickle.loads(self._d[k])

    def get(self, k, default=None):
        self._rt()
        return pickle.loads(self._d[k]) if k in self._d else default

    def __contains__(self, k):
        self._rt()
        return k in self._d

    def __delitem__(self, k):
        self._rt()
        del self._d[k]


# ---- two threads, one process ------------------------------------------------


def test_plain_dict_two_threads_with_the_defaults():
    """0.1.x's call, defaults included (STUN names that do not resolve here,
    punch_timeout 15 s): connects on host candidates well within the
    timeout, pins both certificates, and cleans its records up."""
    d = {}
    t0 = time.monotonic()
    server, client = meet(d, {"local_port": 0}, {"local_port": 0})
    elapsed = time.monotonic() - t0
    try:
        assert elapsed < 5, f"took {elapsed:.1f} s"
        assert server.is_connected() and client.is_connected()
        talk(client, server)
        talk(server, client, "text is sent as UTF-8")
        assert all(not v for v in d.values()), d  # records withdrawn
        assert isinstance(server, Portal) and isinstance(client, Portal)
        # As 0.1.x: a client portal names its server; a server has none.
        assert server.server_ip is None and server.server_port is None
        assert client.server_port == server.local_port()
        assert isinstance(client.server_ip, str) and client.server_ip
        with pytest.raises(AttributeError):
            client.server_ip = "x"  # read-only
    finally:
        client.close()
        server.close()


def test_default_ports_5555_5556():
    """No local_port given: 5555 (server) and 5556 (client), as 0.1.x."""
    for port in (5555, 5556):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                pytest.skip(f"UDP port {port} is busy on this machine")
    d = {}
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("s", Portal.create_server(d)),
                         daemon=True)
    t.start()
    client = Portal.create_client(d)
    t.join(20)
    server = out["s"]
    try:
        assert server.local_port() == 5555 and client.local_port() == 5556
        talk(client, server)
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("kw", [
    {"stun_server": ("stun.ekiga.net", 3478)},               # the 0.1 README's keyword
    {"stun_servers": [("stun.l.google.com", 19302)]},
    {"stun_servers": ("stun.ekiga.net", 3478)},               # one pair by itself
    {"stun_servers": [("no-such-host.invalid", 3478), ("::1", 1)], "punch_timeout": 6},
])
def test_stun_keywords_accepted(kw):
    server, client = meet({}, kw, kw)
    try:
        talk(client, server)
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("factory", [OnlyItems, ModalLike])
def test_minimal_and_modal_like_stores(factory):
    store = factory()
    server, client = meet(store, {"punch_timeout": 10}, {"punch_timeout": 10})
    try:
        talk(client, server)
        if isinstance(store, ModalLike):
            assert store.calls > 0
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("kw", [{"legacy": True}, {"pin": False}])
def test_legacy_mode_without_pinning(kw):
    stun = quic_portal.StunServer("127.0.0.1:0")
    if kw.get("legacy"):  # 0.1.x's protocol publishes STUN addresses only
        kw = dict(kw, stun_servers=[("127.0.0.1", stun.port)])
    server, client = meet({}, kw, kw)
    stun.stop()
    try:
        talk(client, server)
    finally:
        client.close()
        server.close()


def test_sessions_share_one_store():
    """Two pairs on one dict at once, each in its own session."""
    d = {}
    results = {}

    def pair(name):
        try:
            results[name] = meet(d, {"session": name}, {"session": name})
        except BaseException as e:  # noqa: BLE001
            results[name] = e

    threads = [threading.Thread(target=pair, args=(n,), daemon=True) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for name in ("a", "b"):
        assert not isinstance(results[name], BaseException), results[name]
        server, client = results[name]
        talk(client, server, name.encode())
        client.close()
        server.close()


def test_transport_options_are_used():
    opts = QuicTransportOptions(max_idle_timeout_secs=20, congestion_controller_type="bbr",
                                keep_alive_interval_secs=1)
    server, client = meet({}, {"transport_options": opts}, {"transport_options": opts})
    try:
        talk(client, server)
    finally:
        client.close()
        server.close()


def test_100mib_messages_after_traversal():
    server, client = meet({})
    try:
        big = os.urandom(1 << 20) * 100
        want = hashlib.sha256(big).digest()
        client.send(big)
        got = server.recv(timeout_ms=60000)
        assert got is not None and len(got) == len(big)
        assert hashlib.sha256(got).digest() == want
        server.send(got)
        del got
        back = client.recv(timeout_ms=60000)
        assert back is not None and hashlib.sha256(back).digest() == want
    finally:
        client.close()
        server.close()


def test_lonely_client_fails_within_wait_timeout():
    t0 = time.monotonic()
    with pytest.raises(quic_portal.ConnectionError) as ei:
        Portal.create_client({}, local_port=0, punch_timeout=0.5, wait_timeout=1.5)
    elapsed = time.monotonic() - t0
    assert 1.4 <= elapsed < 1.5 + 1.5, elapsed
    assert ei.value.code == quic_portal.ErrorCode.TIMEOUT
    assert "did not publish its record within the wait timeout of 1500 ms" in str(ei.value)


def test_lonely_server_with_defaults_fails_within_wait_timeout():
    t0 = time.monotonic()
    with pytest.raises(quic_portal.ConnectionError) as ei:
        Portal.create_server({}, 0, wait_timeout=1)
    assert time.monotonic() - t0 < 2.5
    assert ei.value.code == quic_portal.ErrorCode.TIMEOUT


def test_server_started_20_s_before_its_client():
    """As 0.1.x: the server waits for its client without limit, and
    punch_timeout counts only from when the client's record appears."""
    d = {}
    got = {}

    def serve():
        try:
            got["server"] = Portal.create_server(d, local_port=0, punch_timeout=2,
                                                 stun_servers=[("127.0.0.1", 9)])
        except BaseException as e:  # noqa: BLE001 - reported below
            got["error"] = e

    t = threading.Thread(target=serve, daemon=True)
    t0 = time.monotonic()
    t.start()
    # The delay is the behavior under test: ten punch timeouts.
    while time.monotonic() - t0 < 20 and "error" not in got:
        time.sleep(0.1)
    assert "error" not in got, got.get("error")
    client = Portal.create_client(d, local_port=0, punch_timeout=2,
                                  stun_servers=[("127.0.0.1", 9)])
    t.join(10)
    assert "error" not in got, got.get("error")
    server = got["server"]
    try:
        talk(client, server)
        assert client.server_port == server.local_port()
        assert client.server_ip is not None
    finally:
        client.close()
        server.close()


class Broken(dict):
    def __init__(self, op):
        super().__init__()
        self.op = op

    def __setitem__(self, k, v):
        if self.op == "put":
            raise RuntimeError("store is down")
        super().__setitem__(k, v)

    def __contains__(self, k):
        if self.op == "get":
            raise OSError("network unreachable")
        return super().__contains__(k)


@pytest.mark.parametrize("op, exc", [("put", RuntimeError), ("get", OSError)])
def test_store_exception_becomes_connection_error(op, exc):
    create = Portal.create_server if op == "put" else Portal.create_client
    t0 = time.monotonic()
    with pytest.raises(quic_portal.ConnectionError) as ei:
        create(Broken(op), local_port=0, punch_timeout=5)
    assert time.monotonic() - t0 < 3
    msg = str(ei.value)
    assert f"{op}(" in msg and exc.__name__ in msg, msg
    assert isinstance(ei.value.__cause__, exc)
    assert ei.value.code == quic_portal.ErrorCode.RENDEZVOUS


def test_store_returning_garbage_is_ignored():
    """A value of another kind under our key reads as absent."""
    d = {"qp/quic-portal/server": 12345}
    with pytest.raises(quic_portal.ConnectionError, match="did not publish"):
        Portal.create_client(d, local_port=0, wait_timeout=0.6)


def test_ctrl_c_in_process_during_create_client():
    """KeyboardInterrupt (SIGINT simulated on the main thread) stops
    create_client within 300 ms; afterwards a new attempt still works."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    timer = threading.Timer(0.5, _thread.interrupt_main)
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        Portal.create_client({}, local_port=0, punch_timeout=20)
    late = time.monotonic() - t0 - 0.5
    timer.join()
    assert late < 0.3, f"KeyboardInterrupt {late * 1000:.0f} ms after Ctrl-C"
    server, client = meet({})
    client.close()
    server.close()


def test_create_from_a_non_main_thread_and_main_keeps_running():
    """The GIL is released while traversing: the main thread runs meanwhile."""
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    with pytest.raises(quic_portal.ConnectionError):
        Portal.create_client({}, local_port=0, wait_timeout=0.5)
    done.set()
    t.join(2)
    assert len(ticks) > 20


# ---- DirDict -----------------------------------------------------------------


def test_dirdict_mapping(tmp_path):
    d = DirDict(tmp_path / "store")
    assert "k" not in d and d.get("k") is None and len(d) == 0
    d["k"] = "välue"
    d.put("a/b", b"\x00\xff")
    d["odd key/../.x"] = b"x"
    assert d["k"] == "välue".encode() and d["a/b"] == b"\x00\xff"
    assert "k" in d and "a/b" in d and "a" not in d and 5 not in d
    assert sorted(d) == sorted(["k", "a/b", "odd key/../.x"])
    for root, dirs, files in os.walk(d.path):
        for name in dirs + files:
            assert name not in (".", "..") and not name.startswith("."), name
            assert os.path.realpath(os.path.join(root, name)).startswith(d.path)
    del d["k"]
    assert "k" not in d
    with pytest.raises(KeyError):
        del d["k"]
    with pytest.raises(KeyError):
        d["nope"]
    with pytest.raises(TypeError):
        d[1] = b"x"
    # Any picklable value, as modal.Dict (0.1.x's peers store lists of tuples).
    d["k"] = [("203.0.113.7", 5555)]
    assert d["k"] == [("203.0.113.7", 5555)] and d.get("k") == [("203.0.113.7", 5555)]
    d["k"] = b"\x00qp-pickle\x00 looks pickled"
    assert d["k"] == b"\x00qp-pickle\x00 looks pickled"
    with pytest.raises(TypeError):
        d["k"] = threading.Lock()
    with pytest.raises(ValueError):
        d["a//b"] = b"x"
    with pytest.raises(ValueError):
        d[""] = b"x"
    assert pickle.loads(pickle.dumps(d)).path == d.path
    st = os.stat(os.path.join(d.path, "a", "b"))
    assert st.st_mode & 0o077 == 0


def test_dirdict_writes_are_atomic(tmp_path):
    """A reader never sees a partial value (tmp + os.replace)."""
    d = DirDict(tmp_path)
    a, b = b"a" * 300000, b"b" * 300000
    d["k"] = a
    stop = threading.Event()
    bad = []

    def writer():
        while not stop.is_set():
            d["k"] = b
            d["k"] = a

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        v = d["k"]
        if v not in (a, b):
            bad.append(len(v))
    stop.set()
    t.join(5)
    assert not bad
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_dirdict_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        DirDict(5)
    with pytest.raises(ValueError):
        DirDict("")
    with pytest.raises(TypeError):
        DirDict(tmp_path, session=3)


def test_dirdict_two_threads_uses_the_c_folder_backend(tmp_path):
    d = DirDict(tmp_path, session="threads")
    server, client = meet(d)
    try:
        talk(client, server)
    finally:
        client.close()
        server.close()


def test_dirdict_layout_matches_the_c_library(tmp_path):
    """The record a lonely server leaves is visible through the mapping."""
    d = DirDict(tmp_path)
    with pytest.raises(quic_portal.ConnectionError):
        Portal.create_server(d, local_port=0, wait_timeout=0.3, session="s 1/x")
    keys = list(d)
    assert keys == ["qp/s 1/x/server"] or keys == [], keys
    if keys:
        assert b'"role":"server"' in d[keys[0]]


def test_two_processes_through_dirdict(tmp_path):
    store = f"dir:{tmp_path}"
    server = run_trav_peer("server", store, "procs", 15)
    client = run_trav_peer("client", store, "procs", 15, 100)
    try:
        assert read_line(server).startswith("store DirDict")
        assert read_line(client).startswith("store DirDict")
        line = read_line(client)
        assert line.startswith("connected"), line
        assert float(line.split()[1]) < 5
        assert read_line(server).startswith("connected")
        assert read_line(client) == "echo hello"
        assert read_line(client, 90) == "big ok"
        assert read_line(server, 30) == "done 2"
    finally:
        finish(client, 30)
        finish(server, 30)
    assert client.returncode == 0 and server.returncode == 0


def test_record_of_a_killed_server_does_not_fail_the_next_client(tmp_path):
    """A server killed with SIGKILL leaves its record; a client that reads
    it first drops it as stale (no heartbeat) and meets the next server."""
    store = f"dir:{tmp_path}"
    dead = run_trav_peer("server", store, "killed", 15)
    assert read_line(dead).startswith("store DirDict")
    d = DirDict(tmp_path)
    deadline = time.monotonic() + 10
    while "qp/killed/server" not in d and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "qp/killed/server" in d
    dead.kill()
    finish(dead, 10)
    assert "qp/killed/server" in d  # left behind
    got = {}

    def client_side():
        try:
            got["client"] = Portal.create_client(d, local_port=0, punch_timeout=1,
                                                 session="killed")
        except BaseException as e:  # noqa: BLE001 - reported below
            got["error"] = e

    t = threading.Thread(target=client_side, daemon=True)
    t.start()
    # The delay is the behavior under test: past the punch timeout and the
    # time after which a record without heartbeat counts as stale (3 s).
    t.join(4.5)
    assert "error" not in got, got.get("error")
    server = Portal.create_server(d, local_port=0, punch_timeout=3, session="killed")
    t.join(10)
    assert "error" not in got, got.get("error")
    client = got["client"]
    try:
        talk(client, server)
    finally:
        client.close()
        server.close()


def test_lonely_client_process_through_dirdict(tmp_path):
    p = run_trav_peer("lonely", f"dir:{tmp_path}", "nobody", 1)
    read_line(p)
    words = read_line(p).split(" ", 2)
    finish(p)
    assert words[0] == "error", words
    assert 0.9 <= float(words[1]) < 2.5
    assert "wait timeout of 1000 ms" in " ".join(words), words


def test_ctrl_c_during_create_client_in_a_child(tmp_path):
    p = run_trav_peer("blocker", f"dir:{tmp_path}", "ctrl-c", 30)
    try:
        read_line(p)
        assert read_line(p) == "blocking"
        time.sleep(0.5)  # well inside the traversal
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        line = read_line(p, 5)
        assert line.startswith("interrupted"), line
        latency = float(line.split()[1]) - t0
        assert latency < 0.3, f"{latency * 1000:.0f} ms"
    finally:
        finish(p, 10)
    assert p.returncode == 0


# ---- RedisDict (a real redis-server on a free port) ---------------------------


# The redis_url fixture (conftest.py) runs redis-server on a free port.


def test_redisdict_mapping(redis_url):
    d = RedisDict(redis_url.replace("/0", "/3"))
    d["k"] = "välue"
    d.put("bin", b"\x00\xff\r\n")
    assert d["k"] == "välue".encode() and d["bin"] == b"\x00\xff\r\n"
    assert "k" in d and "nope" not in d and d.get("nope") is None
    assert set(d) >= {"k", "bin"} and len(d) >= 2
    del d["k"]
    assert "k" not in d
    with pytest.raises(KeyError):
        del d["k"]
    with pytest.raises(KeyError):
        d["k"]
    d["x"] = {"any": (1, 2.5)}
    assert d["x"] == {"any": (1, 2.5)} and d.get("x") == {"any": (1, 2.5)}
    d2 = pickle.loads(pickle.dumps(d))
    assert d2["bin"] == b"\x00\xff\r\n"
    big = os.urandom(3 << 20)
    d["big"] = big
    assert d["big"] == big
    d.close()
    assert d["bin"] == b"\x00\xff\r\n"  # reconnects
    assert "bin" not in RedisDict(redis_url)  # another database


@pytest.mark.parametrize("url, exc", [
    ("http://127.0.0.1", ValueError), ("redis://", ValueError),
    ("redis://h:70000", ValueError), ("redis://user:pw@h", ValueError), (5, TypeError),
])
def test_redisdict_bad_urls(url, exc):
    with pytest.raises(exc):
        RedisDict(url)


def test_redisdict_unreachable():
    port = free_tcp_port()  # nobody listens there
    d = RedisDict(f"redis://127.0.0.1:{port}", timeout=1)
    t0 = time.monotonic()
    with pytest.raises(RedisError, match="cannot connect"):
        d["k"]
    assert time.monotonic() - t0 < 3
    with pytest.raises(quic_portal.ConnectionError, match=str(port)):
        Portal.create_client(d, local_port=0, wait_timeout=2)


def test_redisdict_two_threads(redis_url):
    d = RedisDict(redis_url, session="redis-threads")
    server, client = meet(d)
    try:
        talk(client, server)
    finally:
        client.close()
        server.close()
    assert not any(k.startswith("qp/redis-threads/") for k in d), list(d)


def test_two_processes_through_redisdict(redis_url):
    server = run_trav_peer("server", redis_url, "redis-procs", 15)
    client = run_trav_peer("client", redis_url, "redis-procs", 15, 10)
    try:
        assert read_line(server).startswith("store RedisDict")
        assert read_line(client).startswith("store RedisDict")
        line = read_line(client)
        assert line.startswith("connected"), line
        assert float(line.split()[1]) < 5
        assert read_line(server).startswith("connected")
        assert read_line(client) == "echo hello"
        assert read_line(client, 60) == "big ok"
        assert read_line(server, 30) == "done 2"
    finally:
        finish(client, 30)
        finish(server, 30)
    assert client.returncode == 0 and server.returncode == 0


def test_lonely_client_process_through_redisdict(redis_url):
    p = run_trav_peer("lonely", redis_url, "redis-nobody", 1)
    read_line(p)
    words = read_line(p).split(" ", 2)
    finish(p)
    assert words[0] == "error", words
    assert "wait timeout of 1000 ms" in " ".join(words), words


# ---- STUN names resolved with a bounded wait ---------------------------------


def test_unresolvable_stun_name_and_dead_server_cost_bounded_time():
    """Names go to the C library as "host:port" text; one that does not
    resolve costs at most the resolve budget (2 s, or a quarter of
    punch_timeout), a server that does not answer at most the gathering
    budget, and peers on one machine still meet."""
    name = f"stun{time.monotonic_ns()}.invalid"
    kw = {"stun_servers": [(name, 3478), ("127.0.0.1", 9)], "punch_timeout": 6}
    t0 = time.monotonic()
    server, client = meet({}, kw, kw)
    elapsed = time.monotonic() - t0
    try:
        talk(client, server)
    finally:
        client.close()
        server.close()
    assert elapsed < 1.5 + 2.5, f"{elapsed:.1f} s"


def test_ctrl_c_with_stun_names_to_resolve():
    """STUN names are resolved by the C library (bounded, cancellable):
    Ctrl-C still stops the call at once."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    timer = threading.Timer(0.3, _thread.interrupt_main)
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        Portal.create_client({}, local_port=0, punch_timeout=20,
                             stun_servers=[(f"n{time.monotonic_ns()}.invalid", 3478)])
    timer.join()
    assert time.monotonic() - t0 - 0.3 < 0.3


def test_python_does_not_resolve_names():
    assert not hasattr(quic_portal, "_resolve_stun")
    assert not hasattr(quic_portal, "_socket")


def test_dead_stun_server_next_to_a_live_one_costs_nothing():
    """A STUN server that never answers does not delay a traversal when
    another one answered (it used to cost 2 s per call)."""
    stun = quic_portal.StunServer("127.0.0.1:0")
    try:
        times = []
        for servers in ([("127.0.0.1", stun.port)],
                        [("127.0.0.1", stun.port), ("127.0.0.1", 9)]):
            kw = {"stun_servers": servers, "punch_timeout": 10}
            t0 = time.monotonic()
            server, client = meet({}, kw, kw)
            times.append(time.monotonic() - t0)
            client.close()
            server.close()
    finally:
        stun.stop()
    assert times[1] < times[0] + 1.0, times


# ---- local_ip ------------------------------------------------------------------


def test_local_ip_keeps_the_path_on_that_address():
    server, client = meet({}, {"session": "local-ip"}, {"session": "local-ip"})
    try:
        talk(client, server)
        assert "127.0.0.1" in server.path and "127.0.0.1" in client.path
    finally:
        client.close()
        server.close()


def test_local_ip_must_be_an_address_of_this_machine():
    with pytest.raises(ConnectionError) as e:
        Portal.create_server({}, local_port=0, local_ip="192.0.2.1", wait_timeout=1)
    assert e.value.code == ErrorCode.SOCKET
    assert "192.0.2.1" in str(e.value)
    with pytest.raises(TypeError):
        Portal.create_server({}, local_port=0, local_ip=127, wait_timeout=1)
