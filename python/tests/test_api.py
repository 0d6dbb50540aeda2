"""The API surface of seed-api.md that needs no connection: names, defaults,
errors, argument checking, and the cases of quic-portal 0.1.x's own tests."""

from __future__ import annotations

import builtins
import os
import inspect
import pickle
import time

import pytest

import quic_portal
import quic_portal.rendezvous
from quic_portal import ConnectionError, Portal, PortalError, QuicTransportOptions
from quic_portal._mapping import MappingStore

from conftest import fast_options, free_port


# ---- module ------------------------------------------------------------------


def test_exports():
    for name in ("Portal", "QuicTransportOptions", "PortalError", "ConnectionError",
                 "__version__"):
        assert hasattr(quic_portal, name), name
    assert set(quic_portal.__all__) >= {"Portal", "QuicTransportOptions", "PortalError",
                                        "ConnectionError", "__version__"}


def test_version():
    assert quic_portal.__version__ == "0.3.0"
    assert quic_portal._core.__version__ == quic_portal.__version__


def test_exception_hierarchy():
    # 0.1.x raised RuntimeError from every call into its core.
    assert issubclass(PortalError, RuntimeError)
    assert issubclass(quic_portal.ArgumentError, PortalError)
    assert issubclass(quic_portal.ArgumentError, ValueError)
    assert issubclass(quic_portal.rendezvous.RedisError, PortalError)
    assert issubclass(ConnectionError, PortalError)
    assert ConnectionError is not builtins.ConnectionError
    assert PortalError.__module__ == "quic_portal"
    assert ConnectionError.__name__ == "ConnectionError"


def test_typing_files_shipped():
    import os
    d = os.path.dirname(quic_portal.__file__)
    assert os.path.exists(os.path.join(d, "py.typed"))
    stub = open(os.path.join(d, "__init__.pyi")).read()
    for name in ("class Portal", "class QuicTransportOptions", "class PortalError",
                 "class ConnectionError", "__version__", "def create_server",
                 "def create_client", "def listen", "def connect", "def send",
                 "def recv", "def is_connected", "def close"):
        assert name in stub, name


# ---- QuicTransportOptions ----------------------------------------------------


def test_options_defaults():
    o = QuicTransportOptions()
    assert o.max_idle_timeout_secs == 10
    assert o.congestion_controller_type == "bbr"
    assert o.initial_window == 1048576
    assert o.keep_alive_interval_secs == 2


def test_options_keywords_and_positional():
    o = QuicTransportOptions(max_idle_timeout_secs=20, congestion_controller_type="bbr",
                             initial_window=2 << 20, keep_alive_interval_secs=1)
    assert (o.max_idle_timeout_secs, o.congestion_controller_type, o.initial_window,
            o.keep_alive_interval_secs) == (20, "bbr", 2 << 20, 1)
    assert QuicTransportOptions(30, "fixed", 4096, 5).congestion_controller_type == "fixed"


def test_options_writable():
    o = QuicTransportOptions()
    o.max_idle_timeout_secs = 20
    o.keep_alive_interval_secs = 1.5
    o.congestion_controller_type = "reno"
    o.initial_window = 65536
    assert o.max_idle_timeout_secs == 20
    assert o.keep_alive_interval_secs == 1.5
    assert o.congestion_controller_type == "reno"
    assert o.initial_window == 65536


@pytest.mark.parametrize("cc", ["cubic", "bbr", "bbr2", "reno", "fixed", "BBR", "Cubic"])
def test_options_controllers(cc):
    assert QuicTransportOptions(congestion_controller_type=cc).congestion_controller_type == cc


@pytest.mark.parametrize("cc", ["", "vegas", "cubic ", "cub\0ic"])
def test_options_unknown_controller(cc):
    with pytest.raises(ValueError, match="congestion_controller_type"):
        QuicTransportOptions(congestion_controller_type=cc)
    o = QuicTransportOptions()
    with pytest.raises(ValueError, match="cubic"):
        o.congestion_controller_type = cc
    assert o.congestion_controller_type == "bbr"  # unchanged (the default)


