"""Install check (slow: builds the C library twice; not collected by pytest).

  /usr/bin/python3 python/tests/pip_install_check.py [TREE]

With Debian's python3, offline, as the READMEs tell users:
1. `python3 -m venv --system-site-packages V` and
   `V/bin/pip install --no-build-isolation --no-index TREE` (the root
   pyproject.toml/setup.py); the installed package, imported from outside the
   tree, connects two portals on loopback and meets itself through
   create_server/create_client;
2. the sdist (`setup.py sdist`) carries the C sources and installs the same
   way into a second venv;
3. `pip uninstall` removes it.
Build products stay in TREE/build-pip and temporary folders. Exit 0 when all
pass; prints what it measured.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tarfile
import tempfile
import time

TREE = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PYTHON = "/usr/bin/python3"  # Debian's: its pip refuses to install outside a venv

SMOKE = r"""
import socket, threading, quic_portal
from quic_portal import Portal
assert "site-packages" in quic_portal.__file__, quic_portal.__file__
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]; s.close()
server, client = Portal(), Portal()
t = threading.Thread(target=server.listen, args=(port,)); t.start()
while True:
    try:
        client.connect("127.0.0.1", port, 0); break
    except quic_portal.ConnectionError:
        pass
t.join(10)
client.send(b"ping"); assert server.recv(timeout_ms=5000) == b"ping"
client.close(); server.close()
d, got = {}, {}
kw = dict(local_port=0, stun_servers=[("127.0.0.1", 9)], punch_timeout=5, wait_timeout=30)
t = threading.Thread(target=lambda: got.update(s=Portal.create_server(d, **kw))); t.start()
c = Portal.create_client(d, **kw); t.join(30)
c.send(b"hello"); assert got["s"].recv(timeout_ms=5000) == b"hello"
c.close(); got["s"].close()
print("ok", quic_portal.__version__, quic_portal.__file__)
"""

NEEDED_IN_SDIST = ["CMakeLists.txt", "include/quic_portal.h", "src/portal/create.c",
                   "src/traversal/traversal.c", "python/src/_core.c", "python/qp_build.py",
                   "python/quic_portal/__init__.py", "python/quic_portal/__init__.pyi"]


def run(cmd, **kw):
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"FAILED ({out.returncode}): {' '.join(cmd)}\n{out.stdout[-3000:]}\n"
                 f"{out.stderr[-3000:]}")
    return out.stdout, time.monotonic() - t0


def venv(path):
    run([PYTHON, "-m", "venv", "--system-site-packages", path])
    return os.path.join(path, "bin", "pip"), os.path.join(path, "bin", "python")


def install_and_smoke(pip, python, what, label):
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get(
        "CMAKE_BUILD_PARALLEL_LEVEL", "2"))
    env.pop("PYTHONPATH", None)
    _, secs = run([pip, "install", "--no-build-isolation", "--no-index", what], env=env)
    print(f"{label}: pip install took {secs:.0f} s")
    out, _ = run([python, "-c", SMOKE], cwd="/", env=env)
    print(f"{label}: {out.strip()}")


def main():
    with tempfile.TemporaryDirectory(prefix="qp-pip-") as tmp:
        pip, python = venv(os.path.join(tmp, "v1"))
        install_and_smoke(pip, python, TREE, "tree")
        run([pip, "uninstall", "-y", "quic-portal"])
        out, _ = run([python, "-c", "import importlib.util as u; "
                      "print(u.find_spec('quic_portal'))"], cwd="/")
        assert out.strip() == "None", f"still importable after uninstall: {out}"
        print("tree: pip uninstall removed it")

        run([PYTHON, "setup.py", "-q", "sdist", "-d", os.path.join(tmp, "dist")], cwd=TREE)
        (sdist,) = glob.glob(os.path.join(tmp, "dist", "*.tar.gz"))
        with tarfile.open(sdist) as tar:
            names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        missing = [n for n in NEEDED_IN_SDIST if n not in names]
        assert not missing, f"sdist lacks {missing}"
        print(f"sdist: {os.path.basename(sdist)}, {len(names)} entries, "
              f"{sum(n.endswith('.c') for n in names)} C files")
        pip2, python2 = venv(os.path.join(tmp, "v2"))
        install_and_smoke(pip2, python2, sdist, "sdist")
    print("pip install check passed")


if __name__ == "__main__":
    main()
