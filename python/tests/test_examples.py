"""The examples: they compile, the Modal ones import with a stand-in for
`modal` (the real one needs an account and the network), the local ones
run, and so does every Python code example of README.md and
python/README.md."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import py_compile
import re
import subprocess
import sys
import time
import types

import pytest

from conftest import CHILD_ENV, ROOT

EXAMPLES = os.path.join(ROOT, "examples")


def example_files():
    return sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))


@pytest.mark.parametrize("name", example_files())
def test_example_compiles(name, tmp_path):
    py_compile.compile(os.path.join(EXAMPLES, name), cfile=str(tmp_path / "x.pyc"),
                       doraise=True)


def fake_modal() -> types.ModuleType:
    """Just enough of modal's API for the examples to import."""
    m = types.ModuleType("modal")

    class Image:
        @classmethod
        def debian_slim(cls, **kw):
            return cls()

        def __getattr__(self, name):  # apt_install, add_local_dir, run_commands...
            return lambda *a, **kw: self

    class Function:
        def __init__(self, f):
            self.f = f

        def __call__(self, *a, **kw):
            return self.f(*a, **kw)

        local = remote = __call__

        def spawn(self, *a, **kw):
            return types.SimpleNamespace(cancel=lambda: None)

    class App:
        def __init__(self, name, **kw):
            self.name = name

        def function(self, **kw):
            return Function

        def local_entrypoint(self, **kw):
            return lambda f: f

    class Dict(dict):
        @classmethod
        @contextlib.contextmanager
        def ephemeral(cls):
            yield cls()

    m.Image, m.App, m.Dict = Image, App, Dict
    return m


@pytest.mark.parametrize("name", ["modal_simple", "modal_benchmark"])
def test_modal_example_imports(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "modal", fake_modal())
    monkeypatch.syspath_prepend(EXAMPLES)
    monkeypatch.delitem(sys.modules, "_modal_image", raising=False)
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for fn in ("server_function", "client_function", "main"):
        assert callable(getattr(mod, fn)), fn
    if name == "modal_benchmark":
        s = mod.summarize([float(i) for i in range(1, 101)])
        assert s["p50_ms"] == 51 and s["min_ms"] == 1 and s["max_ms"] == 100
        assert s["avg_ms"] == pytest.approx(50.5)


def test_local_echo_example_runs():
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "local_echo.py")],
                         env=CHILD_ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Echo: Hello, QUIC!" in out.stdout
    assert "server: client closed" in out.stdout


def test_bench_pingpong_local():
    import json
    bench = os.path.join(ROOT, "python", "bench_pingpong.py")
    out = subprocess.run([sys.executable, bench, "local", "--iters", "5"], env=CHILD_ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("bench", "iterations", "avg_ms", "p50_ms", "p75_ms", "p90_ms", "p99_ms",
                "min_ms", "max_ms", "ping_size", "pong_size", "transport", "connect_ms",
                "lost_packets", "cwnd", "srtt_us", "rss_kb", "rss_peak_kb"):
        assert key in r, key
    assert r["iterations"] == 5 and r["ping_size"] == 614400 and r["pong_size"] == 5120
    assert 0 < r["min_ms"] <= r["p50_ms"] <= r["max_ms"]


@pytest.mark.parametrize("store", ["dir", "redis"])
def test_local_traversal_example_runs(store, request):
    args = []
    if store == "redis":
        args = ["--redis", request.getfixturevalue("redis_url")]
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "local_traversal.py"), *args],
                         env=CHILD_ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "client: connected after" in out.stdout
    assert "server: connected after" in out.stdout
    assert "got back b'Echo: Hello, QUIC!'" in out.stdout
    assert "server: client closed; done" in out.stdout


class PicklingDict:
    """Stand-in for a modal.Dict shared by two containers: values pickled,
    get()/put() and the item protocol."""

    def __init__(self):
        import pickle
        import threading
        self._p, self._d, self._lock = pickle, {}, threading.Lock()

    def __setitem__(self, k, v):
        with self._lock:
            self._d[k] = self._p.dumps(v)

    put = __setitem__

    def __getitem__(self, k):
        with self._lock:
            return self._p.loads(self._d[k])

    def get(self, k, default=None):
        with self._lock:
            return self._p.loads(self._d[k]) if k in self._d else default

    def __contains__(self, k):
        with self._lock:
            return k in self._d

    def __delitem__(self, k):
        with self._lock:
            del self._d[k]


@pytest.mark.parametrize("name", ["modal_simple", "modal_benchmark"])
def test_modal_example_functions_run_locally(name, monkeypatch, capsys):
    """The examples' server_function and client_function, run in two threads
    of this process around a stand-in modal.Dict: create_server /
    create_client on their fixed ports 5555 / 5556."""
    import socket
    import threading
    for port in (5555, 5556):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                pytest.skip(f"UDP port {port} is busy")
    monkeypatch.setitem(sys.modules, "modal", fake_modal())
    monkeypatch.syspath_prepend(EXAMPLES)
    monkeypatch.delitem(sys.modules, "_modal_image", raising=False)
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    d = PicklingDict()
    errors = []

    def serve():
        try:
            mod.server_function(d)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    if name == "modal_benchmark":
        stats = mod.client_function(d, iterations=5)
        assert stats["iterations"] == 5 and stats["min_ms"] > 0
    else:
        mod.client_function(d)
    t.join(30)
    assert not t.is_alive() and not errors, errors
    out = capsys.readouterr().out
    if name == "modal_simple":
        assert "client: got 'Echo: Hello, QUIC! (2)'" in out, out


# ---- the code examples of README.md and python/README.md -------------------
#
# Every ```python block runs as written. A block with two sides is written
# as "# program 1: ..." and "# program 2: ..." parts: they run as two
# processes, program 2 once program 1 holds a UDP socket (a listening
# server has bound its port).

READMES = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "python", "README.md")]
PROGRAM_MARK = re.compile(r"^# program (\d+)\b", re.M)


def readme_examples():
    out = []
    for path in READMES:
        text = open(path).read()
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, m.start()) + 1
            out.append(pytest.param(m.group(1),
                                    id=f"{os.path.relpath(path, ROOT)}:{line}"))
    return out


def split_programs(code):
    marks = list(PROGRAM_MARK.finditer(code))
    if not marks:
        return [code]
    return [code[m.start():(marks[i + 1].start() if i + 1 < len(marks) else len(code))]
            for i, m in enumerate(marks)]


def udp_inodes(pid):
    """Inodes of the UDP sockets process pid holds (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    udp = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            next(f)
            udp.update(line.split()[9] for line in f)
    return inodes & udp


def test_readme_examples_found():
    examples = readme_examples()
    assert len(examples) >= 3
    assert any(len(split_programs(p.values[0])) == 2 for p in examples)


@pytest.mark.parametrize("code", readme_examples())
def test_readme_example_runs(code, tmp_path):
    programs = split_programs(code)
    procs = []
    try:
        for i, program in enumerate(programs):
            if i > 0:  # the previous program is up: it holds a UDP socket
                deadline = time.monotonic() + 30
                while not udp_inodes(procs[-1].pid) and procs[-1].poll() is None \
                        and time.monotonic() < deadline:
                    time.sleep(0.02)
            procs.append(subprocess.Popen([sys.executable, "-c", program], cwd=tmp_path,
                                          env=CHILD_ENV, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        for p, program in zip(procs, programs):
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, f"{program}\nstdout:\n{out}\nstderr:\n{err}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=5)