@pytest.mark.parametrize("field, value", [
    ("max_idle_timeout_secs", "10"),
    ("max_idle_timeout_secs", None),
    ("max_idle_timeout_secs", True),
    ("keep_alive_interval_secs", [2]),
    ("initial_window", 1.5),
    ("initial_window", "1048576"),
    ("congestion_controller_type", 1),
    ("congestion_controller_type", b"cubic"),
])
def test_options_wrong_types(field, value):
    with pytest.raises(TypeError, match=field):
        QuicTransportOptions(**{field: value})
    o = QuicTransportOptions()
    with pytest.raises(TypeError, match=field):
        setattr(o, field, value)


@pytest.mark.parametrize("field, value", [
    ("max_idle_timeout_secs", 0),
    ("max_idle_timeout_secs", -1),
    ("max_idle_timeout_secs", float("nan")),
    ("max_idle_timeout_secs", 10 ** 9),
    ("keep_alive_interval_secs", -0.5),
    ("initial_window", 0),
    ("initial_window", -1),
    ("initial_window", 2 ** 70),
])
def test_options_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        QuicTransportOptions(**{field: value})


def test_options_unknown_keyword():
    with pytest.raises(TypeError):
        QuicTransportOptions(idle=3)


def test_options_repr_eq_pickle():
    o = QuicTransportOptions(max_idle_timeout_secs=20, congestion_controller_type="bbr")
    assert "max_idle_timeout_secs=20" in repr(o) and "'bbr'" in repr(o)
    assert o == QuicTransportOptions(20, "bbr")
    assert o != QuicTransportOptions()
    assert pickle.loads(pickle.dumps(o)) == o


def test_options_keep_alive_must_stay_below_idle():
    # Each value is fine alone; the pair is checked when used (the library's
    # message names both).
    p = Portal()
    o = QuicTransportOptions(max_idle_timeout_secs=1, keep_alive_interval_secs=2)
    with pytest.raises(ValueError, match="keep_alive_interval_secs"):
        p.connect("127.0.0.1", free_port(), 0, o)
    assert not p.is_connected()


# ---- Portal without a connection (0.1.x's own test cases) --------------------


def test_portal_creation():
    p = Portal()
    assert isinstance(p, Portal)
    assert not p.is_connected()
    assert p.server_ip is None and p.server_port is None
    p.close()


def test_portal_takes_no_arguments():
    with pytest.raises(TypeError):
        Portal(5555)


def test_not_connected_errors():
    p = Portal()
    with pytest.raises(ConnectionError, match="^Not connected"):
        p.send(b"hello")
    with pytest.raises(ConnectionError, match="^Not connected"):
        p.send("hello")
    with pytest.raises(ConnectionError, match="^Not connected"):
        p.recv()
    with pytest.raises(ConnectionError, match="^Not connected"):
        p.recv(timeout_ms=10)
    with pytest.raises(PortalError):  # the base class catches it too
        p.recv(0)


def test_calls_on_unconnected_portal_raise_runtime_error():
    p = Portal()
    for call in (lambda: p.send(b"x"), lambda: p.recv(0)):
        try:
            call()
        except RuntimeError as e:  # what a 0.1.x program catches
            assert e.code == quic_portal.ErrorCode.NOT_CONNECTED
        else:
            pytest.fail("no exception")


def test_error_codes_match_the_library():
    assert quic_portal.ErrorCode.TIMEOUT == -3
    assert quic_portal.ErrorCode.PUNCH == -18
    assert len(quic_portal.ErrorCode) == len(quic_portal._core._ERROR_CODES)
    assert all(c < 0 for c in quic_portal.ErrorCode)


def test_not_connected_error_carries_code():
    p = Portal()
    with pytest.raises(ConnectionError) as ei:
        p.send(b"x")
    assert ei.value.code == quic_portal.ErrorCode.NOT_CONNECTED
    assert ei.value.code == -4


def test_repeated_close():
    p = Portal()
    p.close()
    p.close()
    p.close()
    assert not p.is_connected()


def test_errors_after_close():
    p = Portal()
    p.close()
    with pytest.raises(ConnectionError, match="^Not connected"):
        p.send(b"x")
    with pytest.raises(ConnectionError):
        p.recv(10)


def test_local_port_required():
    p = Portal()
    with pytest.raises(ValueError, match=r"^local_port is required for listen\(\)$"):
        p.listen()
    with pytest.raises(ValueError, match=r"^local_port is required for listen\(\)$"):
        p.listen(None)
    with pytest.raises(ValueError, match=r"^local_port is required for connect\(\)$"):
        p.connect("127.0.0.1", 5555)
    with pytest.raises(ValueError, match=r"^local_port is required for connect\(\)$"):
        p.connect("127.0.0.1", 5555, local_port=None)
    assert not p.is_connected()


