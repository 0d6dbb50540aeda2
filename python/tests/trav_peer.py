"""One side of the two-process traversal tests (run by test_traversal.py).

    trav_peer.py ROLE STORE SESSION PUNCH_TIMEOUT [extra]

ROLE: "server" (create_server, then echo every message until the client
closes: "done N"), "client" (create_client; sends "hello" and prints the
echo, then sends a message of `extra` MiB and checks its echo: "big ok"),
"lonely" (create_client with nobody serving: "error ELAPSED MESSAGE"),
"blocker" (create_client; on Ctrl-C "interrupted T").
STORE: "dir:PATH" (DirDict), "redis://..." (RedisDict).
Every step prints one line on stdout.
"""

import hashlib
import os
import sys
import time

from quic_portal import ConnectionError, Portal
from quic_portal.rendezvous import DirDict, RedisDict


def say(*words):
    print(*words, flush=True)


def main():
    role, store_arg, session, punch = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    store = DirDict(store_arg[4:]) if store_arg.startswith("dir:") else RedisDict(store_arg)
    say("store", repr(store))
    if role == "blocker":
        say("blocking")
        try:
            Portal.create_client(store, local_port=0, punch_timeout=punch, session=session)
            say("unexpected-connect")
        except KeyboardInterrupt:
            say("interrupted", repr(time.monotonic()))
        return
    if role == "lonely":
        t0 = time.monotonic()
        try:
            Portal.create_client(store, local_port=0, wait_timeout=punch, session=session)
            say("unexpected-connect")
        except ConnectionError as e:
            say("error", f"{time.monotonic() - t0:.3f}", str(e).replace("\n", " "))
        return
    t0 = time.monotonic()
    if role == "server":
        portal = Portal.create_server(store, local_port=0, punch_timeout=punch, session=session)
    else:
        portal = Portal.create_client(store, local_port=0, punch_timeout=punch, session=session)
    say("connected", f"{time.monotonic() - t0:.3f}")
    if role == "server":
        n = 0
        while True:
            try:
                msg = portal.recv()
            except ConnectionError:
                break
            portal.send(msg)
            n += 1
        say("done", n)
    else:
        portal.send(b"hello")
        say("echo", portal.recv(10000).decode())
        mib = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        if mib:
            big = os.urandom(1 << 20) * mib
            portal.send(big)
            back = portal.recv(60000)
            ok = back is not None and hashlib.sha256(back).digest() == hashlib.sha256(big).digest()
            say("big", "ok" if ok else f"bad {None if back is None else len(back)}")
    portal.close()


if __name__ == "__main__":
    try:
        main()
    except ConnectionError as e:
        say("error", str(e).replace("\n", " "))
        sys.exit(3)
