#!/usr/bin/env python3
"""The Python side of tests/lab/test_portmap.sh: Portal.create_server through
the lab's Redis, with portmap on or off, echoing until the client closes.
Prints "PATH <text>" once connected (or "RESULT fail <code> <message>"),
then "CLOSED" after Portal.close(), and keeps the Portal object alive until
a line arrives on stdin, so that the test can look at the router between
close and the end of the process.

    py_portmap_peer.py REDIS_URL SESSION STUN_HOST:PORT on|off PUNCH_SECS
"""
import sys

import quic_portal
from quic_portal import Portal
from quic_portal.rendezvous import RedisDict


def main() -> int:
    url, session, stun, portmap, punch = sys.argv[1:6]
    host, port = stun.rsplit(":", 1)
    try:
        p = Portal.create_server(RedisDict(url, session), local_port=0,
                                 stun_servers=[(host, int(port))],
                                 punch_timeout=float(punch), wait_timeout=30,
                                 secret="quic-portal lab secret",
                                 portmap=portmap == "on")
    except quic_portal.ConnectionError as e:
        print("RESULT fail", getattr(e, "code", "?"), e, flush=True)
        sys.stdin.readline()
        return 1
    print("PATH", p.path, flush=True)
    while True:
        try:
            m = p.recv()
        except quic_portal.ConnectionError:
            break  # the client closed
        if m is None:
            break
        p.send(m)
    p.close()
    print("CLOSED", flush=True)
    sys.stdin.readline()  # the portal lives (not destroyed) until told
    del p
    return 0


if __name__ == "__main__":
    sys.exit(main())