def test_failed_connect_leaves_it_disconnected():
    p = Portal()
    port = free_port()  # nobody listens there
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="127.0.0.1") as ei:
        p.connect("127.0.0.1", port, 0, fast_options())
    assert time.monotonic() - t0 < 3  # max_idle_timeout_secs=1
    # The connect deadline and the idle timer both expire after 1 s.
    assert ei.value.code in (quic_portal.ErrorCode.TIMEOUT, quic_portal.ErrorCode.IDLE_TIMEOUT)
    assert not p.is_connected()
    assert p.server_ip is None and p.server_port is None
    with pytest.raises(ConnectionError, match="^Not connected"):
        p.send(b"x")
    p.close()


def test_connect_unresolvable_host():
    p = Portal()
    with pytest.raises(ConnectionError) as ei:
        p.connect("no-such-host.invalid", 5555, 0, fast_options())
    assert ei.value.code == quic_portal.ErrorCode.RESOLVE
    assert not p.is_connected()


def test_listen_port_in_use():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
        p = Portal()
        with pytest.raises(ConnectionError, match=str(port)) as ei:
            p.listen(port)
        assert ei.value.code == quic_portal.ErrorCode.SOCKET
        assert not p.is_connected()


# ---- bad arguments -----------------------------------------------------------


@pytest.mark.parametrize("port, exc", [
    ("5555", TypeError), (5555.0, TypeError), (True, TypeError), ([1], TypeError),
    (-1, ValueError), (65536, ValueError), (10 ** 30, ValueError),
])
def test_listen_bad_port(port, exc):
    p = Portal()
    with pytest.raises(exc, match="local_port"):
        p.listen(port)
    assert not p.is_connected()


@pytest.mark.parametrize("kw, exc, what", [
    (dict(server_ip=5, server_port=5555, local_port=0), TypeError, "server_ip"),
    (dict(server_ip=b"127.0.0.1", server_port=5555, local_port=0), TypeError, "server_ip"),
    (dict(server_ip="", server_port=5555, local_port=0), ValueError, "server_ip"),
    (dict(server_ip="127.0.0.1", server_port="5555", local_port=0), TypeError, "server_port"),
    (dict(server_ip="127.0.0.1", server_port=0, local_port=0), ValueError, "server_port"),
    (dict(server_ip="127.0.0.1", server_port=-5, local_port=0), ValueError, "server_port"),
    (dict(server_ip="127.0.0.1", server_port=70000, local_port=0), ValueError, "server_port"),
    (dict(server_ip="127.0.0.1", server_port=5555, local_port=-1), ValueError, "local_port"),
    (dict(server_ip="127.0.0.1", server_port=5555, local_port=65536), ValueError, "local_port"),
    (dict(server_ip="127.0.0.1", server_port=5555, local_port="0"), TypeError, "local_port"),
    (dict(server_ip="127.0.0.1", server_port=5555, local_port=0, transport_options={}),
     TypeError, "transport_options"),
])
def test_connect_bad_arguments(kw, exc, what):
    p = Portal()
    with pytest.raises(exc, match=what):
        p.connect(**kw)
    assert not p.is_connected()
    assert p.server_ip is None


def test_listen_bad_options():
    with pytest.raises(TypeError, match="transport_options"):
        Portal().listen(free_port(), transport_options="cubic")


def test_missing_required_arguments():
    p = Portal()
    with pytest.raises(TypeError):
        p.connect()
    with pytest.raises(TypeError):
        p.connect("127.0.0.1")
    with pytest.raises(TypeError):
        p.send()
    with pytest.raises(TypeError):
        p.send(b"a", b"b")
    with pytest.raises(TypeError):
        p.recv(1, 2)
    with pytest.raises(TypeError):
        p.recv(timeout=5)


@pytest.mark.parametrize("data", [5, None, 1.5, ["a"], {"a": 1}])
def test_send_bad_type(data):
    with pytest.raises(TypeError, match="bytes"):
        Portal().send(data)


