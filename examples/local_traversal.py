"""create_server / create_client between two processes on this machine,
meeting through a shared store instead of a modal.Dict: a folder
(quic_portal.rendezvous.DirDict) or a Redis server (RedisDict).

    python3 examples/local_traversal.py                        # both sides, DirDict in a temp folder
    python3 examples/local_traversal.py --redis redis://127.0.0.1:6379/0
    python3 examples/local_traversal.py server dir:/tmp/rdv    # or one side per terminal
    python3 examples/local_traversal.py client dir:/tmp/rdv

The default STUN servers are asked for each side's public address; offline
their names do not resolve, which costs nothing here: the two sides meet
through their local addresses. Each step is printed.

With the in-place build: PYTHONPATH=python python3 examples/local_traversal.py
"""

import os
import subprocess
import sys
import tempfile
import time

from quic_portal import ConnectionError, Portal
from quic_portal.rendezvous import DirDict, RedisDict

SESSION = "local-traversal-example"


def say(role, text):
    print(f"{role}: {text}", flush=True)


def open_store(spec):
    if spec.startswith("redis://"):
        return RedisDict(spec, session=SESSION)
    if spec.startswith("dir:"):
        return DirDict(spec[len("dir:"):], session=SESSION)
    raise SystemExit(f"store must be dir:PATH or redis://HOST[:PORT][/DB], not {spec!r}")


def server(spec):
    store = open_store(spec)
    say("server", f"publishing its record in {store!r} (session {SESSION!r})")
    t0 = time.monotonic()
    portal = Portal.create_server(store, local_port=0, punch_timeout=15)
    say("server", f"connected after {time.monotonic() - t0:.2f} s "
                  f"(UDP port {portal.local_port()}, client certificate verified)")
    n = 0
    while True:
        try:
            data = portal.recv()  # Ctrl-C works here
        except ConnectionError:
            break  # the client closed
        n += 1
        say("server", f"message {n}: {len(data)} bytes, echoing")
        portal.send(b"Echo: " + data[:60])
    say("server", "client closed; done")
    portal.close()


def client(spec):
    store = open_store(spec)
    say("client", f"looking for the server's record in {store!r}")
    t0 = time.monotonic()
    portal = Portal.create_client(store, local_port=0, punch_timeout=15)
    say("client", f"connected after {time.monotonic() - t0:.2f} s "
                  f"(UDP port {portal.local_port()}, server certificate verified)")
    for text in ("Hello, QUIC!", "héllo through the NAT", "x" * 1000000):
        portal.send(text)
        reply = portal.recv(timeout_ms=5000)
        if reply is None:
            say("client", "no answer within 5 s")
            break
        say("client", f"sent {len(text)} characters, got back {reply[:40]!r}")
    portal.close()
    say("client", "closed")


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] in ("server", "client"):
        (server if args[0] == "server" else client)(args[1])
        return
    if args and args[0] == "--redis" and len(args) == 2:
        spec, tmp = args[1], None
    elif not args:
        tmp = tempfile.TemporaryDirectory(prefix="qp-rendezvous-")
        spec = "dir:" + tmp.name
    else:
        raise SystemExit(__doc__)
    print(f"store: {spec}", flush=True)
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "server", spec])
    try:
        client(spec)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if tmp is not None:
            tmp.cleanup()
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
