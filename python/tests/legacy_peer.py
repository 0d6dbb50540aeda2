"""A quic-portal 0.1.x peer for the tests, written from the description of
0.1.x's protocol in issue 14, not from the package's legacy module:

- learn (ip, port) from a STUN server on the socket bound to local_port,
  store [(ip, port)] under "server" or "client" (again every 200 ms), read
  the other key until it appears;
- server: "punch" to every client endpoint each round, 100 ms receive
  timeout; on a "punch": a burst of "punch-ack" 30 ms apart to its sender,
  re-ack duplicate punches for up to 1 s, close, wait 100 ms, listen for
  QUIC on local_port (targets widen to ports 1000-9998, then 1000-65534,
  after the first and second receive timeouts);
- client: "punch" to the server endpoints until a "punch-ack" comes from
  one of the server's IPs, close, connect QUIC from local_port to it.

Its QUIC goes through this package's listen/connect with pinning off,
which is what 0.1.x puts on the wire.

As a program: legacy_peer.py ROLE DIR STUN_PORT (a DirDict in DIR), then
one message each way: the client sends "hello from 0.1.x" and prints the
answer; the server answers "0.1.x got <message>".
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

from quic_portal import Portal

MAGIC = 0x2112A442


def my_address(sock, stun_port):
    """Our (ip, port) as the STUN server on 127.0.0.1:stun_port sees it."""
    txid = os.urandom(12)
    request = struct.pack("!HHI12s", 1, 0, MAGIC, txid)
    sock.settimeout(0.5)
    for _ in range(6):
        sock.sendto(request, ("127.0.0.1", stun_port))
        try:
            data, _ = sock.recvfrom(1500)
        except socket.timeout:
            continue
        if data[8:20] != txid:
            continue
        at = 20
        while at + 4 <= len(data):
            kind, size = struct.unpack_from("!HH", data, at)
            if kind == 0x0020:  # XOR-MAPPED-ADDRESS, IPv4
                xport, xip = struct.unpack_from("!HI", data, at + 6)
                return (socket.inet_ntoa(struct.pack("!I", xip ^ MAGIC)),
                        xport ^ (MAGIC >> 16))
            at += 4 + (size + 3) // 4 * 4
    raise RuntimeError("the STUN server did not answer")


def exchange_lists(store, mine, own, other):
    while True:
        store[own] = [mine]
        if other in store and store[other]:
            return [tuple(e) for e in store[other]]
        time.sleep(0.2)


def serve(sock, clients):
    ips = sorted({ip for ip, _ in clients})
    targets, misses = list(clients), 0
    sock.settimeout(0.1)
    while True:
        for t in targets:
            try:
                sock.sendto(b"punch", t)
            except OSError:
                pass
        try:
            data, sender = sock.recvfrom(1500)
        except socket.timeout:
            misses += 1
            if misses == 1:
                targets = [(ip, p) for ip in ips for p in range(1000, 9999)]
            elif misses == 2:
                targets = [(ip, p) for ip in ips for p in range(1000, 65535)]
            continue
        except OSError:
            continue
        if data != b"punch":
            continue
        for _ in range(3):
            sock.sendto(b"punch-ack", sender)
            time.sleep(0.03)
        until = time.monotonic() + 1.0
        sock.settimeout(0.03)
        while time.monotonic() < until:
            try:
                again, who = sock.recvfrom(1500)
            except (socket.timeout, OSError):
                continue
            if again == b"punch" and who == sender:
                sock.sendto(b"punch-ack", sender)
        return


def knock(sock, servers):
    ips = {ip for ip, _ in servers}
    sock.settimeout(0.1)
    while True:
        for t in servers:
            sock.sendto(b"punch", t)
        try:
            data, sender = sock.recvfrom(1500)
        except (socket.timeout, OSError):
            continue
        if data == b"punch-ack" and sender[0] in ips:
            return sender


def run(role, store, stun_port, local_port=0):
    """Meet the other side as 0.1.x does; returns a connected Portal."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", local_port))
    port = sock.getsockname()[1]
    mine = my_address(sock, stun_port)
    if role == "server":
        serve(sock, exchange_lists(store, mine, "server", "client"))
        sock.close()
        time.sleep(0.1)
        portal = Portal()
        portal.listen(port)
    else:
        server = knock(sock, exchange_lists(store, mine, "client", "server"))
        sock.close()
        portal = Portal()
        portal.connect(server[0], server[1], port)
    return portal


def main():
    from quic_portal.rendezvous import DirDict

    role, folder, stun_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    portal = run(role, DirDict(folder), stun_port)
    print("connected", flush=True)
    if role == "server":
        portal.send(b"0.1.x got " + portal.recv(20000))
    else:
        portal.send(b"hello from 0.1.x")
        print(portal.recv(20000).decode(), flush=True)
    portal.close()


if __name__ == "__main__":
    main()