@pytest.mark.parametrize("timeout, exc", [
    (1.5, TypeError), ("10", TypeError), (True, TypeError), (-1, ValueError),
    (-(10 ** 30), ValueError),
])
def test_recv_bad_timeout(timeout, exc):
    with pytest.raises(exc, match="timeout_ms"):
        Portal().recv(timeout)
    with pytest.raises(exc, match="timeout_ms"):
        Portal().recv(timeout_ms=timeout)


# ---- signatures (the 0.1.x call shapes) --------------------------------------


def test_create_signatures():
    for name, port in (("create_server", 5555), ("create_client", 5556)):
        sig = inspect.signature(getattr(Portal, name))
        params = sig.parameters
        assert list(params)[:5] == ["dict", "local_port", "stun_servers", "punch_timeout",
                                    "transport_options"]
        assert params["local_port"].default == port
        assert params["stun_servers"].default == [("stun.ekiga.net", 3478),
                                                  ("stun.l.google.com", 19302)]
        assert params["punch_timeout"].default == 15
        assert params["transport_options"].default is None
        assert params["stun_server"].default is None


# ---- create_server / create_client: argument checks (traversal: test_traversal.py)


@pytest.mark.parametrize("create", ["create_server", "create_client"])
@pytest.mark.parametrize("kw, exc, what", [
    (dict(dict=5), TypeError, "dict"),
    (dict(dict=[1, 2]), TypeError, "__setitem__|__contains__|dict"),
    (dict(dict={}, local_port="5555"), TypeError, "local_port"),
    (dict(dict={}, local_port=-1), ValueError, "local_port"),
    (dict(dict={}, local_port=65536), ValueError, "local_port"),
    (dict(dict={}, stun_servers="stun.ekiga.net"), TypeError, "stun_servers"),
    (dict(dict={}, stun_servers=[]), ValueError, "stun_servers"),
    (dict(dict={}, stun_servers=[("stun.ekiga.net",)]), TypeError, "stun_servers"),
    (dict(dict={}, stun_servers=[("stun.ekiga.net", "3478")]), TypeError, "port"),
    (dict(dict={}, stun_servers=[("stun.ekiga.net", 0)]), ValueError, "port"),
    (dict(dict={}, stun_servers=[(3478, "stun.ekiga.net")]), TypeError, "host"),
    (dict(dict={}, stun_server=("stun.ekiga.net", 70000)), ValueError, "stun_server"),
    (dict(dict={}, stun_server=("a", 1), stun_servers=[("b", 2)]), ValueError, "not both"),
    (dict(dict={}, punch_timeout="15"), TypeError, "punch_timeout"),
    (dict(dict={}, punch_timeout=0), ValueError, "punch_timeout"),
    (dict(dict={}, punch_timeout=-3), ValueError, "punch_timeout"),
    (dict(dict={}, transport_options=3), TypeError, "transport_options"),
    (dict(dict={}, local_port=5.5), TypeError, "local_port"),
    (dict(dict={}, local_port=True), TypeError, "local_port"),
    (dict(dict=None), TypeError, "dict"),
    (dict(dict=object()), TypeError, "__setitem__"),
    (dict(dict={}, punch_timeout=float("nan")), ValueError, "punch_timeout"),
    (dict(dict={}, punch_timeout=10 ** 9), ValueError, "punch_timeout"),
    (dict(dict={}, session=5), TypeError, "session"),
    (dict(dict={}, session=""), ValueError, "session"),
    (dict(dict={}, session="x" * 129), ValueError, "session"),
    (dict(dict={}, pin="yes"), TypeError, "pin"),
    (dict(dict={}, legacy=1), TypeError, "legacy"),
    (dict(dict={}, stun_servers=[("stun.example.org", 3478)] * 17), ValueError, "16"),
    (dict(dict={}, portmap=1), TypeError, "portmap"),
    (dict(dict={}, portmap="pcp"), TypeError, "portmap"),
    (dict(dict={}, portmap=None), TypeError, "portmap"),
    (dict(dict={}, portmap={"pcp", "upnp2"}), ValueError, "upnp2"),
])
def test_create_bad_arguments(create, kw, exc, what):
    with pytest.raises(exc, match=what):
        getattr(Portal, create)(**kw)


# ---- the mapping adapter for the C rendezvous callbacks ----------------------


class OnlyItems:
    """The least a store must offer: __setitem__, __getitem__, __contains__."""

    def __init__(self):
        self._d = {}

    def __setitem__(self, k, v):
        self._d[k] = v

    def __getitem__(self, k):
        return self._d[k]

    def __contains__(self, k):
        return k in self._d


class BytesStore(dict):
    """A store that hands values back as bytes (as Redis does)."""

    def __getitem__(self, k):
        return dict.__getitem__(self, k).encode()


@pytest.mark.parametrize("factory", [dict, OnlyItems, BytesStore])
def test_mapping_store(factory):
    m = factory()
    s = MappingStore(m)
    assert s.get("qp/server") is None
    s.put("qp/server", b'{"v":1}')
    assert s.get("qp/server") == b'{"v":1}'
    s.put("qp/client", "str too")
    assert s.get("qp/client") == b"str too"
    s.put("qp/bin", b"\xff\x00 not utf-8")
    assert s.get("qp/bin") == b"\xff\x00 not utf-8"
    s.put("qp/tricky", b"base64:looks encoded")
    assert s.get("qp/tricky") == b"base64:looks encoded"
    s.delete("qp/server")
    assert s.get("qp/server") is None
    s.delete("absent")


def test_mapping_store_values_are_str():
    d = {}
    MappingStore(d).put("k", b"v")
    MappingStore(d).put("b", b"\xff")
    assert d["k"] == "v" and d["b"].startswith("base64:")
    assert all(type(v) is str for v in d.values())


def test_mapping_store_ignores_foreign_values():
    d = {"k": 42}
    assert MappingStore(d).get("k") is None


def test_mapping_store_rejects_non_mappings():
    with pytest.raises(TypeError, match="__setitem__"):
        MappingStore(object())


# ---- signatures --------------------------------------------------------------


def _stub_functions():
    """{(class, method): [(name, default or ...)]} from __init__.pyi."""
    import ast
    import os
    tree = ast.parse(open(os.path.join(os.path.dirname(quic_portal.__file__),
                                       "__init__.pyi")).read())
    out = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            a = fn.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            defaults = ([None] * (len(a.posonlyargs + a.args) - len(a.defaults))
                        + list(a.defaults) + list(a.kw_defaults))
            out[(cls.name, fn.name)] = [
                (n, d.value if isinstance(d, ast.Constant) else None if d is None else ...)
                for n, d in zip(names, defaults) if n != "self"]
    return out


@pytest.mark.parametrize("method", ["listen", "connect", "send", "recv", "is_connected",
                                    "close", "stats", "local_port", "fingerprint",
                                    "create_server", "create_client"])
def test_signatures_match_the_stubs(method):
    stub = _stub_functions()[("Portal", method)]
    sig = inspect.signature(getattr(Portal, method))
    got = [(p.name, p.default if p.default is not inspect.Parameter.empty else None)
           for p in sig.parameters.values() if p.name != "self"]
    assert [n for n, _ in got] == [n for n, _ in stub]
    for (name, want), (_, have) in zip(stub, got):
        if want is not ...:
            assert have == want, (method, name)
    assert help_text(getattr(Portal, method)).startswith(method)


def test_options_signature_matches_the_stub():
    stub = _stub_functions()[("QuicTransportOptions", "__init__")]
    sig = inspect.signature(QuicTransportOptions)
    assert [(p.name, p.default) for p in sig.parameters.values()] == stub
    o = QuicTransportOptions()  # the library's defaults
    assert [getattr(o, n) for n, _ in stub] == [d for _, d in stub]


def help_text(obj):
    import pydoc
    return pydoc.render_doc(obj, renderer=pydoc.plaintext).split("\n", 2)[2].strip()


def test_import_without_the_built_extension_says_so(tmp_path):
    """A source tree where _core is not built: the ImportError names the
    command, instead of Python's "partially initialized module" text."""
    import shutil
    import subprocess
    import sys
    pkg = tmp_path / "quic_portal"
    pkg.mkdir()
    src = os.path.dirname(quic_portal.__file__)
    for name in os.listdir(src):
        if name.endswith(".py"):
            shutil.copy(os.path.join(src, name), pkg / name)
    out = subprocess.run([sys.executable, "-c", "import quic_portal"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path)})
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "make -C python" in out.stderr, out.stderr
    assert "circular" not in out.stderr
